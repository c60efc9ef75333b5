package worker

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/shards"
)

// TestTrainRowsFollowThePhaseMix: each phase draws its prompts from its own
// scenario mix when it has one, else from data.mix.
func TestTrainRowsFollowThePhaseMix(t *testing.T) {
	idx := []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	count := func(c *config.Config, set *datasets.TrainSet, p config.Phase) map[string]int {
		t.Helper()
		rows, err := TrainRows(c, set, p, idx)
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, r := range rows {
			n[r.Scenario]++
		}
		return n
	}
	tests := []struct {
		name  string
		grpo  map[string]float64
		flow  map[string]float64
		phase config.Phase
		want  map[string]int
	}{
		{"data mix", nil, nil, config.PhaseMLLMGRPO, map[string]int{"composition": 6, "text": 6}},
		{"grpo mix", map[string]float64{"reasoning": 3, "composition": 1}, nil, config.PhaseMLLMGRPO, map[string]int{"reasoning": 9, "composition": 3}},
		{"grpo mix leaves the DiT phase alone", map[string]float64{"reasoning": 1}, nil, config.PhaseDiTGRPO, map[string]int{"composition": 6, "text": 6}},
		{"flow mix", nil, map[string]float64{"text": 1}, config.PhaseDiTGRPO, map[string]int{"text": 12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			c.Data.Mix = map[string]float64{"composition": 1, "text": 1}
			c.GRPO.Mix, c.FlowGRPO.Mix = tt.grpo, tt.flow
			// Generated rows, and a dataset's (data.dataset) of every
			// scenario: the mix picks them alike.
			size := c.Model.DiT.ImageSize
			all, err := datasets.Generate(datasets.Options{Seed: 4, Size: size}, 0, 20)
			if err != nil {
				t.Fatal(err)
			}
			set, err := datasets.NewTrainSet(all, datasets.Info{SchemaVersion: datasets.SchemaVersion, ImageSize: size}, size, len(all))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []*datasets.TrainSet{nil, set} {
				got := count(c, s, tt.phase)
				if len(got) != len(tt.want) {
					t.Fatalf("dataset %v: scenarios %v, want %v", s != nil, got, tt.want)
				}
				for sc, n := range tt.want {
					if got[sc] != n {
						t.Errorf("dataset %v: %s: %d rows, want %d (all: %v)", s != nil, sc, got[sc], n, got)
					}
				}
			}
		})
	}
}

// TestInstructionScores: the MLLM's instructions for composition and
// reasoning rows are scored as captions against the row's spec, per
// scenario; other scenarios and unparseable specs are left out.
func TestInstructionScores(t *testing.T) {
	rows, err := datasets.Generate(datasets.Options{Seed: 3, Split: datasets.Train}, 0, 10) // two rows per scenario
	if err != nil {
		t.Fatal(err)
	}
	var rolls []shards.RolloutRow
	for i, r := range rows {
		spec, err := json.Marshal(r.Spec)
		if err != nil {
			t.Fatal(err)
		}
		instr := r.Answer
		if i%2 == 1 {
			instr = "not a caption"
		}
		rolls = append(rolls, shards.RolloutRow{Scenario: r.Scenario, Spec: string(spec), Instruction: instr})
	}
	rolls = append(rolls, shards.RolloutRow{Scenario: datasets.Reasoning, Spec: "{", Instruction: rows[0].Answer})
	got := instructionScores(rolls)
	// Per scenario, one row wrote its reference answer (1) and one wrote no caption (0).
	want := map[string]float64{datasets.Composition: 0.5, datasets.Reasoning: 0.5}
	if !maps.Equal(got, want) {
		t.Fatalf("instructionScores = %v, want %v", got, want)
	}
}

// TestStalenessStats: the learn task's histogram of how many versions old
// its rows are, and its refusal of a row more than run.max_staleness
// versions old (or from a version after the one it updates).
func TestStalenessStats(t *testing.T) {
	rows := func(versions ...int64) []shards.RolloutRow {
		var out []shards.RolloutRow
		for i, v := range versions {
			out = append(out, shards.RolloutRow{RowID: fmt.Sprintf("row%d", i), PolicyVersion: v})
		}
		return out
	}
	tests := []struct {
		name    string
		rolls   []shards.RolloutRow
		version int
		k       int
		want    map[string]float64
		err     string
	}{
		{"synchronous", rows(4, 4), 4, 0, map[string]float64{"staleness/mean": 0, "staleness/max": 0, "staleness/rows_0": 1}, ""},
		{"one and two behind", rows(3, 2, 3, 4), 4, 2,
			map[string]float64{"staleness/mean": 1, "staleness/max": 2, "staleness/rows_0": 0.25, "staleness/rows_1": 0.5, "staleness/rows_2": 0.25}, ""},
		{"beyond k", rows(4, 2), 4, 1, nil, "row row1 was sampled by policy version 2: 2 versions"},
		{"a later version", rows(5), 4, 1, nil, "row row0 was sampled by policy version 5: -1 versions"},
	}
	for _, tc := range tests {
		got, err := stalenessStats(tc.rolls, tc.version, tc.k)
		refused := err != nil && tc.err != "" && strings.Contains(err.Error(), tc.err)
		accepted := err == nil && tc.err == "" && maps.Equal(got, tc.want)
		if !refused && !accepted {
			t.Errorf("%s: stalenessStats = %v, %v; want %v or an error containing %q", tc.name, got, err, tc.want, tc.err)
		}
	}
}
