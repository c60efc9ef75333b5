package model

import (
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
)

func tinyDiTConfig() config.DiT {
	c := config.Default().Model.DiT
	c.Hidden, c.Layers, c.Heads, c.KVHeads, c.FFN, c.Patch, c.ImageSize, c.RefinerLayers = 48, 2, 2, 1, 96, 4, 16, 1
	return c
}

// testCondition makes a connector condition from random instruction states
// of the given lengths (sample i drawn from seed+i).
func testCondition(t testing.TB, conn *Connector, lens []int, seed uint64) *Condition {
	t.Helper()
	states := make([]*ts.Tensor, len(lens))
	for i, l := range lens {
		states[i] = randn([]int64{int64(l), int64(conn.In)}, seed+uint64(i))
	}
	cond, err := conn.Forward(states)
	for _, s := range states {
		s.MustDrop()
	}
	if err != nil {
		t.Fatal(err)
	}
	return cond
}

func randn(shape []int64, seed uint64) *ts.Tensor {
	p, _ := NewParams([]Spec{{Name: "x", Shape: shape, Std: 1}}, gotch.CPU, seed)
	x := p.Get("x").MustDetach(false)
	p.Drop()
	return x
}

// newTestDiT builds a tiny DiT (seed 1, perturbed) and a connector from
// 16-wide states to it (seed 2).
func newTestDiT(t *testing.T) (*DiT, *Connector) {
	t.Helper()
	c := tinyDiTConfig()
	d, err := NewDiT(c, gotch.CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	// At initialisation the modulation is zero, so tanh gates close every
	// residual branch (adaLN-Zero) and only the modulation would get
	// gradients; perturb the weights to exercise every path.
	perturb(d.P)
	conn, err := NewConnector(16, c.Hidden, 3, 1e-6, gotch.CPU, 2)
	if err != nil {
		d.Drop()
		t.Fatal(err)
	}
	return d, conn
}

func TestDiTForwardShapesAndGradients(t *testing.T) {
	inTorch(t, func() error {
		d, conn := newTestDiT(t)
		defer d.Drop()
		defer conn.P.Drop()
		x := randn([]int64{2, 3, 16, 16}, 3)
		defer x.MustDrop()
		refs := randn([]int64{2, 3, 16, 16}, 4)
		defer refs.MustDrop()
		for _, r := range []*ts.Tensor{nil, refs} {
			// A fresh condition each pass: backward frees the connector's graph.
			cond := testCondition(t, conn, []int{4, 0}, 10)
			if cond.Lens[0] != 7 || cond.Lens[1] != 3 {
				t.Errorf("condition lengths %v, want [7 3] (3 prepad + instruction)", cond.Lens)
			}
			v, err := d.Forward(DiTInput{X: x, T: []float64{0.3, 0.8}, Text: cond, Refs: r})
			cond.Drop()
			if err != nil {
				return err
			}
			if got := v.MustSize(); got[0] != 2 || got[1] != 3 || got[2] != 16 || got[3] != 16 {
				t.Fatalf("velocity shape %v", got)
			}
			loss := v.MustSquare(false).MustMean(gotch.Float, true)
			loss.MustBackward()
			loss.MustDrop()
			v.MustDrop()
		}
		// Gradients reach the embedder, the joint layers and the connector.
		for _, name := range []string{"x_embedder.weight", "layers.1.attn.to_q.weight", "norm_out.linear_2.weight", "ref_image_patch_embedder.weight", "layers.0.norm1.linear.weight"} {
			g := d.P.Get(name).MustGrad(false)
			if !g.MustDefined() {
				t.Errorf("%s has no gradient", name)
			} else if n := g.MustAbs(false).MustSum(gotch.Float, true).Float64Values(true)[0]; n == 0 {
				t.Errorf("%s has a zero gradient", name)
			}
			g.MustDrop()
		}
		g := conn.P.Get("prepad").MustGrad(false)
		if !g.MustDefined() {
			t.Error("connector prepad has no gradient")
		}
		g.MustDrop()
		return nil
	})
}

func TestDiTPaddingDoesNotLeak(t *testing.T) {
	// A sample's velocity must not depend on the padding added for a longer
	// neighbour in the batch.
	inTorch(t, func() error {
		c := tinyDiTConfig()
		d, _ := NewDiT(c, gotch.CPU, 5)
		defer d.Drop()
		perturb(d.P)
		conn, _ := NewConnector(16, c.Hidden, 2, 1e-6, gotch.CPU, 6)
		defer conn.P.Drop()
		both := testCondition(t, conn, []int{3, 9}, 20)
		defer both.Drop()
		alone := testCondition(t, conn, []int{3}, 20)
		defer alone.Drop()
		x := randn([]int64{2, 3, 16, 16}, 7)
		defer x.MustDrop()
		x0 := x.MustNarrow(0, 0, 1, false)
		defer x0.MustDrop()
		var err error
		libtorch.NoGrad(func() {
			var vb, va *ts.Tensor
			vb, err = d.Forward(DiTInput{X: x, T: []float64{0.5, 0.5}, Text: both})
			if err != nil {
				return
			}
			defer vb.MustDrop()
			va, err = d.Forward(DiTInput{X: x0, T: []float64{0.5}, Text: alone})
			if err != nil {
				return
			}
			defer va.MustDrop()
			first := vb.MustNarrow(0, 0, 1, false)
			defer first.MustDrop()
			if diff := maxAbsDiff(first, va); diff > 1e-5 {
				t.Errorf("padding changes the velocity by %g", diff)
			}
		})
		return err
	})
}

func TestSDEStep(t *testing.T) {
	inTorch(t, func() error {
		x := randn([]int64{3, 3, 8, 8}, 1)
		defer x.MustDrop()
		v := randn([]int64{3, 3, 8, 8}, 2)
		defer v.MustDrop()
		xi := randn([]int64{3, 3, 8, 8}, 3)
		defer xi.MustDrop()
		grid := []float64{1, 0.9, 0.7, 0.4}
		for i := 0; i+1 < len(grid); i++ {
			sigma, next := grid[i], grid[i+1]
			// Noise level 0 is the ODE (Euler) step.
			det, err := StepSDE(x, v, sigma, next, grid[1], 0, xi, nil)
			if err != nil {
				return err
			}
			euler := x.MustAdd(v.MustMulScalar(ts.FloatScalar(next-sigma), false), false)
			if d := maxAbsDiff(det.Next, euler); d > 1e-6 {
				t.Errorf("σ=%g: a=0 step differs from Euler by %g", sigma, d)
			}
			if det.LogProb != nil {
				t.Error("a=0 step has a log-prob")
			}
			euler.MustDrop()
			det.Drop()

			// Sampling then re-evaluating with the same weights gives ratio 1.
			sample, err := StepSDE(x, v, sigma, next, grid[1], 0.7, xi, nil)
			if err != nil {
				return err
			}
			again, err := StepSDE(x, v, sigma, next, grid[1], 0.7, nil, sample.Next)
			if err != nil {
				return err
			}
			a, b := float32s(sample.LogProb), float32s(again.LogProb)
			for j := range a {
				if r := math.Exp(float64(b[j] - a[j])); math.Abs(r-1) > 1e-5 {
					t.Errorf("σ=%g sample %d: ratio %g, want 1", sigma, j, r)
				}
			}
			// The log-prob is that of N(μ, std²) at x', averaged over dims:
			// with x' = μ + std·ξ it is −ξ²/2 − log std − log √(2π) on average.
			xv := float32s(xi)
			per := len(xv) / 3
			for j := 0; j < 3; j++ {
				want := 0.0
				for _, e := range xv[j*per : (j+1)*per] {
					want += -float64(e)*float64(e)/2 - math.Log(sample.Std) - 0.5*math.Log(2*math.Pi)
				}
				want /= float64(per)
				if math.Abs(want-float64(a[j])) > 1e-4 {
					t.Errorf("σ=%g sample %d: log-prob %g, want %g", sigma, j, a[j], want)
				}
			}
			sample.Drop()
			again.Drop()
		}
		if _, err := StepSDE(x, v, 0.5, 0.6, 0.9, 0.7, xi, nil); err == nil {
			t.Error("a step to a larger σ was accepted")
		}
		return nil
	})
}

func TestTimeGrid(t *testing.T) {
	g := TimeGrid(4, false, 32, 32)
	if g[0] != 0 || g[4] != 1 || g[2] != 0.5 {
		t.Errorf("unshifted grid %v", g)
	}
	s := TimeGrid(4, true, 80, 80) // m = 2: t' = t/(2 − t)
	if s[0] != 0 || s[4] != 1 || math.Abs(s[2]-0.5/1.5) > 1e-12 {
		t.Errorf("shifted grid %v", s)
	}
}

func TestSampleODEAndGuidance(t *testing.T) {
	inTorch(t, func() error {
		c := tinyDiTConfig()
		d, _ := NewDiT(c, gotch.CPU, 9)
		defer d.Drop()
		conn, _ := NewConnector(16, c.Hidden, 2, 1e-6, gotch.CPU, 10)
		defer conn.P.Drop()
		cond := testCondition(t, conn, []int{4, 2}, 30)
		defer cond.Drop()
		uncond := testCondition(t, conn, []int{0, 0}, 40)
		defer uncond.Drop()
		noise := randn([]int64{2, 3, 16, 16}, 11)
		defer noise.MustDrop()
		grid := TimeGrid(3, true, 16, 16)
		plain, err := d.SampleODE(noise, grid, cond, nil, Guidance{})
		if err != nil {
			return err
		}
		defer plain.MustDrop()
		scale1, err := d.SampleODE(noise, grid, cond, nil, Guidance{Uncond: uncond, TextScale: 1})
		if err != nil {
			return err
		}
		defer scale1.MustDrop()
		if diff := maxAbsDiff(plain, scale1); diff != 0 {
			t.Errorf("guidance scale 1 differs from no guidance by %g", diff)
		}
		guided, err := d.SampleODE(noise, grid, cond, nil, Guidance{Uncond: uncond, TextScale: 4.5})
		if err != nil {
			return err
		}
		defer guided.MustDrop()
		if got := guided.MustSize(); got[0] != 2 || got[2] != 16 {
			t.Errorf("sample shape %v", got)
		}
		return nil
	})
}

// perturb adds N(0, 0.02²) noise to every parameter, so that zero-initialised
// modulation does not close the blocks' residual branches.
func perturb(p *Params) {
	for _, t := range p.Tensors() {
		libtorch.NoGrad(func() {
			r := t.MustRandnLike(false).MustMulScalar(ts.FloatScalar(0.02), true)
			n := t.MustAdd(r, false)
			t.Copy_(n)
			r.MustDrop()
			n.MustDrop()
		})
	}
}

func TestInitialNoiseIsPerSeed(t *testing.T) {
	inTorch(t, func() error {
		x := InitialNoise([]uint64{7, 7, 8}, 3, 4, 4, gotch.CPU)
		defer x.MustDrop()
		v := float32s(x)
		n := 3 * 4 * 4
		same, diff := true, false
		for j := 0; j < n; j++ {
			same = same && v[j] == v[n+j]
			diff = diff || v[j] != v[2*n+j]
		}
		if !same || !diff {
			t.Errorf("same seed same noise: %v; other seed other noise: %v", same, diff)
		}
		alone := InitialNoise([]uint64{8}, 3, 4, 4, gotch.CPU)
		defer alone.MustDrop()
		third := x.MustNarrow(0, 2, 1, false)
		defer third.MustDrop()
		if maxAbsDiff(alone, third) != 0 {
			t.Error("a sample's noise depends on its batch")
		}
		return nil
	})
}
