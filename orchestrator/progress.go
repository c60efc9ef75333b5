package orchestrator

import (
	"fmt"
	"math"
	"strings"

	"github.com/thinkgen/thinkgen/config"
)

// StepLine is the one-line progress report of a step.
func StepLine(r StepReport, total int) string {
	m := r.Metrics
	get := func(k string) float64 {
		v, ok := m[k]
		if !ok {
			return math.NaN()
		}
		return v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "step %d/%d %s | reward %.3f±%.3f zero-std %.2f | kl %.4f clip %.3f/%.3f ratio₀ %.4f | grad %.3f",
		r.Plan.Step, total, r.Plan.Phase, get("reward/mean"), get("reward/std"), get("adv/zero_std_ratio"),
		get("loss/kl"), get("loss/clip_low"), get("loss/clip_high"), get("loss/ratio_first"), get("learn/grad_norm"))
	if r.Plan.Phase == config.PhaseMLLMGRPO {
		fmt.Fprintf(&b, " | cot %.1f tok ent %.3f instr/reasoning %.3f | %.0f tok/s", get("rollout/cot_tokens"), get("loss/entropy"), get("rollout/instruction/reasoning"), get("rollout/tokens_per_s"))
	} else {
		fmt.Fprintf(&b, " | %.2f img/s", get("rollout/images_per_s"))
	}
	fmt.Fprintf(&b, " | rollout %.1fs reward %.1fs learn %.1fs storage %.2fs",
		get("time/rollout_s"), get("time/reward_s"), get("time/learn_s"), get("time/storage_s"))
	return b.String()
}
