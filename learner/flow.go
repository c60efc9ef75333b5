package learner

import (
	"fmt"

	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// FlowConfig holds the hyper-parameters of the DiT's FlowGRPO loss
// (flow_grpo's defaults in parentheses).
type FlowConfig struct {
	ClipRange float64 // ε: the ratio is clipped to [1−ε, 1+ε]; in (0, 1) (1e-4)
	AdvClamp  float64 // advantages are clamped to ±AdvClamp; 0 means no clamp (5)
	Beta      float64 // weight of the KL on the means; 0 disables the term (0.04)
	// ClipRatioC is the dual clip's c, as GRPOConfig's: for A < 0 the
	// policy term is capped at −c·A; > 1, or 0 for no dual clip.
	ClipRatioC float64
}

func (c FlowConfig) validate() error {
	switch {
	case !(c.ClipRange > 0 && c.ClipRange < 1):
		return fmt.Errorf("learner: FlowGRPO clip_range must be in (0, 1), got %g", c.ClipRange)
	case !(c.AdvClamp >= 0) || !finite(c.AdvClamp):
		return fmt.Errorf("learner: FlowGRPO adv_clamp must be ≥ 0, got %g", c.AdvClamp)
	case !(c.Beta >= 0) || !finite(c.Beta):
		return fmt.Errorf("learner: FlowGRPO beta must be ≥ 0, got %g", c.Beta)
	case c.ClipRatioC != 0 && !(c.ClipRatioC > 1):
		return fmt.Errorf("learner: FlowGRPO clip_ratio_c must be > 1 (or 0: no dual clip), got %g", c.ClipRatioC)
	}
	return nil
}

// FlowInput is one SDE step of B trajectories, as model.StepSDE returns it
// when it re-evaluates the sampled x' under the current and the reference
// DiT. The tensors stay the caller's.
type FlowInput struct {
	LogProb    *ts.Tensor // [B] log p_θ(x' | x) of the step (SDEStep.LogProb); differentiable
	OldLogProb *ts.Tensor // [B] the same under the sampling policy; detached here
	Mean       *ts.Tensor // [B, C, H, W] μ_θ of the step (SDEStep.Mean); differentiable; needed when Beta > 0
	RefMean    *ts.Tensor // [B, C, H, W] μ_ref under the frozen reference; detached here; needed when Beta > 0
	// SigmaT is the step's noise scale σ_t = a·sqrt(σ/(1−σ)) — flow_grpo's
	// std_dev_t — which is SDEStep.Std / sqrt(−dt), not SDEStep.Std itself.
	SigmaT     float64
	Advantages []float64 // [B] one advantage per trajectory (GroupAdvantages)
}

// FlowStats are the figures of one FlowGRPO loss evaluation, computed
// without gradient; means are over the B samples.
type FlowStats struct {
	Loss           float64 // the returned loss
	PolicyLoss     float64 // clipped policy term
	KL             float64 // mean((μ_θ − μ_ref)²)/(2σ_t²), before Beta (0 without RefMean)
	RatioMean      float64 // mean ratio; exactly 1 on-policy
	ClipFrac       float64 // share of samples with |r − 1| > ClipRange (flow_grpo's clipfrac)
	DualClipFrac   float64 // share of samples with A < 0 and r > ClipRatioC (the dual clip is active)
	ApproxKL       float64 // 0.5·mean((logp − old)²) (flow_grpo's approx_kl)
	AdvClampedFrac float64 // share of advantages beyond ±AdvClamp
}

// FlowGRPOLoss returns the FlowGRPO loss of one SDE step (docs/algorithms.md §6) and its
// statistics, as flow_grpo's train_sd3.py computes it for timestep j:
//
//	A      = clamp(advantage, −AdvClamp, AdvClamp)
//	r      = exp(logp − old)
//	policy = mean_b max(−A·r, −A·clip(r, 1−ε, 1+ε))   (for A < 0 at most −c·A, c = ClipRatioC > 0)
//	KL     = mean_b [mean over latent dims of (μ_θ − μ_ref)²] / (2·σ_t²)
//	loss   = policy + Beta·KL
//
// σ_t is flow_grpo's std_dev_t, the noise scale a·sqrt(σ/(1−σ)) without the
// sqrt(−dt) factor of the step's actual std: flow_grpo divides by 2·σ_t²,
// so this KL is the Gaussian KL of the step scaled by −dt (dt = σ_next − σ),
// and so is Beta. flow_grpo trains several timesteps of each trajectory and
// steps the optimiser per timestep under gradient accumulation; the caller
// calls this once per trained timestep and averages.
//
// The KL is computed (for the stats) whenever RefMean is given, and added
// when Beta > 0. Call it inside libtorch.Run. The loss is the caller's to
// drop. It fails like GRPOLoss: on a bad config, a missing tensor or a
// shape that does not match (naming it), a non-positive SigmaT when the KL
// is needed, and with ErrNonFinite naming the term.
func FlowGRPOLoss(in FlowInput, c FlowConfig) (*ts.Tensor, FlowStats, error) {
	var st FlowStats
	if err := c.validate(); err != nil {
		return nil, st, err
	}
	if in.LogProb == nil {
		return nil, st, fmt.Errorf("learner: FlowGRPO LogProb is missing")
	}
	shape := in.LogProb.MustSize()
	if len(shape) != 1 || shape[0] == 0 {
		return nil, st, fmt.Errorf("learner: FlowGRPO LogProb has shape %v, want [B] with B > 0", shape)
	}
	b := shape[0]
	if err := checkShape("FlowGRPO OldLogProb", in.OldLogProb, shape); err != nil {
		return nil, st, err
	}
	if len(in.Advantages) != int(b) {
		return nil, st, fmt.Errorf("learner: FlowGRPO Advantages has %d values for a batch of %d", len(in.Advantages), b)
	}
	withKL := in.RefMean != nil || c.Beta > 0
	if withKL {
		if in.Mean == nil {
			return nil, st, fmt.Errorf("learner: FlowGRPO Mean is missing (Beta = %g, RefMean given: %t)", c.Beta, in.RefMean != nil)
		}
		ms := in.Mean.MustSize()
		if len(ms) < 2 || ms[0] != b {
			return nil, st, fmt.Errorf("learner: FlowGRPO Mean has shape %v, want [%d, ...]", ms, b)
		}
		if err := checkShape("FlowGRPO RefMean", in.RefMean, ms); err != nil {
			return nil, st, fmt.Errorf("%w (Beta = %g)", err, c.Beta)
		}
		if !(in.SigmaT > 0) || !finite(in.SigmaT) {
			return nil, st, fmt.Errorf("learner: FlowGRPO SigmaT must be > 0 for the KL, got %g", in.SigmaT)
		}
	}
	adv, frac, err := clampAdvantages("FlowGRPO", in.Advantages, c.AdvClamp)
	if err != nil {
		return nil, st, err
	}
	st.AdvClampedFrac = frac

	var s libtorch.Scope
	defer s.Close()
	logp := in.LogProb
	dt := logp.DType()
	at := s.Add(vectorLike(adv, shape, logp))
	old := s.Add(in.OldLogProb.MustDetach(false))
	logRatio := s.Add(logp.MustSub(old, false))
	r := s.Add(logRatio.MustExp(false))
	pg, dual := clippedPolicyTerm(&s, r, at, c.ClipRange, c.ClipRange, c.ClipRatioC)
	policy := s.Add(pg.MustMean(dt, false))
	loss := policy
	var kl *ts.Tensor
	if withKL {
		ref := s.Add(in.RefMean.MustDetach(false))
		ms := in.Mean.MustSize()
		dims := make([]int64, 0, len(ms)-1)
		for i := 1; i < len(ms); i++ {
			dims = append(dims, int64(i))
		}
		kl = s.Add(in.Mean.MustSub(ref, false).MustSquare(true).MustMeanDim(dims, false, dt, true).
			MustDivScalar(ts.FloatScalar(2*in.SigmaT*in.SigmaT), true).MustMean(dt, true))
		if c.Beta > 0 {
			loss = s.Add(kl.MustMulScalar(ts.FloatScalar(c.Beta), false).MustAdd(policy, true))
		}
	}
	loss = loss.MustShallowClone() // the caller's handle; the scope drops the others

	libtorch.NoGrad(func() {
		var s libtorch.Scope
		defer s.Close()
		outside := s.Add(r.MustSubScalar(ts.FloatScalar(1), false).MustAbs(true).
			MustGt(ts.FloatScalar(c.ClipRange), true).MustTotype(dt, true))
		vals := []*ts.Tensor{
			s.Add(loss.MustDetach(false)),
			s.Add(policy.MustDetach(false)),
			s.Add(r.MustMean(dt, false)),
			s.Add(outside.MustMean(dt, false)),
			s.Add(logRatio.MustSquare(false).MustMean(dt, true)),
			s.Add(dual.MustMean(dt, false)),
		}
		if kl != nil {
			vals = append(vals, s.Add(kl.MustDetach(false)))
		}
		v := ts.MustStack(vals, 0).Float64Values(true)
		st.Loss, st.PolicyLoss, st.RatioMean, st.ClipFrac, st.ApproxKL = v[0], v[1], v[2], v[3], 0.5*v[4]
		st.DualClipFrac = v[5]
		if kl != nil {
			st.KL = v[6]
		}
	})
	if t, bad := firstNonFinite(term{"policy term", st.PolicyLoss}, term{"KL term", st.KL}, term{"loss", st.Loss}); bad {
		loss.MustDrop()
		return nil, st, fmt.Errorf("%w: FlowGRPO %s is %g (ratio mean %g)", ErrNonFinite, t.name, t.v, st.RatioMean)
	}
	return loss, st, nil
}
