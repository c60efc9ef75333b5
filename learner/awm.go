package learner

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/rollout"
	"github.com/thinkgen/thinkgen/shards"
)

// AWMInput is one draw of advantage-weighted flow matching for B samples:
// the DiT's velocity at x_t = t·x1 + (1 − t)·x0 for each sample's final
// image x1, fresh noise x0 and time t. The tensors stay the caller's.
type AWMInput struct {
	Velocity    *ts.Tensor // [B, C, H, W] v_θ(x_t, t); differentiable
	Target      *ts.Tensor // [B, C, H, W] x1 − x0; detached here
	RefVelocity *ts.Tensor // [B, C, H, W] the reference's v at the same x_t; detached here; needed when Beta > 0
	Advantages  []float64  // [B] one advantage per sample (GroupAdvantages)
}

// AWMLoss returns the advantage-weighted flow-matching loss of one draw
// (flow_grpo.objective "awm") and its statistics:
//
//	A      = clamp(advantage, −AdvClamp, AdvClamp)
//	e_b    = mean over latent dims of (v_θ − (x1 − x0))²
//	policy = mean_b A_b·e_b
//	KL     = mean_b mean over latent dims of (v_θ − v_ref)²
//	loss   = policy + Beta·KL
//
// Lowering it pulls the velocity field towards the samples that beat their
// group and away from those that did not — the pre-training loss with the
// advantage as weight. ClipRange is unused (there is no ratio); the stats'
// ratio, clip and approximate-KL figures stay 0. It fails like
// FlowGRPOLoss on a bad config, a missing tensor, a shape that does not
// match (naming it) and with ErrNonFinite naming the term.
func AWMLoss(in AWMInput, c FlowConfig) (*ts.Tensor, FlowStats, error) {
	var st FlowStats
	if err := c.validate(); err != nil {
		return nil, st, err
	}
	if in.Velocity == nil {
		return nil, st, fmt.Errorf("learner: AWM Velocity is missing")
	}
	shape := in.Velocity.MustSize()
	if len(shape) < 2 || shape[0] == 0 {
		return nil, st, fmt.Errorf("learner: AWM Velocity has shape %v, want [B, ...] with B > 0", shape)
	}
	b := shape[0]
	if err := checkShape("AWM Target", in.Target, shape); err != nil {
		return nil, st, err
	}
	if c.Beta > 0 {
		if err := checkShape("AWM RefVelocity", in.RefVelocity, shape); err != nil {
			return nil, st, fmt.Errorf("%w (Beta = %g)", err, c.Beta)
		}
	}
	if len(in.Advantages) != int(b) {
		return nil, st, fmt.Errorf("learner: AWM Advantages has %d values for a batch of %d", len(in.Advantages), b)
	}
	adv, frac, err := clampAdvantages("AWM", in.Advantages, c.AdvClamp)
	if err != nil {
		return nil, st, err
	}
	st.AdvClampedFrac = frac

	var s libtorch.Scope
	defer s.Close()
	v := in.Velocity
	dt := v.DType()
	dims := make([]int64, 0, len(shape)-1)
	for i := 1; i < len(shape); i++ {
		dims = append(dims, int64(i))
	}
	at := s.Add(vectorLike(adv, []int64{b}, v))
	target := s.Add(in.Target.MustDetach(false))
	errs := s.Add(v.MustSub(target, false).MustSquare(true).MustMeanDim(dims, false, dt, true))
	policy := s.Add(errs.MustMul(at, false).MustMean(dt, true))
	loss := policy
	var kl *ts.Tensor
	if c.Beta > 0 {
		ref := s.Add(in.RefVelocity.MustDetach(false))
		kl = s.Add(v.MustSub(ref, false).MustSquare(true).MustMean(dt, true))
		loss = s.Add(kl.MustMulScalar(ts.FloatScalar(c.Beta), false).MustAdd(policy, true))
	}
	loss = loss.MustShallowClone()
	libtorch.NoGrad(func() {
		vals := []*ts.Tensor{s.Add(loss.MustDetach(false)), s.Add(policy.MustDetach(false))}
		if kl != nil {
			vals = append(vals, s.Add(kl.MustDetach(false)))
		}
		out := ts.MustStack(vals, 0).Float64Values(true)
		st.Loss, st.PolicyLoss = out[0], out[1]
		if kl != nil {
			st.KL = out[2]
		}
	})
	if t, bad := firstNonFinite(term{"policy term", st.PolicyLoss}, term{"KL term", st.KL}, term{"loss", st.Loss}); bad {
		loss.MustDrop()
		return nil, st, fmt.Errorf("%w: AWM %s is %g", ErrNonFinite, t.name, t.v)
	}
	return loss, st, nil
}

