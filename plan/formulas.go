package plan

import (
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/model"
)

// Params counts the parameters of the three modules a configuration
// builds, from their shapes (model.MLLMSpecs, ConnectorSpecs, DiTSpecs).
type Params struct {
	MLLM, Connector, DiT int64
}

// CountParams counts the parameters of c's models for an MLLM vocabulary
// of vocab tokens. The MLLM includes its vision patch embedder, as the
// bundles every command builds do.
func CountParams(c *config.Config, vocab int) Params {
	m := c.Model
	return Params{
		MLLM:      model.CountParams(model.MLLMSpecs(m.MLLM, vocab, 3)),
		Connector: model.CountParams(model.ConnectorSpecs(m.MLLM.Hidden, m.DiT.Hidden, m.Connector.Prepad)),
		DiT:       model.CountParams(model.DiTSpecs(m.DiT)),
	}
}

// WeightBytes is the memory of params parameters held in the compute dtype
// (e bytes an element).
func WeightBytes(params, e int64) int64 { return params * e }

// GradientBytes is the memory of the gradients of params trained
// parameters, in the compute dtype; ZeRO-2 shards them over ranks.
func GradientBytes(params, e int64, zero, ranks int) int64 {
	b := params * e
	if zero >= 2 {
		b = ceilDiv(b, int64(ranks))
	}
	return b
}

// OptimizerBytes is AdamW's state for params trained parameters: the
// float32 moments m and v (8 bytes a parameter) and, when the compute dtype
// is not float32, float32 master weights (4 more). ZeRO-1 and ZeRO-2 shard
// it over ranks.
func OptimizerBytes(params, e int64, zero, ranks int) int64 {
	per := int64(8)
	if e != 4 {
		per = 12
	}
	b := params * per
	if zero >= 1 {
		b = ceilDiv(b, int64(ranks))
	}
	return b
}

// KVCacheBytes is the MLLM's key/value cache for seqs sequences of up to
// tokens positions: layers × 2 × kv_heads × head_dim × tokens × seqs × e.
func KVCacheBytes(c config.MLLM, seqs, tokens int, e int64) int64 {
	return int64(c.Layers) * 2 * int64(c.KVHeads) * int64(c.HeadDim) * int64(tokens) * int64(seqs) * e
}

// Activations is the memory a forward pass keeps for its backward.
type Activations struct {
	// Full keeps every layer's saved tensors.
	Full int64
	// Checkpointed keeps each layer's input only and recomputes one layer
	// at a time in backward: the layer inputs, plus one layer's full
	// activations, plus what lies outside the layers.
	Checkpointed int64
	// Layer is one layer's saved tensors (the largest layer's): the part of
	// Checkpointed held only while backward recomputes a layer, so a
	// checkpointed forward keeps Checkpointed − Layer until its backward.
	Layer int64
}

func (a Activations) scale(k int64) Activations {
	return Activations{a.Full * k, a.Checkpointed * k, a.Layer * k}
}

// mllmLayerElems is the number of elements one MLLM decoder layer saves
// for backward per token (the attention scores aside):
//
//	4h          two RMSNorm inputs, the attention and MLP inputs (norm outputs)
//	(2a+3kv)·d  q, k before and after their QK-norms, v
//	2a·d        k and v repeated to a heads for grouped-query attention
//	a·d         the attention output (the output projection's input)
//	4f          SwiGLU: gate and up projections, silu(gate), their product
//
// Megatron's 34·s·b·h (16-bit bytes, "Reducing Activation Recomputation
// in Large Transformer Models") counts the same tensors for a GPT layer
// with multi-head attention, a GeLU MLP of 4h and dropout masks; here
// there is no dropout, attention is grouped-query with QK-norms, and the
// MLP is SwiGLU of width f.
func mllmLayerElems(c config.MLLM) int64 {
	h, a, kv, d, f := int64(c.Hidden), int64(c.Heads), int64(c.KVHeads), int64(c.HeadDim), int64(c.FFN)
	return 4*h + (5*a+3*kv)*d + 4*f
}

// ditLayerElems is mllmLayerElems for a DiT block, whose sandwich norms
// (norm1, norm2, ffn_norm1, ffn_norm2), adaLN scales and tanh gates save
// 8h instead of 4h; the head dimension is hidden/heads.
func ditLayerElems(c config.DiT) int64 {
	h, a, kv, f := int64(c.Hidden), int64(c.Heads), int64(c.KVHeads), int64(c.FFN)
	d := h / a
	return 8*h + (5*a+3*kv)*d + 4*f
}

