package worker

import (
	"encoding/json"
	"maps"
	"math"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/shards"
)

// TestTrainRowsFollowThePhaseMix: each phase draws its prompts from its own
// scenario mix when it has one, else from data.mix.
func TestTrainRowsFollowThePhaseMix(t *testing.T) {
	idx := []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	count := func(c *config.Config, p config.Phase) map[string]int {
		t.Helper()
		rows, err := TrainRows(c, p, idx)
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
			got := count(c, tt.phase)
			if len(got) != len(tt.want) {
				t.Fatalf("scenarios %v, want %v", got, tt.want)
			}
			for sc, n := range tt.want {
				if got[sc] != n {
					t.Errorf("%s: %d rows, want %d (all: %v)", sc, got[sc], n, got)
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

func TestTrainingReward(t *testing.T) {
	rows, err := datasets.Generate(datasets.Options{Seed: 3, Split: datasets.Train}, 0, 3) // composition, reasoning, text
	if err != nil {
		t.Fatal(err)
	}
	roll := func(r datasets.Row, instruction string) *shards.RolloutRow {
		spec, err := json.Marshal(r.Spec)
		if err != nil {
			t.Fatal(err)
		}
		return &shards.RolloutRow{Scenario: r.Scenario, Spec: string(spec), Instruction: instruction}
	}
	img := reward.Result{Partial: 0.4, Score: 0.8, Weight: 2}
	tests := []struct {
		name      string
		lambda    float64
		phase     config.Phase
		row       *shards.RolloutRow
		res       reward.Result
		want      float64
		wantInstr bool
	}{
		{"image alone by default", 0, config.PhaseMLLMGRPO, roll(rows[1], rows[1].Answer), img, 0.8, false},
		{"right instruction", 0.5, config.PhaseMLLMGRPO, roll(rows[1], rows[1].Answer), img, 2 * (0.5*0.4 + 0.5*1), true},
		{"not a caption", 0.5, config.PhaseMLLMGRPO, roll(rows[0], "draw it."), img, 2 * (0.5 * 0.4), true},
		{"instruction only", 1, config.PhaseMLLMGRPO, roll(rows[0], rows[0].Answer), img, 2, true},
		{"the DiT's phase keeps the image reward", 0.5, config.PhaseDiTGRPO, roll(rows[1], rows[1].Answer), img, 0.8, false},
		{"text rows keep the image reward", 0.5, config.PhaseMLLMGRPO, roll(rows[2], rows[2].Answer), img, 0.8, false},
		{"a scoring error keeps its zero", 0.5, config.PhaseMLLMGRPO, roll(rows[1], rows[1].Answer), reward.Result{Err: "bad image"}, 0, false},
	}
	for _, tt := range tests {
		got, _, ok, err := trainingReward(tt.lambda, tt.phase, tt.row, tt.res)
		if err != nil || math.Abs(got-tt.want) > 1e-12 || ok != tt.wantInstr {
			t.Errorf("%s: trainingReward = %v (instruction scored %v), %v; want %v (%v)", tt.name, got, ok, err, tt.want, tt.wantInstr)
		}
	}
	bad := &shards.RolloutRow{Scenario: datasets.Reasoning, Spec: "{", Instruction: rows[1].Answer}
	if _, _, _, err := trainingReward(0.5, config.PhaseMLLMGRPO, bad, img); err == nil || !strings.Contains(err.Error(), "spec") {
		t.Errorf("a bad spec: error %v, want one naming the spec", err)
	}
}
