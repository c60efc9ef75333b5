// Package model holds the networks, written with gotch: the Qwen3-style
// MLLM with its vision patch embedder, the VGI-refine connector, the
// OmniGen2-style DiT, the ODE and SDE samplers, the latent spaces the DiT
// works in, and safetensors I/O.
//
// A [Bundle] is one policy version: the tokenizer, the three modules and
// the model section of the configuration that shaped them
// (Bundle.Model). It holds weights and architecture only. How a bundle
// samples — decoding, steps, guidance, group sizes — is passed by the
// caller (rollout.Request.Settings, evaluate.Options.Sampling) from the
// configuration it resolved, and [Bundle.Save] records in the manifest the
// run configuration it is given. [LoadBundle] checks every file against
// the manifest and every tensor against the recorded shape.
//
// [EncodeImages] is the one way images (reference images for both
// models, target images for the pre-training flow loss) enter a model:
// PNGs decoded and encoded into a [Latent] space.
package model
