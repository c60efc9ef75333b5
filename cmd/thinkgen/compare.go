package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/evaluate"
)

func compareCommand() *command {
	return &command{
		name:  "compare",
		usage: "BASE.json RUN.json [RUN.json ...] [--by-task] [--json]",
		short: "compare eval --model results row by row: gains with confidence intervals, and their spread over runs",
		long: `Compare reads the JSON that eval --model --json prints for a base model and
one or more runs (seeds, checkpoints) evaluated on the same held-out rows
(the same --seed, --rows and --scenarios), pairs their scores row by row
and prints, per run, mode and scenario: the rows, the base and run means,
the gain with its 95% confidence interval (mean of the per-row differences
± t standard errors, Student's t with rows − 1 degrees of freedom: 1.97
for 200 rows) and how many rows rose and fell. The rows carry the
same prompts and the same noise in both, so the DiT's luck cancels and the
interval is much tighter than two unpaired means would allow.

With several runs it adds their spread: the mean gain over the runs, its
standard deviation, minimum and maximum — the "several seeds, mean and
spread" of a training claim.

--by-task also compares each scenario's sub-tasks (reasoning: arithmetic,
knowledge, …). --json prints every figure.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			byTask := fs.Bool("by-task", false, "also compare each scenario's sub-tasks")
			asJSON := fs.Bool("json", false, "print JSON instead of tables")
			return func(ctx context.Context, args []string) error {
				if len(args) < 2 {
					return usagef("compare takes a BASE.json and at least one RUN.json (eval --model --json output)")
				}
				base, err := readEvalRows(args[0])
				if err != nil {
					return err
				}
				type runResult struct {
					File   string            `json:"file"`
					Model  string            `json:"model"`
					Paired []evaluate.Paired `json:"paired"`
				}
				var (
					results []runResult
					all     [][]evaluate.Paired
				)
				for _, f := range args[1:] {
					run, err := readEvalRows(f)
					if err != nil {
						return err
					}
					if run.Seed != base.Seed || !slices.Equal(run.Scenarios, base.Scenarios) {
						return fmt.Errorf("compare %s with %s: seed %d and scenarios %v against seed %d and scenarios %v: the held-out rows differ", f, args[0], run.Seed, run.Scenarios, base.Seed, base.Scenarios)
					}
					ps, err := evaluate.Compare(base.RowScores, run.RowScores, *byTask)
					if err != nil {
						return fmt.Errorf("compare %s with %s: %w", f, args[0], err)
					}
					results = append(results, runResult{File: f, Model: run.Model, Paired: ps})
					all = append(all, ps)
				}
				spreads, err := evaluate.Spreads(all)
				if err != nil {
					return err
				}
				if *asJSON {
					enc := json.NewEncoder(e.stdout)
					enc.SetIndent("", "  ")
					out := map[string]any{"base": args[0], "base_model": base.Model, "seed": base.Seed, "runs": results}
					if len(all) > 1 {
						out["spread"] = spreads
					}
					return enc.Encode(out)
				}
				for i, r := range results {
					if i > 0 {
						fmt.Fprintln(e.stdout)
					}
					fmt.Fprintf(e.stdout, "%s (%s) against %s (%s), seed %d, paired by row:\n", r.File, r.Model, args[0], base.Model, base.Seed)
					if err := evaluate.WritePaired(e.stdout, r.Paired); err != nil {
						return err
					}
				}
				if len(all) < 2 {
					return nil
				}
				fmt.Fprintf(e.stdout, "\ngain over %d runs:\n", len(all))
				return evaluate.WriteSpreads(e.stdout, spreads)
			}
		},
	}
}

// evalRows is what compare reads of eval --model --json's output.
type evalRows struct {
	Model     string                         `json:"model"`
	Seed      int64                          `json:"seed"`
	Scenarios []string                       `json:"scenarios"`
	RowScores map[string][]evaluate.RowScore `json:"row_scores"`
}

func readEvalRows(path string) (*evalRows, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read eval results: %w", err)
	}
	var r evalRows
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read eval results %s: %w", path, err)
	}
	if len(r.RowScores) == 0 {
		return nil, fmt.Errorf("read eval results %s: no row_scores: write it with eval --model DIR --json (this version or later)", path)
	}
	return &r, nil
}
