package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/report"
)

func runsCommand() *command {
	return &command{
		name:  "runs",
		usage: "[--store URI] [--json] [flags]",
		short: "list the runs in a store: status, step, phase, best eval scores",
		long: `Runs lists every run of the store (every runs/<run>/run.json): its status,
committed steps of the schedule's total, the phase of its last committed
step, its best held-out score (the evaluated version and mode with the
highest mean score over the scenarios, from runs/<run>/eval/*.json) and
when it last wrote something.

Status: "finished" when every step is committed; otherwise "in progress"
if the run wrote run.json or an object of the step in flight within
--stale-after (or three of its mean step times, if longer), else "stale"
(killed, or hung: thinkgen train --resume continues it).

--json prints one JSON array with every field, including the best score of
each scenario.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			asJSON := fs.Bool("json", false, "print JSON instead of a table (as --log-format json)")
			staleAfter := fs.Duration("stale-after", report.DefaultStaleAfter, "silence after which an unfinished run is stale")
			return func(ctx context.Context, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if *staleAfter <= 0 {
					return usagef("--stale-after must be positive, got %s", *staleAfter)
				}
				st, err := rf.openStore(ctx)
				if err != nil {
					return err
				}
				now := time.Now()
				runs, err := report.ListRuns(ctx, st, now, *staleAfter)
				if err != nil {
					return err
				}
				if *asJSON || rf.json() {
					if runs == nil {
						runs = []report.Summary{}
					}
					enc := json.NewEncoder(e.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(runs)
				}
				if len(runs) == 0 {
					fmt.Fprintf(e.stdout, "no runs in %s\n", st)
					return nil
				}
				tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "RUN\tSTATUS\tSTEP\tPHASE\tBEST EVAL (mean score)\tUPDATED")
				for _, r := range runs {
					if r.Err != "" {
						fmt.Fprintf(tw, "%s\tunreadable\t\t\t\t%s\n", r.Name, r.Err)
						continue
					}
					best := "—"
					if b := r.Best; b != nil {
						best = fmt.Sprintf("%.3f %s %s", b.Score, b.Label, b.Mode)
					}
					phase := r.Phase
					if phase == "" {
						phase = "—"
					}
					fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s (%s ago)\n", r.Name, r.Status, r.Committed, r.Steps, phase, best,
						r.Activity.UTC().Format("2006-01-02 15:04"), now.Sub(r.Activity).Round(time.Second))
				}
				return tw.Flush()
			}
		},
	}
}
