// Package evaluate is the eval harness: it runs the think-then-generate
// pipeline (rollout.ThinkDraw, with the sampling settings its caller
// resolved: Options.Sampling) on held-out ShapeWorld rows, scores the
// images with the rule models, and writes image grids and Table-6-style
// tables.
//
// # Modes
//
// [Run] evaluates a bundle in the [Modes] "direct" (the prompt closes an
// empty think block) and "think" (the MLLM reasons first), the MLLM always
// decoding greedily and the DiT drawing or editing by ODE sampling with
// guidance; and, when asked, in [OracleMode] (the DiT conditioned on each
// row's reference answer in its pre-training format: the DiT's ceiling)
// and [ReferenceMode] (the MLLM's reply forced to the row's reference
// chain and answer: the ceiling of training the MLLM alone). Row k's noise
// derives from the seed and k, so two bundles evaluated with the same
// options see the same rows with the same noise. [InstructionScore] scores
// the MLLM's instruction itself, read back as a caption: the last column of
// the tables.
//
// # Tables
//
// [WriteTable] prints the per-stage, per-mode scores of several versions;
// [TaskSummaries] and [WriteTaskTable] split a scenario by sub-task;
// [WriteGrid] draws reference | generated | target rows.
//
// # Paired comparisons
//
// [RowScores] keeps each row's score (eval --json's row_scores); [Compare]
// pairs two evaluations of the same rows into each group's gain with its
// 95% confidence interval (Student's t over the per-row differences) and
// the rows that rose and fell; [Spreads] reduces several runs' gains
// (seeds) to their mean, standard deviation and range. `thinkgen compare`
// and the table at the end of `thinkgen train` print them.
package evaluate
