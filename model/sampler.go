package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// TimeGrid returns steps+1 times from 0 (noise) to 1 (data). With shift,
// OmniGen2's resolution-dependent shift t' = t / (m − m·t + t) is applied,
// m = TimeShift(latentH, latentW).
func TimeGrid(steps int, shift bool, latentH, latentW int) []float64 {
	ts := make([]float64, steps+1)
	m := TimeShift(latentH, latentW)
	for i := range ts {
		t := float64(i) / float64(steps)
		if shift {
			t = t / (m - m*t + t)
		}
		ts[i] = t
	}
	return ts
}

// TimeShift is OmniGen2's resolution-dependent shift factor
// m = sqrt(latentH·latentW) / 40. In diffusers' σ = 1 − t it is the static
// shift of FlowMatchEulerDiscreteScheduler: σ' = m·σ / (1 + (m − 1)·σ).
func TimeShift(latentH, latentW int) float64 {
	return math.Sqrt(float64(latentH*latentW)) / 40
}

// Guidance holds classifier-free guidance inputs and scales.
type Guidance struct {
	// Uncond is the unconditional text condition (the connector's output for
	// an empty instruction); nil disables guidance.
	Uncond *Condition
	// TextScale and ImageScale: v = v_u + s_img (v_ref − v_u) + s_txt (v_c − v_ref)
	// with references, v = v_u + s_txt (v_c − v_u) without (OmniGen2).
	TextScale, ImageScale float64
}

// Velocity returns the guided velocity at x for time t (all samples share t).
func (d *DiT) Velocity(x *ts.Tensor, t float64, cond *Condition, refs *ts.Tensor, g Guidance) (*ts.Tensor, error) {
	b := int(x.MustSize()[0])
	times := make([]float64, b)
	for i := range times {
		times[i] = t
	}
	vc, err := d.Forward(DiTInput{X: x, T: times, Text: cond, Refs: refs})
	if err != nil || g.Uncond == nil || (g.TextScale == 1 && (refs == nil || g.ImageScale == 1)) {
		return vc, err
	}
	var s libtorch.Scope
	defer s.Close()
	s.Add(vc)
	vu, err := d.Forward(DiTInput{X: x, T: times, Text: g.Uncond})
	if err != nil {
		return nil, err
	}
	s.Add(vu)
	if refs == nil {
		diff := s.Add(vc.MustSub(vu, false).MustMulScalar(ts.FloatScalar(g.TextScale), true))
		return vu.MustAdd(diff, false), nil
	}
	vr, err := d.Forward(DiTInput{X: x, T: times, Text: g.Uncond, Refs: refs})
	if err != nil {
		return nil, err
	}
	s.Add(vr)
	img := s.Add(vr.MustSub(vu, false).MustMulScalar(ts.FloatScalar(g.ImageScale), true))
	txt := s.Add(vc.MustSub(vr, false).MustMulScalar(ts.FloatScalar(g.TextScale), true))
	return s.Add(vu.MustAdd(img, false)).MustAdd(txt, false), nil
}

// SampleODE integrates the flow from noise (t=0) to data (t=1) with Euler
// steps on the given time grid; the result is owned by the caller.
func (d *DiT) SampleODE(noise *ts.Tensor, grid []float64, cond *Condition, refs *ts.Tensor, g Guidance) (*ts.Tensor, error) {
	if len(grid) < 2 {
		return nil, fmt.Errorf("model: ODE sampling needs at least one step")
	}
	var out *ts.Tensor
	var err error
	libtorch.NoGrad(func() {
		x := noise.MustShallowClone()
		for i := 0; i+1 < len(grid); i++ {
			var v *ts.Tensor
			v, err = d.Velocity(x, grid[i], cond, refs, g)
			if err != nil {
				x.MustDrop()
				return
			}
			step := v.MustMulScalar(ts.FloatScalar(grid[i+1]-grid[i]), true)
			nx := x.MustAdd(step, true)
			step.MustDrop()
			x = nx
		}
		out = x
	})
	return out, err
}

