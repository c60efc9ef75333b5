package optim

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// A bfloat16 parameter is updated through a float32 master: the master
// follows float32 AdamW fed the (bfloat16) gradients, the parameter is the
// master rounded to bfloat16, and the state saves and restores the master.
func TestBFloat16ParameterKeepsAFloat32Master(t *testing.T) {
	cfg := Config{WeightDecay: 0.01}
	r := rand.New(rand.NewPCG(3, 4))
	n := 64
	init := make([]float32, n)
	for i := range init {
		init[i] = float32(r.NormFloat64())
	}
	run(t, func() error {
		p := ts.MustOfSlice(init).MustTotype(gotch.BFloat16, true)
		p.MustRequiresGrad_(true)
		defer p.MustDrop()
		o := New([]*ts.Tensor{p}, cfg)
		defer o.Drop()
		ref := &refAdamW{p: p.Float64Values(), m: make([]float64, n), v: make([]float64, n)}
		for step := 0; step < 20; step++ {
			g := make([]float32, n)
			for i := range g {
				g[i] = float32(r.NormFloat64())
			}
			o.ZeroGrad()
			setGrad(p, g)
			ref.update(p.MustGrad(false).Float64Values(true), 1e-2, withDefaults(cfg))
			o.Step(1e-2)
		}
		st, _ := o.State()
		w, ok := st["w.0"]
		if !ok {
			t.Fatalf("state has no master w.0: %v", keys(st))
		}
		for name, x := range st {
			if x.DType() != gotch.Float {
				t.Errorf("state %s is %v, want float32", name, x.DType())
			}
		}
		worst := 0.0
		for i, v := range w.Float64Values() {
			worst = math.Max(worst, math.Abs(v-ref.p[i]))
		}
		if worst > 1e-5 {
			t.Errorf("after 20 steps the master differs from float32 AdamW by %g", worst)
		}
		rounded := w.MustTotype(gotch.BFloat16, false).Float64Values(true)
		for i, v := range p.Float64Values() {
			if v != rounded[i] {
				t.Fatalf("parameter[%d] = %g, want the master rounded to bfloat16 %g", i, v, rounded[i])
			}
		}
		if got, want := o.Bytes(), int64(3*4*n); got != want {
			t.Errorf("Bytes() = %d, want %d (master + 2 moments, float32)", got, want)
		}

		// Restore into a fresh optimiser over a differently initialised
		// parameter: SyncParams makes it the saved one.
		q := zeroParam(n, gotch.BFloat16)
		defer q.MustDrop()
		o2 := New([]*ts.Tensor{q}, cfg)
		defer o2.Drop()
		st2, _ := o2.State()
		for k, v := range st {
			st2[k].Copy_(v)
		}
		o2.SyncParams()
		a, b := p.Float64Values(), q.Float64Values()
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("restored parameter[%d] = %g, want %g", i, b[i], a[i])
			}
		}
		return nil
	})
}

// A float32 parameter is its own master: no copy, no "w" state.
func TestFloat32ParameterHasNoSeparateMaster(t *testing.T) {
	run(t, func() error {
		p := zeroParam(10, gotch.Float)
		defer p.MustDrop()
		o := New([]*ts.Tensor{p}, Config{})
		defer o.Drop()
		st, _ := o.State()
		if len(st) != 2 {
			t.Errorf("state = %v, want m.0 and v.0 only", keys(st))
		}
		if got := o.Bytes(); got != 2*4*10 {
			t.Errorf("Bytes() = %d, want 80", got)
		}
		return nil
	})
}

func TestScaleGradsReportsOverflow(t *testing.T) {
	cases := []struct {
		name   string
		grad   []float32
		factor float64
		want   []float64
		finite bool
	}{
		{"unscale", []float32{2, 4}, 0.5, []float64{1, 2}, true},
		{"overflow", []float32{float32(math.Inf(1)), 1}, 0.5, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			run(t, func() error {
				p := zeroParam(2, gotch.Float)
				defer p.MustDrop()
				o := New([]*ts.Tensor{p}, Config{})
				defer o.Drop()
				o.ZeroGrad()
				setGrad(p, c.grad)
				if got := ScaleGrads([]*ts.Tensor{p}, c.factor); got != c.finite {
					t.Errorf("ScaleGrads = %v, want %v", got, c.finite)
				}
				if c.want != nil {
					g := p.MustGrad(false).Float64Values(true)
					if g[0] != c.want[0] || g[1] != c.want[1] {
						t.Errorf("gradient = %v, want %v", g, c.want)
					}
				}
				return nil
			})
		})
	}
}

func TestLossScaleBacksOffAndGrows(t *testing.T) {
	s := &LossScale{Scale: 8, Interval: 2}
	steps := []struct {
		finite, step bool
		scale        float64
	}{
		{true, true, 8}, {true, true, 16}, {false, false, 8}, {true, true, 8}, {false, false, 4}, {true, true, 4}, {true, true, 8},
	}
	for i, st := range steps {
		if got := s.Update(st.finite); got != st.step || s.Scale != st.scale {
			t.Errorf("update %d (finite %v): step %v scale %g, want %v %g", i, st.finite, got, s.Scale, st.step, st.scale)
		}
	}
	if d := NewLossScale(); d.Scale != 65536 || d.Interval != 2000 {
		t.Errorf("NewLossScale() = %+v", d)
	}
}

// zeroParam returns a trainable parameter of n zeros.
func zeroParam(n int, dt gotch.DType) *ts.Tensor {
	p := ts.MustZeros([]int64{int64(n)}, dt, gotch.CPU)
	p.MustRequiresGrad_(true)
	return p
}

func withDefaults(c Config) Config {
	c.Beta1, c.Beta2, c.Eps = 0.9, 0.999, 1e-8
	return c
}

func keys(m map[string]*ts.Tensor) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
