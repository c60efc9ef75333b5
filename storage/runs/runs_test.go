package runs_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/tfevents"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/storage/storagetest"
)

// checkEvents checks that the event file at key of the local store st holds
// exactly want.
func checkEvents(t *testing.T, st *storage.Local, key string, want []tfevents.Event) {
	t.Helper()
	f, err := os.Open(filepath.Join(st.Dir(), filepath.FromSlash(key)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events, err := tfevents.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(events, want) {
		t.Errorf("%s: events\n%+v\nwant\n%+v", key, events, want)
	}
}

func TestStateRoundTrip(t *testing.T) {
	ctx := context.Background()
	st := storagetest.Local(t)
	started := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	want := &runs.State{Version: runs.StateVersion, Run: "r", Config: "name: tiny\n", Seed: 7, Steps: 4,
		Committed: 2, PolicyVersion: 2, Phase: config.PhaseMLLMGRPO, Seeds: map[string]uint64{"1": 11, "2": 22},
		Kept: []int{0, 2}, Started: started, Updated: started.Add(time.Minute)}
	if err := runs.WriteState(ctx, st, want); err != nil {
		t.Fatal(err)
	}
	if k := runs.StateKey("r"); k != "runs/r/run.json" {
		t.Errorf("StateKey = %q, want runs/r/run.json", k)
	}
	b, err := os.ReadFile(filepath.Join(st.Dir(), "runs", "r", "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(b), "}\n") || !strings.Contains(string(b), `"policy_version": 2`) {
		t.Errorf("run.json is not indented JSON ending in a newline:\n%s", b)
	}
	got, err := runs.ReadState(ctx, st, "r")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadState = %+v, want %+v", got, want)
	}
}

func TestReadStateErrors(t *testing.T) {
	ctx := context.Background()
	st := storagetest.Local(t)
	for run, body := range map[string]string{"corrupt": "{not json", "future": `{"version": 9}`} {
		if err := st.Put(ctx, runs.StateKey(run), strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		run      string
		notExist bool
		want     string
	}{
		{"missing", true, ""},
		{"corrupt", false, "read runs/corrupt/run.json"},
		{"future", false, "read runs/future/run.json: version 9, this build reads 1"},
	}
	for _, tt := range tests {
		t.Run(tt.run, func(t *testing.T) {
			_, err := runs.ReadState(ctx, st, tt.run)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, storage.ErrNotExist) != tt.notExist {
				t.Errorf("error %v: errors.Is(ErrNotExist) = %v, want %v", err, !tt.notExist, tt.notExist)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	rs := &runs.State{Run: "r", Config: "run: {seed: [1]}\n"}
	if _, err := rs.ParseConfig(); err == nil || !strings.Contains(err.Error(), "runs/r/run.json") {
		t.Errorf("ParseConfig of a bad configuration: %v, want an error naming runs/r/run.json", err)
	}
}

func TestEvalKeys(t *testing.T) {
	if got, want := runs.EvalKey("r", 12), "runs/r/eval/000012.json"; got != want {
		t.Errorf("EvalKey = %q, want %q", got, want)
	}
	if got, want := runs.EvalRowsKey("r", 12), "runs/r/eval/000012-rows.json"; got != want {
		t.Errorf("EvalRowsKey = %q, want %q", got, want)
	}
	if got, want := runs.EvalGridKey("r", 12, "think"), "runs/r/eval/000012-grid-think.png"; got != want {
		t.Errorf("EvalGridKey = %q, want %q", got, want)
	}
	tests := []struct {
		key     string
		version int
		mode    string
		ok      bool
	}{
		{runs.EvalKey("r", 0), 0, "", true},
		{runs.EvalKey("r", 12), 12, "", true},
		{runs.EvalGridKey("r", 12, "direct"), 12, "direct", true},
		{runs.EvalRowsKey("r", 12), 0, "", false},
		{runs.EvalKey("other", 12), 0, "", false},
		{"runs/r/eval/sub/000001.json", 0, "", false},
		{"runs/r/eval/000001-grid-.png", 0, "", false},
		{"runs/r/eval/000001-grid-think.jpg", 0, "", false},
		{"runs/r/eval/-1.json", 0, "", false},
		{"runs/r/run.json", 0, "", false},
	}
	for _, tt := range tests {
		v, mode, ok := runs.ParseEvalKey("r", tt.key)
		if ok != tt.ok || ok && (v != tt.version || mode != tt.mode) {
			t.Errorf("ParseEvalKey(%q) = %d, %q, %v; want %d, %q, %v", tt.key, v, mode, ok, tt.version, tt.mode, tt.ok)
		}
	}
}

func TestReadEvalScores(t *testing.T) {
	ctx := context.Background()
	st := storagetest.Local(t)
	body := `{"think": [{"scenario": "reasoning", "n": 2, "score": 0.5, "strict": 0.25}]}`
	if err := st.Put(ctx, runs.EvalKey("r", 3), strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, runs.EvalKey("r", 4), strings.NewReader("{")); err != nil {
		t.Fatal(err)
	}
	got, err := runs.ReadEvalScores(ctx, st, "r", 3)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]reward.Summary{"think": {{Scenario: "reasoning", N: 2, Score: 0.5, Strict: 0.25}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadEvalScores = %+v, want %+v", got, want)
	}
	if _, err := runs.ReadEvalScores(ctx, st, "r", 5); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("a version without scores: %v, want ErrNotExist", err)
	}
	if _, err := runs.ReadEvalScores(ctx, st, "r", 4); err == nil || !strings.Contains(err.Error(), runs.EvalKey("r", 4)) {
		t.Errorf("corrupt scores: %v, want an error naming %s", err, runs.EvalKey("r", 4))
	}
}

// commitStep commits a step whose only shard is its metrics.
func commitStep(t *testing.T, st storage.Store, run string, step int, phase config.Phase, at time.Time, m map[string]float64) {
	t.Helper()
	ctx := context.Background()
	batch := storage.NewBatch(st, storage.StepManifestKey(run, step), run, "step", strconv.Itoa(step))
	if err := runs.PutMetrics(ctx, batch, runs.MetricsKey(run, step, 1, step), run, step, phase, at, m, shards.WriterOptions{}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if _, err := batch.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestHistory: the metrics each committed step wrote come back by name
// and step, NaN where a step did not log a metric, and a step beyond
// run.json's committed one is not read.
func TestHistory(t *testing.T) {
	ctx := context.Background()
	st := storagetest.Local(t)
	at := time.UnixMilli(1764265790123)
	commitStep(t, st, "r", 1, config.PhaseMLLMGRPO, at, map[string]float64{"reward/mean": 0.25, "rollout/cot_tokens": 31})
	commitStep(t, st, "r", 2, config.PhaseMLLMGRPO, at.Add(time.Second), map[string]float64{"reward/mean": 0.5, "loss/kl": 0.01, "rollout/cot_tokens": 33})
	commitStep(t, st, "r", 3, config.PhaseDiTGRPO, at.Add(2*time.Second), map[string]float64{"reward/mean": 0.75, "loss/kl": 0.02})
	commitStep(t, st, "r", 4, config.PhaseDiTGRPO, at.Add(3*time.Second), map[string]float64{"reward/mean": 1})
	if err := runs.WriteState(ctx, st, &runs.State{Version: runs.StateVersion, Run: "r", Steps: 4, Committed: 3}); err != nil {
		t.Fatal(err)
	}
	if got := runs.MetricsKey("r", 2, 3, 4); got != "runs/r/steps/000002/metrics/controller-e3-a4.arrow" {
		t.Errorf("MetricsKey = %q", got)
	}
	sm, err := runs.ReadStepMetrics(ctx, st, "r", 2, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if want := (runs.StepMetrics{Phase: "mllm-grpo", Values: map[string]float64{"reward/mean": 0.5, "loss/kl": 0.01, "rollout/cot_tokens": 33}, At: at.Add(time.Second)}); !reflect.DeepEqual(sm, want) {
		t.Errorf("ReadStepMetrics = %+v, want %+v", sm, want)
	}
	h, err := runs.ReadHistory(ctx, st, "r", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	nan := math.NaN()
	want := &runs.History{
		Steps:  []float64{1, 2, 3},
		Phases: []string{"mllm-grpo", "mllm-grpo", "dit-grpo"},
		Values: map[string][]float64{
			"reward/mean":        {0.25, 0.5, 0.75},
			"loss/kl":            {nan, 0.01, 0.02},
			"rollout/cot_tokens": {31, 33, nan},
		},
	}
	if !reflect.DeepEqual(h.Steps, want.Steps) || !reflect.DeepEqual(h.Phases, want.Phases) || len(h.Values) != len(want.Values) {
		t.Fatalf("ReadHistory = %+v, want %+v", h, want)
	}
	for k, w := range want.Values {
		g := h.Values[k]
		if len(g) != len(w) {
			t.Errorf("%s = %v, want %v", k, g, w)
			continue
		}
		for i := range w {
			if g[i] != w[i] && !(math.IsNaN(g[i]) && math.IsNaN(w[i])) {
				t.Errorf("%s = %v, want %v", k, g, w)
				break
			}
		}
	}
	if _, err := runs.ReadStepMetrics(ctx, st, "r", 5, t.TempDir()); !errors.Is(err, storage.ErrNotExist) || !strings.Contains(err.Error(), "step 5") {
		t.Errorf("an uncommitted step: %v, want ErrNotExist naming step 5", err)
	}
}

// TestPutEvents: an event file is named by the run's start, its id and
// the host; writing an id again replaces the file of that id another host
// wrote and leaves other ids alone.
func TestPutEvents(t *testing.T) {
	ctx := context.Background()
	st := storagetest.Local(t)
	rs := &runs.State{Version: runs.StateVersion, Run: "r", Started: time.Unix(1764265780, 0)}
	prefix := runs.TensorBoardPrefix("r")
	if prefix != "runs/r/tensorboard/" {
		t.Errorf("TensorBoardPrefix = %q", prefix)
	}
	other := prefix + tfevents.FilePrefix + "1764265780.000001.zz-otherhost"
	keep := prefix + tfevents.FilePrefix + "1764265780.000002.zz-otherhost"
	for _, k := range []string{other, keep} {
		if err := st.Put(ctx, k, strings.NewReader("stale")); err != nil {
			t.Fatal(err)
		}
	}
	if err := runs.PutEvents(ctx, st, rs, "000003", nil); err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1764265790500)
	if err := runs.PutStepEvents(ctx, st, rs, 1, at, map[string]float64{"reward/mean": 0.5, "loss/kl": 0.25}, nil); err != nil {
		t.Fatal(err)
	}
	objs, err := st.List(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, path.Base(o.Key))
	}
	host, _ := os.Hostname()
	if len(names) != 2 || path.Base(keep) != names[1] || !strings.HasPrefix(names[0], tfevents.FilePrefix+"1764265780.000001.") || names[0] == path.Base(other) || !strings.Contains(names[0], host) {
		t.Fatalf("event files %v: want step 1's written by %s (replacing the other host's) and step 2's kept; none for empty events", names, host)
	}
	want := []tfevents.Event{
		{WallTime: 1764265790.5, FileVersion: tfevents.FileVersion},
		{WallTime: 1764265790.5, Step: 1, Scalars: []tfevents.Scalar{{Tag: "loss/kl", Value: 0.25}, {Tag: "reward/mean", Value: 0.5}}},
	}
	checkEvents(t, st, objs[0].Key, want)
}
