package model

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// This file is the Qwen3-VL vision side of the MLLM (model.mllm.vision:
// qwen3vl): the ViT of transformers' Qwen3VLVisionModel with its patch
// merger and DeepStack mergers, and the text model's interleaved
// multimodal rotary positions. Names follow Qwen3VLForConditionalGeneration's
// checkpoints: model.visual.*, model.language_model.*, lm_head.weight.
//
// Shapes: N images of C×H×W pixels in [-1, 1] (the Qwen3-VL processor's
// normalisation, mean 0.5 and std 0.5 of [0, 1] pixels); p the patch size,
// m the spatial merge; gh×gw = H/p × W/p patches per image, S = gh·gw; D the
// ViT width. Patches are ordered as the processor flattens them: by m×m
// block (row-major over the blocks), and row-major inside a block, so that
// m² consecutive patches merge into one LLM token.

// vitEps is the epsilon of every LayerNorm of the ViT and its mergers.
const vitEps = 1e-6

// vitRopeTheta is the base of the ViT's 2-D rotary embedding.
const vitRopeTheta = 10000

// textPrefix is the name prefix of the text model's parameters:
// Qwen3ForCausalLM's "model." or Qwen3-VL's "model.language_model.".
func textPrefix(c config.MLLM) string {
	if c.IsQwen3VL() {
		return "model.language_model."
	}
	return "model."
}

// vitSpecs lists the parameters of Qwen3-VL's vision tower whose merged
// output has width out.
func vitSpecs(c config.MLLM, channels, out int) []Spec {
	v := c.ViT
	d, f, o := int64(v.Hidden), int64(v.FFN), int64(out)
	merged := d * int64(v.SpatialMerge*v.SpatialMerge)
	p, tp := int64(c.VisionPatch), int64(v.TemporalPatch)
	std := 0.02
	norm := func(name string, n int64) []Spec {
		return []Spec{{Name: name + ".weight", Shape: []int64{n}, Init: InitOnes}, {Name: name + ".bias", Shape: []int64{n}, Init: InitZeros}}
	}
	lin := func(name string, out, in int64) []Spec {
		return []Spec{{Name: name + ".weight", Shape: []int64{out, in}, Std: std}, {Name: name + ".bias", Shape: []int64{out}, Init: InitZeros}}
	}
	merger := func(name string, normWidth int64) []Spec {
		s := norm(name+".norm", normWidth)
		s = append(s, lin(name+".linear_fc1", merged, merged)...)
		return append(s, lin(name+".linear_fc2", o, merged)...)
	}
	specs := []Spec{
		// The checkpoint's Conv3d weight [D, C, T, p, p]; applied as a linear
		// map of flattened patches (kernel = stride).
		{Name: "model.visual.patch_embed.proj.weight", Shape: []int64{d, int64(channels), tp, p, p}, Std: std},
		{Name: "model.visual.patch_embed.proj.bias", Shape: []int64{d}, Init: InitZeros},
		{Name: "model.visual.pos_embed.weight", Shape: []int64{int64(v.PositionEmbeddings), d}, Std: std},
	}
	for b := 0; b < v.Depth; b++ {
		pre := fmt.Sprintf("model.visual.blocks.%d.", b)
		specs = append(specs, norm(pre+"norm1", d)...)
		specs = append(specs, norm(pre+"norm2", d)...)
		specs = append(specs, lin(pre+"attn.qkv", 3*d, d)...)
		specs = append(specs, lin(pre+"attn.proj", d, d)...)
		specs = append(specs, lin(pre+"mlp.linear_fc1", f, d)...)
		specs = append(specs, lin(pre+"mlp.linear_fc2", d, f)...)
	}
	specs = append(specs, merger("model.visual.merger", d)...)
	for k := range v.DeepStack {
		specs = append(specs, merger(fmt.Sprintf("model.visual.deepstack_merger_list.%d", k), merged)...)
	}
	return specs
}

// visionOut is what the Qwen3-VL tower hands the text model: the merged
// image tokens (scattered into the embeddings) and, per DeepStack entry,
// features added after the first layers at the image tokens.
type visionOut struct {
	mask      *ts.Tensor   // [B, T, hidden] bool: the image tokens' rows
	deepstack []*ts.Tensor // [B, T, hidden] each: zeros but at the image tokens
}

// imageGrid is the patch grid of one image of h×w pixels.
func imageGrid(c config.MLLM, h, w int64) (gh, gw int64) {
	return h / int64(c.VisionPatch), w / int64(c.VisionPatch)
}

