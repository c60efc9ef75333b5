package model

import (
	"fmt"
	"math"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// timeEmbedDim is the width of the sinusoidal timestep features.
const timeEmbedDim = 256

// DiT is an OmniGen2-style diffusion transformer. One sequence
// [text | reference-image tokens | noisy-image tokens] goes through full
// self-attention with 3-axis RoPE, QK-RMSNorm and SwiGLU; blocks are
// modulated by the timestep with tanh gates; the output is the velocity
// (x_data − noise, OmniGen2's convention: t = 0 noise, t = 1 data) of the
// noisy tokens. Before the joint layers, refiners process the text, the
// noisy image and the reference images on their own, as in OmniGen2.
type DiT struct {
	Cfg config.DiT
	trainable
	dev gotch.Device
}

// WithoutAdapters returns a view of d without its adapters (see MLLM's).
func (d *DiT) WithoutAdapters() *DiT { return viewOf(d, func(v *DiT) { v.Adapters = nil }) }

// Recording returns a view of d that records its forward passes into r.
func (d *DiT) Recording(r *Recompute) *DiT { return viewOf(d, func(v *DiT) { v.rec = r }) }

// Latent converts between images and what the DiT denoises. The tiny
// configuration works in pixel space; a VAE (16 latent channels, 8×
// downsampling) implements the same interface at full scale.
type Latent interface {
	// Encode maps images [N, 3, H, W] in [0, 1] to latents [N, C, h, w].
	Encode(images *ts.Tensor) *ts.Tensor
	// Decode maps latents back to images in [0, 1].
	Decode(latents *ts.Tensor) *ts.Tensor
	// Channels and Scale describe the latent: C and the downsampling factor.
	Channels() int
	Scale() int
}

// PixelSpace is the identity latent: images scaled to [-1, 1].
type PixelSpace struct{}

// Encode returns 2·x − 1.
func (PixelSpace) Encode(x *ts.Tensor) *ts.Tensor {
	return x.MustMulScalar(ts.FloatScalar(2), false).MustAddScalar(ts.FloatScalar(-1), true)
}

// Decode returns clamp((x + 1) / 2, 0, 1).
func (PixelSpace) Decode(x *ts.Tensor) *ts.Tensor {
	return x.MustAddScalar(ts.FloatScalar(1), false).MustMulScalar(ts.FloatScalar(0.5), true).
		MustClamp(ts.FloatScalar(0), ts.FloatScalar(1), true)
}

// Channels is 3.
func (PixelSpace) Channels() int { return 3 }

// Scale is 1.
func (PixelSpace) Scale() int { return 1 }

func (d *DiT) tembDim() int64 { return int64(min(d.Cfg.Hidden, 1024)) }

// DiTSpecs lists the DiT's parameters (names after diffusers'
// OmniGen2Transformer2DModel).
func DiTSpecs(c config.DiT) []Spec {
	D, F := int64(c.Hidden), int64(c.FFN)
	hd := D / int64(c.Heads)
	kv := hd * int64(c.KVHeads)
	dt := int64(min(c.Hidden, 1024))
	patch := int64(c.Channels * c.Patch * c.Patch)
	std := 0.02
	lin := func(name string, out, in int64, bias bool) []Spec {
		s := []Spec{{Name: name + ".weight", Shape: []int64{out, in}, Std: std}}
		if bias {
			s = append(s, Spec{Name: name + ".bias", Shape: []int64{out}, Init: InitZeros})
		}
		return s
	}
	norm := func(name string, n int64) Spec {
		return Spec{Name: name + ".weight", Shape: []int64{n}, Init: InitOnes}
	}
	block := func(p string, modulated bool) []Spec {
		var s []Spec
		s = append(s, lin(p+"attn.to_q", D, D, false)...)
		s = append(s, lin(p+"attn.to_k", kv, D, false)...)
		s = append(s, lin(p+"attn.to_v", kv, D, false)...)
		s = append(s, lin(p+"attn.to_out.0", D, D, false)...)
		s = append(s, norm(p+"attn.norm_q", hd), norm(p+"attn.norm_k", hd))
		s = append(s, lin(p+"feed_forward.linear_1", F, D, false)...)
		s = append(s, lin(p+"feed_forward.linear_3", F, D, false)...)
		s = append(s, lin(p+"feed_forward.linear_2", D, F, false)...)
		if modulated {
			// Zero-initialised modulation: every block starts as the identity
			// plus a tanh(0)=0-gated residual.
			s = append(s, Spec{Name: p + "norm1.linear.weight", Shape: []int64{4 * D, dt}, Init: InitZeros},
				Spec{Name: p + "norm1.linear.bias", Shape: []int64{4 * D}, Init: InitZeros},
				norm(p+"norm1.norm", D))
		} else {
			s = append(s, norm(p+"norm1", D))
		}
		return append(s, norm(p+"norm2", D), norm(p+"ffn_norm1", D), norm(p+"ffn_norm2", D))
	}
	var specs []Spec
	specs = append(specs, lin("x_embedder", D, patch, true)...)
	specs = append(specs, lin("ref_image_patch_embedder", D, patch, true)...)
	specs = append(specs, lin("time_caption_embed.timestep_embedder.linear_1", dt, timeEmbedDim, true)...)
	specs = append(specs, lin("time_caption_embed.timestep_embedder.linear_2", dt, dt, true)...)
	for i := 0; i < c.RefinerLayers; i++ {
		specs = append(specs, block(fmt.Sprintf("context_refiner.%d.", i), false)...)
		specs = append(specs, block(fmt.Sprintf("noise_refiner.%d.", i), true)...)
		specs = append(specs, block(fmt.Sprintf("ref_image_refiner.%d.", i), true)...)
	}
	for i := 0; i < c.Layers; i++ {
		specs = append(specs, block(fmt.Sprintf("layers.%d.", i), true)...)
	}
	specs = append(specs, lin("norm_out.linear_1", D, dt, true)...)
	specs = append(specs, lin("norm_out.linear_2", patch, D, true)...)
	return specs
}

// NewDiT builds a DiT with freshly initialised parameters.
func NewDiT(c config.DiT, dev gotch.Device, seed uint64) (*DiT, error) {
	p, err := NewParams(DiTSpecs(c), dev, seed)
	if err != nil {
		return nil, err
	}
	return &DiT{Cfg: c, trainable: trainable{P: p}, dev: dev}, nil
}

// Drop frees the parameters.
func (d *DiT) Drop() { d.drop() }

// DiTInput is one batch for the DiT.
type DiTInput struct {
	// Noisy latents x_t [B, C, h, w].
	X *ts.Tensor
	// T holds each sample's time in [0, 1] (0 = noise, 1 = data).
	T []float64
	// Text is the condition from the connector.
	Text *Condition
	// Refs are reference-image latents [B, C, h, w] (editing, reflection),
	// or nil.
	Refs *ts.Tensor
}

// seqLayout describes where each part of the joint sequence sits.
type seqLayout struct {
	textMax, nRef, nImg int
	rows, cols          int64
}

// Forward predicts the velocity (x_data − noise) for in.X; the result has
// X's shape and is owned by the caller.
func (d *DiT) Forward(in DiTInput) (*ts.Tensor, error) {
	var s libtorch.Scope
	defer s.Close()
	c := d.Cfg
	sz := in.X.MustSize()
	if len(sz) != 4 || sz[1] != int64(c.Channels) || sz[2]%int64(c.Patch) != 0 || sz[3]%int64(c.Patch) != 0 {
		return nil, fmt.Errorf("model: DiT input has shape %v, want [B %d H W] with H, W multiples of %d", sz, c.Channels, c.Patch)
	}
	B := sz[0]
	if len(in.T) != int(B) || in.Text == nil || len(in.Text.Lens) != int(B) {
		return nil, fmt.Errorf("model: DiT batch of %d needs %d times and text conditions", B, B)
	}
	if in.Refs != nil {
		if rs := in.Refs.MustSize(); rs[0] != B || rs[1] != sz[1] || rs[2] != sz[2] || rs[3] != sz[3] {
			return nil, fmt.Errorf("model: DiT reference latents have shape %v, want %v", rs, sz)
		}
	}
	p := int64(c.Patch)
	lay := seqLayout{textMax: int(in.Text.Tokens.MustSize()[1]), rows: sz[2] / p, cols: sz[3] / p}
	lay.nImg = int(lay.rows * lay.cols)

	dt := d.P.DType()
	temb := d.timestepEmbedding(&s, in.T)                                                                               // [B, dt]
	img := linear(&s, patchify(&s, asDType(&s, in.X, dt), p), d.P.Get("x_embedder.weight"), d.P.Get("x_embedder.bias")) // [B, N, D]
	txt := asDType(&s, in.Text.Tokens, dt)
	var ref *ts.Tensor
	if in.Refs != nil {
		ref = linear(&s, patchify(&s, asDType(&s, in.Refs, dt), p), d.P.Get("ref_image_patch_embedder.weight"), d.P.Get("ref_image_patch_embedder.bias"))
		lay.nRef = lay.nImg
	}

	// Positions of the three axes for every token of the joint sequence.
	cos, sin := d.rope3(&s, in.Text.Lens, lay)
	cos, sin = asDType(&s, cos, dt), asDType(&s, sin, dt)
	// Token tensors are [B, S, D] (sequence axis 1); rope tables [B, 1, S, hd] (axis 2).
	span := func(t *ts.Tensor, start, n int) *ts.Tensor {
		axis := int64(1)
		if t.Dim() == 4 {
			axis = 2
		}
		return s.Add(t.MustNarrow(axis, int64(start), int64(n), false))
	}
	textPart := func(t *ts.Tensor) *ts.Tensor { return span(t, 0, lay.textMax) }
	refPart := func(t *ts.Tensor) *ts.Tensor { return span(t, lay.textMax, lay.nRef) }
	imgPart := func(t *ts.Tensor) *ts.Tensor { return span(t, lay.textMax+lay.nRef, lay.nImg) }
	textValid := make([][]bool, B)
	for b := range textValid {
		textValid[b] = make([]bool, lay.textMax)
		for i := 0; i < in.Text.Lens[b]; i++ {
			textValid[b][i] = true
		}
	}
	all := func(n int) [][]bool {
		v := make([][]bool, B)
		for b := range v {
			v[b] = make([]bool, n)
			for i := range v[b] {
				v[b][i] = true
			}
		}
		return v
	}
	// Refiners.
	// (gotch passes an undefined tensor for ts.None, which SDPA rejects as a
	// mask, so image-only attention gets an all-visible mask.)
	// A sample without text tokens (no prepadding, empty instruction) lets
	// its padding slots see each other in the text refiner: a query row
	// with no visible key would be NaN, and NaN·0 still poisons the joint
	// layers, where the padding is masked out.
	refinerValid := make([][]bool, B)
	for b, v := range textValid {
		refinerValid[b] = v
		if in.Text.Lens[b] == 0 {
			refinerValid[b] = make([]bool, len(v))
			for i := range refinerValid[b] {
				refinerValid[b][i] = true
			}
		}
	}
	textMask := asDType(&s, s.Add(keyMask(refinerValid, d.dev)), dt)
	imgMask := asDType(&s, s.Add(keyMask(all(lay.nImg), d.dev)), dt)
	// Under activation checkpointing the timestep embedding is cut once, as
	// the blocks and the output norm share it.
	temb = d.rec.cutInput(temb)
	block := func(p string) func(s *libtorch.Scope, t []*ts.Tensor) *ts.Tensor {
		return func(s *libtorch.Scope, t []*ts.Tensor) *ts.Tensor { return d.block(s, p, t[0], t[1], t[2], t[3], t[4]) }
	}
	for i := 0; i < c.RefinerLayers; i++ {
		txt = d.rec.layer(&s, block(fmt.Sprintf("context_refiner.%d.", i)), txt, nil, textMask, textPart(cos), textPart(sin))
		img = d.rec.layer(&s, block(fmt.Sprintf("noise_refiner.%d.", i)), img, temb, imgMask, imgPart(cos), imgPart(sin))
		if ref != nil {
			ref = d.rec.layer(&s, block(fmt.Sprintf("ref_image_refiner.%d.", i)), ref, temb, imgMask, refPart(cos), refPart(sin))
		}
	}
	// Joint layers. The first joins the streams itself, so that under
	// checkpointing its inputs are the refiners' outputs.
	parts := []*ts.Tensor{txt}
	valid := textValid
	if ref != nil {
		parts = append(parts, ref)
		valid = concatValid(valid, all(lay.nRef))
	}
	parts = append(parts, img)
	valid = concatValid(valid, all(lay.nImg))
	mask := asDType(&s, s.Add(keyMask(valid, d.dev)), dt)
	join := func(s *libtorch.Scope, xs []*ts.Tensor) *ts.Tensor {
		if len(xs) == 1 {
			return xs[0]
		}
		return s.Add(ts.MustCat(xs, 1))
	}
	for i := 0; i < c.Layers; i++ {
		n, p := len(parts), fmt.Sprintf("layers.%d.", i)
		in := append(slices.Clone(parts), temb, mask, cos, sin)
		parts = []*ts.Tensor{d.rec.layer(&s, func(s *libtorch.Scope, t []*ts.Tensor) *ts.Tensor {
			return d.block(s, p, join(s, t[:n]), t[n], t[n+1], t[n+2], t[n+3])
		}, in...)}
	}
	x := join(&s, parts)
	out := imgPart(x)
	scale := linear(&s, s.Add(temb.MustSilu(false)), d.P.Get("norm_out.linear_1.weight"), d.P.Get("norm_out.linear_1.bias"))
	h := s.Add(ts.MustLayerNorm(out, []int64{int64(c.Hidden)}, ts.None, ts.None, 1e-6, false))
	h = s.Add(h.MustMul(s.Add(scale.MustAddScalar(ts.FloatScalar(1), false).MustUnsqueeze(1, true)), false))
	v := linear(&s, h, d.P.Get("norm_out.linear_2.weight"), d.P.Get("norm_out.linear_2.bias"))
	res := unpatchify(&s, v, int64(c.Channels), sz[2], sz[3], p)
	return asFloat32(res.MustShallowClone()), nil
}

func concatValid(a, b [][]bool) [][]bool {
	out := make([][]bool, len(a))
	for i := range a {
		out[i] = append(append([]bool(nil), a[i]...), b[i]...)
	}
	return out
}

// keyMask builds an additive mask [B, 1, 1, S] that hides padded keys.
func keyMask(valid [][]bool, dev gotch.Device) *ts.Tensor {
	b, n := len(valid), len(valid[0])
	m := make([]float32, b*n)
	for i := range valid {
		for j, ok := range valid[i] {
			if !ok {
				m[i*n+j] = float32(math.Inf(-1))
			}
		}
	}
	return float32Tensor(m, []int64{int64(b), 1, 1, int64(n)}, dev)
}

// timestepEmbedding returns MLP(sinusoidal(1000·t)) [B, dt].
func (d *DiT) timestepEmbedding(s *libtorch.Scope, t []float64) *ts.Tensor {
	half := timeEmbedDim / 2
	feat := make([]float32, len(t)*timeEmbedDim)
	for b, tv := range t {
		for i := 0; i < half; i++ {
			freq := math.Exp(-math.Log(10000) * float64(i) / float64(half))
			a := 1000 * tv * freq
			feat[b*timeEmbedDim+i] = float32(math.Cos(a))
			feat[b*timeEmbedDim+half+i] = float32(math.Sin(a))
		}
	}
	x := asDType(s, s.Add(float32Tensor(feat, []int64{int64(len(t)), timeEmbedDim}, d.dev)), d.P.DType())
	p := "time_caption_embed.timestep_embedder."
	h := s.Add(linear(s, x, d.P.Get(p+"linear_1.weight"), d.P.Get(p+"linear_1.bias")).MustSilu(false))
	return linear(s, h, d.P.Get(p+"linear_2.weight"), d.P.Get(p+"linear_2.bias"))
}

// rope3 builds the cos and sin tables [B, 1, S, hd] of the joint sequence:
// text token i at (i, i, i); each image at (shift, row, col), the shift of
// the first image being the sample's text length and moving past each image.
func (d *DiT) rope3(s *libtorch.Scope, textLens []int, lay seqLayout) (cos, sin *ts.Tensor) {
	hd := d.Cfg.Hidden / d.Cfg.Heads
	axis := hd / 3
	half := axis / 2
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = 1 / math.Pow(d.Cfg.RopeTheta, float64(2*i)/float64(axis))
	}
	S := lay.textMax + lay.nRef + lay.nImg
	B := len(textLens)
	cs := make([]float32, B*S*hd)
	sn := make([]float32, B*S*hd)
	set := func(b, tok int, pos [3]float64) {
		base := (b*S + tok) * hd
		for a := 0; a < 3; a++ {
			for i := 0; i < half; i++ {
				ang := pos[a] * inv[i]
				c, si := float32(math.Cos(ang)), float32(math.Sin(ang))
				cs[base+a*axis+i], cs[base+a*axis+half+i] = c, c
				sn[base+a*axis+i], sn[base+a*axis+half+i] = si, si
			}
		}
	}
	for b := 0; b < B; b++ {
		for i := 0; i < lay.textMax; i++ {
			f := float64(min(i, max(textLens[b]-1, 0)))
			set(b, i, [3]float64{f, f, f})
		}
		shift := float64(textLens[b])
		off := lay.textMax
		for _, n := range []int{lay.nRef, lay.nImg} {
			if n == 0 {
				continue
			}
			for r := int64(0); r < lay.rows; r++ {
				for c := int64(0); c < lay.cols; c++ {
					set(b, off+int(r*lay.cols+c), [3]float64{shift, float64(r), float64(c)})
				}
			}
			off += n
			shift += float64(max(lay.rows, lay.cols))
		}
	}
	shape := []int64{int64(B), 1, int64(S), int64(hd)}
	return s.Add(float32Tensor(cs, shape, d.dev)), s.Add(float32Tensor(sn, shape, d.dev))
}

