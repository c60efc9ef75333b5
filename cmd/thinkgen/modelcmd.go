package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/plan"
)

func modelCommand() *command {
	return &command{
		name:  "model",
		usage: "info [flags]",
		short: "describe the models a configuration builds",
		long: `Model info prints the parameter count of every module a configuration
builds (MLLM text tower, vision embedder, VGI-refine connector, DiT) and
their size at the configured dtype, computed from the shapes alone: nothing
is allocated, so full-scale configurations work on any machine.

The vocabulary size is model.mllm.vocab, or the tokenizer's when that is 0
(the ShapeWorld tokenizer for the tiny configuration); --vocab overrides both.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			vocab := fs.Int("vocab", 0, "vocabulary size (default: model.mllm.vocab)")
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 || args[0] != "info" {
					return usagef("want: thinkgen model info [flags]")
				}
				cfg, v, err := loadShapes(rf, *vocab)
				if err != nil {
					return err
				}
				inv := model.Inventory(cfg, v)
				bytesPer := map[string]int64{"float32": 4, "bfloat16": 2, "float16": 2}[cfg.Model.DType]
				var total int64
				for _, m := range inv {
					if !m.Subtotal {
						total += m.Params
					}
				}
				if rf.json() {
					return json.NewEncoder(e.stdout).Encode(map[string]any{"vocab": v, "dtype": cfg.Model.DType, "modules": inv, "total": total})
				}
				w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
				fmt.Fprintf(w, "module\tparameters\t%s\t\n", cfg.Model.DType)
				for _, m := range inv {
					fmt.Fprintf(w, "%s\t%s\t%s\t\n", m.Module, humanCount(m.Params), plan.FormatBytes(m.Params*bytesPer, 2))
				}
				fmt.Fprintf(w, "total\t%s\t%s\t\n", humanCount(total), plan.FormatBytes(total*bytesPer, 2))
				return w.Flush()
			}
		},
	}
}

// humanCount renders n with thousands separators and a short form.
func humanCount(n int64) string {
	s := fmt.Sprint(n)
	out := []byte{}
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%s (%.2fB)", out, float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%s (%.2fM)", out, float64(n)/1e6)
	}
	return string(out)
}

// loadShapes loads the run configuration of the flags and the vocabulary
// its model's shapes use: override if it is positive, else
// model.mllm.vocab, else the size of the configured tokenizer (the
// ShapeWorld tokenizer for the tiny configuration).
func loadShapes(rf *runFlags, override int) (*config.Config, int, error) {
	cfg, err := rf.load()
	if err != nil {
		return nil, 0, err
	}
	if override > 0 {
		return cfg, override, nil
	}
	if v := cfg.Model.MLLM.Vocab; v > 0 {
		return cfg, v, nil
	}
	tok, err := model.TokenizerFor(cfg.Model.MLLM)
	if err != nil {
		return nil, 0, fmt.Errorf("model.mllm.vocab is 0, so the vocabulary comes from the tokenizer: %w", err)
	}
	return cfg, tok.VocabSize(), nil
}
