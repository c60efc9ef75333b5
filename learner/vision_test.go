package learner_test

import (
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/learner"
	"github.com/thinkgen/thinkgen/rollout"
)

// TestGRPOTrainsTheViT: with model.mllm.vision: qwen3vl, a GRPO step on
// prompts that carry a reference image (editing, reflection)
// back-propagates into every tensor of Qwen3-VL's vision tower (the patch
// embedding, the blocks, the merger and the DeepStack mergers), and a step
// on prompts without one (composition) leaves the tower without gradient.
func TestGRPOTrainsTheViT(t *testing.T) {
	c := ranksConfig()
	m := &c.Model.MLLM
	m.Vision, m.VisionPatch, m.MRopeSection = config.VisionQwen3VL, 4, []int{4, 2, 2}
	m.ViT = config.ViT{Depth: 2, Hidden: 32, Heads: 2, FFN: 64, TemporalPatch: 2, SpatialMerge: 2, PositionEmbeddings: 64, DeepStack: []int{0}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		scenarios []string
		wantGrad  bool
	}{
		{[]string{"editing", "reflection"}, true},
		{[]string{"composition"}, false},
	} {
		t.Run(strings.Join(tc.scenarios, "+"), func(t *testing.T) {
			rows, err := datasets.Generate(datasets.Options{Seed: 2, Split: datasets.Train, Scenarios: tc.scenarios}, 0, 4)
			if err != nil {
				t.Fatal(err)
			}
			vision := 0
			err = withLearner(c, nil, func(l *learner.Learner) error {
				req := rollout.Request{Run: "r", Step: 1, Task: "r0", Attempt: 1, Phase: config.PhaseMLLMGRPO, Rows: rows,
					GroupIDs: []int64{0, 1, 2, 3}, Seed: 11, Settings: rollout.SettingsFor(c, config.PhaseMLLMGRPO, 11)}
				rolls, _, err := rollout.MLLM(l.Policy(), req, gotch.CPU)
				if err != nil {
					return err
				}
				if _, err := l.Step(config.PhaseMLLMGRPO, 11, rolls, spreadRewards(rolls)); err != nil {
					return err
				}
				p := l.Policy().MLLM.P
				for i, s := range p.Specs() {
					if !strings.HasPrefix(s.Name, "model.visual.") {
						continue
					}
					vision++
					g := p.Tensors()[i].MustGrad(false)
					norm := 0.0
					if g.MustDefined() {
						norm = g.MustNorm(false).Float64Values(true)[0]
					}
					g.MustDrop()
					if got := norm > 0; got != tc.wantGrad {
						t.Errorf("%s: gradient norm %g after a step on %v prompts, want a gradient: %v", s.Name, norm, tc.scenarios, tc.wantGrad)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if vision == 0 {
				t.Fatal("the MLLM has no model.visual. tensors")
			}
		})
	}
}
