package model

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// SpecialIDs are the token ids the models treat specially.
type SpecialIDs struct {
	Pad      int // padding (never attended to)
	EOS      int // ends a generation (<|im_end|>)
	ThinkEnd int // </think>: VGI-refine keeps the tokens after the first one
	ImagePad int // <|image_pad|>: replaced by vision patch embeddings
}

// MLLM is a Qwen3-style decoder-only language model with a vision tower:
// a small patch embedder, or with model.mllm.vision: qwen3vl Qwen3-VL's
// ViT, DeepStack and multimodal RoPE (qwen3vl.go). Parameter names follow
// HuggingFace's Qwen3ForCausalLM (model.embed_tokens.weight,
// model.layers.N.self_attn.q_proj.weight, …) or, for Qwen3-VL,
// Qwen3VLForConditionalGeneration (model.language_model.…, model.visual.…),
// so its safetensors load into transformers and back.
type MLLM struct {
	Cfg     config.MLLM
	Vocab   int
	Special SpecialIDs
	// AllStates makes InstructionStates return the states of the whole
	// sequence instead of those after the first </think> (the ALL
	// ablation; config model.connector.states).
	AllStates bool
	trainable
	dev gotch.Device
	cos *ts.Tensor // [MaxSeqLen, HeadDim]
	sin *ts.Tensor
}

// WithoutAdapters returns a view of m without its adapters: the base a
// LoRA run trains against. A view shares m's weights: do not Drop it.
func (m *MLLM) WithoutAdapters() *MLLM { return viewOf(m, func(v *MLLM) { v.Adapters = nil }) }

// Recording returns a view of m that records its forward passes into r
// (activation checkpointing, see Recompute); it refuses a KV cache.
func (m *MLLM) Recording(r *Recompute) *MLLM { return viewOf(m, func(v *MLLM) { v.rec = r }) }

// MLLMSpecs lists the parameters of an MLLM with vocab tokens.
// visionChannels is the number of image channels of the vision tower
// (3 for RGB); 0 leaves the tower out (pure text model).
func MLLMSpecs(c config.MLLM, vocab, visionChannels int) []Spec {
	h, hd, f := int64(c.Hidden), int64(c.HeadDim), int64(c.FFN)
	nq, nkv := int64(c.Heads)*hd, int64(c.KVHeads)*hd
	std := 0.02
	tp := textPrefix(c)
	specs := []Spec{{Name: tp + "embed_tokens.weight", Shape: []int64{int64(vocab), h}, Std: std}}
	for l := 0; l < c.Layers; l++ {
		p := fmt.Sprintf("%slayers.%d.", tp, l)
		specs = append(specs,
			Spec{Name: p + "input_layernorm.weight", Shape: []int64{h}, Init: InitOnes},
			Spec{Name: p + "self_attn.q_proj.weight", Shape: []int64{nq, h}, Std: std},
			Spec{Name: p + "self_attn.k_proj.weight", Shape: []int64{nkv, h}, Std: std},
			Spec{Name: p + "self_attn.v_proj.weight", Shape: []int64{nkv, h}, Std: std},
			Spec{Name: p + "self_attn.o_proj.weight", Shape: []int64{h, nq}, Std: std},
			Spec{Name: p + "self_attn.q_norm.weight", Shape: []int64{hd}, Init: InitOnes},
			Spec{Name: p + "self_attn.k_norm.weight", Shape: []int64{hd}, Init: InitOnes},
			Spec{Name: p + "post_attention_layernorm.weight", Shape: []int64{h}, Init: InitOnes},
			Spec{Name: p + "mlp.gate_proj.weight", Shape: []int64{f, h}, Std: std},
			Spec{Name: p + "mlp.up_proj.weight", Shape: []int64{f, h}, Std: std},
			Spec{Name: p + "mlp.down_proj.weight", Shape: []int64{h, f}, Std: std},
		)
	}
	specs = append(specs, Spec{Name: tp + "norm.weight", Shape: []int64{h}, Init: InitOnes})
	if !c.TieEmbeddings {
		specs = append(specs, Spec{Name: "lm_head.weight", Shape: []int64{int64(vocab), h}, Std: std})
	}
	if visionChannels > 0 && c.IsQwen3VL() {
		return append(specs, vitSpecs(c, visionChannels, c.Hidden)...)
	}
	if visionChannels > 0 {
		patch := int64(visionChannels * c.VisionPatch * c.VisionPatch)
		specs = append(specs,
			Spec{Name: "visual.patch_embed.proj.weight", Shape: []int64{h, patch}, Std: std},
			Spec{Name: "visual.patch_embed.proj.bias", Shape: []int64{h}, Init: InitZeros},
			Spec{Name: "visual.norm.weight", Shape: []int64{h}, Init: InitOnes},
		)
	}
	return specs
}

