// Package runeval scores a run's policy versions on held-out rows, in
// both modes, and keeps the results in the run's store (package
// storage/runs lays them out: the scores, the per-row scores and the
// sample grids of each version). A version evaluated before is read back,
// not evaluated again. Stages evaluates what `thinkgen train` reports when
// its schedule completes: the base and the policy at the end of each
// schedule block, with their TensorBoard event file.
package runeval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/evaluate"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/schedule"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
)

// GridRows is how many held-out rows a version's sample grids show.
const GridRows = 10

// Evaluator scores versions of one run.
type Evaluator struct {
	Config *config.Config
	Store  storage.Store
	Run    string
	// Rows is the number of held-out rows each version is scored on.
	Rows int
	// CacheDir holds fetched checkpoints and temporary grids.
	CacheDir string
	// Progress receives the evaluations' progress lines (nil: none).
	Progress io.Writer
	// Split is the held-out split: datasets.Eval (out of distribution,
	// the default when empty) or datasets.EvalID (in distribution, kept
	// under runs.EvalIDKey without grids or events).
	Split datasets.Split
}

// inDist reports whether ev scores the in-distribution split.
func (ev *Evaluator) inDist() bool { return ev.Split == datasets.EvalID }

// Version evaluates version v (or reads its earlier evaluation from the
// store) and returns its scores, labelled, and its per-row scores by mode
// (nil for an evaluation stored before they were kept).
func (ev *Evaluator) Version(ctx context.Context, v int, label string) (evaluate.Entry, map[string][]evaluate.RowScore, error) {
	key, rowsKey := runs.EvalKey(ev.Run, v), runs.EvalRowsKey(ev.Run, v)
	split := datasets.Eval
	if ev.inDist() {
		key, rowsKey, split = runs.EvalIDKey(ev.Run, v), runs.EvalIDRowsKey(ev.Run, v), datasets.EvalID
	}
	if rc, err := ev.Store.Get(ctx, key); err == nil {
		var s evaluate.Scores
		err := json.NewDecoder(rc).Decode(&s)
		rc.Close()
		if err == nil {
			var perRow map[string][]evaluate.RowScore
			if rc, err := ev.Store.Get(ctx, rowsKey); err == nil {
				if json.NewDecoder(rc).Decode(&perRow) != nil {
					perRow = nil
				}
				rc.Close()
			}
			return evaluate.Entry{Label: label, Scores: s}, perRow, nil
		}
	}
	cfg := ev.Config
	if err := cfg.Data.CheckEvalRows("eval rows", ev.Rows); err != nil {
		return evaluate.Entry{}, nil, fmt.Errorf("eval version %d: %w", v, err)
	}
	rows, err := datasets.Generate(datasets.Options{Seed: uint64(cfg.Run.Seed), Split: split, Size: cfg.Model.DiT.ImageSize, Scenarios: cfg.Eval.Scenarios}, 0, ev.Rows)
	if err != nil {
		return evaluate.Entry{}, nil, err
	}
	reg, err := reward.FromConfig(cfg.Reward)
	if err != nil {
		return evaluate.Entry{}, nil, err
	}
	gridDir, err := os.MkdirTemp(ev.CacheDir, "grid-")
	if err != nil {
		return evaluate.Entry{}, nil, err
	}
	defer os.RemoveAll(gridDir)
	var (
		scores  evaluate.Scores
		samples map[string][]evaluate.Sample
	)
	err = libtorch.Run(func() error {
		if th := cfg.Run.Threads; th > 0 {
			if err := libtorch.SetThreads(th); err != nil {
				return err
			}
		}
		pl, err := model.PlacementOf(cfg)
		if err != nil {
			return err
		}
		b, _, err := checkpoint.Load(ctx, ev.Store, ev.Run, v, filepath.Join(ev.CacheDir, "checkpoints"), pl.Device)
		if err != nil {
			return err
		}
		b.ToDType(pl.DType)
		defer b.Drop()
		scores, samples, err = evaluate.Run(ctx, b, reg, evaluate.Options{Rows: rows, Sampling: cfg.Sampling, Seed: uint64(cfg.Run.Seed), GridDir: gridDir, GridRows: GridRows, Modes: cfg.Eval.Modes, Progress: ev.Progress})
		return err
	})
	if err != nil {
		return evaluate.Entry{}, nil, fmt.Errorf("eval version %d: %w", v, err)
	}
	perRow := map[string][]evaluate.RowScore{}
	for mode, ss := range samples {
		perRow[mode] = evaluate.RowScores(ss)
	}
	// The rows first: a stored scores file is taken as complete.
	for _, obj := range []struct {
		key string
		v   any
	}{{rowsKey, perRow}, {key, scores}} {
		data, err := json.MarshalIndent(obj.v, "", "  ")
		if err != nil {
			return evaluate.Entry{}, nil, err
		}
		if err := ev.Store.Put(ctx, obj.key, bytes.NewReader(data)); err != nil {
			return evaluate.Entry{}, nil, err
		}
	}
	gridModes := evaluate.Modes
	if len(cfg.Eval.Modes) > 0 {
		gridModes = cfg.Eval.Modes
	}
	if ev.inDist() {
		gridModes = nil // the in-distribution split keeps no grids
	}
	for _, mode := range gridModes {
		f, err := os.Open(filepath.Join(gridDir, "grid-"+mode+".png"))
		if err != nil {
			return evaluate.Entry{}, nil, err
		}
		err = ev.Store.Put(ctx, runs.EvalGridKey(ev.Run, v, mode), f)
		f.Close()
		if err != nil {
			return evaluate.Entry{}, nil, err
		}
	}
	return evaluate.Entry{Label: label, Scores: scores}, perRow, nil
}