// qwen3VLImages runs the ViT over images [N, C, H, W] and returns the merged
// tokens [N·S/m², hidden] and the DeepStack features, each [N·S/m², hidden].
func (m *MLLM) qwen3VLImages(s *libtorch.Scope, images *ts.Tensor) (*ts.Tensor, []*ts.Tensor, error) {
	c, v := m.Cfg, m.Cfg.ViT
	sz := images.MustSize()
	n, ch, h, w := sz[0], sz[1], sz[2], sz[3]
	p, mg := int64(c.VisionPatch), int64(v.SpatialMerge)
	if h%(p*mg) != 0 || w%(p*mg) != 0 {
		return nil, nil, fmt.Errorf("model: a %d×%d image is not a whole number of %d-pixel merged patches", h, w, p*mg)
	}
	gh, gw := imageGrid(c, h, w)
	S, D, tp := gh*gw, int64(v.Hidden), int64(v.TemporalPatch)

	x := qwen3VLPatches(s, c, images)
	wConv := s.Add(m.P.Get("model.visual.patch_embed.proj.weight").MustView([]int64{D, ch * tp * p * p}, false))
	x = linear(s, x, wConv, m.P.Get("model.visual.patch_embed.proj.bias"))

	pos := m.vitPositionEmbedding(s, gh, gw) // [S, D]
	x = s.Add(x.MustView([]int64{n, S, D}, false).MustAdd(pos, true))

	cos, sin := vitRope(c, gh, gw, m.dev) // [S, D/heads]
	s.Add(cos)
	s.Add(sin)

	var deep []*ts.Tensor
	for b := 0; b < v.Depth; b++ {
		x = m.vitBlock(s, b, x, cos, sin)
		for k, at := range v.DeepStack {
			if at == b {
				deep = append(deep, m.patchMerger(s, fmt.Sprintf("model.visual.deepstack_merger_list.%d", k), x, true))
			}
		}
	}
	if len(deep) != len(v.DeepStack) {
		return nil, nil, fmt.Errorf("model: vit.deepstack %v names blocks outside the ViT's %d", v.DeepStack, v.Depth)
	}
	return m.patchMerger(s, "model.visual.merger", x, false), deep, nil
}

// qwen3VLPatches flattens images [N, C, H, W] into the patches the ViT
// embeds, [N·S, C·T·p·p], as Qwen3-VL's image processor lays them out: a
// still image fills every temporal slot of a patch with the same pixels,
// and patches come in merge-block order.
func qwen3VLPatches(s *libtorch.Scope, c config.MLLM, images *ts.Tensor) *ts.Tensor {
	sz := images.MustSize()
	n, ch, h, w := sz[0], sz[1], sz[2], sz[3]
	p, mg, tp := int64(c.VisionPatch), int64(c.ViT.SpatialMerge), int64(c.ViT.TemporalPatch)
	gh, gw := imageGrid(c, h, w)
	x := s.Add(images.MustView([]int64{n, ch, gh / mg, mg, p, gw / mg, mg, p}, false))
	x = s.Add(x.MustPermute([]int64{0, 2, 5, 3, 6, 1, 4, 7}, false)) // N, bh, bw, ih, iw, C, py, px
	x = s.Add(x.MustUnsqueeze(6, false).MustExpand([]int64{n, gh / mg, gw / mg, mg, mg, ch, tp, p, p}, false, true))
	return s.Add(x.MustReshape([]int64{n * gh * gw, ch * tp * p * p}, false))
}

