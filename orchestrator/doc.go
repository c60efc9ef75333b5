// Package orchestrator is the controller of a SepGRPO run.
//
// A [Controller] drives one run: [Open] takes the run's lease
// (runs/<run>/lease.json: one controller per run; a second is refused
// naming the holder and when its lease expires; taking a released or
// expired lease over starts the next epoch, which every task and key of
// this controller carries), renews it until [Controller.Close], reads the
// run's state
// (runs/<run>/run.json, package storage/runs), takes the run's
// configuration from it when resuming, computes the run's plan once
// (package schedule) and, for a new run, imports the base checkpoint as
// version 0. [Controller.Step] runs the next step: its rollout tasks (the
// step's prompts, split evenly), one reward task per rollout shard and the
// learn task, each handed to an [Executor] (a worker in this process in
// embedded mode, the workers behind a task queue in distributed mode) and
// retried up to Options.Attempts times unless it fails with task.ErrFatal.
// Then it commits the step: every output is verified (size, sha256), the
// lease renewed, the step's metrics shard and manifest are written, then
// its TensorBoard event file, then run.json (compare-and-swap on the
// version it last wrote), and the previous checkpoint is dropped unless
// run.checkpoint_every keeps it or it ends a block of the schedule.
// With run.max_staleness = k > 0 the rollout and reward tasks of the next
// k steps run ahead, while a step learns, each with a policy version the
// plan fixes (ahead.go), so runs stay deterministic and resumable.
// [Controller.Run] runs the remaining steps with a progress line each;
// [Train] is Open then Run.
//
// The manifest is the commit: a run killed at any point resumes from its
// last committed step (repairing the event file and run.json of a step
// whose manifest was written; a manifest it cannot read stops the resume
// rather than counting as uncommitted) with the same result as a run that
// was not killed. The controller reads every time it records from its [Clock], so
// its scenario tests (testdata/*.txt, run by TestScenarios) replay
// commits, failed and fatal tasks and kills at each point of a commit
// deterministically, against golden output that
// `go test ./orchestrator -run TestScenarios -update` refreshes.
package orchestrator
