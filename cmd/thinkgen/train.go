package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"
	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/controlapi"
	"github.com/thinkgen/thinkgen/curves"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/dist"
	"github.com/thinkgen/thinkgen/export"
	"github.com/thinkgen/thinkgen/internal/httpserve"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/orchestrator"
	"github.com/thinkgen/thinkgen/preflight"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/runeval"
	"github.com/thinkgen/thinkgen/schedule"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/tracking/mlflow"
	"github.com/thinkgen/thinkgen/worker"
)

func trainCommand() *command {
	return &command{
		name:  "train",
		usage: "[flags]",
		short: "run SepGRPO (stage 4 GRPO on the MLLM, stage 5 FlowGRPO on the DiT)",
		long: `Train runs the configuration's SepGRPO schedule from run.base (the shipped
base/tiny, or a pretrain result): each step's rollout tasks sample chains of
thought (mllm-grpo) or SDE image trajectories (dit-grpo), reward tasks score
them with the rule models, and the learn task updates the policy and commits
the next checkpoint version; a step is committed in the run's store only when
all of its outputs are verified. One line per step reports rewards,
advantages, KL, clipping, the on-policy ratio, entropy, chain length,
throughput and where the time went.

With run.eval_every k > 0, every k-th policy version (and the last) is
evaluated on --eval-rows held-out rows before its step commits: its scores
join the step's metrics (eval/<mode>/<scenario>, eval/mean: the best
mode's mean), its TensorBoard events and the report, and the best version
so far is kept in the store (best_eval in run.json).

When the schedule is done, the base and the policy at the end of each
schedule block are evaluated on held-out rows in both modes (--eval-rows,
at most data.eval_size; 0 skips) and printed as the per-stage table.

With tracking.mlflow set, the run is also logged to that MLflow tracking
server: the configuration as params, every committed step's metrics, the
per-stage tables, curves and grids as artifacts; --resume continues the
same MLflow run, and a failing server costs warnings, never the run
(docs/tracking.md). With --listen or --workers the controller's /metrics
shows the last committed step's reward, KL, throughput and step times.

After a kill, run the same command with --resume: the run continues from its
last committed step with its recorded configuration, and ends with the same
weights as an uninterrupted run. --resume-if-exists resumes the run when the
store has it and starts it otherwise.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			run := fs.String("run", "", "run name (default: run.name, else train-<config name>)")
			resume := fs.Bool("resume", false, "continue the run from its last committed step")
			resumeIfExists := fs.Bool("resume-if-exists", false, "continue the run if the store has it, else start it (what thinkgen launch's controller does)")
			evalRows := fs.Int("eval-rows", 50, "held-out rows each evaluated version is scored on (0: no eval)")
			rolloutTasks := fs.Int("rollout-tasks", 1, "rollout tasks per step (the result does not depend on it)")
			stopAfter := fs.Int("stop-after", 0, "stop after committing this many steps (as a kill would; for tests and drills)")
			workers := fs.String("workers", "", "local multi-process mode: start worker processes, e.g. rollout=2,reward=1,learner=1 (default: embedded, one process)")
			listen := fs.String("listen", "", "distributed mode: serve the controller API on this address (e.g. 127.0.0.1:7700) for workers started elsewhere (thinkgen worker)")
			tokenFile := fs.String("token-file", "", "with --listen: file holding the workers' bearer token (default $THINKGEN_TOKEN, then $THINKGEN_TOKEN_FILE)")
			insecure := fs.Bool("insecure-local", false, "with --listen: accept workers without a token (loopback addresses only)")
			metricsAddr := fs.String("metrics", "", "embedded or --workers mode: serve the training gauges in Prometheus format at http://ADDR/metrics (loopback addresses only; with --listen the controller API's /metrics has them)")
			rendezvous := fs.String("rendezvous", "", "with more than one learner rank: HOST:PORT where this controller serves the ranks' rendezvous store, as the ranks reach it (port 0: a free one; default: the --listen host, else 127.0.0.1, on a free port)")
			return func(ctx context.Context, args []string) (err error) {
				if err := noArgs(args); err != nil {
					return err
				}
				if *evalRows < 0 {
					return usagef("--eval-rows must not be negative, got %d", *evalRows)
				}
				if *rolloutTasks < 1 {
					return usagef("--rollout-tasks must be at least 1, got %d", *rolloutTasks)
				}
				if *workers != "" && *listen != "" {
					return usagef("--workers and --listen both choose the workers; give one")
				}
				if *metricsAddr != "" && *listen != "" {
					return usagef("--metrics: with --listen the controller API serves the training gauges on its /metrics")
				}
				var counts map[string]int
				if *workers != "" {
					var err error
					if counts, err = parseWorkers(*workers); err != nil {
						return &usageError{err}
					}
				}
				cfg, err := rf.load()
				if err != nil {
					return err
				}
				ranks := learnerRanks(cfg, counts, *listen)
				var rvAddr string
				switch {
				case ranks > 1:
					host, port, err := rendezvousAddr(*rendezvous, *listen)
					if err != nil {
						return &usageError{err}
					}
					store, err := dist.Serve(port)
					if err != nil {
						return err
					}
					defer store.Close()
					rvAddr = net.JoinHostPort(host, strconv.Itoa(store.Port()))
				case *rendezvous != "":
					return usagef("--rendezvous: the run has one learner, which needs no rendezvous")
				}
				if cfg.Cluster.Ray != "" && *listen == "" {
					return usagef("cluster.ray places the workers on Ray: they need a controller address to reach, give --listen")
				}
				name := rf.runName(*run, cfg)
				if err := storage.ValidateRun(name); err != nil {
					return &usageError{fmt.Errorf("--run: %w", err)}
				}
				st, err := storage.Open(ctx, cfg.Storage)
				if err != nil {
					return err
				}
				if *rolloutTasks == 1 && counts != nil {
					*rolloutTasks = counts["rollout"]
				}
				if *resumeIfExists && !*resume {
					_, err := runs.ReadState(ctx, st, name)
					switch {
					case err == nil:
						*resume = true
					case !errors.Is(err, storage.ErrNotExist):
						return fmt.Errorf("look for run %s in the store: %w", name, err)
					}
				}
				invTracking := cfg.Tracking
				if *resume {
					rs, err := runs.ReadState(ctx, st, name)
					if err != nil {
						return fmt.Errorf("resume run %s: %w", name, err)
					}
					if cfg, err = rs.ParseConfig(); err != nil {
						return err
					}
				} else if err := preflight.Check(cfg); err != nil {
					return &usageError{err}
				} else if cfg.Data.Dataset != "" {
					// The workers read the run's copy, wherever they run.
					if err := runs.PutDataset(ctx, st, name, cfg.Data.Dataset); err != nil {
						return err
					}
				}
				trk := trackingOf(invTracking, cfg.Tracking)
				if err := cfg.Data.CheckEvalRows("--eval-rows", *evalRows); err != nil {
					return &usageError{err}
				}
				if cfg.Run.EvalEvery > 0 && *evalRows == 0 {
					return usagef("run.eval_every %d evaluates on --eval-rows held-out rows: give --eval-rows > 0 or set run.eval_every=0", cfg.Run.EvalEvery)
				}
				cache, err := os.MkdirTemp("", "thinkgen-train-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(cache)
				var exec orchestrator.Executor
				var gauges *controlapi.Server                                        // the controller API's, which serves /metrics
				var observe func(step int, phase string, metrics map[string]float64) // --metrics' gauges
				attempts := 0
				if *listen != "" {
					tok, err := controlapi.LoadToken(*tokenFile)
					if errors.Is(err, controlapi.ErrNoToken) && *insecure {
						tok, err = "", nil
					}
					if err != nil {
						return &usageError{err}
					}
					lc, err := serveController(ctx, e.stderr, *listen, tok, *insecure, cfg.Cluster)
					if err != nil {
						return err
					}
					defer lc.Stop()
					exec, attempts, gauges = lc.Exec, 1, lc.Server
					if cfg.Cluster.Ray != "" {
						stop, err := placeOnRay(ctx, e.stderr, cfg, name, lc.URL, tokenPath(*tokenFile, tok))
						if err != nil {
							return err
						}
						defer stop()
					}
				} else if counts == nil {
					w, err := worker.New(worker.Options{Config: cfg, Store: st, CacheDir: cache})
					if err != nil {
						return err
					}
					defer w.Close()
					exec = w
				} else {
					lc, err := startLocalCluster(ctx, e.stderr, cfg, rf, counts)
					if err != nil {
						return err
					}
					defer lc.Stop()
					exec, attempts, gauges = lc.Exec, 1, lc.Server // the queue retries (attempt+1 on failure or an expired lease)
				}
				if *metricsAddr != "" {
					tr, url, err := serveTrainingMetrics(ctx, e.stderr, *metricsAddr)
					if err != nil {
						return err
					}
					fmt.Fprintf(e.stderr, "train: training gauges at %s\n", url)
					observe = tr.Observe
				}
				fmt.Fprintf(e.stderr, "train: run %s in %s, base %s\n", name, st, cfg.Run.Base)
				baseBundle := cfg.Run.Base
				switch {
				case *resume:
				case export.IsExport(baseBundle):
					if baseBundle, err = bundleFromExport(cfg.Run.Base, filepath.Join(cache, "base")); err != nil {
						return fmt.Errorf("run.base: %w", err)
					}
				case export.IsHFModel(baseBundle):
					if baseBundle, err = bundleFromHF(e, cfg, filepath.Join(cache, "base")); err != nil {
						return fmt.Errorf("run.base: %w", err)
					}
				}
				plan, err := schedule.Plan(cfg)
				if err != nil {
					return &usageError{err}
				}
				var periodic func(context.Context, int) (map[string][]reward.Summary, error)
				if cfg.Run.EvalEvery > 0 {
					ev := &runeval.Evaluator{Config: cfg, Store: st, Run: name, Rows: *evalRows, CacheDir: cache, Progress: e.stderr, Split: datasets.Eval}
					periodic = func(ctx context.Context, v int) (map[string][]reward.Summary, error) {
						ent, _, err := ev.Version(ctx, v, schedule.VersionLabel(plan, v))
						return ent.Scores, err
					}
				}
				var mlc *mlflow.Client
				if trk.MLflow != "" {
					if mlc, err = mlflowClient(ctx, e, trk); err != nil {
						return err
					}
				}
				var tracker *mlflow.Tracker
				ctl, err := orchestrator.Open(ctx, orchestrator.Options{
					Config: cfg, Store: st, Run: name, Exec: exec, Resume: *resume, Attempts: attempts,
					Checkpoints:  checkpoint.Versions{Store: st, Base: baseBundle},
					RolloutTasks: *rolloutTasks, StopAfter: *stopAfter, Progress: e.stderr, TmpDir: cache,
					LearnerRanks: ranks, Rendezvous: func() (string, error) { return rvAddr, nil }, RendezvousHosted: true,
					CollectiveTimeout: cfg.Cluster.CollectiveTimeout, GangAttempts: cfg.Cluster.MaxAttempts,
					AfterManifest: killAfterManifest(e.getenv(faultAfterManifestEnv)),
					Eval:          periodic,
					Committed: func(p schedule.Step, at time.Time, metrics map[string]float64) {
						if observe != nil {
							observe(p.Step, string(p.Phase), metrics)
						}
						if gauges != nil {
							gauges.ObserveStep(p.Step, string(p.Phase), metrics)
						}
						if tracker != nil {
							tracker.Step(p.Step, at, metrics)
						}
					},
				})
				if err != nil {
					return err
				}
				// As orchestrator.Train does: the run's lease is given up
				// once the steps are done, for the next controller.
				release := func() error {
					if err := ctl.Close(context.WithoutCancel(ctx)); err != nil {
						return fmt.Errorf("release the run lease: %w", err)
					}
					return nil
				}
				// The configuration as TensorBoard hparams (the same file
				// again on resume).
				if err := putHParams(ctx, st, name, cfg); err != nil {
					return errors.Join(err, release())
				}
				if mlc != nil {
					if tracker, err = startMLflow(ctx, e, mlc, trk, cfg, st, name, cache); err != nil {
						return errors.Join(err, release())
					}
					defer func() { endMLflow(ctx, e, tracker, err, ctl.Done()) }()
				}
				reports, err := ctl.Run(ctx)
				if rerr := release(); err == nil {
					err = rerr
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "committed %d steps\n", len(reports))
				rs, err := runs.ReadState(ctx, st, name)
				if err != nil {
					return err
				}
				if key, err := writeCurves(ctx, st, name, cache); err != nil {
					return err
				} else if key != "" {
					fmt.Fprintf(e.stdout, "curves: %s\n", describeKey(cfg, key))
					if tracker != nil {
						if err := mlflowFile(tracker, filepath.Join(cache, "curves.png"), "curves.png"); err != nil {
							return err
						}
					}
				}
				if *evalRows == 0 || rs.Committed < len(plan) {
					return nil
				}
				// The per-stage table: base, then the end of each block; a
				// section per held-out split.
				for _, sp := range heldOutSplits {
					if len(cfg.Eval.Splits) > 0 && !slices.Contains(cfg.Eval.Splits, string(sp)) {
						continue
					}
					ev := &runeval.Evaluator{Config: cfg, Store: st, Run: name, Rows: *evalRows, CacheDir: cache, Progress: e.stderr, Split: sp}
					stages, err := ev.Stages(ctx, plan, rs, time.Now())
					if err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "\nheld-out scores, %s (%d rows; mean partial score, strict accuracy in brackets):\n", splitTitle(sp), *evalRows)
					if err := stages.WriteTable(e.stdout); err != nil {
						return err
					}
					if tracker != nil {
						if err := mlflowEval(ctx, tracker, st, name, string(sp), stages, sp == datasets.Eval); err != nil {
							return err
						}
					}
				}
				return nil
			}
		},
	}
}

// bundleFromExport imports the export in dir (widening half-precision
// weights to float32) and saves it as a bundle in out, which a run imports
// as its version 0. It returns out.
func bundleFromExport(dir, out string) (string, error) {
	err := libtorch.Run(func() error {
		b, m, err := export.Import(dir, gotch.CPU)
		if err != nil {
			return err
		}
		defer b.Drop()
		cfg, err := config.Parse(filepath.Join(dir, export.ManifestFile)+" config", []byte(m.Config))
		if err != nil {
			return err
		}
		return b.Save(out, m.Version, cfg)
	})
	if err != nil {
		return "", fmt.Errorf("base from export %s: %w", dir, err)
	}
	return out, nil
}

// bundleFromHF imports cfg's run.base, a transformers folder, into a
// bundle at out as thinkgen import --mllm does (what the folder does not
// hold is initialised from run.seed, and said), and returns out.
func bundleFromHF(e *env, cfg *config.Config, out string) (string, error) {
	var rep *export.Imported
	err := libtorch.Run(func() (err error) {
		rep, err = export.ImportHF(cfg, export.HFSources{MLLM: cfg.Run.Base, Seed: uint64(cfg.Run.Seed)}, out)
		return err
	})
	if err != nil {
		return "", err
	}
	fmt.Fprintf(e.stderr, "train: imported run.base %s (a transformers folder, %d safetensors files)", cfg.Run.Base, rep.Shards)
	if len(rep.Initialised) > 0 {
		fmt.Fprintf(e.stderr, "; initialised from run.seed: %s", strings.Join(rep.Initialised, ", "))
	}
	fmt.Fprintln(e.stderr)
	return out, nil
}

// writeCurves draws the run's training curves into runs/<run>/curves.png
// and returns that key ("" when no step is committed yet).
func writeCurves(ctx context.Context, st storage.Store, run, tmp string) (string, error) {
	h, err := runs.ReadHistory(ctx, st, run, tmp)
	if err != nil {
		return "", fmt.Errorf("curves: %w", err)
	}
	if len(h.Steps) == 0 {
		return "", nil
	}
	path := filepath.Join(tmp, "curves.png")
	if err := curves.Write(path, h); err != nil {
		return "", err
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	key := runs.CurvesKey(run)
	if err := st.Put(ctx, key, f); err != nil {
		return "", fmt.Errorf("curves: %w", err)
	}
	return key, nil
}

// describeKey names an object for a person: a file path for a local
// store, the key otherwise.
func describeKey(cfg *config.Config, key string) string {
	if loc, err := storage.ParseURI(cfg.Storage.URI); err == nil && !loc.IsS3() {
		return filepath.Join(loc.Dir, filepath.FromSlash(key))
	}
	return key
}

// learnerRanks is the number of learner ranks of the run: the learner
// workers of --workers, else cluster.workers.learner with --listen, else
// one (embedded).
func learnerRanks(cfg *config.Config, counts map[string]int, listen string) int {
	switch {
	case counts != nil:
		return counts["learner"]
	case listen != "" && cfg.Cluster.Workers.Learner > 1:
		return cfg.Cluster.Workers.Learner
	}
	return 1
}

// rendezvousAddr is the host and port of --rendezvous (flag): where this
// process serves the learner ranks' rendezvous store and how they reach
// it. By default the host is --listen's, or 127.0.0.1 without --listen
// (the workers are this machine's), and the port a free one.
func rendezvousAddr(flag, listen string) (host string, port int, err error) {
	if flag == "" {
		if listen == "" {
			return "127.0.0.1", 0, nil
		}
		if host, _, err = net.SplitHostPort(listen); err != nil {
			return "", 0, fmt.Errorf("--listen %q: %w", listen, err)
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return "", 0, fmt.Errorf("--rendezvous: the learner ranks need an address of this machine they can reach, and --listen %q names none: give --rendezvous HOST:PORT", listen)
		}
		return host, 0, nil
	}
	host, p, err := net.SplitHostPort(flag)
	if err != nil {
		return "", 0, fmt.Errorf("--rendezvous %q: %w", flag, err)
	}
	if port, err = strconv.Atoi(p); err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("--rendezvous %q: the port must be a number in [0, 65535]", flag)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "", 0, fmt.Errorf("--rendezvous %q: the host must be an address the learner ranks can reach, not a wildcard", flag)
	}
	return host, port, nil
}

// faultAfterManifestEnv names the fault-injection variable of train, for
// fault tests only: set to a step number, the controller SIGKILLs itself
// right after it commits the manifest of that step or of the first later
// one it commits (a step a killed predecessor already committed is only
// recorded), before the step's event file and run.json are written.
const faultAfterManifestEnv = "THINKGEN_FAULT_AFTER_MANIFEST"

// killAfterManifest is the orchestrator hook of faultAfterManifestEnv's
// value (nil when it is empty or not a step number).
func killAfterManifest(v string) func(int) error {
	step, err := strconv.Atoi(v)
	if err != nil || step < 1 {
		return nil
	}
	return func(s int) error {
		if s < step {
			return nil
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // until the signal lands
	}
}

// putHParams writes the run's configuration as its TensorBoard hparams
// event file (runs.PutHParamsEvents).
func putHParams(ctx context.Context, st storage.Store, run string, cfg *config.Config) error {
	rs, err := runs.ReadState(ctx, st, run)
	if err != nil {
		return err
	}
	return runs.PutHParamsEvents(ctx, st, rs, cfg)
}

// serveTrainingMetrics serves the training gauges alone (controlapi.Training)
// in Prometheus format at addr's /metrics until ctx ends, for a train
// without a controller API; addr must be a loopback address (the endpoint
// has no token). It returns the gauges and the endpoint's URL; a serving
// error is written to stderr.
func serveTrainingMetrics(ctx context.Context, stderr io.Writer, addr string) (*controlapi.Training, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", &usageError{fmt.Errorf("--metrics %s: %w", addr, err)}
	}
	o := httpserve.Options{Name: "training metrics", TokenHint: "--listen, whose controller API has a token"}
	if err := o.CheckListener(ln); err != nil {
		ln.Close()
		return nil, "", &usageError{fmt.Errorf("--metrics %s: %w", addr, err)}
	}
	reg := prometheus.NewRegistry()
	tr := controlapi.NewTraining(reg)
	mux := http.NewServeMux()
	mux.Handle("GET "+controlapi.PathMetrics, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	go func() {
		if err := httpserve.Serve(ctx, ln, mux, o); err != nil {
			fmt.Fprintf(stderr, "train: --metrics: %v\n", err)
		}
	}()
	return tr, "http://" + ln.Addr().String() + controlapi.PathMetrics, nil
}