// SDEStep is one FlowGRPO SDE step in flow_grpo's convention (σ from 1,
// noise, to 0, data; σ = 1 − t and the velocity v = noise − x_data, the
// negative of the DiT's). With dt = σNext − σ < 0 and noise level a:
//
//	σ_t = a·sqrt(σ / (1 − σ))   (σMax, the grid's second σ, replaces σ in the denominator at σ = 1)
//	μ   = x·(1 + σ_t²·dt/(2σ)) + v·(1 + σ_t²·(1−σ)/(2σ))·dt
//	std = σ_t·sqrt(−dt)
//	x'  = μ + std·ξ
//	log p(x') = mean over latent dims of −(x'−μ)²/(2 std²) − log std − log sqrt(2π)
//
// When next is nil, x' is drawn with the given noise ξ; otherwise next is
// the x' whose log-probability is evaluated (the learner's re-evaluation).
// With a = 0 the step is the deterministic Euler step and LogProb is nil.
type SDEStep struct {
	Next, Mean *ts.Tensor // [B, C, H, W]
	Std        float64
	LogProb    *ts.Tensor // [B]
}

// Drop frees the step's tensors.
func (r *SDEStep) Drop() {
	for _, t := range []*ts.Tensor{r.Next, r.Mean, r.LogProb} {
		if t != nil {
			t.MustDrop()
		}
	}
}

// StepSDE computes one SDE step from x with flow_grpo velocity v.
func StepSDE(x, v *ts.Tensor, sigma, sigmaNext, sigmaMax, a float64, noise, next *ts.Tensor) (*SDEStep, error) {
	dt := sigmaNext - sigma
	if dt >= 0 || sigma <= 0 || sigma > 1 {
		return nil, fmt.Errorf("model: SDE step from σ=%g to σ=%g: want 0 < σ ≤ 1 and σNext < σ", sigma, sigmaNext)
	}
	den := sigma
	if sigma >= 1 {
		den = sigmaMax
	}
	sigmaT := a * math.Sqrt(sigma/(1-den))
	var s libtorch.Scope
	defer s.Close()
	cx := 1 + sigmaT*sigmaT*dt/(2*sigma)
	cv := (1 + sigmaT*sigmaT*(1-sigma)/(2*sigma)) * dt
	mean := s.Add(x.MustMulScalar(ts.FloatScalar(cx), false)).MustAdd(s.Add(v.MustMulScalar(ts.FloatScalar(cv), false)), false)
	std := sigmaT * math.Sqrt(-dt)
	r := &SDEStep{Mean: mean, Std: std}
	if std == 0 {
		r.Next = mean.MustShallowClone()
		return r, nil
	}
	if next == nil {
		if noise == nil {
			r.Drop()
			return nil, fmt.Errorf("model: SDE step needs noise to sample")
		}
		r.Next = mean.MustAdd(s.Add(noise.MustMulScalar(ts.FloatScalar(std), false)), false)
	} else {
		r.Next = next.MustShallowClone()
	}
	diff := s.Add(r.Next.MustDetach(false).MustSub(mean, true))
	sq := s.Add(diff.MustSquare(false).MustDivScalar(ts.FloatScalar(-2*std*std), true))
	lp := s.Add(sq.MustAddScalar(ts.FloatScalar(-math.Log(std)-0.5*math.Log(2*math.Pi)), false))
	n := lp.MustSize()
	dims := make([]int64, 0, len(n)-1)
	for i := 1; i < len(n); i++ {
		dims = append(dims, int64(i))
	}
	r.LogProb = lp.MustMeanDim(dims, false, lp.DType(), false)
	return r, nil
}

// InitialNoise returns N(0, I) noise [len(seeds), C, H, W] where sample i is
// drawn from seeds[i] alone: samples that share a seed share their noise,
// which is how every chain of a GRPO group gets the same initial noise (give
// the group one seed), and a sample's noise does not depend on its batch.
func InitialNoise(seeds []uint64, c, h, w int, dev gotch.Device) *ts.Tensor {
	n := c * h * w
	data := make([]float32, len(seeds)*n)
	for i, seed := range seeds {
		r := rand.New(rand.NewPCG(seed, 0x6e6f697365))
		for j := 0; j < n; j++ {
			data[i*n+j] = float32(r.NormFloat64())
		}
	}
	return float32Tensor(data, []int64{int64(len(seeds)), int64(c), int64(h), int64(w)}, dev)
}