// scoreElems is the attention probabilities one layer saves when
// attention is not fused: heads × tokens² a sequence (Megatron's 5·a·s²·b
// bytes in 16-bit, without the dropout mask and dropout output). A fused
// kernel (flash or memory-efficient attention) saves none.
func scoreElems(heads, seqs, tokens int64, fused bool) int64 {
	if fused {
		return 0
	}
	return heads * tokens * tokens * seqs
}

// MLLMActivations is the memory a teacher-forced forward of seqs sequences
// of tokens positions keeps for backward, in the compute dtype (e bytes),
// with log-probabilities in float32:
//
//	per layer   s·b·(4h + (5a+3kv)·d + 4f)·e + a·s²·b·e (unfused attention)
//	outside     s·b·2h·e (embeddings, final norm) + s·b·V·(e+8) (logits,
//	            their float32 copy and log-softmax)
//	full        L × per layer + outside
//	checkpoint  L·s·b·h·e + per layer + outside
func MLLMActivations(c config.MLLM, vocab, seqs, tokens int, e int64, fused bool) Activations {
	T := int64(seqs) * int64(tokens)
	layer := T*mllmLayerElems(c)*e + scoreElems(int64(c.Heads), int64(seqs), int64(tokens), fused)*e
	outside := T*2*int64(c.Hidden)*e + T*int64(vocab)*(e+8)
	L := int64(c.Layers)
	return Activations{
		Full:         L*layer + outside,
		Checkpointed: L*T*int64(c.Hidden)*e + layer + outside,
		Layer:        layer,
	}
}

// DiTImageTokens is the number of image tokens the DiT attends over:
// (image_size / vae_scale / patch)².
func DiTImageTokens(c config.DiT) int {
	side := c.ImageSize / max(c.VAEScale, 1) / max(c.Patch, 1)
	return side * side
}

// DiTActivations is the memory one DiT forward of seqs samples keeps for
// backward: the joint blocks over image + text tokens, the noise refiner
// over the image tokens and the context refiner over the text tokens
// (per block as MLLMActivations, with ditLayerElems), plus the patch
// embedding and final layer, s·b·2h·e.
func DiTActivations(c config.DiT, seqs, textTokens int, e int64, fused bool) Activations {
	h := int64(c.Hidden)
	img, txt := int64(DiTImageTokens(c)), int64(textTokens)
	b := int64(seqs)
	per := ditLayerElems(c)
	layer := func(tokens int64) int64 {
		return b*tokens*per*e + scoreElems(int64(c.Heads), b, tokens, fused)*e
	}
	joint, refine := layer(img+txt), int64(c.RefinerLayers)*(layer(img)+layer(txt))
	outside := b * (img + txt) * 2 * h * e
	L, R := int64(c.Layers), int64(c.RefinerLayers)
	inputs := L*b*(img+txt)*h*e + R*b*(img+txt)*h*e
	return Activations{
		Full:         L*joint + refine + outside,
		Checkpointed: inputs + joint + outside,
		Layer:        joint,
	}
}

// MLLMInference is the working set of one no-grad MLLM forward over seqs
// sequences of tokens positions (a prefill): one layer's tensors and the
// last position's logits. Rollouts hold it next to the KV cache.
func MLLMInference(c config.MLLM, vocab, seqs, tokens int, e int64, fused bool) int64 {
	T := int64(seqs) * int64(tokens)
	return T*mllmLayerElems(c)*e + scoreElems(int64(c.Heads), int64(seqs), int64(tokens), fused)*e + int64(seqs)*int64(vocab)*(e+8)
}

// DiTInference is the working set of one no-grad DiT forward over seqs
// samples: one joint block's tensors.
func DiTInference(c config.DiT, seqs, textTokens int, e int64, fused bool) int64 {
	tokens := int64(DiTImageTokens(c) + textTokens)
	return int64(seqs)*tokens*ditLayerElems(c)*e + scoreElems(int64(c.Heads), int64(seqs), tokens, fused)*e
}

func ceilDiv(a, b int64) int64 {
	if b <= 1 {
		return a
	}
	return (a + b - 1) / b
}
