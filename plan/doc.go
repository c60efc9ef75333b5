// Package plan estimates the GPU memory each role of a thinkgen run needs
// — the learner of each SepGRPO phase and pre-training stage, the rollout
// workers, the reward workers — from the configuration's shapes alone, and
// finds the smallest number of data-parallel learner ranks N, ZeRO stage
// and micro-batch that fit a GPU. `thinkgen plan` prints it.
//
// Per GPU, with P trained parameters, F frozen ones (the other modules and,
// when the phase's beta > 0, the reference copy of the trained ones) and
// e bytes an element of model.dtype:
//
//	weights      (P + F)·e
//	gradients    P·e, divided by N under ZeRO-2
//	optimizer    P·8 (float32 AdamW m and v) + P·4 float32 master weights
//	             when model.dtype is not float32; divided by N under ZeRO-1 and 2
//	activations  per micro-batch, MLLMActivations and DiTActivations
//	KV cache     layers × 2 × kv_heads × head_dim × tokens × sequences × e
//
// The activation formulas adapt Megatron's 34·s·b·h + 5·a·s²·b bytes a
// layer in 16-bit ("Reducing Activation Recomputation in Large Transformer
// Models", Korthikanti et al. 2022) to these models: no dropout,
// grouped-query attention with QK-norms, SwiGLU MLPs, sandwich norms and
// adaLN in the DiT, and the a·s²·b attention probabilities only when
// attention is not fused. With activation checkpointing a layer keeps only
// its input, and one layer is recomputed at a time in backward.
//
// What is measured and what is not: the weights, gradients, optimizer
// state and KV cache formulas are checked against the bytes of real tiny
// models built with gotch (plan_test.go), and agree exactly. The
// activation formulas are counts of the tensors the forward code saves:
// libtorch keeps no allocator statistics on the CPU, so they are checked
// only coarsely, against the resident memory a tiny MLLM's autograd graph
// holds (activations_test.go: the formula is about 15% under it, bound
// 25%); the DiT's and the checkpointed formulas are not measured.
// Transient no-grad forwards (the reference model's log-probs, the old
// policy's) and allocator fragmentation are not counted; leave headroom.
package plan
