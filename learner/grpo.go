package learner

import (
	"fmt"

	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// GRPOConfig holds the hyper-parameters of the MLLM's GRPO loss (EasyR1's
// defaults in parentheses).
type GRPOConfig struct {
	EpsLow  float64 // lower clip: the ratio is clipped at 1 − EpsLow; in (0, 1) (0.2)
	EpsHigh float64 // upper clip: the ratio is clipped at 1 + EpsHigh; > 0 (0.3)
	Beta    float64 // weight of the k3 KL to the reference; 0 disables the term (1e-2)
	// ClipRatioC is the dual clip's c: for A < 0 the clipped term −r·A is
	// capped at −c·A; > 1, or 0 for no dual clip (verl's clip_ratio_c, 3).
	ClipRatioC float64
	// WeightCap truncates decoupled PPO's behaviour weight π_prox/π_old at
	// WeightCap (≥ 1); used only when GRPOInput.ProxLogProbs is given.
	WeightCap float64
}

func (c GRPOConfig) validate() error {
	switch {
	case !(c.EpsLow > 0 && c.EpsLow < 1):
		return fmt.Errorf("learner: GRPO eps_low must be in (0, 1), got %g", c.EpsLow)
	case !(c.EpsHigh > 0) || !finite(c.EpsHigh):
		return fmt.Errorf("learner: GRPO eps_high must be > 0, got %g", c.EpsHigh)
	case !(c.Beta >= 0) || !finite(c.Beta):
		return fmt.Errorf("learner: GRPO beta must be ≥ 0, got %g", c.Beta)
	case c.ClipRatioC != 0 && !(c.ClipRatioC > 1):
		return fmt.Errorf("learner: GRPO clip_ratio_c must be > 1 (or 0: no dual clip), got %g", c.ClipRatioC)
	case c.WeightCap != 0 && !(c.WeightCap >= 1):
		return fmt.Errorf("learner: GRPO behaviour_weight_cap must be ≥ 1, got %g", c.WeightCap)
	}
	return nil
}

// GRPOInput is one mini-batch of B completions padded to T tokens, laid out
// as model.MLLM.LogProbs returns them. The tensors stay the caller's.
type GRPOInput struct {
	LogProbs    *ts.Tensor // [B, T] log π_θ of each token; differentiable
	OldLogProbs *ts.Tensor // [B, T] log π_old (the sampling policy, the behaviour); detached here
	// ProxLogProbs, optional, is decoupled PPO's proximal policy (the
	// policy before this update): the ratio is taken against it and the
	// term weighted by min(π_prox/π_old, WeightCap). Detached here.
	ProxLogProbs *ts.Tensor // [B, T]
	RefLogProbs  *ts.Tensor // [B, T] log π_ref (frozen reference); detached here; may be nil when Beta is 0
	Mask         *ts.Tensor // [B, T] 1 for real tokens, 0 for padding
	Entropy      *ts.Tensor // [B, T] optional, only for GRPOStats.Entropy
	Advantages   []float64  // [B] one advantage per completion (GroupAdvantages)
}

// GRPOStats are the figures of one GRPO loss evaluation, computed without
// gradient. Every mean is a token-mean over the real tokens of the batch.
type GRPOStats struct {
	Loss      float64 // the returned loss
	PGLoss    float64 // mean policy-gradient term
	KL        float64 // mean k3 (0 without RefLogProbs)
	RatioMean float64 // mean ratio π_θ/π_old (the behaviour); exactly 1 on-policy
	// With ProxLogProbs: the mean ratio π_θ/π_prox, the mean behaviour
	// weight min(π_prox/π_old, WeightCap) and the share of tokens whose
	// weight was truncated. The clip fractions then count the ratio to π_prox.
	ProxRatioMean float64
	WeightMean    float64
	WeightCapped  float64
	ClipFracLow   float64 // share of tokens with A < 0 and r < 1 − EpsLow (the low clip is active)
	ClipFracHigh  float64 // share of tokens with A > 0 and r > 1 + EpsHigh (the high clip is active)
	DualClipFrac  float64 // share of tokens with A < 0 and r > ClipRatioC (the dual clip is active)
	Entropy       float64 // mean entropy (0 without Entropy)
	Tokens        float64 // real tokens: sum of the mask
}

// GRPOLoss returns the token-mean GRPO loss of the MLLM (docs/algorithms.md §3) and its
// statistics. Per token, with A the completion's advantage:
//
//	r   = exp(clamp(logp − old, −20, 20))
//	pg  = −min(r·A, clip(r, 1−EpsLow, 1+EpsHigh)·A)
//	pg  = min(pg, −c·A)      when A < 0 (the dual clip, c = ClipRatioC > 0)
//	d   = clamp(ref − logp, −20, 20)
//	k3  = clamp(exp(d) − d − 1, −10, 10)
//	ℓ   = pg + Beta·k3
//	loss = Σ_{mask} ℓ / Σ mask    ("token-mean" over the whole batch)
//
// The clamp of the log-ratio at ±20 is EasyR1's (verl's) guard against an
// overflowing exp; it changes nothing for ratios below e^20. The gradient
// reaches LogProbs only: OldLogProbs and RefLogProbs are detached. Padded
// positions are selected away (a where, not a product with the mask)
// before any arithmetic, so a NaN or infinity there reaches neither the
// loss nor the gradient.
//
// Decoupled PPO (ProxLogProbs given): r is taken against the proximal
// policy instead, r = exp(clamp(logp − prox, −20, 20)), and pg (clips
// included) is multiplied by w = min(exp(clamp(prox − old, −20, 20)),
// WeightCap), a constant.
//
// Call it inside libtorch.Run. The loss is the caller's to drop. It fails,
// before any work, on a bad config, on a missing tensor or a shape that
// does not match LogProbs (naming the tensor), and on a mask without real
// tokens; and, after the work, with an error wrapping ErrNonFinite that
// names the term when the loss is NaN or infinite (the stats are returned
// then too, and no loss).
func GRPOLoss(in GRPOInput, c GRPOConfig) (*ts.Tensor, GRPOStats, error) {
	var st GRPOStats
	if err := c.validate(); err != nil {
		return nil, st, err
	}
	if in.LogProbs == nil {
		return nil, st, fmt.Errorf("learner: GRPO LogProbs is missing")
	}
	shape := in.LogProbs.MustSize()
	if len(shape) != 2 || shape[0] == 0 || shape[1] == 0 {
		return nil, st, fmt.Errorf("learner: GRPO LogProbs has shape %v, want [B, T] with B, T > 0", shape)
	}
	checks := []struct {
		name string
		t    *ts.Tensor
		need bool
	}{
		{"OldLogProbs", in.OldLogProbs, true},
		{"RefLogProbs", in.RefLogProbs, c.Beta != 0},
		{"ProxLogProbs", in.ProxLogProbs, false},
		{"Mask", in.Mask, true},
		{"Entropy", in.Entropy, false},
	}
	for _, ch := range checks {
		if ch.t == nil && !ch.need {
			continue
		}
		if err := checkShape("GRPO "+ch.name, ch.t, shape); err != nil {
			if ch.t == nil {
				err = fmt.Errorf("%w (Beta = %g needs it)", err, c.Beta)
			}
			return nil, st, err
		}
	}
	if in.ProxLogProbs != nil && c.WeightCap == 0 {
		return nil, st, fmt.Errorf("learner: GRPO ProxLogProbs needs a behaviour_weight_cap ≥ 1")
	}
	if len(in.Advantages) != int(shape[0]) {
		return nil, st, fmt.Errorf("learner: GRPO Advantages has %d values for a batch of %d", len(in.Advantages), shape[0])
	}
	for i, a := range in.Advantages {
		if !finite(a) {
			return nil, st, fmt.Errorf("learner: GRPO Advantages[%d] is %g", i, a)
		}
	}

	var s libtorch.Scope
	defer s.Close()
	dt := in.LogProbs.DType()
	mask := s.Add(in.Mask.MustDetach(false).MustTotype(dt, true))
	var tokens float64
	libtorch.NoGrad(func() { tokens = mask.MustSum(dt, false).Float64Values(true)[0] })
	if !(tokens > 0) {
		return nil, st, fmt.Errorf("learner: GRPO Mask has no real tokens")
	}
	st.Tokens = tokens
	real := s.Add(mask.MustGt(ts.FloatScalar(0), false))
	// real selects the real tokens of t; padding reads 0.
	selectReal := func(t *ts.Tensor) *ts.Tensor { return s.Add(t.MustWhereScalarother(real, ts.FloatScalar(0), false)) }

	logp := selectReal(in.LogProbs)
	adv := s.Add(vectorLike(in.Advantages, []int64{shape[0], 1}, logp)) // [B, 1]
	old := selectReal(s.Add(in.OldLogProbs.MustDetach(false)))
	ratio := func(num, den *ts.Tensor) *ts.Tensor {
		return s.Add(num.MustSub(den, false).MustClamp(ts.FloatScalar(-20), ts.FloatScalar(20), true).MustExp(true))
	}
	r := ratio(logp, old)
	behaviour := r // π_θ/π_old, for RatioMean
	var w, capped *ts.Tensor
	if in.ProxLogProbs != nil {
		prox := selectReal(s.Add(in.ProxLogProbs.MustDetach(false)))
		r = ratio(logp, prox)
		raw := ratio(prox, old)
		w = s.Add(raw.MustClamp(ts.FloatScalar(0), ts.FloatScalar(c.WeightCap), false))
		capped = s.Add(raw.MustGt(ts.FloatScalar(c.WeightCap), false).MustTotype(dt, true))
	}
	pg, dual := clippedPolicyTerm(&s, r, adv, c.EpsLow, c.EpsHigh, c.ClipRatioC)
	if w != nil {
		pg = s.Add(pg.MustMul(w, false))
	}
	per := pg
	var k3 *ts.Tensor
	if in.RefLogProbs != nil {
		ref := selectReal(s.Add(in.RefLogProbs.MustDetach(false)))
		d := s.Add(ref.MustSub(logp, false).MustClamp(ts.FloatScalar(-20), ts.FloatScalar(20), true))
		k3 = s.Add(d.MustExp(false).MustSub(d, true).MustAddScalar(ts.FloatScalar(-1), true).
			MustClamp(ts.FloatScalar(-10), ts.FloatScalar(10), true))
		if c.Beta != 0 {
			per = s.Add(k3.MustMulScalar(ts.FloatScalar(c.Beta), false).MustAdd(pg, true))
		}
	}
	loss := selectReal(per).MustSum(dt, false).MustDivScalar(ts.FloatScalar(tokens), true)

	libtorch.NoGrad(func() {
		var s libtorch.Scope
		defer s.Close()
		sum := func(t *ts.Tensor) *ts.Tensor {
			return s.Add(t.MustWhereScalarother(real, ts.FloatScalar(0), false).MustSum(dt, true))
		}
		indicator := func(cond *ts.Tensor) *ts.Tensor { return s.Add(cond.MustTotype(dt, true)) }
		// Products of 0/1 indicators: A's [B, 1] broadcasts over r's [B, T].
		// (logical_and warns on this broadcast in libtorch 2.1.)
		low := s.Add(indicator(adv.MustLt(ts.FloatScalar(0), false)).MustMul(indicator(r.MustLt(ts.FloatScalar(1-c.EpsLow), false)), false))
		high := s.Add(indicator(adv.MustGt(ts.FloatScalar(0), false)).MustMul(indicator(r.MustGt(ts.FloatScalar(1+c.EpsHigh), false)), false))
		sums := []*ts.Tensor{loss.MustDetach(false), sum(pg), sum(behaviour), sum(low), sum(high), sum(dual)}
		s.Add(sums[0])
		if k3 != nil {
			sums = append(sums, sum(k3))
		}
		if in.Entropy != nil {
			sums = append(sums, sum(s.Add(in.Entropy.MustDetach(false).MustTotype(dt, true))))
		}
		if w != nil {
			sums = append(sums, sum(r), sum(w), sum(capped))
		}
		v := ts.MustStack(sums, 0).Float64Values(true)
		st.Loss = v[0]
		st.PGLoss, st.RatioMean = v[1]/tokens, v[2]/tokens
		st.ClipFracLow, st.ClipFracHigh, st.DualClipFrac = v[3]/tokens, v[4]/tokens, v[5]/tokens
		v = v[6:]
		if k3 != nil {
			st.KL, v = v[0]/tokens, v[1:]
		}
		if in.Entropy != nil {
			st.Entropy, v = v[0]/tokens, v[1:]
		}
		if w != nil {
			st.ProxRatioMean, st.WeightMean, st.WeightCapped = v[0]/tokens, v[1]/tokens, v[2]/tokens
		}
	})
	if t, bad := firstNonFinite(term{"policy-gradient term", st.PGLoss}, term{"k3 KL term", st.KL}, term{"loss", st.Loss}); bad {
		loss.MustDrop()
		return nil, st, fmt.Errorf("%w: GRPO %s is %g (ratio mean %g)", ErrNonFinite, t.name, t.v, st.RatioMean)
	}
	return loss, st, nil
}

// clippedPolicyTerm returns PPO's clipped policy term of ratio r and
// advantage adv (broadcast over r), max(−r·A, −clip(r, 1−epsLow,
// 1+epsHigh)·A), with the dual clip of c > 0 (0: none): for A < 0 the term
// is capped at −c·A, which removes the gradient of a token whose ratio has
// run above c. It also returns, without gradient, the 0/1 indicator (in r's
// dtype) of the tokens the dual clip caps: A < 0 and the term above −c·A.
// Both tensors are in s.
func clippedPolicyTerm(s *libtorch.Scope, r, adv *ts.Tensor, epsLow, epsHigh, c float64) (pg, dual *ts.Tensor) {
	rc := s.Add(r.MustClamp(ts.FloatScalar(1-epsLow), ts.FloatScalar(1+epsHigh), false))
	pg1 := s.Add(r.MustMul(adv, false).MustNeg(true))
	pg2 := s.Add(rc.MustMul(adv, false).MustNeg(true))
	pg = s.Add(pg1.MustMaximum(pg2, false))
	if c == 0 {
		libtorch.NoGrad(func() { dual = s.Add(pg.MustZerosLike(false)) })
		return pg, dual
	}
	capped := s.Add(adv.MustMulScalar(ts.FloatScalar(-c), false)) // −c·A
	neg := s.Add(adv.MustLt(ts.FloatScalar(0), false))
	libtorch.NoGrad(func() {
		above := s.Add(pg.MustGtTensor(capped, false).MustTotype(r.DType(), true))
		dual = s.Add(above.MustMul(s.Add(neg.MustTotype(r.DType(), false)), false))
	})
	dc := s.Add(pg.MustMinimum(capped, false))
	return s.Add(dc.MustWhereSelf(neg, pg, false)), dual
}
