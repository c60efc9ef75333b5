package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/progress"
	"github.com/thinkgen/thinkgen/internal/selftest"
)

func selftestCommand() *command {
	return &command{
		name:  "selftest",
		usage: "[flags]",
		short: "train a small network with gotch to check the toolchain",
		long: `Selftest trains a small tanh network on a fixed regression task with gotch
autograd and AdamW, saves and reloads its checkpoint, and measures whether
live tensors and the process's resident memory stay flat over the run.

It fails (exit 1) if the loss does not fall below --target-loss, the
reloaded network's outputs differ, or live tensors grow.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			steps := fs.Int("steps", 3000, "training steps")
			target := fs.Float64("target-loss", 0.01, "loss the training must reach")
			seed := fs.Int64("seed", 1, "seed of the data and the initialisation")
			threads := fs.Int("threads", 0, "libtorch CPU threads (0 keeps libtorch's default)")
			return func(ctx context.Context, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if *steps <= 100 {
					return usagef("--steps must be more than 100 (the memory baseline is taken at step 100), got %d", *steps)
				}
				if *threads > 0 {
					if err := libtorch.SetThreads(*threads); err != nil {
						return &usageError{err}
					}
				}
				bar := progress.New(e.stderr, "selftest", *steps, 2*time.Second)
				res, err := selftest.Train(ctx, selftest.Options{
					Steps:      *steps,
					TargetLoss: *target,
					Seed:       *seed,
					Progress:   func(step int, loss float64) { bar.Step(fmt.Sprintf("loss %.5f", loss)) },
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "selftest: loss %.4f -> %.6f in %d steps (below %g at step %d), %.0f steps/s on %d threads\n",
					res.InitialLoss, res.FinalLoss, res.Steps, *target, res.StepsToTarget,
					float64(res.Steps)/res.Elapsed.Seconds(), libtorch.Threads())
				fmt.Fprintf(e.stdout, "selftest: live tensors %d -> %d, RSS %.1f -> %.1f MiB (fitted slope %.0f B/step)\n",
					res.LiveTensorsBefore, res.LiveTensorsAfter,
					float64(res.RSSBefore)/(1<<20), float64(res.RSSAfter)/(1<<20), res.RSSSlope())
				fmt.Fprintf(e.stdout, "selftest: checkpoint %d bytes, reloaded outputs differ by %g\n",
					res.CheckpointBytes, res.ReloadMaxDiff)
				switch {
				case res.StepsToTarget == 0:
					return fmt.Errorf("loss never fell below %g", *target)
				case res.ReloadMaxDiff != 0:
					return fmt.Errorf("reloaded checkpoint gives different outputs (max diff %g)", res.ReloadMaxDiff)
				case res.LiveTensorsAfter > res.LiveTensorsBefore:
					return fmt.Errorf("live tensors grew from %d to %d", res.LiveTensorsBefore, res.LiveTensorsAfter)
				}
				return nil
			}
		},
	}
}
