// Package export writes a policy version (a run's checkpoint, or any saved
// model.Bundle) as folders that HuggingFace-style tooling reads, and reads
// such an export back into a model.Bundle.
//
// # Layout
//
//	DIR/thinkgen-export.json          manifest: run, version, format, the run's config, size and sha256 of every file
//	DIR/model_index.json              diffusers-style index of the parts
//	DIR/mllm/                         transformers Qwen3ForCausalLM: config.json, model.safetensors,
//	                                  generation_config.json, tokenizer.json, tokenizer_config.json
//	                                  (with a chat template), special_tokens_map.json, and
//	                                  visual.safetensors (the vision patch embedder, which Qwen3 lacks);
//	                                  with model.mllm.vision qwen3vl Qwen3VLForConditionalGeneration
//	                                  instead, the ViT in model.safetensors and no visual.safetensors
//	DIR/connector/                    the VGI-refine connector and its prepadding states
//	DIR/transformer/                  the DiT (config.json, diffusion_pytorch_model.safetensors)
//	DIR/scheduler/scheduler_config.json  the flow-matching sampler
//
// [Write] exports a bundle directory and [FromRun] a run's checkpoint from
// its store ([RunVersion] picks the version); both write into a temporary
// directory beside DIR and rename it at the end. In float32 (the default)
// tensors are copied byte for byte; with Options.DType bfloat16 or float16
// they are rounded to nearest even a chunk at a time, and float16 refuses a
// weight it cannot represent. [Import] verifies every file against the
// manifest and rebuilds the bundle: bit-identical to the exported one for a
// float32 export, widened to float32 for a half-precision one. [IsExport]
// tells an export from a bundle directory.
//
// docs/export.md says how to load the MLLM with transformers and what is
// and is not standard.
package export
