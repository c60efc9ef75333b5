package rollout

import (
	"context"
	"fmt"
	"image"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// MLLM samples the rollouts of stage 4 (GRPO on the MLLM) through
// ThinkDraw: for each prompt, Settings.Group chains of thought in thinking
// mode, each with its tokens and their sampling log-probabilities; the
// VGI-refine states of each chain's instruction condition the frozen DiT,
// which draws one image per chain by ODE sampling with classifier-free
// guidance, every chain of a group from the same initial noise (so that
// the group's rewards differ by what the chains wrote, not by the noise).
// Editing and reflection prompts carry their reference image to both
// models. It must run inside libtorch.Run.
func MLLM(b *model.Bundle, req Request, dev gotch.Device) ([]shards.RolloutRow, Stats, error) {
	return MLLMContext(context.Background(), b, req, dev)
}

// MLLMContext is MLLM that stops before its next batch (inputs with and
// without a reference image take separate ones) once ctx ends and returns
// ctx's cause.
func MLLMContext(ctx context.Context, b *model.Bundle, req Request, dev gotch.Device) ([]shards.RolloutRow, Stats, error) {
	if err := req.validate(b); err != nil {
		return nil, Stats{}, err
	}
	g := req.Settings.Group
	in := make([]Input, 0, len(req.Rows)*g)
	for i := range req.Rows {
		row := &req.Rows[i]
		p, err := Prompt(b, row.Prompt, len(row.Reference) > 0, tokenizer.ThinkOpen)
		if err != nil {
			return nil, Stats{}, fmt.Errorf("rollout task %s: row %s: %w", req.Task, row.ID, err)
		}
		for s := range g {
			in = append(in, Input{
				Prompt: p, Reference: row.Reference,
				Seed:  chainSeed(req.Seed, req.GroupIDs[i], s),
				Noise: noiseSeed(req.Seed, req.GroupIDs[i], 0), // one noise per group
			})
		}
	}
	drawn, st, err := thinkDraw(ctx, b, in, req.Settings.Sampling, dev)
	if err != nil {
		return nil, st, fmt.Errorf("rollout task %s: %w", req.Task, err)
	}
	imgs := make([]*image.RGBA, len(drawn))
	for k := range drawn {
		imgs[k] = drawn[k].Image
	}
	pngs, err := encodePNGs(imgs)
	if err != nil {
		return nil, st, fmt.Errorf("rollout task %s: %w", req.Task, err)
	}
	out := make([]shards.RolloutRow, len(in))
	for k, d := range drawn {
		i, s := k/g, k%g
		row, err := req.baseRow(i, s, in[k].Noise)
		if err != nil {
			return nil, st, fmt.Errorf("rollout task %s: %w", req.Task, err)
		}
		row.TokenIDs = make([]int32, len(d.Tokens))
		for j, t := range d.Tokens {
			row.TokenIDs[j] = int32(t)
		}
		row.TokenLogProbs = append([]float32(nil), d.LogProbs...)
		row.CoT, row.Instruction = tokenizer.SplitReply(b.Tok.Decode(d.Tokens))
		row.ImagePNG = pngs[k]
		out[k] = row
	}
	return out, st, nil
}
