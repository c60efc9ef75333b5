package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/cluster"
	"github.com/thinkgen/thinkgen/cluster/kuberay"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/sweep"
)

func sweepCommand() *command {
	return &command{
		name:  "sweep",
		usage: "--config sweep.yaml [flags]",
		short: "train a grid or random search over config keys and rank the runs by an eval score",
		long: `Sweep trains one run per point of a search space over any config keys (a
base run configuration plus, per key, values, a linear range or a log
range; grid or seeded random), Parallel trials at a time, each a
'thinkgen train' process (or, with --cluster ray, a Ray job) with the
trial's --set overrides and its log in a file. The trials are the runs
<sweep>-t001, <sweep>-t002, … of the store.

Each trial's final policy is scored on held-out rows, and the trials are
ranked by the objective (an eval score such as think/reasoning): a table,
and leaderboard.csv, leaderboard.arrow and objective.png in the store's
sweeps/<name>/, whose sweep.json keeps the sweep's state. Run the same
command again to resume: finished trials are not re-run, unfinished ones
continue their runs (train --resume). With early_stop (median rule), a
trial whose running mean of a per-step training metric falls below the
median of the other trials at the same step is stopped.

Bad input (an unknown key in the space, an empty range, an unknown method
or objective, parallel < 1, a trial whose configuration is invalid) exits
2 before any work. docs/sweeps.md describes the file.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			file := fs.StringP("config", "c", "", "the sweep file (e.g. configs/sweep-tiny.yaml); required")
			store := fs.String("store", "", "store URI for the sweep and its trials (sets storage.uri of every trial)")
			runDir := fs.String("run-dir", "", "local directory store (sets storage.uri of every trial)")
			mode := fs.String("cluster", "", "where trials run: local, ray or kuberay (default: cluster.mode of the sweep file, else local)")
			rayAddr := fs.String("ray-address", "", "with --cluster ray: the Ray dashboard URL (default: cluster.ray of the sweep file)")
			kubeconfig := fs.String("kubeconfig", "", "with --cluster kuberay: kubeconfig file (default $KUBECONFIG, else ~/.kube/config, else in-cluster)")
			namespace := fs.String("namespace", "", "with --cluster kuberay: namespace of the RayJobs (default: cluster.namespace)")
			parallel := fs.Int("parallel", 0, "trials at a time (default: parallel of the sweep file)")
			dryRun := fs.Bool("dry-run", false, "check the sweep and list its trials, run nothing")
			poll := fs.Duration("poll", 5*time.Second, "how often running trials' committed steps are read")
			return func(ctx context.Context, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if *file == "" {
					return usagef("--config: give the sweep file (e.g. configs/sweep-tiny.yaml)")
				}
				spec, err := sweep.ReadFile(*file)
				if err != nil {
					return &usageError{err}
				}
				if fs.Changed("parallel") {
					if *parallel < 1 {
						return usagef("--parallel %d: want at least 1", *parallel)
					}
					spec.Parallel = *parallel
				}
				if *mode != "" {
					spec.Cluster.Mode = *mode
				}
				if *rayAddr != "" {
					spec.Cluster.Ray = *rayAddr
				}
				if err := spec.CheckCluster(); err != nil {
					return &usageError{fmt.Errorf("%s: %w", *file, err)}
				}
				if *poll <= 0 {
					return usagef("--poll %s: want a positive duration", *poll)
				}
				var extra []sweep.Override
				var extraArgs []string
				switch {
				case fs.Changed("store") && fs.Changed("run-dir"):
					return usagef("--store and --run-dir both name the store; give one")
				case fs.Changed("store"):
					extra, extraArgs = []sweep.Override{{Key: "storage.uri", Value: *store}}, []string{"--store", *store}
				case fs.Changed("run-dir"):
					if strings.Contains(*runDir, "://") {
						return usagef("--run-dir %q: want a local directory (use --store for URIs)", *runDir)
					}
					extra, extraArgs = []sweep.Override{{Key: "storage.uri", Value: *runDir}}, []string{"--run-dir", *runDir}
				}
				cfg, err := spec.Resolve(*file, extra)
				if err != nil {
					return &usageError{err}
				}
				trials := spec.Expand()
				if err := spec.CheckTrials(trials, extra); err != nil {
					return &usageError{err}
				}
				if *dryRun {
					fmt.Fprintf(e.stdout, "sweep %s: %d trials (%s), base %s\n", spec.Name, len(trials), spec.Method, spec.Base)
					for _, t := range trials {
						fmt.Fprintf(e.stdout, "%s\t%s\n", t.Name, t.Describe())
					}
					return nil
				}
				self := e.getenv("THINKGEN_BIN")
				if self == "" {
					if self, err = os.Executable(); err != nil {
						return fmt.Errorf("sweep: the thinkgen binary: %w", err)
					}
				}
				var launcher sweep.Launcher
				switch spec.Cluster.Mode {
				case sweep.ModeKubeRay:
					k := &sweep.KubeRay{Namespace: *namespace, EvalRows: spec.EvalRows,
						Config: func(t sweep.Trial) (*config.Config, error) { return spec.TrialConfig(t, extra) }}
					for _, t := range trials {
						if _, err := k.Objects(t, false); err != nil {
							return &usageError{err}
						}
					}
					rc, err := kuberay.RESTConfig(*kubeconfig)
					if err != nil {
						return &usageError{err}
					}
					if k.Client, err = kuberay.NewClient(rc); err != nil {
						return err
					}
					launcher = k
				case sweep.ModeRay:
					client, err := cluster.NewClient(spec.Cluster.Ray, cluster.ClientOptions{})
					if err != nil {
						return &usageError{fmt.Errorf("cluster.ray: %w", err)}
					}
					r := &sweep.Ray{Client: client, Command: spec.Cluster.Command, Workdir: spec.Cluster.Workdir,
						Env: map[string]string{"OMP_NUM_THREADS": "1"}, CPUs: spec.Cluster.CPUs, GPUs: spec.Cluster.GPUs, PollInterval: *poll}
					if r.Command == "" {
						r.Command = self
					}
					if r.Workdir == "" {
						if r.Workdir, err = os.Getwd(); err != nil {
							return err
						}
					}
					if v := e.getenv("THINKGEN_TEST_MAIN"); v != "" {
						r.Env["THINKGEN_TEST_MAIN"] = v // a test binary standing in for thinkgen
					}
					launcher = r
				default:
					l := &sweep.Local{Binary: self}
					if e.getenv("OMP_NUM_THREADS") == "" {
						l.Env = append(l.Env, "OMP_NUM_THREADS=1")
					}
					launcher = l
				}
				st, err := storage.Open(ctx, cfg.Storage)
				if err != nil {
					return err
				}
				state, resumed, err := sweep.LoadState(ctx, st, spec, trials)
				if errors.Is(err, sweep.ErrOtherSpace) {
					return &usageError{err}
				}
				if err != nil {
					return err
				}
				if resumed {
					fmt.Fprintf(e.stderr, "sweep: resuming sweep %s from %s\n", spec.Name, describeKey(cfg, sweep.StateKey(spec.Name)))
				}
				tmp, err := os.MkdirTemp("", "thinkgen-sweep-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				logDir, upload := filepath.Join("sweep-logs", spec.Name), true
				if loc, err := storage.ParseURI(cfg.Storage.URI); err == nil && !loc.IsS3() {
					logDir, upload = filepath.Join(loc.Dir, filepath.FromSlash(sweep.Prefix(spec.Name)), "logs"), false
				}
				runner := &sweep.Runner{Spec: spec, Store: st, Launcher: launcher, ExtraArgs: extraArgs,
					LogDir: logDir, UploadLogs: upload, Progress: e.stderr, PollInterval: *poll, TmpDir: tmp}
				runErr := runner.Run(ctx, state)
				fmt.Fprintf(e.stdout, "\nleaderboard of sweep %s (%d trials):\n", spec.Name, len(state.Trials))
				if err := state.WriteTable(e.stdout); err != nil {
					return err
				}
				keys, err := writeLeaderboard(context.WithoutCancel(ctx), st, state, tmp)
				if err != nil {
					return errors.Join(runErr, err)
				}
				fmt.Fprintln(e.stdout)
				for _, k := range keys {
					fmt.Fprintf(e.stdout, "wrote %s\n", describeKey(cfg, k))
				}
				if runErr != nil {
					return runErr
				}
				if n := state.Counts()[sweep.StatusFailed]; n > 0 {
					return fmt.Errorf("%d of %d trials failed (their logs are listed above; run the sweep again to resume them)", n, len(state.Trials))
				}
				return nil
			}
		},
	}
}

// writeLeaderboard stores the leaderboard (CSV, Arrow IPC, the objective
// plot) and the state under the sweep's prefix and returns their keys.
func writeLeaderboard(ctx context.Context, st storage.Store, state *sweep.State, tmp string) ([]string, error) {
	prefix := sweep.Prefix(state.Name)
	var csv bytes.Buffer
	if err := state.WriteCSV(&csv); err != nil {
		return nil, fmt.Errorf("leaderboard csv: %w", err)
	}
	arrowPath := filepath.Join(tmp, "leaderboard.arrow")
	f, err := os.Create(arrowPath)
	if err != nil {
		return nil, err
	}
	if err := state.WriteArrow(f); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	pngPath := filepath.Join(tmp, "objective.png")
	if err := state.WritePlot(pngPath); err != nil {
		return nil, err
	}
	put := func(key string, open func() (io.ReadSeeker, func(), error)) error {
		r, done, err := open()
		if err != nil {
			return err
		}
		defer done()
		if err := st.Put(ctx, key, r); err != nil {
			return fmt.Errorf("leaderboard: %w", err)
		}
		return nil
	}
	file := func(path string) func() (io.ReadSeeker, func(), error) {
		return func() (io.ReadSeeker, func(), error) {
			f, err := os.Open(path)
			if err != nil {
				return nil, nil, err
			}
			return f, func() { f.Close() }, nil
		}
	}
	keys := []string{prefix + "leaderboard.csv", prefix + "leaderboard.arrow", prefix + "objective.png"}
	if err := put(keys[0], func() (io.ReadSeeker, func(), error) { return bytes.NewReader(csv.Bytes()), func() {}, nil }); err != nil {
		return nil, err
	}
	if err := put(keys[1], file(arrowPath)); err != nil {
		return nil, err
	}
	if err := put(keys[2], file(pngPath)); err != nil {
		return nil, err
	}
	return append(keys, sweep.StateKey(state.Name)), nil
}