// vitBlock is one ViT block on x [N, S, D]: pre-LayerNorm full attention
// inside each image with 2-D RoPE, then a GELU (tanh) MLP.
func (m *MLLM) vitBlock(s *libtorch.Scope, b int, x, cos, sin *ts.Tensor) *ts.Tensor {
	v := m.Cfg.ViT
	pre := fmt.Sprintf("model.visual.blocks.%d.", b)
	sz := x.MustSize()
	n, S, D := sz[0], sz[1], sz[2]
	heads := int64(v.Heads)
	hd := D / heads

	h := layerNorm(s, x, m.P.Get(pre+"norm1.weight"), m.P.Get(pre+"norm1.bias"))
	qkv := linear(s, h, m.P.Get(pre+"attn.qkv.weight"), m.P.Get(pre+"attn.qkv.bias"))
	qkv = s.Add(qkv.MustView([]int64{n, S, 3, heads, hd}, false).MustPermute([]int64{2, 0, 3, 1, 4}, true)) // 3, N, heads, S, hd
	q := vitApplyRope(s, s.Add(qkv.MustSelect(0, 0, false)), cos, sin)
	k := vitApplyRope(s, s.Add(qkv.MustSelect(0, 1, false)), cos, sin)
	val := s.Add(qkv.MustSelect(0, 2, false))
	// Full attention inside each image: softmax(q·kᵀ/√hd)·v, the softmax in
	// float32.
	kt := s.Add(k.MustTranspose(-2, -1, false))
	w := s.Add(q.MustMatmul(kt, false).MustMulScalar(ts.FloatScalar(1/math.Sqrt(float64(hd))), true))
	w = asDType(s, s.Add(w.MustSoftmax(-1, gotch.Float, false)), q.DType())
	o := s.Add(w.MustMatmul(val, false))
	o = s.Add(o.MustTranspose(1, 2, false).MustReshape([]int64{n, S, D}, true))
	o = linear(s, o, m.P.Get(pre+"attn.proj.weight"), m.P.Get(pre+"attn.proj.bias"))
	x = s.Add(x.MustAdd(o, false))

	h = layerNorm(s, x, m.P.Get(pre+"norm2.weight"), m.P.Get(pre+"norm2.bias"))
	h = linear(s, h, m.P.Get(pre+"mlp.linear_fc1.weight"), m.P.Get(pre+"mlp.linear_fc1.bias"))
	h = s.Add(h.MustGelu("tanh", false))
	h = linear(s, h, m.P.Get(pre+"mlp.linear_fc2.weight"), m.P.Get(pre+"mlp.linear_fc2.bias"))
	return s.Add(x.MustAdd(h, false))
}

// patchMerger turns x [N, S, D] into [N·S/m², out]: each m×m block of
// patches concatenated, then LayerNorm, Linear, GELU (exact), Linear. The
// main merger normalises each patch before the concatenation; the DeepStack
// mergers (postShuffle) normalise the concatenation.
func (m *MLLM) patchMerger(s *libtorch.Scope, name string, x *ts.Tensor, postShuffle bool) *ts.Tensor {
	sz := x.MustSize()
	mm := int64(m.Cfg.ViT.SpatialMerge * m.Cfg.ViT.SpatialMerge)
	width := sz[2] * mm
	w, b := m.P.Get(name+".norm.weight"), m.P.Get(name+".norm.bias")
	if postShuffle {
		x = layerNorm(s, s.Add(x.MustReshape([]int64{-1, width}, false)), w, b)
	} else {
		x = s.Add(layerNorm(s, x, w, b).MustReshape([]int64{-1, width}, false))
	}
	x = linear(s, x, m.P.Get(name+".linear_fc1.weight"), m.P.Get(name+".linear_fc1.bias"))
	x = s.Add(x.MustGelu("none", false))
	return linear(s, x, m.P.Get(name+".linear_fc2.weight"), m.P.Get(name+".linear_fc2.bias"))
}

// layerNorm is LayerNorm over the last axis with the ViT's epsilon.
func layerNorm(s *libtorch.Scope, x, w, b *ts.Tensor) *ts.Tensor {
	sz := x.MustSize()
	return s.Add(ts.MustLayerNorm(x, []int64{sz[len(sz)-1]}, w, b, vitEps, false))
}

// vitPositionEmbedding returns the learned position table interpolated
// bilinearly from its side×side grid to gh×gw patches, [S, D] in
// merge-block order. The sample points are linspace(0, side−1) along each
// axis in float32 and the four corner weights are float32 products, as
// transformers' Qwen3VLVisionModel.fast_pos_embed_interpolate computes them.
func (m *MLLM) vitPositionEmbedding(s *libtorch.Scope, gh, gw int64) *ts.Tensor {
	side := int64(math.Sqrt(float64(m.Cfg.ViT.PositionEmbeddings)))
	mg := int64(m.Cfg.ViT.SpatialMerge)
	hs, ws := linspace32(float32(side-1), gh), linspace32(float32(side-1), gw)
	S := gh * gw
	idx := make([][]int64, 4)
	wts := make([][]float32, 4)
	for k := range idx {
		idx[k] = make([]int64, S)
		wts[k] = make([]float32, S)
	}
	// Patch t of the merge-block order sits at row r, column c.
	t := 0
	for br := int64(0); br < gh/mg; br++ {
		for bc := int64(0); bc < gw/mg; bc++ {
			for ir := int64(0); ir < mg; ir++ {
				for ic := int64(0); ic < mg; ic++ {
					r, c := br*mg+ir, bc*mg+ic
					hf, wf := int64(hs[r]), int64(ws[c])
					hc, wc := min(hf+1, side-1), min(wf+1, side-1)
					dh, dw := hs[r]-float32(hf), ws[c]-float32(wf)
					idx[0][t], wts[0][t] = hf*side+wf, (1-dh)*(1-dw)
					idx[1][t], wts[1][t] = hf*side+wc, (1-dh)*dw
					idx[2][t], wts[2][t] = hc*side+wf, dh*(1-dw)
					idx[3][t], wts[3][t] = hc*side+wc, dh*dw
					t++
				}
			}
		}
	}
	table := m.P.Get("model.visual.pos_embed.weight")
	var sum *ts.Tensor
	for k := range idx {
		ids := s.Add(int64Tensor(idx[k], []int64{S}, m.dev))
		e := s.Add(ts.MustEmbedding(table, ids, -1, false, false))
		wt := asDType(s, s.Add(float32Tensor(wts[k], []int64{S, 1}, m.dev)), table.DType())
		e = s.Add(e.MustMul(wt, false))
		if sum == nil {
			sum = e
		} else {
			sum = s.Add(sum.MustAdd(e, false))
		}
	}
	return sum
}