// Stages is the evaluation of a run's stages: the base, then the policy at
// the end of each schedule block.
type Stages struct {
	Versions []int
	Entries  []evaluate.Entry
	// PerRow are the per-row scores of each entry (nil for one stored
	// before they were kept).
	PerRow []map[string][]evaluate.RowScore
}

// Stages evaluates the base and the end of each block of plan (the
// run's schedule), and writes their scores as the run's TensorBoard eval
// event file (rs is the run's state), measured at.
func (ev *Evaluator) Stages(ctx context.Context, plan []schedule.Step, rs *runs.State, at time.Time) (*Stages, error) {
	s := &Stages{}
	versions := []int{0}
	for _, p := range plan {
		if p.EndsPhase {
			versions = append(versions, p.Step)
		}
	}
	for _, v := range versions {
		ent, rows, err := ev.Version(ctx, v, schedule.VersionLabel(plan, v))
		if err != nil {
			return nil, err
		}
		s.Versions = append(s.Versions, v)
		s.Entries = append(s.Entries, ent)
		s.PerRow = append(s.PerRow, rows)
	}
	if ev.inDist() {
		return s, nil // the event file holds the out-of-distribution scores
	}
	scores := make([]map[string][]reward.Summary, len(s.Entries))
	for i, ent := range s.Entries {
		scores[i] = ent.Scores
	}
	if err := runs.PutEvalEvents(ctx, ev.Store, rs, at, s.Versions, scores); err != nil {
		return nil, err
	}
	return s, nil
}

// WriteTable prints the stages like the paper's Table 6 (evaluate.WriteTable),
// then each stage's gain over the base, paired by row with 95% confidence
// intervals: on a few dozen rows a difference of 0.05 is often noise, and
// the table does not say which. Stages whose rows were not kept (evaluated
// by an older version) are left out of the gains.
func (s *Stages) WriteTable(w io.Writer) error {
	if err := evaluate.WriteTable(w, s.Entries); err != nil {
		return err
	}
	if len(s.Entries) < 2 || s.PerRow[0] == nil {
		return nil
	}
	for i := 1; i < len(s.Entries); i++ {
		if s.PerRow[i] == nil {
			continue
		}
		ps, err := evaluate.Compare(s.PerRow[0], s.PerRow[i], false)
		if err != nil {
			return fmt.Errorf("compare %s with base: %w", s.Entries[i].Label, err)
		}
		fmt.Fprintf(w, "\n%s against base, paired by row (gain, 95%% confidence interval):\n", s.Entries[i].Label)
		if err := evaluate.WritePaired(w, ps); err != nil {
			return err
		}
	}
	return nil
}
