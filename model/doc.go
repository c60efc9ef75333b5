// Package model holds the networks, written with gotch: the Qwen3-style
// MLLM with a vision patch embedder or, with `model.mllm.vision: qwen3vl`,
// Qwen3-VL's vision tower (a ViT with 2-D rotary positions, the patch
// merger, DeepStack features added to the first LLM layers, and the text
// model's interleaved multimodal RoPE; [MLLM.LoadQwen3VL] reads a
// Qwen3VLForConditionalGeneration folder), the VGI-refine connector, the
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
// [VAE] is diffusers' AutoencoderKL with its parameter names, loaded from
// and saved as a diffusers vae/ folder (config.json and
// diffusion_pytorch_model.safetensors; [LoadVAE] checks the weights'
// header against the config before allocating anything). It is the
// [Latent] of `model.dit.latent: vae`, normalising the posterior mean with
// scaling_factor and shift_factor as FLUX does; [PixelSpace] is the
// latent of `latent: pixel`.
//
// [EncodeImages] is the one way images (reference images for both
// models, target images for the pre-training flow loss) enter a model:
// PNGs decoded and encoded into a [Latent] space.
package model
