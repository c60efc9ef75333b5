package rollout

import (
	"fmt"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// MLLM samples the rollouts of stage 4 (GRPO on the MLLM): for each prompt,
// grpo.group chains of thought in thinking mode at grpo.temperature and
// grpo.top_p, each with its tokens and their sampling log-probabilities;
// the VGI-refine states of each chain's instruction condition the frozen
// DiT, which draws one image per chain by ODE sampling with classifier-free
// guidance, every chain of a group from the same initial noise (so that the
// group's rewards differ by what the chains wrote, not by the noise).
// Editing and reflection prompts carry their reference image to both
// models. It must run inside libtorch.Run.
func MLLM(b *model.Bundle, req Request, dev gotch.Device) ([]shards.RolloutRow, Stats, error) {
	var st Stats
	c := b.Cfg
	g := c.GRPO
	if err := req.validate(b, g.Group); err != nil {
		return nil, st, err
	}
	out := make([]shards.RolloutRow, len(req.Rows)*g.Group)
	for _, idx := range byReference(req.Rows) {
		if err := mllmPart(b, &req, idx, dev, out, &st); err != nil {
			return nil, st, fmt.Errorf("rollout task %s: %w", req.Task, err)
		}
	}
	return out, st, nil
}

func mllmPart(b *model.Bundle, req *Request, idx []int, dev gotch.Device, out []shards.RolloutRow, st *Stats) error {
	var sc libtorch.Scope
	defer sc.Close()
	c := b.Cfg
	g := c.GRPO
	size := c.Model.DiT.ImageSize
	imgTokens := model.ImageTokens(size, c.Model.MLLM.VisionPatch)
	n := len(idx) * g.Group
	prompts := make([][]int, 0, n)
	seeds := make([]uint64, 0, n)
	noise := make([]uint64, 0, n)
	for _, i := range idx {
		row := &req.Rows[i]
		p, err := model.ChatPrompt(b.Tok, row.Prompt, len(row.Reference) > 0, imgTokens, tokenizer.ThinkOpen)
		if err != nil {
			return fmt.Errorf("row %s: %w", row.ID, err)
		}
		for s := range g.Group {
			prompts = append(prompts, p)
			seeds = append(seeds, chainSeed(req.Seed, req.GroupIDs[i], s))
			noise = append(noise, noiseSeed(req.Seed, req.GroupIDs[i], 0)) // one noise per group
		}
	}
	refs, err := refImages(req.subset(idx), g.Group, size, dev)
	if err != nil {
		return err
	}
	if refs != nil {
		sc.Add(refs)
	}

	t0 := time.Now()
	var gen *model.Generation
	libtorch.NoGrad(func() {
		gen, err = b.MLLM.Generate(prompts, model.GenerateOptions{
			MaxNewTokens: g.MaxNewTokens, Temperature: g.Temperature, TopP: g.TopP,
			Seeds: seeds, Images: refs, States: true,
		})
	})
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	for _, s := range gen.States {
		sc.Add(s)
	}
	st.GenTime += time.Since(t0)

	t1 := time.Now()
	cond, uncond, err := conditions(b, gen.States, dev)
	if err != nil {
		return err
	}
	defer cond.Drop()
	defer uncond.Drop()
	steps := g.ImageSteps
	if steps == 0 {
		steps = c.Sampling.DiTSteps
	}
	var img *ts.Tensor
	libtorch.NoGrad(func() {
		x0 := sc.Add(model.InitialNoise(noise, c.Model.DiT.Channels, size, size, dev))
		grid := model.TimeGrid(steps, c.Sampling.TimeShift, size, size)
		var lat *ts.Tensor
		lat, err = b.DiT.SampleODE(x0, grid, cond, refs, model.Guidance{Uncond: uncond, TextScale: c.Sampling.CFG, ImageScale: 1})
		if err != nil {
			return
		}
		img = sc.Add(model.PixelSpace{}.Decode(lat))
		lat.MustDrop()
	})
	if err != nil {
		return fmt.Errorf("draw: %w", err)
	}
	pngs, err := encodePNGs(img)
	if err != nil {
		return err
	}
	st.ImageTime += time.Since(t1)

	k := 0
	for _, i := range idx {
		for s := range g.Group {
			row, err := req.baseRow(i, s, noise[k])
			if err != nil {
				return err
			}
			toks := gen.Tokens[k]
			row.TokenIDs = make([]int32, len(toks))
			for j, t := range toks {
				row.TokenIDs[j] = int32(t)
			}
			row.TokenLogProbs = append([]float32(nil), gen.LogProbs[k]...)
			row.CoT, row.Instruction = splitThinking(b.Tok.Decode(toks))
			row.ImagePNG = pngs[k]
			out[i*g.Group+s] = row
			st.Samples++
			st.Images++
			st.Tokens += len(toks)
			k++
		}
	}
	return nil
}
