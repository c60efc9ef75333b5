package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/report"
	"github.com/thinkgen/thinkgen/storage"
)

func reportCommand() *command {
	return &command{
		name:  "report",
		usage: "--run <run> [--out report.html] [--steps 1,8,16] [flags]",
		short: "write a run's report: one self-contained HTML page",
		long: `Report writes one HTML page about a run, read from its store: the run's
configuration (from run.json) and status, the per-stage table of held-out
scores with the eval grids, the training curves (reward overall and per
scenario, KL, chain-of-thought length, throughput, step time split,
clipping, entropy, gradient norm) and, for the chosen steps, the samples of
their rollout shards: each prompt with its samples' images, chains of
thought, instructions and rewards.

The page needs nothing else: no script, no network; charts are inline SVG
and images are embedded. --steps chooses the sample steps (default: the
first step, the last step of each schedule block, and the last committed
step); --groups caps the prompts shown per step.

A run that is not in the store, or a step it has not committed, is a usage
error (exit 2). The page is written to a temporary file beside --out and
renamed into place, so --out is never half-written.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			run := fs.String("run", "", "the run to report on (required)")
			out := fs.String("out", "report.html", "the HTML file to write")
			steps := fs.IntSlice("steps", nil, "steps whose samples to show, e.g. 1,8,16 (default: the first, the end of each schedule block, the last committed)")
			groups := fs.Int("groups", report.DefaultGroups, "prompts shown per sample step")
			return func(ctx context.Context, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if err := checkRun(*run, "--run is required (thinkgen runs lists the store's runs)"); err != nil {
					return err
				}
				if *groups < 1 {
					return usagef("--groups must be at least 1, got %d", *groups)
				}
				if *out == "" {
					return usagef("--out is empty")
				}
				st, err := rf.openStore(ctx)
				if err != nil {
					return err
				}
				tmp, err := os.MkdirTemp("", "thinkgen-report-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				opts := report.Options{Groups: *groups, TmpDir: tmp}
				if fs.Changed("steps") {
					opts.Steps = append([]int{}, *steps...)
				}
				fmt.Fprintf(e.stderr, "report: reading run %s from %s\n", *run, st)
				r, err := report.Collect(ctx, st, *run, opts)
				var se *report.StepError
				switch {
				case errors.Is(err, report.ErrNoRun):
					return usagef("--run: %v (thinkgen runs lists the store's runs)", err)
				case errors.As(err, &se):
					return usagef("--steps: %v", err)
				case err != nil:
					return err
				}
				n, err := writeFileAtomic(*out, func(f *os.File) error { return report.Render(f, r) })
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "report: %s (%d KiB; %d evaluated versions, %d sample steps, %d of %d steps committed, %s)\n",
					*out, (n+1023)/1024, len(r.Evals), len(r.Samples), r.State.Committed, r.State.Steps, r.Status)
				return nil
			}
		},
	}
}

// openExistingStore opens the store without creating it
// (storage.OpenExisting): a local store whose directory does not exist is
// a usage error naming it.
func openExistingStore(ctx context.Context, cfg config.Storage) (storage.Store, error) {
	st, err := storage.OpenExisting(ctx, cfg)
	if errors.Is(err, storage.ErrNoStore) {
		return nil, &usageError{fmt.Errorf("--store %w", err)}
	}
	return st, err
}

// writeFileAtomic writes path through write into a temporary file in the
// same directory, then renames it into place; it returns the size. On any
// error path is left as it was.
func writeFileAtomic(path string, write func(*os.File) error) (int64, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // after a successful rename, a no-op
	err = write(f)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	var size int64
	if err == nil {
		var info os.FileInfo
		if info, err = f.Stat(); err == nil {
			size = info.Size()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	return size, nil
}
