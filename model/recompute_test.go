package model

import (
	"fmt"
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// gradsOf returns a copy of every parameter's gradient by name (nil where
// there is none) and zeroes the gradients.
func gradsOf(p *Params) map[string][]float32 {
	out := map[string][]float32{}
	for i, t := range p.Tensors() {
		g := t.MustGrad(false)
		if g.MustDefined() {
			f := g.MustTotype(gotch.Float, false)
			out[p.Specs()[i].Name] = float32s(f)
			f.MustDrop()
			g.MustZero_()
		}
		g.MustDrop()
	}
	return out
}

// compareGrads fails unless want and got hold gradients for the same
// parameters, every one non-zero, each within tol of the largest
// magnitude in want's.
func compareGrads(t *testing.T, what string, want, got map[string][]float32, tol float64) {
	t.Helper()
	var worst float64
	var at string
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: %s has a gradient without checkpointing and none with it", what, name)
			continue
		}
		var scale, diff float64
		for i := range w {
			scale = max(scale, math.Abs(float64(w[i])))
			diff = max(diff, math.Abs(float64(w[i])-float64(g[i])))
		}
		if scale == 0 {
			t.Errorf("%s: %s has a zero gradient (the test does not exercise it)", what, name)
			continue
		}
		if r := diff / scale; r > worst || math.IsNaN(r) {
			worst, at = r, name
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: %s has a gradient only with checkpointing", what, name)
		}
	}
	t.Logf("%s: %d gradients, largest relative difference %.3g (%s)", what, len(want), worst, at)
	if worst > tol || math.IsNaN(worst) {
		t.Errorf("%s: checkpointed gradient of %s differs by %.3g of its scale (> %g)", what, at, worst, tol)
	}
}

// Activation checkpointing changes memory, not results: the MLLM's and the
// DiT's gradients (and the connector's, through two guidance passes and the
// reference stream) equal those of an ordinary backward — within float32
// rounding (the tied embedding and the shared condition accumulate their
// gradients in another order), and within bfloat16's rounding for a
// bfloat16 model, whose gradients are summed in bfloat16 (2⁻⁸ relative
// per addition, a few additions deep).
func TestRecomputeGradientsEqualPlainBackward(t *testing.T) {
	for _, tc := range []struct {
		dtype gotch.DType
		tol   float64
	}{
		{gotch.Float, 1e-6},
		{gotch.BFloat16, 0.02},
	} {
		t.Run(fmt.Sprint(tc.dtype), func(t *testing.T) {
			inTorch(t, func() error {
				if err := checkMLLMRecompute(t, tc.dtype, tc.tol); err != nil {
					return err
				}
				return checkDiTRecompute(t, tc.dtype, tc.tol)
			})
		})
	}
}

func checkMLLMRecompute(t *testing.T, dt gotch.DType, tol float64) error {
	c := tinyMLLMConfig()
	c.TieEmbeddings = true
	m := newTestMLLM(t, c, 40, 31)
	defer m.Drop()
	scaleParams(m.P, 8)
	m.P.ToDType(dt)
	pad := testSpecial.ImagePad
	prompts := [][]int{{5, pad, pad, pad, pad, 6}, {7, pad, pad, pad, pad, 8, 9}}
	completions := [][]int{{10, 11, 12}, {13, 14}}
	imgs := randn([]int64{2, 3, 8, 8}, 5)
	defer imgs.MustDrop()
	grads, err := plainAndRecordedGrads(t, m, prompts, completions, imgs, 0.1, c.Layers, 1)
	if err != nil {
		return err
	}
	compareGrads(t, "MLLM", grads[0], grads[1], tol)
	cache := m.NewKVCache(1, 4)
	defer cache.Drop()
	if _, err := m.Recording(new(Recompute)).forward(&forwardInput{cache: cache}); err == nil {
		t.Error("a recording MLLM filled a KV cache")
	}
	return nil
}

