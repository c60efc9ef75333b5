package model

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// Recompute is activation checkpointing: a forward pass recorded into it
// keeps only each layer's input and output, not the tensors the layer's
// backward needs, and Backward recomputes one layer at a time, last to
// first, to push the gradient through it. A model records into it through
// MLLM.Recording and DiT.Recording.
//
// The forward runs each layer with autograd off and hands the next layer a
// detached copy of the output that requires grad (a leaf). The loss's
// backward therefore stops at the last layer's output; Backward then, for
// each layer from the last, runs the layer again with autograd on from its
// recorded inputs and back-propagates sum(output · grad of output), whose
// gradient with respect to the output is exactly that grad. The layer's
// parameters accumulate the same gradients as without checkpointing (the
// recomputation repeats the same operations on the same inputs; no layer
// draws random numbers), and the layer's input leaves receive theirs, which
// the layer before consumes. Where a layer's input comes from outside the
// layers (the token embeddings, the DiT's timestep embedding and its text
// condition), the forward cuts it: the layers see a leaf, and Backward ends
// with one backward through every cut tensor's own graph, weighted by the
// leaf's gradient, so that graph is traversed once even when several cuts
// share it (a condition used by two guidance passes).
//
// The price is a second forward of every layer in backward; the memory a
// forward keeps for backward falls from every layer's saved tensors to the
// layers' inputs plus one layer's (plan.Activations.Checkpointed).
//
// Use: r := new(Recompute); defer r.Drop(); run the recording model's
// forward and the loss; loss.MustBackward(); r.Backward(). A Recompute
// records any number of forward passes of one backward. Backward and Drop
// free what it holds; it can then record again.
type Recompute struct {
	segs   []recomputed
	cuts   []cut
	leaves map[*ts.Tensor]bool
	owned  []*ts.Tensor // recorded inputs that are not leaves (masks, rotary tables)
}

// recomputed is one layer of a recorded forward.
type recomputed struct {
	run func(s *libtorch.Scope, in []*ts.Tensor) *ts.Tensor
	in  []*ts.Tensor
	out *ts.Tensor // a leaf
}

// cut is a tensor from outside the layers and the leaf that stands for it.
type cut struct{ orig, leaf *ts.Tensor }

// cutInput returns a leaf that stands for t in the layers that follow when
// t requires grad and is not already one of r's leaves; otherwise t. On a
// nil Recompute it returns t.
func (r *Recompute) cutInput(t *ts.Tensor) *ts.Tensor {
	if r == nil || t == nil || r.leaves[t] || !t.MustRequiresGrad() {
		return t
	}
	leaf := t.MustDetach(false)
	leaf.MustRequiresGrad_(true)
	r.cuts = append(r.cuts, cut{orig: t.MustShallowClone(), leaf: leaf})
	r.mark(leaf)
	return leaf
}

func (r *Recompute) mark(t *ts.Tensor) {
	if r.leaves == nil {
		r.leaves = map[*ts.Tensor]bool{}
	}
	r.leaves[t] = true
}

// layer runs run(s, in) — one layer: its result is recorded in s or is a
// tensor of in. On a nil Recompute that is all. Recording, it runs the
// layer with autograd off, keeps its inputs (cutting those that come from
// outside the layers) and returns a leaf copy of the output, which r owns.
func (r *Recompute) layer(s *libtorch.Scope, run func(s *libtorch.Scope, in []*ts.Tensor) *ts.Tensor, in ...*ts.Tensor) *ts.Tensor {
	if r == nil {
		return run(s, in)
	}
	kept := make([]*ts.Tensor, len(in))
	for i, t := range in {
		switch c := r.cutInput(t); {
		case c == nil:
		case r.leaves[c]:
			kept[i] = c
		default:
			kept[i] = c.MustShallowClone()
			r.owned = append(r.owned, kept[i])
		}
	}
	var out *ts.Tensor
	libtorch.NoGrad(func() {
		var inner libtorch.Scope
		defer inner.Close()
		out = run(&inner, kept).MustDetach(false)
	})
	out.MustRequiresGrad_(true)
	r.segs = append(r.segs, recomputed{run: run, in: kept, out: out})
	r.mark(out)
	return out
}

// Backward pushes the gradients that the loss's backward left on the
// recorded outputs through the layers and the cut inputs' graphs into the
// parameters, then frees what r holds. Autograd must be on. On a nil
// Recompute it does nothing.
func (r *Recompute) Backward() {
	if r == nil {
		return
	}
	defer r.Drop()
	for i := len(r.segs) - 1; i >= 0; i-- {
		seg := r.segs[i]
		func() {
			var s libtorch.Scope
			defer s.Close()
			g := s.Add(seg.out.MustGrad(false))
			if !g.MustDefined() {
				return // the loss does not depend on this layer's output
			}
			y := seg.run(&s, seg.in)
			s.Add(s.Add(y.MustMul(g, false)).MustSum(gotch.Float, false)).MustBackward()
		}()
	}
	var s libtorch.Scope
	defer s.Close()
	var terms []*ts.Tensor
	for _, c := range r.cuts {
		if g := s.Add(c.leaf.MustGrad(false)); g.MustDefined() {
			terms = append(terms, s.Add(s.Add(c.orig.MustMul(g, false)).MustSum(gotch.Float, false)))
		}
	}
	libtorch.BackwardSum(terms)
}

// Drop frees what r holds without back-propagating (after an error). On a
// nil Recompute it does nothing.
func (r *Recompute) Drop() {
	if r == nil {
		return
	}
	for _, seg := range r.segs {
		seg.out.MustDrop()
	}
	for _, c := range r.cuts {
		c.orig.MustDrop()
		c.leaf.MustDrop()
	}
	for _, t := range r.owned {
		t.MustDrop()
	}
	*r = Recompute{}
}
