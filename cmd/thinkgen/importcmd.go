package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/export"
	"github.com/thinkgen/thinkgen/internal/libtorch"
)

func importCommand() *command {
	return &command{
		name:  "import",
		usage: "--config RUN.yaml --mllm HF_DIR [--vae DIFFUSERS_VAE_DIR] [--dit DIR] --out BUNDLE",
		short: "make a bundle from checkpoints in transformers/diffusers folders",
		long: `Import writes a bundle (the layout of base/tiny and a pretrain result,
which run.base, eval --model and export read) into BUNDLE from:

  --mllm HF_DIR  a transformers Qwen3ForCausalLM folder, or with
                 model.mllm.vision qwen3vl a Qwen3VLForConditionalGeneration
                 one (its ViT included): config.json, the weights as
                 model.safetensors or the shards listed by
                 model.safetensors.index.json (float32, bfloat16 or
                 float16), tokenizer.json; for Qwen3 visual.safetensors if
                 present (an export's vision patch embedder)
  --vae DIR      a diffusers AutoencoderKL folder (model.dit.latent vae)
  --dit DIR      a folder with transformer/ and connector/ as thinkgen
                 export writes them

for the architecture the configuration's model section describes. Every
config.json, shard and tensor is checked first (an error names the file
and the key or tensor); the weights are then copied a tensor at a time,
widened to float32, so importing takes little memory whatever the size.
Parts no folder gives (the vision patch embedder, connector, DiT, VAE) are
initialised from run.seed. See docs/export.md.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			mllm := fs.String("mllm", "", "transformers Qwen3ForCausalLM (or, vision qwen3vl, Qwen3VLForConditionalGeneration) folder (required)")
			vae := fs.String("vae", "", "diffusers AutoencoderKL folder")
			dit := fs.String("dit", "", "folder with transformer/ and connector/ (an export)")
			out := fs.String("out", "", "output bundle directory (required; must not exist or be empty)")
			return func(ctx context.Context, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				switch {
				case *mllm == "":
					return usagef("--mllm is required")
				case *out == "":
					return usagef("--out is required")
				}
				cfg, err := rf.load()
				if err != nil {
					return err
				}
				if *vae != "" && cfg.Model.DiT.Latent != "vae" {
					return usagef("--vae: model.dit.latent is %q (want vae)", cfg.Model.DiT.Latent)
				}
				if err := export.CheckOut(*out); err != nil {
					return &usageError{fmt.Errorf("--out: %w", err)}
				}
				var rep *export.Imported
				src := export.HFSources{MLLM: *mllm, VAE: *vae, DiT: *dit, Seed: uint64(cfg.Run.Seed)}
				err = libtorch.Run(func() error {
					var err error
					rep, err = export.ImportHF(cfg, src, *out)
					return err
				})
				if errors.Is(err, export.ErrOutNotEmpty) {
					return &usageError{fmt.Errorf("--out: %w", err)}
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "imported %s (%d safetensors files) into %s\n", *mllm, rep.Shards, *out)
				if len(rep.Initialised) > 0 {
					fmt.Fprintf(e.stdout, "  initialised from seed %d: %s\n", cfg.Run.Seed, strings.Join(rep.Initialised, ", "))
				}
				return nil
			}
		},
	}
}