// NewMLLM builds an MLLM with freshly initialised parameters. vision is
// false for a text-only model (no patch embedder), e.g. to load a plain
// Qwen3 checkpoint.
func NewMLLM(c config.MLLM, vocab int, special SpecialIDs, vision bool, dev gotch.Device, seed uint64) (*MLLM, error) {
	if vocab <= 0 {
		return nil, fmt.Errorf("model: MLLM vocabulary size must be positive, got %d", vocab)
	}
	channels := 0
	if vision {
		channels = 3
	}
	p, err := NewParams(MLLMSpecs(c, vocab, channels), dev, seed)
	if err != nil {
		return nil, err
	}
	cos, sin := ropeTable(c.MaxSeqLen, c.HeadDim, c.RopeTheta)
	return &MLLM{
		Cfg: c, Vocab: vocab, Special: special, trainable: trainable{P: p}, dev: dev,
		cos: float32Tensor(cos, []int64{int64(c.MaxSeqLen), int64(c.HeadDim)}, dev),
		sin: float32Tensor(sin, []int64{int64(c.MaxSeqLen), int64(c.HeadDim)}, dev),
	}, nil
}

// Drop frees the model's tensors.
func (m *MLLM) Drop() {
	m.drop()
	m.cos.MustDrop()
	m.sin.MustDrop()
}

// KVCache holds the keys and values of every layer for a batch, allocated
// for a maximum length.
type KVCache struct {
	k, v []*ts.Tensor // per layer [B, nKV, max, hd]
	len  int          // positions filled
	max  int
	// ropeShift is, per sequence, how far its 1-D positions run ahead of
	// its multimodal rotary positions after the images it holds (Qwen3-VL).
	ropeShift []int64
}

// NewKVCache allocates a cache for batch sequences of up to max positions.
func (m *MLLM) NewKVCache(batch, max int) *KVCache {
	c := &KVCache{max: max, ropeShift: make([]int64, batch)}
	shape := []int64{int64(batch), int64(m.Cfg.KVHeads), int64(max), int64(m.Cfg.HeadDim)}
	for l := 0; l < m.Cfg.Layers; l++ {
		c.k = append(c.k, ts.MustZeros(shape, m.P.DType(), m.dev))
		c.v = append(c.v, ts.MustZeros(shape, m.P.DType(), m.dev))
	}
	return c
}

// Drop frees the cache.
func (c *KVCache) Drop() {
	for i := range c.k {
		c.k[i].MustDrop()
		c.v[i].MustDrop()
	}
}

// forwardInput is one call of the decoder.
type forwardInput struct {
	ids       []int64 // [B*T] row-major
	batch, t  int
	positions []int64    // [B*T] rotary positions
	keyValid  [][]bool   // [B][past+T]: which keys may be attended to (not padding)
	images    *ts.Tensor // [N, 3, H, W] in [-1, 1] or nil
	cache     *KVCache   // nil: no cache
	hidden    bool       // also return the last two layers' hidden states
}

// forwardOutput holds owned tensors; the caller drops them.
type forwardOutput struct {
	logits     *ts.Tensor // [B, T, V]
	prev, last *ts.Tensor // [B, T, H]: hidden_states[-2] and [-1] (after the final norm)
}

