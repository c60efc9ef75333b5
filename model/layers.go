package model

import (
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// rmsNorm returns w · x / sqrt(mean(x², -1) + eps) over the last axis. A
// half-precision x is normalised in float32 and rounded back before the
// weight applies (as transformers' Qwen3RMSNorm does).
func rmsNorm(s *libtorch.Scope, x, w *ts.Tensor, eps float64) *ts.Tensor {
	dt := x.DType()
	if dt != gotch.Float {
		x = s.Add(x.MustTotype(gotch.Float, false))
	}
	ms := s.Add(x.MustSquare(false).MustMeanDim([]int64{-1}, true, gotch.Invalid, true))
	r := s.Add(ms.MustAddScalar(ts.FloatScalar(eps), false).MustRsqrt(true))
	if dt != gotch.Float {
		return s.Add(x.MustMul(r, false).MustTotype(dt, true).MustMul(w, true))
	}
	return s.Add(x.MustMul(r, false).MustMul(w, true))
}

// asDType returns x in dt: x itself when it already is, else a converted
// copy the scope owns (inputs made in float32 meeting half-precision
// weights).
func asDType(s *libtorch.Scope, x *ts.Tensor, dt gotch.DType) *ts.Tensor {
	if x.DType() == dt {
		return x
	}
	return s.Add(x.MustTotype(dt, false))
}

// asFloat32 returns x as a float32 tensor the caller owns, dropping x when
// it converts (outputs leave a module in float32 whatever it computes in).
func asFloat32(x *ts.Tensor) *ts.Tensor {
	if x.DType() == gotch.Float {
		return x
	}
	return x.MustTotype(gotch.Float, true)
}

// linear returns x·wᵀ (+ b when b is not nil).
func linear(s *libtorch.Scope, x, w, b *ts.Tensor) *ts.Tensor {
	if b == nil {
		b = ts.None
	}
	return s.Add(ts.MustLinear(x, w, b))
}

// swiGLU returns down(silu(gate(x)) · up(x)), the three projections
// applied by lin to their weights' names.
func swiGLU(s *libtorch.Scope, x *ts.Tensor, lin func(x *ts.Tensor, name string) *ts.Tensor, gate, up, down string) *ts.Tensor {
	g := s.Add(lin(x, gate).MustSilu(false))
	u := lin(x, up)
	return lin(s.Add(g.MustMul(u, false)), down)
}

// rotateHalf returns cat(-x[..., d/2:], x[..., :d/2]) (HuggingFace RoPE).
func rotateHalf(s *libtorch.Scope, x *ts.Tensor) *ts.Tensor {
	size := x.MustSize()
	d := size[len(size)-1]
	x1 := s.Add(x.MustNarrow(-1, 0, d/2, false))
	x2 := s.Add(x.MustNarrow(-1, d/2, d/2, false))
	return s.Add(ts.MustCat([]*ts.Tensor{s.Add(x2.MustNeg(false)), x1}, -1))
}

// applyRope returns x·cos + rotateHalf(x)·sin; cos and sin broadcast to x.
func applyRope(s *libtorch.Scope, x, cos, sin *ts.Tensor) *ts.Tensor {
	a := s.Add(x.MustMul(cos, false))
	b := s.Add(rotateHalf(s, x).MustMul(sin, false))
	return s.Add(a.MustAdd(b, false))
}

// ropeTable returns cos and sin tables [n, dim] for positions 0..n-1, laid
// out as HuggingFace does (the dim/2 frequencies twice). The arithmetic
// follows PyTorch's float32 steps so that tables match HuggingFace's bit for
// bit where float32 rounding allows.
func ropeTable(n, dim int, theta float64) (cos, sin []float32) {
	half := dim / 2
	inv := make([]float32, half)
	for i := 0; i < half; i++ {
		exp := float32(2*i) / float32(dim)
		inv[i] = float32(1) / float32(math.Pow(theta, float64(exp)))
	}
	cos = make([]float32, n*dim)
	sin = make([]float32, n*dim)
	for p := 0; p < n; p++ {
		for i := 0; i < half; i++ {
			a := float32(p) * inv[i]
			c, sn := float32(math.Cos(float64(a))), float32(math.Sin(float64(a)))
			cos[p*dim+i], cos[p*dim+half+i] = c, c
			sin[p*dim+i], sin[p*dim+half+i] = sn, sn
		}
	}
	return cos, sin
}

// repeatKV expands [B, nKV, S, hd] to [B, nKV·rep, S, hd] (grouped-query
// attention), repeating each KV head rep times consecutively.
func repeatKV(s *libtorch.Scope, x *ts.Tensor, rep int64) *ts.Tensor {
	if rep == 1 {
		return x
	}
	sz := x.MustSize()
	e := s.Add(x.MustUnsqueeze(2, false).MustExpand([]int64{sz[0], sz[1], rep, sz[2], sz[3]}, false, true))
	return s.Add(e.MustReshape([]int64{sz[0], sz[1] * rep, sz[2], sz[3]}, false))
}

// int64Tensor uploads ids with the given shape.
func int64Tensor(ids []int64, shape []int64, dev gotch.Device) *ts.Tensor {
	t := ts.MustOfSlice(ids).MustView(shape, true)
	if dev != gotch.CPU {
		t = t.MustTo(dev, true)
	}
	return t
}

// float32Tensor uploads values with the given shape.
func float32Tensor(v []float32, shape []int64, dev gotch.Device) *ts.Tensor {
	t := ts.MustOfSlice(v).MustView(shape, true)
	if dev != gotch.CPU {
		t = t.MustTo(dev, true)
	}
	return t
}

// patchify turns images [N, C, H, W] into patches [N, (H/p)·(W/p), C·p·p],
// row-major over the patch grid.
func patchify(s *libtorch.Scope, x *ts.Tensor, p int64) *ts.Tensor {
	sz := x.MustSize()
	n, c, h, w := sz[0], sz[1], sz[2], sz[3]
	v := s.Add(x.MustView([]int64{n, c, h / p, p, w / p, p}, false))
	perm := s.Add(v.MustPermute([]int64{0, 2, 4, 1, 3, 5}, false))
	return s.Add(perm.MustReshape([]int64{n, (h / p) * (w / p), c * p * p}, false))
}

// unpatchify inverts patchify for images of side h×w.
func unpatchify(s *libtorch.Scope, x *ts.Tensor, c, h, w, p int64) *ts.Tensor {
	n := x.MustSize()[0]
	v := s.Add(x.MustView([]int64{n, h / p, w / p, c, p, p}, false))
	perm := s.Add(v.MustPermute([]int64{0, 3, 1, 4, 2, 5}, false))
	return s.Add(perm.MustReshape([]int64{n, c, h, w}, false))
}