// plainAndRecordedGrads backpropagates sum(mask·(log π + ent·entropy)) of
// m's completions once plainly and once through a Recompute, checks that
// the recording held wantSegs layers and wantCuts inputs from outside them,
// and returns the parameter gradients of both passes.
func plainAndRecordedGrads(t *testing.T, m *MLLM, prompts, completions [][]int, imgs *ts.Tensor, ent float64, wantSegs, wantCuts int) ([2]map[string][]float32, error) {
	var grads [2]map[string][]float32
	for i, rec := range []*Recompute{nil, new(Recompute)} {
		mm := m
		if rec != nil {
			mm = m.Recording(rec)
		}
		lp, err := mm.LogProbs(prompts, completions, 0.7, imgs)
		if err != nil {
			return grads, err
		}
		var s libtorch.Scope
		loss := s.Add(lp.LogProbs.MustMul(lp.Mask, false))
		if ent != 0 {
			e := s.Add(lp.Entropy.MustMul(lp.Mask, false).MustMulScalar(ts.FloatScalar(ent), true))
			loss = s.Add(loss.MustAdd(e, false))
		}
		s.Add(loss.MustSum(gotch.Float, false)).MustBackward()
		s.Close()
		lp.Drop()
		if rec != nil {
			if len(rec.segs) != wantSegs || len(rec.cuts) != wantCuts {
				t.Errorf("recorded %d layers and %d cut inputs, want %d and %d", len(rec.segs), len(rec.cuts), wantSegs, wantCuts)
			}
			rec.Backward()
		}
		grads[i] = gradsOf(m.P)
	}
	return grads, nil
}

func checkDiTRecompute(t *testing.T, dt gotch.DType, tol float64) error {
	libtorch.ManualSeed(7)
	d, conn := newTestDiT(t)
	defer d.Drop()
	defer conn.P.Drop()
	d.P.ToDType(dt)
	shape := []int64{2, 3, 16, 16}
	x, refs, target := randn(shape, 3), randn(shape, 4), randn(shape, 6)
	for _, t := range []*ts.Tensor{x, refs, target} {
		defer t.MustDrop()
	}
	grads := make([]map[string][]float32, 2)
	connGrads := make([]map[string][]float32, 2)
	for i, rec := range []*Recompute{nil, new(Recompute)} {
		dd := d
		if rec != nil {
			dd = d.Recording(rec)
		}
		cond := testCondition(t, conn, []int{4, 2}, 10)
		uncond := testCondition(t, conn, []int{0, 0}, 20)
		// Three passes: conditional, unconditional with and without the
		// reference images.
		v, err := dd.Velocity(x, 0.4, cond, refs, Guidance{Uncond: uncond, TextScale: 4.5, ImageScale: 2})
		cond.Drop()
		uncond.Drop()
		if err != nil {
			return err
		}
		loss := v.MustSub(target, false).MustSquare(true).MustMean(gotch.Float, true)
		loss.MustBackward()
		loss.MustDrop()
		v.MustDrop()
		if rec != nil {
			want := 3 * (3*d.Cfg.RefinerLayers + d.Cfg.Layers) // two passes have refs; one has none
			want -= d.Cfg.RefinerLayers
			if len(rec.segs) != want {
				t.Errorf("DiT recorded %d blocks, want %d", len(rec.segs), want)
			}
			rec.Backward()
			if rec.segs != nil || rec.cuts != nil || rec.owned != nil {
				t.Error("Backward left tensors behind")
			}
		}
		grads[i], connGrads[i] = gradsOf(d.P), gradsOf(conn.P)
	}
	compareGrads(t, "DiT", grads[0], grads[1], tol)
	compareGrads(t, "connector", connGrads[0], connGrads[1], tol)
	return nil
}

// A checkpointed backward frees everything it made: the live tensor count
// returns to where it was.
func TestRecomputeLeavesNoTensors(t *testing.T) {
	inTorch(t, func() error {
		libtorch.ManualSeed(7)
		d, conn := newTestDiT(t)
		defer d.Drop()
		defer conn.P.Drop()
		x := randn([]int64{2, 3, 16, 16}, 3)
		defer x.MustDrop()
		step := func() error {
			var rec Recompute
			cond := testCondition(t, conn, []int{4, 2}, 10)
			defer cond.Drop()
			v, err := d.Recording(&rec).Forward(DiTInput{X: x, T: []float64{0.2, 0.7}, Text: cond})
			if err != nil {
				rec.Drop()
				return err
			}
			loss := v.MustSquare(true).MustMean(gotch.Float, true)
			loss.MustBackward()
			loss.MustDrop()
			rec.Backward()
			gradsOf(d.P)
			gradsOf(conn.P)
			return nil
		}
		if err := step(); err != nil { // the parameters' gradients now exist
			return err
		}
		before := libtorch.LiveTensors()
		for range 3 {
			if err := step(); err != nil {
				return err
			}
		}
		if after := libtorch.LiveTensors(); after != before {
			t.Errorf("live tensors %d after three checkpointed steps, %d before", after, before)
		}
		return nil
	})
}
