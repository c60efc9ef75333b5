package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/plan"
)

func planCommand() *command {
	return &command{
		name:  "plan",
		usage: "--gpus N --gpu-memory SIZE [flags]",
		short: "plan the GPU memory of every phase and role",
		long: `Plan estimates, per GPU, the memory of each phase (the pre-training stages
that run, mllm-grpo, dit-grpo) and role (learner, rollout, reward) of a
configuration: weights in model.dtype, gradients, float32 master weights
and AdamW moments (sharded over the N learner ranks under ZeRO-1, with the
gradients under ZeRO-2), activations per micro-batch with and without
activation checkpointing, and the rollout KV cache. It says whether each
fits --gpu-memory at --gpus, --zero and --micro-batch, the lowest ZeRO
stage and largest micro-batch that fit on --gpus, and the smallest N that
fits at all. Nothing is allocated: full-scale configurations plan on any
machine. The formulas are in the plan package's documentation.

--gpu-memory takes a number and a unit: 80GiB, 80 GiB, 80Gi (powers of
1024) or 80GB, 80G (powers of 1000); nvidia-smi's 81920 MiB is 80GiB.
Attention is taken as fused (no saved probabilities) when run.device is
cuda, and as the math kernel otherwise; --fused-attention overrides.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			gpus := fs.Int("gpus", 1, "data-parallel learner ranks N, one GPU each")
			mem := fs.String("gpu-memory", "", "memory of one GPU, e.g. 80GiB (required)")
			zero := fs.Int("zero", 0, "ZeRO stage of the table's learner rows: 0, 1 (optimizer states /N) or 2 (and gradients /N)")
			micro := fs.Int("micro-batch", 1, "sequences or samples per forward/backward in the table's rows")
			prompt := fs.Int("prompt-tokens", plan.DefaultPromptTokens, "tokens of an MLLM prompt before the generated ones")
			cond := fs.Int("condition-tokens", plan.DefaultConditionTokens, "instruction tokens that condition the DiT (connector.prepad adds more)")
			fused := fs.Bool("fused-attention", false, "attention saves no probabilities (default: true when run.device is cuda)")
			vocab := fs.Int("vocab", 0, "vocabulary size (default: model.mllm.vocab, else the tokenizer's)")
			asJSON := fs.Bool("json", false, "print the plan as JSON")
			return func(ctx context.Context, args []string) error {
				if len(args) != 0 {
					return usagef("plan takes no arguments")
				}
				if *mem == "" {
					return usagef("--gpu-memory is required, e.g. --gpu-memory 80GiB")
				}
				bytes, err := plan.ParseGPUMemory(*mem)
				if err != nil {
					return usagef("--gpu-memory: %v", err)
				}
				cfg, v, err := loadShapes(rf, *vocab)
				if err != nil {
					return err
				}
				o := plan.Options{
					GPUs: *gpus, GPUMemory: bytes, ZeRO: *zero, MicroBatch: *micro,
					PromptTokens: *prompt, ConditionTokens: *cond,
					FusedAttention: strings.HasPrefix(cfg.Run.Device, "cuda"),
				}
				if fs.Changed("fused-attention") {
					o.FusedAttention = *fused
				}
				p, err := plan.Build(cfg, v, o)
				if err != nil {
					return usagef("%v", err)
				}
				if *asJSON {
					return json.NewEncoder(e.stdout).Encode(p)
				}
				return printPlan(e, p)
			}
		},
	}
}

func printPlan(e *env, p *plan.Plan) error {
	o := p.Options
	attn := "math kernel (probabilities saved)"
	if o.FusedAttention {
		attn = "fused"
	}
	fmt.Fprintf(e.stdout, "%d GPU(s) of %s, model.dtype %s, ZeRO-%d, micro-batch %d; MLLM sequence %d tokens, DiT sequence %d tokens; attention %s\n\n",
		o.GPUs, plan.HumanBytes(o.GPUMemory), p.DType, o.ZeRO, o.MicroBatch, p.MLLMSeq, p.DiTTokens, attn)
	w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "phase\trole\tweights\tgrads\toptimizer\tact/mb\tact/mb ckpt\tKV cache\ttotal\tfits\ttotal ckpt\tfits\ton these GPUs\tsmallest")
	yes := map[bool]string{true: "yes", false: "NO"}
	for _, r := range p.Rows {
		hb := func(b int64) string {
			if b == 0 {
				return "-"
			}
			return plan.HumanBytes(b)
		}
		at, small := r.AtGPUs.String(), r.Smallest.String()
		if r.Role == "rollout" {
			at, small = "-", "-"
			if r.AtGPUs != nil {
				at = fmt.Sprintf("batch %d of %d", r.AtGPUs.MicroBatch, r.PerUpdate)
			}
		}
		if r.Role == "reward" {
			at, small = "-", "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Phase, r.Role, hb(r.Weights), hb(r.Gradients), hb(r.Optimizer), hb(r.Activations), hb(r.ActivationsCk),
			hb(r.KVCache), hb(r.Total), yes[r.Fits], hb(r.TotalCk), yes[r.FitsCk], at, small)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\nparameters: MLLM %s, connector %s, DiT %s\n", humanCount(p.Params.MLLM), humanCount(p.Params.Connector), humanCount(p.Params.DiT))
	fmt.Fprintln(e.stdout, "act/mb: activations per micro-batch; ckpt: with activation checkpointing; on these GPUs: lowest ZeRO stage")
	fmt.Fprintln(e.stdout, "and largest micro-batch (up to a rank's share of a mini-batch) that fit; smallest: the fewest ranks that fit.")
	fmt.Fprintln(e.stdout, "Weights, gradients, optimizer states and the KV cache are checked against real tensors; activations are estimates (leave headroom).")
	return nil
}