// linspace32 returns n float32 points from 0 to end inclusive, computed as
// PyTorch's CPU linspace does (the first half counted up from the start,
// the second down from the end).
func linspace32(end float32, n int64) []float32 {
	out := make([]float32, n)
	if n == 1 {
		return out
	}
	step := end / float32(n-1)
	for i := int64(0); i < n; i++ {
		if i < n/2 {
			out[i] = step * float32(i)
		} else {
			out[i] = end - step*float32(n-1-i)
		}
	}
	return out
}

// vitRope returns the ViT's 2-D rotary tables [S, hd] for a gh×gw grid in
// merge-block order: a head's first quarter of frequencies turns with the
// patch row, the second with the column, and the second half of the head
// repeats the first (rotate-half layout), as in transformers'
// Qwen3VLVisionModel.rot_pos_emb.
func vitRope(c config.MLLM, gh, gw int64, dev gotch.Device) (cos, sin *ts.Tensor) {
	hd := c.ViT.Hidden / c.ViT.Heads
	dim := hd / 2 // rotary dims per axis pair
	inv := make([]float32, dim/2)
	for i := range inv {
		exp := float32(2*i) / float32(dim)
		inv[i] = float32(1) / float32(math.Pow(vitRopeTheta, float64(exp)))
	}
	mg := int64(c.ViT.SpatialMerge)
	S := gh * gw
	cs := make([]float32, S*int64(hd))
	sn := make([]float32, S*int64(hd))
	t := int64(0)
	for br := int64(0); br < gh/mg; br++ {
		for bc := int64(0); bc < gw/mg; bc++ {
			for ir := int64(0); ir < mg; ir++ {
				for ic := int64(0); ic < mg; ic++ {
					r, col := br*mg+ir, bc*mg+ic
					row := cs[t*int64(hd) : (t+1)*int64(hd)]
					srow := sn[t*int64(hd) : (t+1)*int64(hd)]
					for i, f := range inv {
						for axis, p := range []int64{r, col} {
							a := float64(float32(p) * f)
							j := axis*len(inv) + i
							row[j], row[dim+j] = float32(math.Cos(a)), float32(math.Cos(a))
							srow[j], srow[dim+j] = float32(math.Sin(a)), float32(math.Sin(a))
						}
					}
					t++
				}
			}
		}
	}
	return float32Tensor(cs, []int64{S, int64(hd)}, dev), float32Tensor(sn, []int64{S, int64(hd)}, dev)
}

// vitApplyRope rotates x [N, heads, S, hd] by the tables [S, hd] in
// float32 and returns it in x's dtype.
func vitApplyRope(s *libtorch.Scope, x, cos, sin *ts.Tensor) *ts.Tensor {
	dt := x.DType()
	r := applyRope(s, asDType(s, x, gotch.Float), cos, sin)
	return asDType(s, r, dt)
}

// mropeAxes returns, per rotary frequency of the text model's head, which
// position axis turns it (0 temporal, 1 height, 2 width): the interleaved
// layout of transformers' Qwen3VLTextRotaryEmbedding.apply_interleaved_mrope,
// where frequency i belongs to height when i ≡ 1 (mod 3) and i < 3·section[1],
// to width when i ≡ 2 (mod 3) and i < 3·section[2], else to time.
func mropeAxes(section []int, half int) []int {
	axes := make([]int, half)
	for i := range axes {
		switch {
		case i%3 == 1 && i < 3*section[1]:
			axes[i] = 1
		case i%3 == 2 && i < 3*section[2]:
			axes[i] = 2
		}
	}
	return axes
}