func (o *forwardOutput) drop() {
	for _, t := range []*ts.Tensor{o.logits, o.prev, o.last} {
		if t != nil {
			t.MustDrop()
		}
	}
}

// attnMask builds the additive attention mask [B, 1, T, past+T]: query t of
// sequence b sees key s when s ≤ past+t and the key is not padding. A query
// always sees itself, so padded rows never turn into NaN.
func attnMask(in *forwardInput, past int, dev gotch.Device) *ts.Tensor {
	s := past + in.t
	m := make([]float32, in.batch*in.t*s)
	inf := float32(math.Inf(-1))
	for b := 0; b < in.batch; b++ {
		for q := 0; q < in.t; q++ {
			row := m[(b*in.t+q)*s : (b*in.t+q+1)*s]
			for k := 0; k < s; k++ {
				if k > past+q || (!in.keyValid[b][k] && k != past+q) {
					row[k] = inf
				}
			}
		}
	}
	return float32Tensor(m, []int64{int64(in.batch), 1, int64(in.t), int64(s)}, dev)
}

// embed returns token embeddings [B, T, H] with image patch embeddings put
// in place of the <|image_pad|> tokens (in order), and with the Qwen3-VL
// tower what the text model adds at them later (nil otherwise).
func (m *MLLM) embed(s *libtorch.Scope, in *forwardInput) (*ts.Tensor, *visionOut, error) {
	ids := s.Add(int64Tensor(in.ids, []int64{int64(in.batch), int64(in.t)}, m.dev))
	x := s.Add(ts.MustEmbedding(m.P.Get(textPrefix(m.Cfg)+"embed_tokens.weight"), ids, -1, false, false))
	nPad := 0
	for _, id := range in.ids {
		if id == int64(m.Special.ImagePad) {
			nPad++
		}
	}
	if in.images == nil {
		if nPad > 0 {
			return nil, nil, fmt.Errorf("model: %d <|image_pad|> tokens but no images", nPad)
		}
		return x, nil, nil
	}
	if _, ok := m.P.Lookup("visual.patch_embed.proj.weight"); !ok && !m.Cfg.IsQwen3VL() {
		return nil, nil, fmt.Errorf("model: images given to a text-only MLLM")
	}
	if m.Cfg.IsQwen3VL() {
		if _, ok := m.P.Lookup("model.visual.patch_embed.proj.weight"); !ok {
			return nil, nil, fmt.Errorf("model: images given to a text-only MLLM")
		}
		return m.qwen3VLEmbed(s, x, ids, in.images, nPad)
	}
	img := m.patchEmbed(s, asDType(s, in.images, m.P.DType())) // [N*P, H]
	if got := int(img.MustSize()[0]); got != nPad {
		return nil, nil, fmt.Errorf("model: %d <|image_pad|> tokens for %d image patches", nPad, got)
	}
	mask := s.Add(ids.MustEq(ts.IntScalar(int64(m.Special.ImagePad)), false).MustUnsqueeze(-1, true).
		MustExpand(x.MustSize(), false, true))
	return s.Add(x.MustMaskedScatter(mask, img, false)), nil, nil
}

// patchEmbed turns images [N, C, H, W] into patch embeddings [N·(H/p)·(W/p), hidden].
func (m *MLLM) patchEmbed(s *libtorch.Scope, images *ts.Tensor) *ts.Tensor {
	patches := patchify(s, images, int64(m.Cfg.VisionPatch))
	sz := patches.MustSize()
	flat := s.Add(patches.MustReshape([]int64{sz[0] * sz[1], sz[2]}, false))
	e := linear(s, flat, m.P.Get("visual.patch_embed.proj.weight"), m.P.Get("visual.patch_embed.proj.bias"))
	return rmsNorm(s, e, m.P.Get("visual.norm.weight"), m.Cfg.RMSNormEps)
}

