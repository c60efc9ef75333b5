package learner_test

import (
	"math"
	"testing"

	"github.com/thinkgen/thinkgen/config"
)

// TestProximalPreviousOnPolicyIsPlainPPO: on rows the current policy
// sampled, the proximal policy (the version before the update) is the
// behaviour policy, so grpo.proximal: previous reports the first ratio to
// it as exactly 1 (the same forward pass), weighs every token by 1 and
// updates the parameters as plain PPO does — over two mini-batches, the
// second of which sees a policy one update past the proximal one. (The
// sampler's log-probs and the learner's agree to float32 rounding, not bit
// for bit, hence the tolerance.)
func TestProximalPreviousOnPolicyIsPlainPPO(t *testing.T) {
	in := ranksInput(t, config.PhaseMLLMGRPO)
	plainCfg := ranksConfig()
	plainCfg.GRPO.MiniBatches = 2
	decoupledCfg := ranksConfig()
	decoupledCfg.GRPO.MiniBatches = 2
	decoupledCfg.GRPO.Proximal = config.ProximalPrevious
	plain, err := stepLearnerWith(plainCfg, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := stepLearnerWith(decoupledCfg, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := dec.Metrics
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-6*max(1, math.Abs(b)) }
	if !near(m["loss/ratio_first"], 1) || m["loss/ratio_first_prox"] != 1 || !near(m["loss/behaviour_weight"], 1) || m["loss/behaviour_weight_capped"] != 0 {
		t.Errorf("ratio_first %v ratio_first_prox %v behaviour_weight %v capped %v; want 1, 1, 1, 0",
			m["loss/ratio_first"], m["loss/ratio_first_prox"], m["loss/behaviour_weight"], m["loss/behaviour_weight_capped"])
	}
	for k, v := range plain.Metrics {
		if !near(m[k], v) {
			t.Errorf("metric %s = %v, plain PPO %v", k, m[k], v)
		}
	}
	for i := range plain.Params {
		for j := range plain.Params[i] {
			if !near(dec.Params[i][j], plain.Params[i][j]) {
				t.Fatalf("parameter %d[%d] = %v, plain PPO %v", i, j, dec.Params[i][j], plain.Params[i][j])
			}
		}
	}
}
