package runeval_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/evaluate"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/runeval"
	"github.com/thinkgen/thinkgen/schedule"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/storage/storagetest"
)

// baseRun returns configs/tiny.yaml set to evaluate the shipped base
// (one thread, 4 ODE steps, 24 new tokens) as eval says, and a local
// store holding run r with that base imported as version 0.
func baseRun(t *testing.T, eval config.Eval) (*config.Config, *storage.Local) {
	t.Helper()
	if testing.Short() {
		t.Skip("evaluates a model")
	}
	cfg, err := config.Load(filepath.Join("..", "configs", "tiny.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Run.Base, cfg.Run.Threads = filepath.Join("..", "base", "tiny"), 1
	cfg.Sampling.DiTSteps, cfg.Sampling.MaxNewTokens = 4, 24
	cfg.Eval = eval
	st := storagetest.Local(t)
	if _, err := (checkpoint.Versions{Store: st, Base: cfg.Run.Base}).ImportBase(context.Background(), "r", 1); err != nil {
		t.Fatal(err)
	}
	return cfg, st
}

// TestStages evaluates the shipped base as the only stage of a run whose
// schedule has not committed a block: its scores, per-row scores and
// grids land under the run's eval keys, the eval event file holds them,
// and a second evaluation reads the stored scores back instead of
// evaluating again.
func TestStages(t *testing.T) {
	ctx := context.Background()
	cfg, st := baseRun(t, config.Eval{}) // every scenario, both modes
	rs := &runs.State{Version: runs.StateVersion, Run: "r", Started: time.Unix(1764265780, 0)}
	ev := &runeval.Evaluator{Config: cfg, Store: st, Run: "r", Rows: 2, CacheDir: t.TempDir()}
	// A plan whose one step does not end its block: only the base is a
	// stage.
	plan := []schedule.Step{{Step: 1, Phase: config.PhaseMLLMGRPO}}
	s, err := ev.Stages(ctx, plan, rs, time.UnixMilli(1764265800000))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Entries) != 1 || s.Versions[0] != 0 || s.Entries[0].Label != "base" || s.PerRow[0] == nil {
		t.Fatalf("stages %+v, want the base with its per-row scores", s)
	}
	for _, mode := range evaluate.Modes {
		if n := len(s.PerRow[0][mode]); n != 2 {
			t.Errorf("%s: %d per-row scores, want 2", mode, n)
		}
		if len(s.Entries[0].Scores[mode]) == 0 {
			t.Errorf("%s: no scores", mode)
		}
	}
	stored, err := runs.ReadEvalScores(ctx, st, "r", 0)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := testutil.JSON(t, stored), testutil.JSON(t, s.Entries[0].Scores); a != b {
		t.Errorf("stored scores %s, returned %s", a, b)
	}
	keys := []string{runs.EvalRowsKey("r", 0)}
	for _, mode := range evaluate.Modes {
		keys = append(keys, runs.EvalGridKey("r", 0, mode))
	}
	for _, k := range keys {
		if _, err := st.Stat(ctx, k); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	if objs, err := st.List(ctx, runs.TensorBoardPrefix("r")); err != nil || len(objs) != 1 || !strings.Contains(objs[0].Key, "."+runs.EvalEventsID+".") {
		t.Errorf("event files %v (%v), want the eval file", objs, err)
	}

	// A stored evaluation is read back, not redone.
	marked := map[string][]reward.Summary{"direct": {{Scenario: "count", N: 2, Score: 0.125}}}
	if err := st.Put(ctx, runs.EvalKey("r", 0), strings.NewReader(testutil.JSON(t, marked))); err != nil {
		t.Fatal(err)
	}
	ent, perRow, err := ev.Version(ctx, 0, "again")
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.JSON(t, ent.Scores); ent.Label != "again" || got != testutil.JSON(t, marked) || perRow == nil {
		t.Errorf("second evaluation: %s %s (per-row %v), want the stored scores", ent.Label, got, perRow != nil)
	}

	// A block's end whose evaluation is stored (its rows the base's, each
	// scored 1): the table pairs it with the base by row.
	better := map[string][]evaluate.RowScore{}
	for mode, rows := range s.PerRow[0] {
		for _, r := range rows {
			r.Score, r.Strict = 1, 1
			better[mode] = append(better[mode], r)
		}
	}
	if err := st.Put(ctx, runs.EvalRowsKey("r", 1), strings.NewReader(testutil.JSON(t, better))); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, runs.EvalKey("r", 1), strings.NewReader(testutil.JSON(t, marked))); err != nil {
		t.Fatal(err)
	}
	plan[0].EndsPhase = true
	s, err = ev.Stages(ctx, plan, rs, time.UnixMilli(1764265800000))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Entries) != 2 || s.Versions[1] != 1 || s.Entries[1].Label != "stage4@1" {
		t.Fatalf("stages %v %+v, want the base and stage4@1", s.Versions, s.Entries)
	}
	var buf bytes.Buffer
	if err := s.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"base", "stage4@1", "stage4@1 against base, paired by row"} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, buf.String())
		}
	}

	// The in-distribution split: its own rows and keys, no grids, and the
	// event file still the out-of-distribution one alone.
	id := &runeval.Evaluator{Config: cfg, Store: st, Run: "r", Rows: 2, CacheDir: t.TempDir(), Split: datasets.EvalID}
	plan[0].EndsPhase = false
	s, err = id.Stages(ctx, plan, rs, time.UnixMilli(1764265900000))
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range evaluate.Modes {
		if rows := s.PerRow[0][mode]; len(rows) != 2 || !strings.HasPrefix(rows[0].ID, "eval-id-") {
			t.Errorf("eval-id %s: per-row scores %+v, want 2 eval-id rows", mode, rows)
		}
	}
	for _, k := range []string{runs.EvalIDKey("r", 0), runs.EvalIDRowsKey("r", 0)} {
		if _, err := st.Stat(ctx, k); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	if objs, err := st.List(ctx, runs.EvalPrefix("r")); err != nil || len(objs) != 4+2+2 {
		t.Errorf("eval keys %v (%v), want base's scores, rows and 2 grids, version 1's two, and eval-id's two", objs, err)
	}
	if objs, err := st.List(ctx, runs.TensorBoardPrefix("r")); err != nil || len(objs) != 1 {
		t.Errorf("event files %v (%v), want the out-of-distribution eval file alone", objs, err)
	}
}

