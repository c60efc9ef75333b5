package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/pflag"
	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/export"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/storage"
)

func exportCommand() *command {
	return &command{
		name:  "export",
		usage: "--run R [--version N] --out DIR [--format hf] [flags] | --model BUNDLE --out DIR",
		short: "write a checkpoint as HuggingFace/diffusers-style folders for serving",
		long: `Export writes checkpoint version N of run R (default: the run's last
committed version) from the store (--store, --run-dir or the config's
storage.uri; a local directory or s3://) as:

  DIR/mllm/          transformers Qwen3ForCausalLM, or Qwen3VLForConditionalGeneration
                     with model.mllm.vision qwen3vl (config.json, model.safetensors,
                     tokenizer files with a chat template, generation_config.json)
  DIR/transformer/   the DiT, DIR/connector/ the VGI-refine connector and its
                     prepadding states, DIR/scheduler/ the flow-matching sampler,
                     DIR/model_index.json naming the parts (diffusers-style)
  DIR/thinkgen-export.json  run, version, the run's config and the sha256 of every file

With --model it exports a bundle directory instead (base/tiny, a pretrain
result, a fetched checkpoint's bundle/). DIR must not exist or be empty;
the export is written beside it and renamed into place at the end.
thinkgen eval --model DIR (and generate) read an export like a bundle.
See docs/export.md.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			run := fs.String("run", "", "the run whose checkpoint to export")
			version := fs.Int("version", -1, "checkpoint version (default: the run's last committed one; 0 is its base)")
			out := fs.String("out", "", "output directory (required; must not exist or be empty)")
			format := fs.String("format", export.Layout, "output format: hf (transformers + diffusers-style folders)")
			bundle := fs.String("model", "", "export this bundle directory instead of a run's checkpoint")
			dtype := fs.String("dtype", "", "dtype of the exported weights: float32, bfloat16 or float16 (default: the checkpoint's model.dtype, bit-identical)")
			return func(ctx context.Context, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				switch {
				case *format != export.Layout:
					return usagef("--format %q: the only format is %q", *format, export.Layout)
				case *out == "":
					return usagef("--out is required")
				case (*run == "") == (*bundle == ""):
					return usagef("give one of --run and --model")
				case *bundle != "" && fs.Changed("version"):
					return usagef("--version needs --run (a bundle directory holds one version)")
				case fs.Changed("version") && *version < 0:
					return usagef("--version must be ≥ 0, got %d", *version)
				}
				var opt export.Options
				if fs.Changed("dtype") {
					d, err := export.ParseDType(*dtype)
					if err != nil {
						return usagef("--dtype: %v", err)
					}
					opt.DType = d
				}
				if err := export.CheckOut(*out); err != nil {
					return exportError("--out", err)
				}
				var m *export.Manifest
				var err error
				if *bundle != "" {
					if _, _, err := model.ReadBundleManifest(*bundle); err != nil {
						return &usageError{fmt.Errorf("--model: %w", err)}
					}
					if m, err = export.Write(*bundle, *out, export.Source{}, opt); err != nil {
						return exportError("--model", err)
					}
				} else {
					if err := storage.ValidateRun(*run); err != nil {
						return usagef("--run: %v", err)
					}
					st, err := rf.openStore(ctx)
					if err != nil {
						return err
					}
					if m, err = export.FromRun(ctx, st, *run, *version, *out, opt); err != nil {
						return exportError("--run", err)
					}
				}
				var total int64
				for _, f := range m.Files {
					total += f.Size
				}
				what := fmt.Sprintf("bundle %s (step %d)", m.Source, m.Version)
				if m.Run != "" {
					what = fmt.Sprintf("run %s version %d from %s", m.Run, m.Version, m.Source)
				}
				fmt.Fprintf(e.stdout, "exported %s to %s: %d files, %.1f MiB, %s\n", what, *out, len(m.Files)+1, float64(total)/(1<<20), m.DType)
				fmt.Fprintf(e.stdout, "  transformers: AutoModelForCausalLM.from_pretrained(%q), AutoTokenizer.from_pretrained(%[1]q)\n", filepath.Join(*out, "mllm"))
				return nil
			}
		},
	}
}

// exportError turns the export package's bad-input errors into usage
// errors naming the flag.
func exportError(flag string, err error) error {
	if errors.Is(err, export.ErrNoCheckpoint) || errors.Is(err, export.ErrUnknownVersion) {
		return &usageError{fmt.Errorf("%s: %w", flag, err)}
	}
	if errors.Is(err, export.ErrOutNotEmpty) {
		return &usageError{fmt.Errorf("--out: %w", err)}
	}
	return err
}

// placed calls load with cfg's run.device and converts the bundle to its
// model.dtype.
func placed(cfg *config.Config, load func(gotch.Device) (*model.Bundle, error)) (*model.Bundle, error) {
	pl, err := model.PlacementOf(cfg)
	if err != nil {
		return nil, err
	}
	b, err := load(pl.Device)
	if err != nil {
		return nil, err
	}
	b.ToDType(pl.DType)
	return b, nil
}

// modelDir reads the configuration of a --model directory — an export
// (thinkgen export) or a saved bundle — verifying its files, and returns
// it with a loader for its bundle (call the loader inside libtorch.Run;
// the caller drops the bundle). A directory that is neither is a usage
// error naming flag.
func modelDir(flag, dir string) (*config.Config, func(gotch.Device) (*model.Bundle, error), error) {
	cfg, err := export.ReadModelConfig(dir)
	if err != nil {
		return nil, nil, &usageError{fmt.Errorf("%s: %w", flag, err)}
	}
	if export.IsExport(dir) {
		return cfg, func(dev gotch.Device) (*model.Bundle, error) {
			b, _, err := export.Import(dir, dev)
			return b, err
		}, nil
	}
	return cfg, func(dev gotch.Device) (*model.Bundle, error) {
		b, _, err := model.LoadBundle(dir, dev)
		return b, err
	}, nil
}