// block is one transformer block; temb nil means an unmodulated block.
// cos and sin are [B, 1, S, hd] tables for x's tokens.
func (d *DiT) block(s *libtorch.Scope, p string, x, temb, mask, cos, sin *ts.Tensor) *ts.Tensor {
	eps := 1e-5
	var scaleMSA, gateMSA, scaleMLP, gateMLP *ts.Tensor
	var h *ts.Tensor
	if temb != nil {
		mod := linear(s, s.Add(temb.MustSilu(false)), d.P.Get(p+"norm1.linear.weight"), d.P.Get(p+"norm1.linear.bias"))
		mod = s.Add(mod.MustUnsqueeze(1, false)) // [B, 1, 4D]
		D := int64(d.Cfg.Hidden)
		part := func(i int64) *ts.Tensor { return s.Add(mod.MustNarrow(-1, i*D, D, false)) }
		scaleMSA, gateMSA, scaleMLP, gateMLP = part(0), part(1), part(2), part(3)
		h = rmsNorm(s, x, d.P.Get(p+"norm1.norm.weight"), eps)
		h = s.Add(h.MustMul(s.Add(scaleMSA.MustAddScalar(ts.FloatScalar(1), false)), false))
	} else {
		h = rmsNorm(s, x, d.P.Get(p+"norm1.weight"), eps)
	}
	a := rmsNorm(s, d.attention(s, p, h, mask, cos, sin), d.P.Get(p+"norm2.weight"), eps)
	if gateMSA != nil {
		a = s.Add(a.MustMul(s.Add(gateMSA.MustTanh(false)), false))
	}
	x = s.Add(x.MustAdd(a, false))
	h = rmsNorm(s, x, d.P.Get(p+"ffn_norm1.weight"), eps)
	if scaleMLP != nil {
		h = s.Add(h.MustMul(s.Add(scaleMLP.MustAddScalar(ts.FloatScalar(1), false)), false))
	}
	lin := func(x *ts.Tensor, name string) *ts.Tensor { return d.lin(s, x, name) }
	f := swiGLU(s, h, lin, p+"feed_forward.linear_1.weight", p+"feed_forward.linear_3.weight", p+"feed_forward.linear_2.weight")
	f = rmsNorm(s, f, d.P.Get(p+"ffn_norm2.weight"), eps)
	if gateMLP != nil {
		f = s.Add(f.MustMul(s.Add(gateMLP.MustTanh(false)), false))
	}
	return s.Add(x.MustAdd(f, false))
}

