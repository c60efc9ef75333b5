package learner_test

import (
	"math"
	"testing"

	"github.com/thinkgen/thinkgen/config"
)

// TestActivationCheckpointingTakesTheSameStep: with
// optim.activation_checkpointing on for the trained model, a GRPO, a
// FlowGRPO (with guidance: two passes per timestep) and an AWM step leave
// the same gradients, weights and metrics as without, within 1e-6 (the
// recomputed layers repeat the same float32 operations; only the order in
// which shared gradients accumulate may differ).
func TestActivationCheckpointingTakesTheSameStep(t *testing.T) {
	cases := []struct {
		name  string
		phase config.Phase
		setup func(*config.Config)
	}{
		{"grpo", config.PhaseMLLMGRPO, func(c *config.Config) {}},
		{"flow_grpo with guidance", config.PhaseDiTGRPO, func(c *config.Config) { c.FlowGRPO.CFG = 2 }},
		{"awm", config.PhaseDiTGRPO, func(c *config.Config) { c.FlowGRPO.Objective = config.ObjectiveAWM }},
		{"grpo with lora", config.PhaseMLLMGRPO, func(c *config.Config) { c.LoRA.MLLM = config.Adapter{Rank: 4, Alpha: 8} }},
		{"flow_grpo with lora", config.PhaseDiTGRPO, func(c *config.Config) { c.LoRA.DiT = config.Adapter{Rank: 4, Alpha: 8} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := ranksInput(t, tc.phase)
			plain := ranksConfig()
			tc.setup(plain)
			want, err := stepLearnerWith(plain, in, nil)
			if err != nil {
				t.Fatal(err)
			}
			ck := ranksConfig()
			tc.setup(ck)
			ck.Optim.ActivationCheckpointing = config.ActivationCheckpointing{MLLM: true, DiT: true}
			got, err := stepLearnerWith(ck, in, nil)
			if err != nil {
				t.Fatal(err)
			}
			compareValues(t, "gradient", got.Grads, want.Grads, 1e-6)
			compareValues(t, "parameter", got.Params, want.Params, 1e-6)
			for k, w := range want.Metrics {
				if k == "learn/seconds" || k == "learn/rss_bytes" {
					continue
				}
				if g := got.Metrics[k]; math.Abs(g-w) > 1e-6*math.Max(1, math.Abs(w)) {
					t.Errorf("metric %s: %g with activation checkpointing, %g without", k, g, w)
				}
			}
		})
	}
}
