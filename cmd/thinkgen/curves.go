package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/curves"
	"github.com/thinkgen/thinkgen/internal/plots"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
)

func curvesCommand() *command {
	return &command{
		name:  "curves",
		usage: "[--store URI] --out FILE.png [--metric NAME …] [--raw] RUN…",
		short: "draw several runs' training curves in one figure: a panel per metric, a line per run",
		long: `Curves reads the metrics of every committed step of each RUN (the
names runs lists) and draws one panel per --metric with one line per run,
smoothed by the trailing mean over 5 steps (--raw draws the values), into
the PNG --out: seeds of one recipe, or recipes, side by side. Metric names
are those of the metrics shards and TensorBoard (docs/sepgrpo.md), e.g.
reward/mean, reward/composition/mean, rollout/instruction/composition,
loss/kl, learn/grad_norm. A metric no run logged is refused, naming the
metrics they did log.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			out := fs.String("out", "", "PNG file to write (required)")
			metrics := fs.StringSlice("metric", []string{"reward/mean", "loss/kl"}, "metrics to draw, one panel each (comma-separated or repeated)")
			raw := fs.Bool("raw", false, "draw each step's value instead of the trailing mean")
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					return usagef("name at least one run (thinkgen runs lists them)")
				}
				if *out == "" {
					return usagef("--out is required: the PNG file to write")
				}
				if len(*metrics) == 0 {
					return usagef("--metric: name at least one metric")
				}
				st, err := rf.openStore(ctx)
				if err != nil {
					return err
				}
				tmp, err := os.MkdirTemp("", "thinkgen-curves-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				rcs := make([]curves.Run, 0, len(args))
				for _, run := range args {
					h, err := runs.ReadHistory(ctx, st, run, tmp)
					if errors.Is(err, storage.ErrNotExist) {
						return usagef("run %s: no run.json in %s (thinkgen runs lists the store's runs)", run, st)
					}
					if err != nil {
						return fmt.Errorf("run %s: %w", run, err)
					}
					if len(h.Steps) == 0 {
						return usagef("run %s: no committed step yet", run)
					}
					rcs = append(rcs, curves.Run{Name: run, History: h})
				}
				panels, err := curves.Compare(rcs, *metrics, *raw)
				if err != nil {
					return &usageError{fmt.Errorf("--metric: %w", err)}
				}
				if err := plots.Write(*out, panels, min(len(panels), 3)); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "curves: %s (%d runs, %d panels)\n", *out, len(rcs), len(panels))
				return nil
			}
		},
	}
}
