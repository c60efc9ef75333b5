package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/controlapi"
	"github.com/thinkgen/thinkgen/curves"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/evaluate"
	"github.com/thinkgen/thinkgen/export"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/orchestrator"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/schedule"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
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

When the schedule is done, the base and the policy at the end of each
schedule block are evaluated on held-out rows in both modes (--eval-rows;
0 skips) and printed as the per-stage table.

After a kill, run the same command with --resume: the run continues from its
last committed step with its recorded configuration, and ends with the same
weights as an uninterrupted run.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			run := fs.String("run", "", "run name (default: run.name, else train-<config name>)")
			resume := fs.Bool("resume", false, "continue the run from its last committed step")
			evalRows := fs.Int("eval-rows", 50, "held-out rows each evaluated version is scored on (0: no eval)")
			rolloutTasks := fs.Int("rollout-tasks", 1, "rollout tasks per step (the result does not depend on it)")
			stopAfter := fs.Int("stop-after", 0, "stop after committing this many steps (as a kill would; for tests and drills)")
			workers := fs.String("workers", "", "local multi-process mode: start worker processes, e.g. rollout=2,reward=1,learner=1 (default: embedded, one process)")
			listen := fs.String("listen", "", "distributed mode: serve the controller API on this address (e.g. 127.0.0.1:7700) for workers started elsewhere (thinkgen worker)")
			tokenFile := fs.String("token-file", "", "with --listen: file holding the workers' bearer token (default $THINKGEN_TOKEN, then $THINKGEN_TOKEN_FILE)")
			insecure := fs.Bool("insecure-local", false, "with --listen: accept workers without a token (loopback addresses only)")
			return func(ctx context.Context, args []string) error {
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
				if *resume {
					rs, err := runs.ReadState(ctx, st, name)
					if err != nil {
						return fmt.Errorf("resume run %s: %w", name, err)
					}
					if cfg, err = rs.ParseConfig(); err != nil {
						return err
					}
				} else if err := preflight(cfg); err != nil {
					return &usageError{err}
				}
				cache, err := os.MkdirTemp("", "thinkgen-train-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(cache)
				var exec orchestrator.Executor
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
					exec, attempts = lc.Exec, 1
					if cfg.Cluster.Ray != "" {
						stop, err := placeOnRay(ctx, e.stderr, cfg, name, lc.URL, tok)
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
					exec, attempts = lc.Exec, 1 // the queue retries (attempt+1 on failure or an expired lease)
				}
				fmt.Fprintf(e.stderr, "train: run %s in %s, base %s\n", name, st, cfg.Run.Base)
				baseBundle := cfg.Run.Base
				if !*resume && export.IsExport(baseBundle) {
					if baseBundle, err = bundleFromExport(cfg.Run.Base, filepath.Join(cache, "base")); err != nil {
						return fmt.Errorf("run.base: %w", err)
					}
				}
				plan, err := schedule.Plan(cfg)
				if err != nil {
					return &usageError{err}
				}
				ev := &evaluator{cfg: cfg, store: st, run: name, rows: *evalRows, cache: cache, progress: e.stderr}
				var entries []evaluate.Entry
				reports, err := orchestrator.Train(ctx, orchestrator.Options{
					Config: cfg, Store: st, Run: name, Exec: exec, Resume: *resume, Attempts: attempts,
					Checkpoints:  checkpoint.Versions{Store: st, Base: baseBundle},
					RolloutTasks: *rolloutTasks, StopAfter: *stopAfter, Progress: e.stderr, TmpDir: cache,
				})
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
				}
				if *evalRows == 0 || rs.Committed < len(plan) {
					return nil
				}
				// The per-stage table: base, then the end of each block.
				entries = entries[:0]
				versions := []int{0}
				var perRow []map[string][]evaluate.RowScore
				if ent, rows, err := ev.version(ctx, 0, "base"); err == nil {
					entries = append(entries, ent)
					perRow = append(perRow, rows)
				} else {
					return err
				}
				for _, p := range plan {
					if !p.EndsPhase {
						continue
					}
					label := fmt.Sprintf("%s@%d", stageName(p.Phase), p.Step)
					ent, rows, err := ev.version(ctx, p.Step, label)
					if err != nil {
						return err
					}
					entries = append(entries, ent)
					perRow = append(perRow, rows)
					versions = append(versions, p.Step)
				}
				scores := make([]map[string][]reward.Summary, len(entries))
				for i, ent := range entries {
					scores[i] = ent.Scores
				}
				if err := runs.PutEvalEvents(ctx, st, rs, time.Now(), versions, scores); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "\nheld-out scores (%d eval rows; mean partial score, strict accuracy in brackets):\n", *evalRows)
				if err := evaluate.WriteTable(e.stdout, entries); err != nil {
					return err
				}
				return writeGains(e.stdout, entries, perRow)
			}
		},
	}
}

