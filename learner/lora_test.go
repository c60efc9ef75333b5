package learner_test

import (
	"slices"
	"testing"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/learner"
	"github.com/thinkgen/thinkgen/model"
)

// TestLoRATrainsOnlyAdapters: with lora ranks, a GRPO and a FlowGRPO step
// change the trained model's adapters and nothing of its weights (nor the
// connector's), the reference is the policy's own weights without the
// adapters (no second copy), and the optimiser holds state for the
// adapters alone — a fraction of full fine-tuning's, measured.
func TestLoRATrainsOnlyAdapters(t *testing.T) {
	for _, phase := range []config.Phase{config.PhaseMLLMGRPO, config.PhaseDiTGRPO} {
		t.Run(string(phase), func(t *testing.T) {
			in := ranksInput(t, phase)
			var full int64
			err := withLearner(ranksConfig(), nil, func(l *learner.Learner) error {
				if _, err := l.Step(in.Phase, in.Seed, in.Rolls, in.Rews); err != nil {
					return err
				}
				full = l.OptimizerBytes()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			c := ranksConfig()
			c.LoRA = config.LoRA{MLLM: config.Adapter{Rank: 4, Alpha: 8}, DiT: config.Adapter{Rank: 4, Alpha: 8}}
			err = withLearner(c, nil, func(l *learner.Learner) error {
				p := l.Policy()
				if l.Ref().MLLM.P != p.MLLM.P || l.Ref().DiT.P != p.DiT.P || l.Ref().Connector != p.Connector {
					t.Error("the reference holds a copy of the weights instead of the policy's")
				}
				if l.Ref().MLLM.Adapters != nil || l.Ref().DiT.Adapters != nil {
					t.Error("the reference runs with the adapters")
				}
				snap := func(ps ...*model.Params) [][]float64 {
					var out [][]float64
					for _, q := range ps {
						for _, x := range q.Tensors() {
							out = append(out, x.Float64Values(false))
						}
					}
					return out
				}
				weights := snap(p.MLLM.P, p.Connector.P, p.DiT.P)
				trained := p.MLLM.Adapters
				if phase == config.PhaseDiTGRPO {
					trained = p.DiT.Adapters
				}
				before := snap(trained.P)
				if _, err := l.Step(in.Phase, in.Seed, in.Rolls, in.Rews); err != nil {
					return err
				}
				for i, w := range snap(p.MLLM.P, p.Connector.P, p.DiT.P) {
					if !slices.Equal(w, weights[i]) {
						t.Fatalf("weight tensor %d changed under LoRA", i)
					}
				}
				changed := 0
				for i, a := range snap(trained.P) {
					if !slices.Equal(a, before[i]) {
						changed++
					}
				}
				if changed == 0 {
					t.Error("no adapter changed")
				}
				bytes := l.OptimizerBytes()
				t.Logf("optimiser state: %d bytes with rank-4 adapters, %d with full fine-tuning (%.1f%%); %d of %d adapter tensors changed",
					bytes, full, 100*float64(bytes)/float64(full), changed, len(before))
				if bytes*5 > full {
					t.Errorf("LoRA's optimiser holds %d bytes, full fine-tuning %d: want less than a fifth", bytes, full)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
