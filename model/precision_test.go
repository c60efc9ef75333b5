package model

import (
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// Generation and teacher forcing of a bfloat16 MLLM give the same
// log-probs within bfloat16's resolution: one unit in the last place of a
// log-prob in [-4, -2) is 2⁻⁶ (float32 agrees within 1e-5).
func TestBFloat16GenerationLogProbsMatchTeacherForced(t *testing.T) {
	const tol = 1.0 / 64
	for _, temp := range []float64{1.0, 0.7} {
		inTorch(t, func() error {
			m := newTestMLLM(t, tinyMLLMConfig(), 40, 2)
			defer m.Drop()
			scaleParams(m.P, 8)
			m.P.ToDType(gotch.BFloat16)
			worst, err := teacherForcedGap(t, m, temp)
			if err != nil {
				return err
			}
			t.Logf("temperature %g: largest gap %g", temp, worst)
			if worst > tol {
				t.Errorf("temperature %g: bfloat16 generation and teacher-forced log-probs differ by %g (> %g)", temp, worst, tol)
			}
			return nil
		})
	}
}

// A bfloat16 module holds bfloat16 weights and KV cache, hands out
// float32 log-probs and velocities, and tracks the float32 module it was
// rounded from within bfloat16's relative resolution (2⁻⁸ of the values'
// scale, a few roundings deep).
func TestBFloat16ModulesTrackFloat32(t *testing.T) {
	inTorch(t, func() error {
		m := newTestMLLM(t, tinyMLLMConfig(), 40, 2)
		defer m.Drop()
		want, err := m.LogProbs(testPrompts, testPrompts, 1, nil)
		if err != nil {
			return err
		}
		defer want.Drop()
		m.P.ToDType(gotch.BFloat16)
		for _, p := range m.P.Tensors() {
			if p.DType() != gotch.BFloat16 || !p.MustRequiresGrad() {
				t.Fatalf("parameter is %v (requires grad %v) after ToDType(bfloat16)", p.DType(), p.MustRequiresGrad())
			}
		}
		cache := m.NewKVCache(1, 4)
		if dt := cache.k[0].DType(); dt != gotch.BFloat16 {
			t.Errorf("KV cache is %v, want bfloat16", dt)
		}
		cache.Drop()
		got, err := m.LogProbs(testPrompts, testPrompts, 1, nil)
		if err != nil {
			return err
		}
		defer got.Drop()
		if got.LogProbs.DType() != gotch.Float {
			t.Errorf("log-probs are %v, want float32", got.LogProbs.DType())
		}
		d := maxAbsDiff(got.LogProbs, want.LogProbs)
		t.Logf("MLLM log-probs: bfloat16 vs float32 %g", d)
		if d > 0.02 || d == 0 {
			t.Errorf("bfloat16 log-probs differ from float32 by %g, want (0, 0.02]", d)
		}
		// Gradients reach the bfloat16 weights.
		loss := got.LogProbs.MustSum(gotch.Float, false)
		loss.MustBackward()
		loss.MustDrop()
		g := m.P.Get("model.layers.0.mlp.up_proj.weight").MustGrad(false)
		if g.DType() != gotch.BFloat16 || maxAbs(g) == 0 {
			t.Errorf("up_proj gradient is %v, largest |g| %g; want bfloat16, non-zero", g.DType(), maxAbs(g))
		}
		g.MustDrop()

		dit, conn := newTestDiT(t)
		defer dit.Drop()
		defer conn.P.Drop()
		x := randn([]int64{2, int64(dit.Cfg.Channels), 16, 16}, 5)
		defer x.MustDrop()
		velocity := func() *ts.Tensor {
			cond := testCondition(t, conn, []int{3, 5}, 7)
			defer cond.Drop()
			v, err := dit.Velocity(x, 0.3, cond, nil, Guidance{})
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		vw := velocity()
		defer vw.MustDrop()
		dit.P.ToDType(gotch.BFloat16)
		conn.P.ToDType(gotch.BFloat16)
		vg := velocity()
		defer vg.MustDrop()
		if vg.DType() != gotch.Float {
			t.Errorf("velocity is %v, want float32", vg.DType())
		}
		scale := maxAbs(vw)
		d = maxAbsDiff(vg, vw)
		t.Logf("DiT velocity: bfloat16 vs float32 %g (values up to %g)", d, scale)
		if d > 0.02*scale || d == 0 {
			t.Errorf("bfloat16 velocity differs from float32 by %g, want (0, %g]", d, 0.02*scale)
		}
		return nil
	})
}

func TestParsePlacement(t *testing.T) {
	cases := []struct {
		device, dtype string
		want          gotch.DType
		err           string
	}{
		{"cpu", "float32", gotch.Float, ""},
		{"cpu", "bfloat16", gotch.BFloat16, ""},
		{"cuda:1", "float16", gotch.Half, ""},
		{"cpu", "float16", 0, "model.dtype float16: libtorch has no float16 matrix multiply on the CPU"},
		{"tpu", "float32", 0, `run.device "tpu"`},
		{"cpu", "float8", 0, `model.dtype "float8"`},
	}
	for _, c := range cases {
		dev, err := ParseDevice(c.device)
		var dt gotch.DType
		if err == nil {
			dt, err = ParseDType(c.dtype, dev)
		}
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s/%s: error %v, want one containing %q", c.device, c.dtype, err, c.err)
			}
			continue
		}
		if err != nil || dt != c.want {
			t.Errorf("%s/%s: %v, %v; want %v", c.device, c.dtype, dt, err, c.want)
		}
	}
	if dev, _ := ParseDevice("cuda:1"); !dev.IsCuda() || dev.Value != 1 {
		t.Errorf("cuda:1 parsed as %+v", dev)
	}
}

// maxAbs returns max |x|.
func maxAbs(x *ts.Tensor) float64 {
	return x.MustAbs(false).MustMax(true).MustTotype(gotch.Double, true).Float64Values(true)[0]
}

// scaleParams multiplies every parameter by f (sharper distributions than
// the 0.02-std initialisation gives, so that rounding shows).
func scaleParams(p *Params, f float64) {
	libtorch.NoGrad(func() {
		for _, t := range p.Tensors() {
			n := t.MustMulScalar(ts.FloatScalar(f), false)
			t.Copy_(n)
			n.MustDrop()
		}
	})
}