func stageName(p config.Phase) string {
	if p == config.PhaseMLLMGRPO {
		return "stage4"
	}
	return "stage5"
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
		return b.Save(out, m.Version)
	})
	if err != nil {
		return "", fmt.Errorf("base from export %s: %w", dir, err)
	}
	return out, nil
}

// preflight refuses, before any work, what would fail later: a missing or
// corrupt base, a base of another model shape, and an empty dataset.
func preflight(cfg *config.Config) error {
	if cfg.Run.Base == "" {
		return errors.New("run.base: empty; set it to the shipped base (base/tiny) or a pretrain result")
	}
	bcfg, _, err := modelDir("run.base", cfg.Run.Base)
	if err != nil {
		return err
	}
	if diff := bcfg.Model.ShapeDiff(cfg.Model); len(diff) > 0 {
		return fmt.Errorf("run.base %s: a checkpoint of another model shape (the base's model section vs the configuration's: %s)",
			cfg.Run.Base, strings.Join(diff, ", "))
	}
	if cfg.Data.TrainSize <= 0 {
		return fmt.Errorf("data.train_size: %d, want > 0: the run's prompts come from the train split", cfg.Data.TrainSize)
	}
	for _, m := range []struct {
		key   string
		mix   map[string]float64
		phase config.Phase
	}{{"data.mix", cfg.Data.Mix, ""}, {"grpo.mix", cfg.GRPO.Mix, config.PhaseMLLMGRPO}, {"flow_grpo.mix", cfg.FlowGRPO.Mix, config.PhaseDiTGRPO}} {
		if len(datasets.ScenarioCycle(m.mix)) == 0 && len(m.mix) > 0 {
			return fmt.Errorf("%s: every scenario has weight 0: the dataset would be empty", m.key)
		}
		if m.phase == "" {
			continue
		}
		if _, err := worker.TrainRows(cfg, m.phase, []int64{0}); err != nil {
			return fmt.Errorf("data (%s): %w", m.phase, err)
		}
	}
	return nil
}

// evaluator scores committed versions of a run on held-out rows and keeps
// the results (eval/<version>.json and grids) in the run's store.
type evaluator struct {
	cfg   *config.Config
	store storage.Store
	run   string
	rows  int
	cache string
	// progress receives the evals' progress lines.
	progress io.Writer
}

