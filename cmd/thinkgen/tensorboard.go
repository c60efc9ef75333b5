package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/evaluate"
	"github.com/thinkgen/thinkgen/internal/tfevents"
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
						n, added, err := syncEvents(ctx, st, r, filepath.Join(*logdir, r))
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

// syncEvents makes dir hold exactly the run's event files in the store:
// it downloads those missing or of another size (each to a temporary name,
// renamed into place) and removes event files the store no longer has. It
// returns how many files dir holds and how many it downloaded.
func syncEvents(ctx context.Context, st storage.Store, run, dir string) (n, added int, err error) {
	objs, err := st.List(ctx, runs.TensorBoardPrefix(run))
	if err != nil {
		return 0, 0, fmt.Errorf("list event files of run %s: %w", run, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, err
	}
	want := map[string]bool{}
	for _, o := range objs {
		name := path.Base(o.Key)
		if !strings.HasPrefix(name, tfevents.FilePrefix) {
			continue
		}
		want[name] = true
		local := filepath.Join(dir, name)
		if fi, err := os.Stat(local); err == nil && fi.Size() == o.Size {
			continue
		}
		if err := download(ctx, st, o.Key, local); err != nil {
			return 0, 0, err
		}
		added++
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, de := range entries {
		if name := de.Name(); strings.HasPrefix(name, tfevents.FilePrefix) && !want[name] {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return 0, 0, err
			}
		}
	}
	return len(want), added, nil
}

// download copies the object key to the file path, whole or not at all.
func download(ctx context.Context, st storage.Store, key, path string) (err error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	// The temporary name lacks "tfevents": TensorBoard never reads it.
	f, err := os.CreateTemp(filepath.Dir(path), ".download-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = io.Copy(f, rc); err != nil {
		return fmt.Errorf("download %s: %w", key, err)
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// putEvalEvents writes held-out scores as TensorBoard scalars at the step
// of their version: eval/<mode>/<scenario> (the mean partial score) and
// eval_strict/<mode>/<scenario> (the strict accuracy).
func putEvalEvents(ctx context.Context, st storage.Store, rs *runs.State, versions []int, entries []evaluate.Scores) error {
	if len(versions) != len(entries) {
		return errors.New("putEvalEvents: one version per entry")
	}
	now := float64(time.Now().UnixMilli()) / 1000
	var events []tfevents.Event
	for i, v := range versions {
		e := tfevents.Event{WallTime: now, Step: int64(v)}
		for _, mode := range evaluate.Modes {
			for _, s := range entries[i][mode] {
				e.Scalars = append(e.Scalars,
					tfevents.Scalar{Tag: "eval/" + mode + "/" + s.Scenario, Value: float32(s.Score)},
					tfevents.Scalar{Tag: "eval_strict/" + mode + "/" + s.Scenario, Value: float32(s.Strict)})
			}
		}
		events = append(events, e)
	}
	return runs.PutEvents(ctx, st, rs, runs.EvalEventsID, events)
}