// TestVersionScoresTheConfiguredRows checks eval.scenarios and eval.modes:
// a version is scored on rows of those scenarios alone, taken in turn, in
// those modes alone, with a grid for each mode scored.
func TestVersionScoresTheConfiguredRows(t *testing.T) {
	ctx := context.Background()
	cfg, st := baseRun(t, config.Eval{Scenarios: []string{"reasoning", "composition"}, Modes: []string{"think"}})
	ev := &runeval.Evaluator{Config: cfg, Store: st, Run: "r", Rows: 4, CacheDir: t.TempDir()}
	ent, perRow, err := ev.Version(ctx, 0, "base")
	if err != nil {
		t.Fatal(err)
	}
	if len(ent.Scores) != 1 || len(perRow) != 1 {
		t.Fatalf("scored modes %v, want think alone", testutil.JSON(t, ent.Scores))
	}
	var got []string
	for _, r := range perRow["think"] {
		got = append(got, r.Scenario)
	}
	if want := []string{"reasoning", "composition", "reasoning", "composition"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("rows of scenarios %v, want %v", got, want)
	}
	if _, err := st.Stat(ctx, runs.EvalGridKey("r", 0, "think")); err != nil {
		t.Errorf("think grid: %v", err)
	}
	if _, err := st.Stat(ctx, runs.EvalGridKey("r", 0, "direct")); err == nil {
		t.Error("a direct-mode grid was stored for a run that does not score direct mode")
	}
}