// version evaluates version v (or reads its earlier evaluation from the
// store) and returns its scores and its per-row scores by mode (nil for
// an evaluation stored before they were kept).
func (ev *evaluator) version(ctx context.Context, v int, label string) (evaluate.Entry, map[string][]evaluate.RowScore, error) {
	key := fmt.Sprintf("%seval/%06d.json", storage.RunPrefix(ev.run), v)
	rowsKey := fmt.Sprintf("%seval/%06d-rows.json", storage.RunPrefix(ev.run), v)
	if rc, err := ev.store.Get(ctx, key); err == nil {
		var s evaluate.Scores
		err := json.NewDecoder(rc).Decode(&s)
		rc.Close()
		if err == nil {
			var perRow map[string][]evaluate.RowScore
			if rc, err := ev.store.Get(ctx, rowsKey); err == nil {
				if json.NewDecoder(rc).Decode(&perRow) != nil {
					perRow = nil
				}
				rc.Close()
			}
			return evaluate.Entry{Label: label, Scores: s}, perRow, nil
		}
	}
	rows, err := datasets.Generate(datasets.Options{Seed: uint64(ev.cfg.Run.Seed), Split: datasets.Eval, Size: ev.cfg.Model.DiT.ImageSize}, 0, ev.rows)
	if err != nil {
		return evaluate.Entry{}, nil, err
	}
	reg, err := reward.FromConfig(ev.cfg.Reward)
	if err != nil {
		return evaluate.Entry{}, nil, err
	}
	gridDir, err := os.MkdirTemp(ev.cache, "grid-")
	if err != nil {
		return evaluate.Entry{}, nil, err
	}
	defer os.RemoveAll(gridDir)
	var (
		scores  evaluate.Scores
		samples map[string][]evaluate.Sample
	)
	err = libtorch.Run(func() error {
		if th := ev.cfg.Run.Threads; th > 0 {
			if err := libtorch.SetThreads(th); err != nil {
				return err
			}
		}
		b, _, err := checkpoint.Load(ctx, ev.store, ev.run, v, filepath.Join(ev.cache, "checkpoints"), gotch.CPU)
		if err != nil {
			return err
		}
		defer b.Drop()
		b.Cfg = ev.cfg
		scores, samples, err = evaluate.Run(ctx, b, reg, evaluate.Options{Rows: rows, Seed: uint64(ev.cfg.Run.Seed), GridDir: gridDir, GridRows: 10, Progress: ev.progress})
		return err
	})
	if err != nil {
		return evaluate.Entry{}, nil, fmt.Errorf("eval version %d: %w", v, err)
	}
	perRow := map[string][]evaluate.RowScore{}
	for mode, ss := range samples {
		perRow[mode] = evaluate.RowScores(ss)
	}
	// The rows first: a stored eval/<version>.json is taken as complete.
	for _, obj := range []struct {
		key string
		v   any
	}{{rowsKey, perRow}, {key, scores}} {
		data, err := json.MarshalIndent(obj.v, "", "  ")
		if err != nil {
			return evaluate.Entry{}, nil, err
		}
		if err := ev.store.Put(ctx, obj.key, bytes.NewReader(data)); err != nil {
			return evaluate.Entry{}, nil, err
		}
	}
	for _, mode := range evaluate.Modes {
		f, err := os.Open(filepath.Join(gridDir, "grid-"+mode+".png"))
		if err != nil {
			return evaluate.Entry{}, nil, err
		}
		err = ev.store.Put(ctx, fmt.Sprintf("%seval/%06d-grid-%s.png", storage.RunPrefix(ev.run), v, mode), f)
		f.Close()
		if err != nil {
			return evaluate.Entry{}, nil, err
		}
	}
	return evaluate.Entry{Label: label, Scores: scores}, perRow, nil
}

// writeGains prints each stage's gain over the base, paired by row with
// 95% confidence intervals: on a few dozen rows a difference of 0.05 is
// often noise, and the table above does not say which. Stages whose rows
// were not kept (evaluated by an older version) are left out.
func writeGains(w io.Writer, entries []evaluate.Entry, perRow []map[string][]evaluate.RowScore) error {
	if len(entries) < 2 || perRow[0] == nil {
		return nil
	}
	for i := 1; i < len(entries); i++ {
		if perRow[i] == nil {
			continue
		}
		ps, err := evaluate.Compare(perRow[0], perRow[i], false)
		if err != nil {
			return fmt.Errorf("compare %s with base: %w", entries[i].Label, err)
		}
		fmt.Fprintf(w, "\n%s against base, paired by row (gain, 95%% confidence interval):\n", entries[i].Label)
		if err := evaluate.WritePaired(w, ps); err != nil {
			return err
		}
	}
	return nil
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