// awmNoise returns the noise (C·H·W values) and time of draw d of one
// sample: a pure function of the step's seed and the sample, so that a
// re-run learn task draws the same.
func awmNoise(seed uint64, group int64, sample int32, d, n int) ([]float32, float64) {
	r := rand.New(rand.NewPCG(seed^0x61776d, uint64(group)<<24^uint64(sample)<<8^uint64(d)))
	noise := make([]float32, n)
	for i := range noise {
		noise[i] = float32(r.NormFloat64())
	}
	return noise, 1 / (1 + math.Exp(-r.NormFloat64())) // logit-normal, as pre-training
}

// awmPart runs backward on weight × the mean AWM loss over draws draws of
// samples that share a sequence layout; states are their (frozen)
// instruction states and refCond the reference connector's condition.
func (l *Learner) awmPart(seed uint64, rows []*shards.RolloutRow, adv []float64, states []*ts.Tensor,
	refCond *model.Condition, refs *ts.Tensor, draws int, cfg FlowConfig, weight float64) (FlowStats, error) {
	steps := l.cfg.FlowGRPO.Steps
	var acc FlowStats
	for d := range draws {
		st, err := l.awmDraw(seed, rows, adv, states, refCond, refs, steps, d, cfg, weight/float64(draws))
		if err != nil {
			return acc, err
		}
		acc.addScaled(st, 1/float64(draws))
	}
	return acc, nil
}

func (l *Learner) awmDraw(seed uint64, rows []*shards.RolloutRow, adv []float64, states []*ts.Tensor,
	refCond *model.Condition, refs *ts.Tensor, steps, d int, cfg FlowConfig, scale float64) (FlowStats, error) {
	var sc libtorch.Scope
	defer sc.Close()
	x1, err := rollout.LatentsTensor(rows, steps, l.dev)
	if err != nil {
		return FlowStats{}, err
	}
	sc.Add(x1)
	size := x1.MustSize()
	per := int(size[1] * size[2] * size[3])
	noise := make([]float32, 0, len(rows)*per)
	times := make([]float64, len(rows))
	tcol := make([]float32, len(rows))
	for i, r := range rows {
		n, t := awmNoise(seed, r.GroupID, r.SampleIndex, d, per)
		noise = append(noise, n...)
		times[i], tcol[i] = t, float32(t)
	}
	x0 := sc.Add(l.onDevice(ts.MustOfSlice(noise).MustView(size, true)))
	tt := sc.Add(l.onDevice(ts.MustOfSlice(tcol).MustView([]int64{size[0], 1, 1, 1}, true)))
	target := sc.Add(x1.MustSub(x0, false))
	xt := sc.Add(x0.MustAdd(sc.Add(target.MustMul(tt, false)), false))

	// The policy's connector runs per draw: each backward frees its graph.
	cond, err := l.policy.Connector.Forward(states)
	if err != nil {
		return FlowStats{}, err
	}
	defer cond.Drop()
	dit, rec := l.trainedDiT()
	defer rec.Drop()
	v, err := dit.Forward(model.DiTInput{X: xt, T: times, Text: cond, Refs: refs})
	if err != nil {
		return FlowStats{}, err
	}
	sc.Add(v)
	in := AWMInput{Velocity: v, Target: target, Advantages: adv}
	if cfg.Beta > 0 {
		libtorch.NoGrad(func() {
			in.RefVelocity, err = l.ref.DiT.Forward(model.DiTInput{X: xt, T: times, Text: refCond, Refs: refs})
		})
		if err != nil {
			return FlowStats{}, err
		}
		sc.Add(in.RefVelocity)
	}
	loss, st, err := AWMLoss(in, cfg)
	if err != nil {
		return st, fmt.Errorf("%w: AWM draw %d: %w", ErrFatal, d, err)
	}
	defer loss.MustDrop()
	l.backward(loss, scale, rec)
	return st, nil
}