// forward runs the decoder over in.
func (m *MLLM) forward(in *forwardInput) (*forwardOutput, error) {
	var s libtorch.Scope
	defer s.Close()
	c := m.Cfg
	past := 0
	if in.cache != nil {
		past = in.cache.len
		if past+in.t > in.cache.max {
			return nil, fmt.Errorf("model: KV cache of %d positions cannot take %d more after %d", in.cache.max, in.t, past)
		}
	}
	if m.rec != nil && in.cache != nil {
		return nil, fmt.Errorf("model: a recording MLLM (activation checkpointing) cannot fill a KV cache")
	}
	for _, p := range in.positions {
		if p < 0 || p >= int64(c.MaxSeqLen) {
			return nil, fmt.Errorf("model: position %d outside [0, max_seq_len=%d)", p, c.MaxSeqLen)
		}
	}
	x, vis, err := m.embed(&s, in)
	if err != nil {
		return nil, err
	}
	dt := m.P.DType()
	cos, sin, err := m.ropeFor(&s, in)
	if err != nil {
		return nil, err
	}
	cos, sin = asDType(&s, cos, dt), asDType(&s, sin, dt)
	mask := asDType(&s, s.Add(attnMask(in, past, m.dev)), dt)

	var prev *ts.Tensor
	for l := 0; l < c.Layers; l++ {
		if in.hidden && l == c.Layers-1 {
			prev = x.MustShallowClone() // hidden_states[-2]: input of the last layer
		}
		p := fmt.Sprintf("%slayers.%d.", textPrefix(c), l)
		inputs := []*ts.Tensor{x, cos, sin, mask}
		if vis != nil && l < len(vis.deepstack) {
			// DeepStack: the l-th merged ViT features join the image
			// tokens after the layer (inside it, so that activation
			// checkpointing sees them as an input from outside the layers).
			inputs = append(inputs, vis.deepstack[l])
		}
		x = m.rec.layer(&s, func(s *libtorch.Scope, t []*ts.Tensor) *ts.Tensor {
			x, cos, sin, mask := t[0], t[1], t[2], t[3]
			h := rmsNorm(s, x, m.P.Get(p+"input_layernorm.weight"), c.RMSNormEps)
			a := m.attention(s, p, h, cos, sin, mask, in.cache, l, past)
			x = s.Add(x.MustAdd(a, false))
			h = rmsNorm(s, x, m.P.Get(p+"post_attention_layernorm.weight"), c.RMSNormEps)
			lin := func(x *ts.Tensor, name string) *ts.Tensor { return m.lin(s, x, name) }
			f := swiGLU(s, h, lin, p+"mlp.gate_proj.weight", p+"mlp.up_proj.weight", p+"mlp.down_proj.weight")
			out := s.Add(x.MustAdd(f, false))
			if len(t) > 4 {
				out = s.Add(out.MustAdd(t[4], false))
			}
			return out
		}, inputs...)
	}
	if in.cache != nil {
		in.cache.len += in.t
	}
	last := rmsNorm(&s, x, m.P.Get(textPrefix(c)+"norm.weight"), c.RMSNormEps)
	head := "lm_head.weight"
	if c.TieEmbeddings {
		head = textPrefix(c) + "embed_tokens.weight"
	}
	out := &forwardOutput{logits: m.logits(&s, last, m.P.Get(head))}
	if in.hidden {
		out.prev = prev
		out.last = last.MustShallowClone()
	}
	return out, nil
}

