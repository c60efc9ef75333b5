package reward

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
)

func TestShape(t *testing.T) {
	rows, err := datasets.Generate(datasets.Options{Seed: 3, Split: datasets.Train}, 0, 3) // composition, reasoning, text
	if err != nil {
		t.Fatal(err)
	}
	item := func(r datasets.Row, instruction string) Item {
		spec, err := json.Marshal(r.Spec)
		if err != nil {
			t.Fatal(err)
		}
		return Item{Scenario: r.Scenario, Spec: spec, Text: instruction}
	}
	img := Result{Partial: 0.4, Score: 0.8, Weight: 2}
	tests := []struct {
		name      string
		lambda    float64
		phase     config.Phase
		item      Item
		res       Result
		want      float64
		wantInstr bool
	}{
		{"image alone by default", 0, config.PhaseMLLMGRPO, item(rows[1], rows[1].Answer), img, 0.8, false},
		{"right instruction", 0.5, config.PhaseMLLMGRPO, item(rows[1], rows[1].Answer), img, 2 * (0.5*0.4 + 0.5*1), true},
		{"not a caption", 0.5, config.PhaseMLLMGRPO, item(rows[0], "draw it."), img, 2 * (0.5 * 0.4), true},
		{"instruction only", 1, config.PhaseMLLMGRPO, item(rows[0], rows[0].Answer), img, 2, true},
		{"the DiT's phase keeps the image reward", 0.5, config.PhaseDiTGRPO, item(rows[1], rows[1].Answer), img, 0.8, false},
		{"text rows keep the image reward", 0.5, config.PhaseMLLMGRPO, item(rows[2], rows[2].Answer), img, 0.8, false},
		{"a scoring error keeps its zero", 0.5, config.PhaseMLLMGRPO, item(rows[1], rows[1].Answer), Result{Err: "bad image"}, 0, false},
	}
	for _, tt := range tests {
		got, _, ok, err := Shape(tt.lambda, tt.phase, tt.item, tt.res)
		if err != nil || math.Abs(got-tt.want) > 1e-12 || ok != tt.wantInstr {
			t.Errorf("%s: Shape = %v (instruction scored %v), %v; want %v (%v)", tt.name, got, ok, err, tt.want, tt.wantInstr)
		}
	}
	bad := Item{Scenario: datasets.Reasoning, Spec: []byte("{"), Text: rows[1].Answer}
	if _, _, _, err := Shape(0.5, config.PhaseMLLMGRPO, bad, img); err == nil || !strings.Contains(err.Error(), "spec") {
		t.Errorf("a bad spec: error %v, want one naming the spec", err)
	}
}
