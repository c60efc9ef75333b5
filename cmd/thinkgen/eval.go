package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/evaluate"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/reward"
)

func evalCommand() *command {
	return &command{
		name:  "eval",
		usage: "DATASET [--images DIR] [--json] [--remote URL] | --model DIR [--rows N] [--grids DIR]",
		short: "score images against a ShapeWorld dataset, or a model on held-out rows, per scenario",
		long: `Eval scores one image per row of DATASET (an .arrow file or a directory of
them) with the rule models and prints one line per scenario, named after
the benchmark it stands in for: composition ≈ GenEval, reasoning ≈ WISE,
text ≈ CVTG word accuracy, editing ≈ ImgEdit, reflection.

The images are DIR/<row id>.png with --images; without it, the dataset's
own target images (the ground-truth baseline, which should score 1).
For reflection rows a DIR/<row id>.txt file, when present, is the
written correction, compared with the reference one (aux "ned").
Editing and reflection rows take their reference image from the dataset.
A row without an image in DIR is an error naming it.

With --model DIR (a bundle: base/tiny, a pretrain stage's final/, a
fetched checkpoint's bundle/; or an export written by thinkgen export), eval runs the whole pipeline instead: the
MLLM writes (greedy) in non-thinking and thinking mode, the DiT draws or
edits, and the rule models score the first --rows rows of the held-out
split of the bundle's seed (--seed N: of seed N, the rows and noise that
train --seed N evaluates on); the per-stage table has one entry. --oracle adds
mode "oracle": the DiT draws from each row's reference answer, written as
stage 2 trained it — the DiT's ceiling on its training format.
--scenarios composition (or a comma-separated list) evaluates the first
--rows rows of a held-out split made of those scenarios only, and --modes
think (direct, think, oracle, reference) only those modes: a paired
before/after check of one scenario costs a fraction of the whole table.
Mode "reference" is thinking mode with the reply forced to each row's
reference chain and answer after the row's own prompt: the ceiling of what
training the MLLM alone can reach with this DiT (oracle is the DiT's
ceiling on the pseudo chain of thought it was pre-trained on). The table's
last column scores the instructions themselves for composition and
reasoning rows: each is read back as a caption and checked against the
row's requirements as if it were the detector's reading (0 when it is not
a caption) — the MLLM's share of the score, before the DiT draws.
--by-task adds a table (and "tasks" in the JSON) per scenario sub-task:
a scenario's mean hides that held-out knowledge rows ask for facts the
train split holds back, while arithmetic, spatial and logic rows can be
learnt.

--splits chooses the held-out splits, each reported in a section of its
own: eval (out of distribution: every row shows a combination the train
split holds back) and eval-id (in distribution: new scenes of the
combinations the train split shows); both by default. With --json the
first is at the top level and eval-id, when both run, under "eval_id".`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			images := fs.String("images", "", "folder of PNGs named <row id>.png (default: the dataset's target images)")
			asJSON := fs.Bool("json", false, "print the table as JSON")
			remote := fs.String("remote", "", "score every scenario through the remote reward service at this URL (default: reward.remote of the config, else in process)")
			weightsFrom := addRunFlags(fs)
			modelDir := fs.String("model", "", "generate with the bundle or export in this directory (think-then-generate, both modes) on held-out rows instead of scoring a DATASET's images")
			rows := fs.Int("rows", 200, "with --model: the number of held-out rows (the eval split of the bundle's seed, or --seed)")
			grids := fs.String("grids", "", "with --model: write grid-direct.png and grid-think.png (reference | generated | target) into this directory")
			oracle := fs.Bool("oracle", false, "with --model: also evaluate mode oracle, the DiT drawing from each row's reference answer written as stage 2 trained it (the DiT's ceiling; --modes reference gives the MLLM's)")
			scenarios := fs.StringSlice("scenarios", nil, "with --model: evaluate only these scenarios (comma-separated, e.g. composition,reasoning): the first --rows held-out rows of a split made of them")
			byTask := fs.Bool("by-task", false, "with --model: also score each scenario's sub-tasks (reasoning: knowledge, arithmetic, spatial, negation, comparison; editing: add, remove, …) separately")
			evalModes := fs.StringSlice("modes", nil, "with --model: evaluate only these modes (direct, think, oracle, reference; default direct and think, and oracle with --oracle)")
			splits := fs.StringSlice("splits", []string{string(datasets.Eval), string(datasets.EvalID)}, "with --model: the held-out splits, eval (out of distribution) and eval-id (in distribution)")
			return func(ctx context.Context, args []string) error {
				if *modelDir != "" {
					if len(args) != 0 {
						return usagef("eval --model takes no DATASET: it generates the held-out rows")
					}
					if *rows <= 0 {
						return usagef("--rows must be positive, got %d", *rows)
					}
					// The bundle carries its configuration; a flag that
					// would change it must not be dropped silently.
					applies := map[string]bool{"model": true, "rows": true, "grids": true, "oracle": true, "json": true, "seed": true, "log-format": true, "scenarios": true, "modes": true, "by-task": true, "splits": true}
					var refused string
					fs.Visit(func(f *pflag.Flag) {
						if !applies[f.Name] && refused == "" {
							refused = f.Name
						}
					})
					if refused != "" {
						return usagef("--%s does not apply with --model: the bundle carries its own configuration (--seed chooses the held-out rows)", refused)
					}
					for _, sc := range *scenarios {
						if !slices.Contains(datasets.AllScenarios, sc) {
							return usagef("--scenarios: unknown scenario %q (known: %s)", sc, strings.Join(datasets.AllScenarios, ", "))
						}
					}
					for _, md := range *evalModes {
						if err := evaluate.CheckMode(md); err != nil {
							return usagef("--modes: %v", err)
						}
					}
					var sps []datasets.Split
					for _, sp := range heldOutSplits {
						if slices.Contains(*splits, string(sp)) {
							sps = append(sps, sp)
						}
					}
					for _, sp := range *splits {
						if !slices.Contains(heldOutSplits, datasets.Split(sp)) {
							return usagef("--splits: unknown held-out split %q (known: eval, eval-id)", sp)
						}
					}
					if len(sps) == 0 {
						return usagef("--splits: name eval, eval-id or both")
					}
					if *oracle && len(*evalModes) > 0 && !slices.Contains(*evalModes, evaluate.OracleMode) {
						return usagef("--oracle with --modes %s: name oracle among the modes instead", strings.Join(*evalModes, ","))
					}
					m := modelEval{dir: *modelDir, rows: *rows, grids: *grids, oracle: *oracle, asJSON: *asJSON, scenarios: *scenarios, modes: *evalModes, byTask: *byTask, splits: sps}
					if fs.Changed("seed") {
						m.seed = &weightsFrom.seed
					}
					return evalModel(ctx, e, m)
				}
				if *oracle {
					return usagef("--oracle needs --model: it evaluates a model's DiT")
				}
				if *byTask {
					return usagef("--by-task needs --model: it splits the scores of a model's held-out rows")
				}
				if fs.Changed("scenarios") || fs.Changed("modes") || fs.Changed("splits") {
					return usagef("--scenarios, --modes and --splits need --model: they choose the held-out rows and modes a model is evaluated on")
				}
				if len(args) != 1 {
					return usagef("eval takes one DATASET (an .arrow file or a directory)")
				}
				cfg, err := weightsFrom.load()
				if err != nil {
					return err
				}
				var scorer reward.Scorer
				if scorer, err = reward.FromConfig(cfg.Reward); err != nil {
					return usagef("%v", err)
				}
				if *remote != "" {
					c, err := reward.NewClient(*remote, reward.ClientOptions{Timeout: cfg.Reward.Timeout})
					if err != nil {
						return usagef("--remote: %v", err)
					}
					scorers := map[string]reward.Scorer{}
					for _, sc := range datasets.AllScenarios {
						scorers[sc] = c
					}
					scorer = reward.NewRegistry(scorers, cfg.Reward.Weights)
				}
				sums, err := evalDataset(ctx, scorer, args[0], *images)
				if err != nil {
					return err
				}
				if *asJSON {
					enc := json.NewEncoder(e.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(map[string]any{"dataset": args[0], "images": *images, "scenarios": sums})
				}
				return reward.WriteTable(e.stdout, sums)
			}
		},
	}
}