// attention is full self-attention with GQA, QK-RMSNorm and 3-axis RoPE.
func (d *DiT) attention(s *libtorch.Scope, p string, x, mask, cos, sin *ts.Tensor) *ts.Tensor {
	c := d.Cfg
	sz := x.MustSize()
	B, S := sz[0], sz[1]
	nh, nkv := int64(c.Heads), int64(c.KVHeads)
	hd := int64(c.Hidden) / nh
	proj := func(name string, heads int64, norm string) *ts.Tensor {
		y := s.Add(d.lin(s, x, p+"attn."+name+".weight").MustView([]int64{B, S, heads, hd}, false))
		if norm != "" {
			y = rmsNorm(s, y, d.P.Get(p+"attn."+norm+".weight"), 1e-5)
		}
		return s.Add(y.MustTranspose(1, 2, false))
	}
	q := rope3Apply(s, proj("to_q", nh, "norm_q"), cos, sin)
	k := rope3Apply(s, proj("to_k", nkv, "norm_k"), cos, sin)
	v := proj("to_v", nkv, "")
	k, v = repeatKV(s, k, nh/nkv), repeatKV(s, v, nh/nkv)
	o := s.Add(ts.MustScaledDotProductAttention(q, k, v, mask, 0, false, nil))
	o = s.Add(o.MustTranspose(1, 2, false).MustReshape([]int64{B, S, nh * hd}, true))
	return d.lin(s, o, p+"attn.to_out.0.weight")
}

// rope3Apply rotates each third of the head dimension with its own axis.
func rope3Apply(s *libtorch.Scope, x, cos, sin *ts.Tensor) *ts.Tensor {
	hd := x.MustSize()[3]
	axis := hd / 3
	parts := make([]*ts.Tensor, 3)
	for a := int64(0); a < 3; a++ {
		xa := s.Add(x.MustNarrow(-1, a*axis, axis, false))
		ca := s.Add(cos.MustNarrow(-1, a*axis, axis, false))
		sa := s.Add(sin.MustNarrow(-1, a*axis, axis, false))
		parts[a] = applyRope(s, xa, ca, sa)
	}
	return s.Add(ts.MustCat(parts, -1))
}
