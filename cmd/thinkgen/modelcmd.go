package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/model"
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
				cfg, err := rf.load()
				if err != nil {
					return err
				}
				v, err := vocabSize(cfg, *vocab)
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
					fmt.Fprintf(w, "%s\t%s\t%s\t\n", m.Module, humanCount(m.Params), humanBytes(m.Params*bytesPer))
				}
				fmt.Fprintf(w, "total\t%s\t%s\t\n", humanCount(total), humanBytes(total*bytesPer))
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

func humanBytes(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
}

// vocabSize is the vocabulary the model's shapes use: override if it is
// positive, else model.mllm.vocab, else the size of the configured
// tokenizer (the ShapeWorld tokenizer for the tiny configuration).
func vocabSize(cfg *config.Config, override int) (int, error) {
	if override > 0 {
		return override, nil
	}
	if v := cfg.Model.MLLM.Vocab; v > 0 {
		return v, nil
	}
	tok, err := model.TokenizerFor(cfg.Model.MLLM)
	if err != nil {
		return 0, fmt.Errorf("model.mllm.vocab is 0, so the vocabulary comes from the tokenizer: %w", err)
	}
	return tok.VocabSize(), nil
}