// evalBatch is the number of rows scored per call.
const evalBatch = 256

func evalDataset(ctx context.Context, scorer reward.Scorer, path, imagesDir string) ([]reward.Summary, error) {
	rows, _, err := readDataset(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	var results []reward.Result
	for start := 0; start < len(rows); start += evalBatch {
		batch := rows[start:min(len(rows), start+evalBatch)]
		items := make([]reward.Item, len(batch))
		for i, r := range batch {
			it, err := evalItem(r, imagesDir)
			if err != nil {
				return nil, fmt.Errorf("eval: %w", err)
			}
			items[i] = it
		}
		res, err := scorer.Score(ctx, items)
		if err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		results = append(results, res...)
	}
	return reward.Summarize(results), nil
}

func evalItem(r datasets.Row, imagesDir string) (reward.Item, error) {
	it := reward.Item{ID: r.ID, Scenario: r.Scenario, Spec: r.Spec.JSON(), Answer: r.Answer}
	imgBytes := r.Target
	if r.Scenario == datasets.Reflection {
		it.Text = r.Answer
	}
	if imagesDir != "" {
		b, err := os.ReadFile(filepath.Join(imagesDir, r.ID+".png"))
		if err != nil {
			return it, fmt.Errorf("row %s: %w", r.ID, err)
		}
		imgBytes = b
		if r.Scenario == datasets.Reflection {
			t, err := os.ReadFile(filepath.Join(imagesDir, r.ID+".txt"))
			switch {
			case err == nil:
				it.Text = string(bytes.TrimSpace(t))
			case errors.Is(err, fs.ErrNotExist):
				it.Text = ""
			default:
				return it, fmt.Errorf("row %s: %w", r.ID, err)
			}
		}
	}
	img, err := png.Decode(bytes.NewReader(imgBytes))
	if err != nil {
		return it, fmt.Errorf("row %s: decode image: %w", r.ID, err)
	}
	it.Image = img
	if len(r.Reference) > 0 {
		if it.Reference, err = png.Decode(bytes.NewReader(r.Reference)); err != nil {
			return it, fmt.Errorf("row %s: decode reference image: %w", r.ID, err)
		}
	}
	return it, nil
}

// modelEval is what eval --model evaluates and how.
type modelEval struct {
	dir    string // the bundle or export
	rows   int
	grids  string
	oracle bool
	asJSON bool
	// scenarios, if set, restrict the held-out split to these scenarios.
	scenarios []string
	// modes, if set, are the modes evaluated (evaluate.Options.Modes).
	modes []string
	// byTask also summarises each scenario's sub-tasks.
	byTask bool
	// seed, if set, replaces the bundle's run seed: the held-out rows and
	// the noise are then those of `train --seed` with that seed.
	seed *int64
	// splits are the held-out splits evaluated, in heldOutSplits order.
	splits []datasets.Split
}

// heldOutSplits are the splits eval --model and train's table report, in
// order: out of distribution, then in distribution.
var heldOutSplits = []datasets.Split{datasets.Eval, datasets.EvalID}

// splitTitle names a held-out split in a table's heading.
func splitTitle(sp datasets.Split) string {
	if sp == datasets.EvalID {
		return "in distribution, eval-id split"
	}
	return "out of distribution, eval split"
}

// splitEval is one held-out split's evaluation of a model.
type splitEval struct {
	split  datasets.Split
	scores evaluate.Scores
	tasks  map[string][]reward.Summary
	perRow map[string][]evaluate.RowScore
}

// evalModel runs the eval harness with the bundle in m.dir on the first
// m.rows held-out rows of its configuration's seed (or m.seed), in both
// modes.
func evalModel(ctx context.Context, e *env, m modelEval) error {
	cfg, load, err := modelDir("--model", m.dir)
	if err != nil {
		return err
	}
	if m.seed != nil {
		cfg.Run.Seed = *m.seed
	}
	if err := cfg.Data.CheckEvalRows("--rows", m.rows); err != nil {
		return &usageError{fmt.Errorf("%s: %w", m.dir, err)}
	}
	if len(m.splits) == 0 {
		m.splits = heldOutSplits
	}
	reg, err := reward.FromConfig(cfg.Reward)
	if err != nil {
		return err
	}
	if m.grids != "" {
		if err := os.MkdirAll(m.grids, 0o755); err != nil {
			return err
		}
	}
	evals := make([]splitEval, len(m.splits))
	err = libtorch.Run(func() error {
		if th := cfg.Run.Threads; th > 0 {
			if err := libtorch.SetThreads(th); err != nil {
				return err
			}
		}
		b, err := placed(cfg, load)
		if err != nil {
			return err
		}
		defer b.Drop()
		for i, sp := range m.splits {
			data, err := datasets.Generate(datasets.Options{Seed: uint64(cfg.Run.Seed), Split: sp, Size: cfg.Model.DiT.ImageSize, Scenarios: m.scenarios}, 0, m.rows)
			if err != nil {
				return err
			}
			// The out-of-distribution grids keep their names; the
			// in-distribution ones go into an eval-id folder.
			grids := m.grids
			if grids != "" && sp != datasets.Eval {
				grids = filepath.Join(grids, string(sp))
				if err := os.MkdirAll(grids, 0o755); err != nil {
					return err
				}
			}
			ev := splitEval{split: sp, perRow: map[string][]evaluate.RowScore{}}
			var samples map[string][]evaluate.Sample
			ev.scores, samples, err = evaluate.Run(ctx, b, reg, evaluate.Options{Rows: data, Sampling: cfg.Sampling, Seed: uint64(cfg.Run.Seed), GridDir: grids, GridRows: 12, Oracle: m.oracle, Modes: m.modes, Progress: e.stderr})
			if err != nil {
				return err
			}
			for mode, ss := range samples {
				ev.perRow[mode] = evaluate.RowScores(ss)
			}
			if m.byTask {
				ev.tasks = map[string][]reward.Summary{}
				for mode, ss := range samples {
					ev.tasks[mode] = evaluate.TaskSummaries(ss)
				}
			}
			evals[i] = ev
		}
		return nil
	})
	if err != nil {
		return err
	}
	if m.asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		fields := func(ev splitEval) map[string]any {
			out := map[string]any{"model": m.dir, "rows": m.rows, "seed": cfg.Run.Seed, "split": ev.split, "scores": ev.scores, "row_scores": ev.perRow}
			if len(m.scenarios) > 0 {
				out["scenarios"] = m.scenarios
			}
			if ev.tasks != nil {
				out["tasks"] = ev.tasks
			}
			return out
		}
		out := fields(evals[0])
		if len(evals) > 1 {
			out["eval_id"] = fields(evals[1])
		}
		return enc.Encode(out)
	}
	of := ""
	if len(m.scenarios) > 0 {
		of = " " + strings.Join(m.scenarios, "+")
	}
	for i, ev := range evals {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		fmt.Fprintf(e.stdout, "held-out scores, %s (%d%s rows of seed %d; mean partial score, strict accuracy in brackets):\n", splitTitle(ev.split), m.rows, of, cfg.Run.Seed)
		if err := evaluate.WriteTable(e.stdout, []evaluate.Entry{{Label: filepath.Base(m.dir), Scores: ev.scores}}); err != nil {
			return err
		}
		if ev.tasks == nil {
			continue
		}
		fmt.Fprintln(e.stdout, "\nby task:")
		if err := evaluate.WriteTaskTable(e.stdout, ev.tasks); err != nil {
			return err
		}
	}
	return nil
}
