package optim

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// refAdamW is a float64 reference of torch.optim.AdamW for one tensor.
type refAdamW struct {
	p, m, v []float64
	step    int
}

func (r *refAdamW) update(g []float64, lr float64, c Config) {
	r.step++
	bc1 := 1 - math.Pow(c.Beta1, float64(r.step))
	bc2 := 1 - math.Pow(c.Beta2, float64(r.step))
	for i := range r.p {
		r.p[i] *= 1 - lr*c.WeightDecay
		r.m[i] = c.Beta1*r.m[i] + (1-c.Beta1)*g[i]
		r.v[i] = c.Beta2*r.v[i] + (1-c.Beta2)*g[i]*g[i]
		r.p[i] -= lr * (r.m[i] / bc1) / (math.Sqrt(r.v[i]/bc2) + c.Eps)
	}
}

func run(t *testing.T, fn func() error) {
	t.Helper()
	if err := libtorch.Run(fn); err != nil {
		t.Fatal(err)
	}
}

// setGrad makes p.grad equal g by back-propagating sum(p·g).
func setGrad(p *ts.Tensor, g []float32) {
	gt := ts.MustOfSlice(g).MustView(p.MustSize(), true)
	loss := p.MustMul(gt, false).MustSum(gotch.Float, true)
	loss.MustBackward()
	loss.MustDrop()
	gt.MustDrop()
}

func TestAdamWMatchesReference(t *testing.T) {
	cfg := Config{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
	r := rand.New(rand.NewPCG(1, 2))
	n := 50
	init := make([]float32, n)
	ref := &refAdamW{p: make([]float64, n), m: make([]float64, n), v: make([]float64, n)}
	for i := range init {
		init[i] = float32(r.NormFloat64())
		ref.p[i] = float64(init[i])
	}
	run(t, func() error {
		p := ts.MustOfSlice(init)
		p.MustRequiresGrad_(true)
		defer p.MustDrop()
		o := New([]*ts.Tensor{p}, cfg)
		defer o.Drop()
		for step := 0; step < 20; step++ {
			g := make([]float32, n)
			g64 := make([]float64, n)
			for i := range g {
				g[i] = float32(r.NormFloat64())
				g64[i] = float64(g[i])
			}
			o.ZeroGrad()
			setGrad(p, g)
			o.Step(1e-2)
			ref.update(g64, 1e-2, cfg)
		}
		got := p.Float64Values()
		worst := 0.0
		for i := range got {
			worst = math.Max(worst, math.Abs(got[i]-ref.p[i]))
		}
		if worst > 1e-5 {
			t.Errorf("after 20 steps AdamW differs from the reference by %g", worst)
		}
		if o.Steps() != 20 {
			t.Errorf("Steps() = %d", o.Steps())
		}
		return nil
	})
}

func TestClipGradNorm(t *testing.T) {
	run(t, func() error {
		a := ts.MustOfSlice([]float32{0, 0})
		b := ts.MustOfSlice([]float32{0})
		a.MustRequiresGrad_(true)
		b.MustRequiresGrad_(true)
		defer a.MustDrop()
		defer b.MustDrop()
		o := New([]*ts.Tensor{a, b}, Config{})
		defer o.Drop()
		setGrad(a, []float32{3, 0})
		setGrad(b, []float32{4})
		if norm := o.ClipGradNorm(1); math.Abs(norm-5) > 1e-6 {
			t.Errorf("norm before clipping = %g, want 5", norm)
		}
		if norm := o.ClipGradNorm(10); math.Abs(norm-1) > 1e-5 {
			t.Errorf("norm after clipping to 1 = %g", norm)
		}
		return nil
	})
}

func TestStateRestoreContinuesExactly(t *testing.T) {
	grads := [][]float32{{1, -2}, {0.5, 0.5}, {-1, 3}, {2, 2}, {-0.5, 1}}
	run(t, func() error {
		train := func(p *ts.Tensor, o *AdamW, gs [][]float32) {
			for _, g := range gs {
				o.ZeroGrad()
				setGrad(p, g)
				o.Step(0.1)
			}
		}
		p1 := ts.MustOfSlice([]float32{1, 1})
		p1.MustRequiresGrad_(true)
		o1 := New([]*ts.Tensor{p1}, Config{WeightDecay: 0.1})
		train(p1, o1, grads)

		p2 := ts.MustOfSlice([]float32{1, 1})
		p2.MustRequiresGrad_(true)
		o2 := New([]*ts.Tensor{p2}, Config{WeightDecay: 0.1})
		train(p2, o2, grads[:3])
		// "Save" o2's state and parameters, restore them into a fresh one.
		st, step := o2.State()
		vals := p2.Float64Values()
		p3 := ts.MustOfSlice([]float32{float32(vals[0]), float32(vals[1])})
		p3.MustRequiresGrad_(true)
		o3 := New([]*ts.Tensor{p3}, Config{WeightDecay: 0.1})
		st3, _ := o3.State()
		for k, v := range st {
			st3[k].Copy_(v)
		}
		o3.SetStep(step)
		train(p3, o3, grads[3:])
		a, b := p1.Float64Values(), p3.Float64Values()
		for i := range a {
			if a[i] != b[i] {
				t.Errorf("resumed run differs at %d: %v vs %v", i, a, b)
			}
		}
		for _, x := range []*ts.Tensor{p1, p2, p3} {
			x.MustDrop()
		}
		o1.Drop()
		o2.Drop()
		o3.Drop()
		return nil
	})
}