// mropePositions returns the three rotary position axes [3][B·T] of the
// tokens of in, as transformers' Qwen3VLModel.get_rope_index assigns them:
// text tokens keep one position on all three axes; the tokens of an image
// of gh×gw merged patches share the position base of the image's first
// token on the time axis and add their row and column on the height and
// width axes; the text after an image continues at base + max(gh, gw).
// in.positions are the 1-D positions (0 at a sequence's first real token);
// shift[b] is how far the 1-D positions of row b are already ahead of the
// rotary ones (images earlier in a KV cache), updated in place.
func (m *MLLM) mropePositions(in *forwardInput, gh, gw int64, shift []int64) ([3][]int64, error) {
	var out [3][]int64
	for a := range out {
		out[a] = make([]int64, len(in.ids))
	}
	n := gh * gw
	pad := int64(m.Special.ImagePad)
	for b := 0; b < in.batch; b++ {
		k := int64(0) // index inside the current image
		var base int64
		for j := b * in.t; j < (b+1)*in.t; j++ {
			if in.ids[j] != pad {
				if k != 0 {
					return out, fmt.Errorf("model: sequence %d: an image of %d tokens ends after %d", b, n, k)
				}
				p := in.positions[j] - shift[b]
				out[0][j], out[1][j], out[2][j] = p, p, p
				continue
			}
			if k == 0 {
				base = in.positions[j] - shift[b]
			}
			out[0][j], out[1][j], out[2][j] = base, base+k/gw, base+k%gw
			if k++; k == n {
				shift[b] += n - max(gh, gw)
				k = 0
			}
		}
		if k != 0 {
			return out, fmt.Errorf("model: sequence %d: an image of %d tokens ends after %d", b, n, k)
		}
	}
	return out, nil
}

// mropeTables returns the text model's cos and sin [B, 1, T, head_dim] for
// the three position axes pos: each frequency's column from the table of
// its axis (mropeAxes), both halves of the head alike.
func (m *MLLM) mropeTables(s *libtorch.Scope, pos [3][]int64, B, T int64) (cos, sin *ts.Tensor) {
	c := m.Cfg
	hd := int64(c.HeadDim)
	axes := mropeAxes(c.MRopeSection, c.HeadDim/2)
	for _, tab := range []struct {
		src *ts.Tensor
		dst **ts.Tensor
	}{{m.cos, &cos}, {m.sin, &sin}} {
		var acc *ts.Tensor
		for a := 0; a < 3; a++ {
			sel := make([]float32, hd)
			for i, ax := range axes {
				if ax == a {
					sel[i], sel[i+len(axes)] = 1, 1
				}
			}
			ids := s.Add(int64Tensor(pos[a], []int64{B * T}, m.dev))
			g := s.Add(tab.src.MustIndexSelect(0, ids, false))
			g = s.Add(g.MustMul(s.Add(float32Tensor(sel, []int64{1, hd}, m.dev)), false))
			if acc == nil {
				acc = g
			} else {
				acc = s.Add(acc.MustAdd(g, false))
			}
		}
		*tab.dst = s.Add(acc.MustView([]int64{B, 1, T, hd}, false))
	}
	return cos, sin
}

// qwen3VLEmbed puts the ViT's merged tokens in place of the <|image_pad|>
// tokens of x [B, T, hidden] (ids [B, T]) and returns the DeepStack
// features laid out like x.
func (m *MLLM) qwen3VLEmbed(s *libtorch.Scope, x, ids, images *ts.Tensor, nPad int) (*ts.Tensor, *visionOut, error) {
	tokens, deep, err := m.qwen3VLImages(s, asDType(s, images, m.P.DType()))
	if err != nil {
		return nil, nil, err
	}
	if got := int(tokens.MustSize()[0]); got != nPad {
		return nil, nil, fmt.Errorf("model: %d <|image_pad|> tokens for %d merged image patches", nPad, got)
	}
	mask := s.Add(ids.MustEq(ts.IntScalar(int64(m.Special.ImagePad)), false).MustUnsqueeze(-1, true).
		MustExpand(x.MustSize(), false, true))
	out := &visionOut{mask: mask}
	for _, d := range deep {
		z := s.Add(x.MustZerosLike(false))
		out.deepstack = append(out.deepstack, s.Add(z.MustMaskedScatter(mask, d, false)))
	}
	return s.Add(x.MustMaskedScatter(mask, tokens, false)), out, nil
}
