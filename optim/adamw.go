// Package optim holds the optimiser every trainer in thinkgen uses: AdamW
// written on gotch tensors, whose state (first and second moments, step
// count) is saved and restored exactly, so that a resumed run continues
// bit-for-bit where it stopped. (gotch's own optimisers keep their state in
// libtorch where Go cannot reach it, and its ClipGradNorm deadlocks.)
//
// Use:
//
//  1. Build with New(params, Config) inside libtorch.Run.
//  2. Each step: backward, then ClipGradNorm (optional), then Step(lr).
//  3. ZeroGrad before the next backward.
//  4. Save/Load the state next to the model's checkpoint.
//
// Mixed precision: a parameter held in bfloat16 or float16 (the compute
// dtype) gets a float32 master copy inside the optimiser. The moments are
// float32, the update applies to the master, and the master is rounded back
// into the parameter after each step; State includes the masters ("w.<i>")
// so a checkpoint keeps the full-precision weights. A float32 parameter is
// its own master (no copy), so float32 training is unchanged. Every piece of
// state is per parameter (index i), which is what a sharded optimiser splits.
package optim

import (
	"cmp"
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// Config holds AdamW's hyper-parameters (PyTorch's defaults in parentheses
// where the zero value is not meaningful).
type Config struct {
	Beta1, Beta2 float64 // (0.9, 0.999)
	Eps          float64 // (1e-8)
	WeightDecay  float64 // decoupled, applied as p ← p − lr·wd·p
}

// AdamW is the decoupled-weight-decay Adam of Loshchilov & Hutter, as
// torch.optim.AdamW computes it:
//
//	p ← p − lr·wd·p
//	m ← β1·m + (1−β1)·g ;  v ← β2·v + (1−β2)·g²
//	p ← p − lr · (m / (1−β1ᵗ)) / (sqrt(v / (1−β2ᵗ)) + eps)
type AdamW struct {
	cfg    Config
	params []*ts.Tensor // the model's tensors, in its compute dtype
	// master[i] is the float32 weight the update applies to: params[i]
	// itself when that is float32, else a float32 copy owned here.
	master []*ts.Tensor
	m, v   []*ts.Tensor // float32, shaped like the parameters
	step   int64
	// m[i], v[i] and master[i] are nil for a parameter another rank owns
	// (NewShard).
}

// New returns an AdamW over params (which must require grad).
func New(params []*ts.Tensor, cfg Config) *AdamW { return NewShard(params, cfg, nil) }

// NewShard returns an AdamW that holds the state of, and updates, only
// the parameters i with owned[i] (nil: all of them): one rank's shard of a
// ZeRO-1 optimiser (see Partition). Its Step leaves the other parameters
// alone; their owners update them and the ranks then exchange the
// updated values. Every parameter still gets a (zero) gradient.
func NewShard(params []*ts.Tensor, cfg Config, owned []bool) *AdamW {
	cfg.Beta1 = cmp.Or(cfg.Beta1, 0.9)
	cfg.Beta2 = cmp.Or(cfg.Beta2, 0.999)
	cfg.Eps = cmp.Or(cfg.Eps, 1e-8)
	o := &AdamW{cfg: cfg, params: params}
	for i, p := range params {
		if owned != nil && !owned[i] {
			o.master, o.m, o.v = append(o.master, nil), append(o.m, nil), append(o.v, nil)
			continue
		}
		w := p
		if p.DType() != gotch.Float {
			libtorch.NoGrad(func() { w = p.MustDetach(false).MustTotype(gotch.Float, true) })
		}
		o.master = append(o.master, w)
		o.m = append(o.m, w.MustZerosLike(false))
		o.v = append(o.v, w.MustZerosLike(false))
	}
	o.defineGrads()
	return o
}

// defineGrads gives every parameter a (zero) gradient, so that Step updates
// every parameter on every step (decay and momentum included, PyTorch's
// zero_grad(set_to_none=False)), whether or not this step's graph reached
// it. Without it a parameter that no step has reached yet (a reference
// image refiner before the first editing batch) is skipped by a fresh
// optimiser but updated by one that saw it once: a resumed run would then
// differ from an uninterrupted one.
func (o *AdamW) defineGrads() { o.DefineGrads() }

// DefineGrads gives every parameter that requires grad and has no gradient
// a zero one (after a release, before a collective that needs them all).
func (o *AdamW) DefineGrads() {
	prev := libtorch.SetGradEnabled(true)
	defer libtorch.SetGradEnabled(prev)
	var s libtorch.Scope
	defer s.Close()
	var zeros []*ts.Tensor
	for _, p := range o.params {
		if !p.MustRequiresGrad() {
			continue
		}
		g := p.MustGrad(false)
		defined := g.MustDefined()
		g.MustDrop()
		if !defined {
			zeros = append(zeros, s.Add(p.MustSum(p.DType(), false).MustMulScalar(ts.FloatScalar(0), true)))
		}
	}
	libtorch.BackwardSum(zeros)
}

// Steps returns the number of updates taken.
func (o *AdamW) Steps() int64 { return o.step }

// Drop frees the optimiser's state (the float32 masters it owns included).
func (o *AdamW) Drop() {
	for i := range o.m {
		if !o.Owns(i) {
			continue
		}
		o.m[i].MustDrop()
		o.v[i].MustDrop()
		if o.master[i] != o.params[i] {
			o.master[i].MustDrop()
		}
	}
}

// Bytes returns the bytes of state the optimiser owns: the moments and the
// float32 masters of parameters held in another dtype (of its shard).
func (o *AdamW) Bytes() int64 {
	var n int64
	for i := range o.m {
		if !o.Owns(i) {
			continue
		}
		n += 2 * 4 * int64(o.m[i].Numel())
		if o.master[i] != o.params[i] {
			n += 4 * int64(o.master[i].Numel())
		}
	}
	return n
}

// SyncParams rounds every master into its parameter (after the masters
// were loaded from a checkpoint).
func (o *AdamW) SyncParams() {
	libtorch.NoGrad(func() {
		for i, p := range o.params {
			if o.Owns(i) && o.master[i] != p {
				p.Copy_(o.master[i])
			}
		}
	})
}

// ZeroGrad zeroes every parameter's gradient (in place, keeping the buffer).
func (o *AdamW) ZeroGrad() {
	prev := libtorch.SetGradEnabled(false)
	defer libtorch.SetGradEnabled(prev)
	for _, p := range o.params {
		g := p.MustGrad(false)
		if g.MustDefined() {
			g.MustZero_()
		}
		g.MustDrop()
	}
}

// ClipGradNorm scales all gradients so that their global L2 norm is at most
// max and returns the norm before clipping (the figure to log). Non-finite
// norms are returned without touching the gradients.
func (o *AdamW) ClipGradNorm(max float64) float64 {
	prev := libtorch.SetGradEnabled(false)
	defer libtorch.SetGradEnabled(prev)
	var grads []*ts.Tensor
	defer func() {
		for _, g := range grads {
			g.MustDrop()
		}
	}()
	sq := 0.0
	for _, p := range o.params {
		g := p.MustGrad(false)
		if !g.MustDefined() {
			g.MustDrop()
			continue
		}
		grads = append(grads, g)
		sq += sumSquares(g)
	}
	norm := math.Sqrt(sq)
	if max > 0 && !math.IsNaN(norm) && !math.IsInf(norm, 0) {
		if coef := max / (norm + 1e-6); coef < 1 {
			for _, g := range grads {
				g.MustMulScalar_(ts.FloatScalar(coef))
			}
		}
	}
	return norm
}

// sumSquares returns Σ g² in float64; a half-precision gradient is
// widened first so that its squares do not round.
func sumSquares(g *ts.Tensor) float64 {
	if g.DType() == gotch.Float {
		return g.MustSquare(false).MustSum(gotch.Double, true).Float64Values(true)[0]
	}
	return g.MustTotype(gotch.Double, false).MustSquare(true).MustSum(gotch.Double, true).Float64Values(true)[0]
}

// ScaleGrads multiplies the gradient of every parameter by f in place
// (unscaling a loss scale) and reports whether all of them are finite
// afterwards.
func ScaleGrads(params []*ts.Tensor, f float64) (finite bool) {
	prev := libtorch.SetGradEnabled(false)
	defer libtorch.SetGradEnabled(prev)
	sq := 0.0
	for _, p := range params {
		g := p.MustGrad(false)
		if g.MustDefined() {
			g.MustMulScalar_(ts.FloatScalar(f))
			sq += sumSquares(g)
		}
		g.MustDrop()
	}
	return !math.IsNaN(sq) && !math.IsInf(sq, 0)
}

// Step applies one AdamW update with learning rate lr. Parameters without a
// gradient are skipped (their moments are left alone, as PyTorch does).
func (o *AdamW) Step(lr float64) {
	prev := libtorch.SetGradEnabled(false)
	defer libtorch.SetGradEnabled(prev)
	o.step++
	c := o.cfg
	bc1 := 1 - math.Pow(c.Beta1, float64(o.step))
	bc2 := 1 - math.Pow(c.Beta2, float64(o.step))
	var s libtorch.Scope
	defer s.Close()
	for i, p := range o.params {
		if !o.Owns(i) {
			continue
		}
		g := s.Add(p.MustGrad(false))
		if !g.MustDefined() {
			continue
		}
		w := o.master[i]
		if w != p {
			g = s.Add(g.MustTotype(gotch.Float, false))
		}
		if c.WeightDecay != 0 {
			w.MustMulScalar_(ts.FloatScalar(1 - lr*c.WeightDecay))
		}
		m, v := o.m[i], o.v[i]
		m.MustMulScalar_(ts.FloatScalar(c.Beta1))
		m.MustAdd_(s.Add(g.MustMulScalar(ts.FloatScalar(1-c.Beta1), false)))
		v.MustMulScalar_(ts.FloatScalar(c.Beta2))
		v.MustAdd_(s.Add(g.MustSquare(false).MustMulScalar(ts.FloatScalar(1-c.Beta2), true)))
		den := s.Add(v.MustDivScalar(ts.FloatScalar(bc2), false).MustSqrt(true).MustAddScalar(ts.FloatScalar(c.Eps), true))
		upd := s.Add(m.MustDiv(den, false).MustMulScalar(ts.FloatScalar(lr/bc1), true))
		w.MustSub_(upd)
		if w != p {
			p.Copy_(w)
		}
		s.Close()
	}
}

// State returns the optimiser state as named tensors (the optimiser's own,
// which the caller must not drop): "m.<i>", "v.<i>" for each parameter
// index it owns, "w.<i>" for the float32 master of such a parameter held
// in another dtype, plus the step count, for saving next to the
// checkpoint. After loading into these tensors, call SetStep and
// SyncParams.
func (o *AdamW) State() (tensors map[string]*ts.Tensor, step int64) {
	tensors = make(map[string]*ts.Tensor, 3*len(o.m))
	for i := range o.m {
		for n, t := range o.StateOf(i) {
			tensors[n] = t
		}
	}
	return tensors, o.step
}

// StateOf returns parameter i's part of State (nil when another rank owns
// it).
func (o *AdamW) StateOf(i int) map[string]*ts.Tensor {
	if !o.Owns(i) {
		return nil
	}
	st := map[string]*ts.Tensor{fmt.Sprintf("m.%d", i): o.m[i], fmt.Sprintf("v.%d", i): o.v[i]}
	if o.master[i] != o.params[i] {
		st[fmt.Sprintf("w.%d", i)] = o.master[i]
	}
	return st
}

// Len is the number of parameters the optimiser was built over.
func (o *AdamW) Len() int { return len(o.params) }

// Owns reports whether the optimiser holds parameter i's state (always,
// unless it was built by NewShard).
func (o *AdamW) Owns(i int) bool { return o.m[i] != nil }

// StateLike returns new zero tensors named and shaped like the state
// State would hold for parameter i, whoever owns it: the buffers a rank
// receives another rank's shard into. The caller drops them.
func (o *AdamW) StateLike(i int) map[string]*ts.Tensor {
	p := o.params[i]
	like := func() *ts.Tensor { return ts.MustZeros(p.MustSize(), gotch.Float, p.MustDevice()) }
	st := map[string]*ts.Tensor{fmt.Sprintf("m.%d", i): like(), fmt.Sprintf("v.%d", i): like()}
	if p.DType() != gotch.Float {
		st[fmt.Sprintf("w.%d", i)] = like()
	}
	return st
}

// SetStep restores the step count (after the moments were loaded into the
// tensors State returns).
func (o *AdamW) SetStep(step int64) { o.step = step }
