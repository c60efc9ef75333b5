// Package model holds the networks, written with gotch: the tokenizer, the
// Qwen3-style MLLM with its vision patch embedder, the VGI-refine connector,
// the OmniGen2-style DiT, the ODE and SDE samplers, and safetensors I/O.
package model