// ropeFor returns the rotary tables [B, 1, T, head_dim] of in's positions:
// one axis, or Qwen3-VL's three (mropePositions), which also carries the
// KV cache's per-sequence shift past the images it holds.
func (m *MLLM) ropeFor(s *libtorch.Scope, in *forwardInput) (cos, sin *ts.Tensor, err error) {
	B, T, hd := int64(in.batch), int64(in.t), int64(m.Cfg.HeadDim)
	if !m.Cfg.IsQwen3VL() {
		pos := s.Add(int64Tensor(in.positions, []int64{B * T}, m.dev))
		cos = s.Add(m.cos.MustIndexSelect(0, pos, false).MustView([]int64{B, 1, T, hd}, true))
		sin = s.Add(m.sin.MustIndexSelect(0, pos, false).MustView([]int64{B, 1, T, hd}, true))
		return cos, sin, nil
	}
	gh, gw := int64(1), int64(1)
	if in.images != nil {
		sz := in.images.MustSize()
		gh, gw = imageGrid(m.Cfg, sz[2], sz[3])
		mg := int64(m.Cfg.ViT.SpatialMerge)
		gh, gw = gh/mg, gw/mg
	}
	shift := make([]int64, in.batch)
	if in.cache != nil {
		copy(shift, in.cache.ropeShift)
	}
	pos, err := m.mropePositions(in, gh, gw, shift)
	if err != nil {
		return nil, nil, err
	}
	if in.cache != nil {
		copy(in.cache.ropeShift, shift)
	}
	cos, sin = m.mropeTables(s, pos, B, T)
	return cos, sin, nil
}

// logits projects the final hidden states onto the vocabulary in float32
// whatever dtype the model runs in: a trained model's logits reach tens,
// where bfloat16's spacing is 0.06–0.125, and a rounding step there moves
// a log-prob — and the policy ratio and KL computed from it — by as much.
// Log-softmax, sampling and log-probs downstream are float32 too. (The
// head weight is widened per call: a vocabulary × hidden float32
// temporary.)
func (m *MLLM) logits(s *libtorch.Scope, last, w *ts.Tensor) *ts.Tensor {
	if last.DType() == gotch.Float {
		return ts.MustLinear(last, w, ts.None)
	}
	return ts.MustLinear(asDType(s, last, gotch.Float), asDType(s, w, gotch.Float), ts.None)
}

// attention is one Qwen3 self-attention block (GQA, QK-RMSNorm, RoPE).
func (m *MLLM) attention(s *libtorch.Scope, p string, x, cos, sin, mask *ts.Tensor, cache *KVCache, layer, past int) *ts.Tensor {
	c := m.Cfg
	sz := x.MustSize()
	B, T := sz[0], sz[1]
	hd, nh, nkv := int64(c.HeadDim), int64(c.Heads), int64(c.KVHeads)
	proj := func(name string, heads int64, norm string) *ts.Tensor {
		y := s.Add(m.lin(s, x, p+"self_attn."+name+".weight").MustView([]int64{B, T, heads, hd}, false))
		if norm != "" {
			y = rmsNorm(s, y, m.P.Get(p+"self_attn."+norm+".weight"), c.RMSNormEps)
		}
		return s.Add(y.MustTranspose(1, 2, false)) // [B, heads, T, hd]
	}
	q := applyRope(s, proj("q_proj", nh, "q_norm"), cos, sin)
	k := applyRope(s, proj("k_proj", nkv, "k_norm"), cos, sin)
	v := proj("v_proj", nkv, "")
	if cache != nil {
		for _, kv := range []struct{ dst, src *ts.Tensor }{{cache.k[layer], k}, {cache.v[layer], v}} {
			slot := kv.dst.MustNarrow(2, int64(past), T, false)
			libtorch.NoGrad(func() { slot.Copy_(kv.src) })
			slot.MustDrop()
		}
		k = s.Add(cache.k[layer].MustNarrow(2, 0, int64(past)+T, false))
		v = s.Add(cache.v[layer].MustNarrow(2, 0, int64(past)+T, false))
	}
	k = repeatKV(s, k, nh/nkv)
	v = repeatKV(s, v, nh/nkv)
	o := s.Add(ts.MustScaledDotProductAttention(q, k, v, mask, 0, false, nil))
	o = s.Add(o.MustTranspose(1, 2, false).MustReshape([]int64{B, T, nh * hd}, true))
	return m.lin(s, o, p+"self_attn.o_proj.weight")
}
