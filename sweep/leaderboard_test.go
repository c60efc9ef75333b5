package sweep

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/storage"
)

func TestAllStatuses(t *testing.T) {
	want := map[Status]bool{StatusPending: false, StatusRunning: false, StatusDone: true, StatusStopped: true, StatusFailed: false}
	if len(AllStatuses) != len(want) {
		t.Fatalf("AllStatuses has %d entries, want %d", len(AllStatuses), len(want))
	}
	for _, s := range AllStatuses {
		f, ok := want[s]
		if !ok || s.Finished() != f {
			t.Errorf("%s: listed %v, Finished %v", s, ok, s.Finished())
		}
	}
}

func ptr(v float64) *float64 { return &v }

// board is a sweep state with trials in every state, out of order.
func board(direction string) *State {
	tr := func(i int, st Status, obj *float64, steps int) TrialState {
		return TrialState{Trial: Trial{Index: i, Name: TrialName("b", i), Overrides: []Override{{"grpo.lr", []string{"", "1e-4", "2e-4", "3e-4", "4e-4", "5e-4", "6e-4", "7e-4"}[i]}}},
			Status: st, Objective: obj, Steps: steps, TotalSteps: 4, Elapsed: time.Duration(i) * time.Second}
	}
	return &State{Name: "b", Objective: Objective{Metric: "think/mean", Score: "partial", Direction: direction}, Trials: []TrialState{
		tr(1, StatusFailed, nil, 1),
		tr(2, StatusDone, ptr(0.3), 4),
		tr(3, StatusStopped, nil, 1),
		tr(4, StatusDone, ptr(0.7), 4),
		tr(5, StatusPending, nil, 0),
		tr(6, StatusStopped, nil, 2),
		tr(7, StatusDone, ptr(0.3), 4),
	}}
}

