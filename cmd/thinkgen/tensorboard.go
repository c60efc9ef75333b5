package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
)

func tensorboardCommand() *command {
	return &command{
		name:  "tensorboard",
		usage: "--run <run> [--run <run>…] --logdir <dir> [--follow <interval>] [flags]",
		short: "copy runs' TensorBoard event files from the store into a local log directory",
		long: `Tensorboard copies the TensorBoard event files of runs (one small file
per committed step, and one of the held-out scores, under
runs/<run>/tensorboard/ in the store) into <logdir>/<run>/, so that

    tensorboard --logdir <logdir>

shows them, one TensorBoard run per thinkgen run. Files already there with
the same size are kept; files the store no longer holds (replaced when a
run resumed on another host) are removed. With --follow it copies again at
that interval until interrupted, for watching a run in progress.

A local store needs no copy: its runs/<run>/tensorboard/ directory is a log
directory (tensorboard --logdir store/runs shows every run).`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			names := fs.StringArray("run", nil, "run whose event files to copy (repeatable; required)")
			logdir := fs.String("logdir", "", "local directory to copy into, one folder per run (required)")
			follow := fs.Duration("follow", 0, "copy again at this interval (e.g. 30s) until interrupted; 0 copies once")
			return func(ctx context.Context, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if len(*names) == 0 {
					return usagef("--run is required")
				}
				for _, r := range *names {
					if err := storage.ValidateRun(r); err != nil {
						return usagef("--run: %v", err)
					}
				}
				if *logdir == "" {
					return usagef("--logdir is required")
				}
				if *follow < 0 {
					return usagef("--follow must not be negative, got %s", *follow)
				}
				st, err := rf.openStore(ctx)
				if err != nil {
					return err
				}
				for _, r := range *names {
					if _, err := runs.ReadState(ctx, st, r); err != nil {
						return fmt.Errorf("run %s: %w", r, err)
					}
				}
				for {
					for _, r := range *names {
						n, added, err := runs.SyncEvents(ctx, st, r, filepath.Join(*logdir, r))
						if err != nil {
							if *follow > 0 && ctx.Err() != nil {
								return nil
							}
							return err
						}
						fmt.Fprintf(e.stderr, "tensorboard: run %s: %d event files in %s (%d new)\n", r, n, filepath.Join(*logdir, r), added)
					}
					if *follow == 0 {
						fmt.Fprintf(e.stdout, "tensorboard --logdir %s\n", *logdir)
						return nil
					}
					select {
					case <-ctx.Done():
						return nil // interrupted: a normal end of --follow
					case <-time.After(*follow):
					}
				}
			}
		},
	}
}