func TestLeaderboardOrder(t *testing.T) {
	tests := []struct {
		direction string
		want      []string // trial:rank
	}{
		{Maximize, []string{"b-t004:1", "b-t002:2", "b-t007:3", "b-t006:0", "b-t003:0", "b-t001:0", "b-t005:0"}},
		{Minimize, []string{"b-t002:1", "b-t007:2", "b-t004:3", "b-t006:0", "b-t003:0", "b-t001:0", "b-t005:0"}},
	}
	for _, tt := range tests {
		t.Run(tt.direction, func(t *testing.T) {
			var got []string
			for _, e := range board(tt.direction).Leaderboard() {
				got = append(got, e.Trial.Name+":"+string(rune('0'+e.Rank)))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("order %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLeaderboardFiles(t *testing.T) {
	s := board(Maximize)
	var table bytes.Buffer
	if err := s.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(lines) != 8 || !strings.HasPrefix(lines[0], "rank  trial") || !strings.Contains(lines[0], "think/mean") || !strings.Contains(lines[0], "grpo.lr") {
		t.Fatalf("table:\n%s", table.String())
	}
	if f := strings.Fields(lines[1]); !reflect.DeepEqual(f, []string{"1", "b-t004", "done", "0.7000", "4/4", "4e-4"}) {
		t.Errorf("first row %q", f)
	}

	var csv bytes.Buffer
	if err := s.WriteCSV(&csv); err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(csv.String()), "\n")
	if rows[0] != "rank,trial,status,objective,steps,total_steps,elapsed_s,grpo.lr" || rows[1] != "1,b-t004,done,0.7,4,4,4.0,4e-4" || rows[4] != ",b-t006,stopped,,2,4,6.0,6e-4" {
		t.Errorf("csv:\n%s", csv.String())
	}

	path := filepath.Join(t.TempDir(), "lb.arrow")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteArrow(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	f, _ = os.Open(path)
	defer f.Close()
	r, err := ipc.NewFileReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rec, err := r.Record(0)
	if err != nil {
		t.Fatal(err)
	}
	if rec.NumRows() != 7 || rec.NumCols() != 8 {
		t.Fatalf("arrow: %d rows %d cols", rec.NumRows(), rec.NumCols())
	}
	names := rec.Column(1).(*array.String)
	obj := rec.Column(3).(*array.Float64)
	rank := rec.Column(0).(*array.Int32)
	lr := rec.Column(7).(*array.String)
	if names.Value(0) != "b-t004" || obj.Value(0) != 0.7 || rank.Value(0) != 1 || lr.Value(0) != "4e-4" {
		t.Errorf("arrow first row: %s %v %v %s", names.Value(0), obj.Value(0), rank.Value(0), lr.Value(0))
	}
	if !obj.IsNull(3) || !rank.IsNull(3) || names.Value(3) != "b-t006" {
		t.Errorf("arrow: a stopped trial has a rank or an objective")
	}
	if md := r.Schema().Metadata(); md.FindKey("thinkgen.objective") < 0 {
		t.Errorf("arrow schema metadata: %v", md)
	}

	s.Trials[1].Signal = []jsonFloat{0.1, jsonFloat(math.NaN()), 0.3}
	pngPath := filepath.Join(t.TempDir(), "objective.png")
	if err := s.WritePlot(pngPath); err != nil {
		t.Fatal(err)
	}
	img := testutil.ReadPNG(t, pngPath)
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 200 {
		t.Errorf("plot is %v", b)
	}
}

func TestStateResumesOnlyTheSameTrials(t *testing.T) {
	ctx := context.Background()
	st, err := storage.Open(ctx, config.Storage{URI: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s := parse(t, "space:\n  grpo.lr: [1e-4, 2e-4]\n")
	trials := s.Expand()
	state, resumed, err := LoadState(ctx, st, s, trials)
	if err != nil || resumed || len(state.Trials) != 2 || state.Trials[0].Status != StatusPending {
		t.Fatalf("new state: %v %v %+v", err, resumed, state)
	}
	state.Trials[0].Status, state.Trials[0].Objective = StatusDone, ptr(0.25)
	state.Trials[1].Signal = []jsonFloat{0.5, jsonFloat(math.NaN())}
	if err := state.Write(ctx, st); err != nil {
		t.Fatal(err)
	}
	again, resumed, err := LoadState(ctx, st, s, trials)
	if err != nil || !resumed {
		t.Fatalf("resume: %v %v", err, resumed)
	}
	if again.Trials[0].Status != StatusDone || *again.Trials[0].Objective != 0.25 {
		t.Errorf("trial 1 after the round trip: %+v", again.Trials[0])
	}
	if sig := again.Trials[1].signal(); len(sig) != 2 || sig[0] != 0.5 || !math.IsNaN(sig[1]) {
		t.Errorf("signal after the round trip: %v", sig)
	}
	other := parse(t, "space:\n  grpo.lr: [1e-4, 3e-4]\n")
	if _, _, err := LoadState(ctx, st, other, other.Expand()); !errors.Is(err, ErrOtherSpace) {
		t.Errorf("another space: %v", err)
	}
}

func TestObjectiveValue(t *testing.T) {
	scores := map[string][]reward.Summary{
		"think":  {{Scenario: "composition", Score: 0.5, Strict: 0.25}, {Scenario: "reasoning", Score: 0.7, Strict: 0.5}},
		"direct": {{Scenario: "composition", Score: 0.1, Strict: 0}},
	}
	tests := []struct {
		o    Objective
		want float64
		err  string
	}{
		{Objective{Metric: "think/reasoning", Score: "partial"}, 0.7, ""},
		{Objective{Metric: "think/reasoning", Score: "strict"}, 0.5, ""},
		{Objective{Metric: "think/mean", Score: "partial"}, 0.6, ""},
		{Objective{Metric: "direct/mean", Score: "strict"}, 0, ""},
		{Objective{Metric: "direct/text", Score: "partial"}, 0, "not evaluated"},
	}
	for _, tt := range tests {
		got, err := tt.o.Value(scores)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.o.Metric, err, tt.err)
			}
			continue
		}
		if err != nil || math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("%s %s = %v, %v; want %v", tt.o.Metric, tt.o.Score, got, err, tt.want)
		}
	}
}
