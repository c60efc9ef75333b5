package rollout

import (
	"fmt"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// DiTTrajectory is the sampling side of one FlowGRPO step, shared by the
// rollout worker and the learner so that both use the same σ grid.
type DiTTrajectory struct {
	// Sigmas are the SDE's σ values, 1 (noise) … 0 (data), steps+1 of them
	// (σ = 1 − t on the DiT's time grid, time shift included).
	Sigmas []float64
}

// Trajectory returns the σ grid of a FlowGRPO rollout of the given steps.
func Trajectory(steps int, shift bool, size int) DiTTrajectory {
	grid := model.TimeGrid(steps, shift, size, size)
	s := make([]float64, len(grid))
	for i, t := range grid {
		s[i] = 1 - t
	}
	return DiTTrajectory{Sigmas: s}
}

// SDEWindow returns the stochastic steps of the training step seeded by
// seed when flow_grpo.sde_window > 0 (Flow-GRPO-Fast): sde_window
// consecutive steps whose start is drawn uniformly within
// flow_grpo.sde_window_range. The rollout worker samples those steps by
// the SDE and the others by Euler's ODE step, and the learner trains on
// them; both call this with the task's seed. With sde_window 0 it returns
// nil: every step is stochastic.
func SDEWindow(f config.FlowGRPO, seed uint64) []int {
	if f.SDEWindow <= 0 {
		return nil
	}
	lo, hi := 0, f.Steps
	if len(f.SDEWindowRange) == 2 {
		lo, hi = f.SDEWindowRange[0], f.SDEWindowRange[1]
	}
	span := max(0, hi-lo-f.SDEWindow) + 1
	start := lo + int(mix(seed, 0x77696e646f77)%uint64(span))
	w := make([]int, f.SDEWindow)
	for i := range w {
		w[i] = start + i
	}
	return w
}

// DiT samples the rollouts of stage 5 (FlowGRPO on the DiT): for each
// prompt, the frozen MLLM writes one chain of thought and instruction in
// thinking mode (greedily with flow_grpo.greedy_instruction, else at
// grpo.temperature), and the DiT draws flow_grpo.group images from it by
// the SDE of flow_grpo (flow_grpo.steps steps, noise level
// flow_grpo.noise_level, guidance flow_grpo.cfg) — or, with
// flow_grpo.sde_window, by the SDE on the window's steps and Euler's ODE
// step on the others — each image from its own initial noise unless
// flow_grpo.same_noise gives the group one; every latent, per-step mean
// and log-probability (0 on an ODE step) is kept for the learner. It must
// run inside libtorch.Run.
func DiT(b *model.Bundle, req Request, dev gotch.Device) ([]shards.RolloutRow, Stats, error) {
	var st Stats
	f := b.Cfg.FlowGRPO
	if err := req.validate(b, f.Group); err != nil {
		return nil, st, err
	}
	out := make([]shards.RolloutRow, len(req.Rows)*f.Group)
	for _, idx := range byReference(req.Rows) {
		if err := ditPart(b, &req, idx, dev, out, &st); err != nil {
			return nil, st, fmt.Errorf("rollout task %s: %w", req.Task, err)
		}
	}
	return out, st, nil
}

// Instructions has the frozen MLLM write the instruction of each row in
// thinking mode; it returns the prompts, the written tokens and the
// instruction states, which the caller drops.
func Instructions(b *model.Bundle, req *Request, idx []int, refs *ts.Tensor, greedy bool) (prompts, tokens [][]int, states []*ts.Tensor, err error) {
	c := b.Cfg
	imgTokens := model.ImageTokens(c.Model.DiT.ImageSize, c.Model.MLLM.VisionPatch)
	seeds := make([]uint64, len(idx))
	for j, i := range idx {
		row := &req.Rows[i]
		p, err := model.ChatPrompt(b.Tok, row.Prompt, len(row.Reference) > 0, imgTokens, tokenizer.ThinkOpen)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("row %s: %w", row.ID, err)
		}
		prompts = append(prompts, p)
		seeds[j] = chainSeed(req.Seed, req.GroupIDs[i], 0)
	}
	temp := c.GRPO.Temperature
	if greedy {
		temp = 0
	}
	var gen *model.Generation
	libtorch.NoGrad(func() {
		gen, err = b.MLLM.Generate(prompts, model.GenerateOptions{
			MaxNewTokens: c.GRPO.MaxNewTokens, Temperature: temp, TopP: c.GRPO.TopP,
			Seeds: seeds, Images: refs, States: true,
		})
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate: %w", err)
	}
	return prompts, gen.Tokens, gen.States, nil
}

func ditPart(b *model.Bundle, req *Request, idx []int, dev gotch.Device, out []shards.RolloutRow, st *Stats) error {
	var sc libtorch.Scope
	defer sc.Close()
	c := b.Cfg
	f := c.FlowGRPO
	size := c.Model.DiT.ImageSize
	ch := c.Model.DiT.Channels
	refs1, err := refImages(req.subset(idx), 1, size, dev)
	if err != nil {
		return err
	}
	if refs1 != nil {
		sc.Add(refs1)
	}
	t0 := time.Now()
	_, tokens, states, err := Instructions(b, req, idx, refs1, f.GreedyInstruction)
	if err != nil {
		return err
	}
	for _, s := range states {
		sc.Add(s)
	}
	st.GenTime += time.Since(t0)
	for _, t := range tokens {
		st.Tokens += len(t)
	}

	t1 := time.Now()
	// Every sample of a group shares its prompt's instruction states.
	n := len(idx) * f.Group
	rep := make([]*ts.Tensor, 0, n)
	seeds := make([]uint64, 0, n)
	for j, i := range idx {
		for s := range f.Group {
			rep = append(rep, states[j])
			if f.SameNoise {
				seeds = append(seeds, noiseSeed(req.Seed, req.GroupIDs[i], 0))
			} else {
				seeds = append(seeds, noiseSeed(req.Seed, req.GroupIDs[i], s))
			}
		}
	}
	stochastic := make([]bool, f.Steps)
	if w := SDEWindow(f, req.Seed); w != nil {
		for _, k := range w {
			stochastic[k] = true
		}
	} else {
		for k := range stochastic {
			stochastic[k] = true
		}
	}
	cond, uncond, err := conditions(b, rep, dev)
	if err != nil {
		return err
	}
	defer cond.Drop()
	defer uncond.Drop()
	refs, err := refImages(req.subset(idx), f.Group, size, dev)
	if err != nil {
		return err
	}
	if refs != nil {
		sc.Add(refs)
	}
	tr := Trajectory(f.Steps, c.Sampling.TimeShift, size)
	guid := model.Guidance{Uncond: uncond, TextScale: f.CFG, ImageScale: 1}
	latents := make([][][]float32, n) // [sample][step] flattened
	means := make([][][]float32, n)
	logps := make([][]float32, n)
	var final *ts.Tensor
	libtorch.NoGrad(func() {
		x := model.InitialNoise(seeds, ch, size, size, dev)
		for k := 0; k < f.Steps; k++ {
			appendRows(latents, x)
			var v *ts.Tensor
			v, err = b.DiT.Velocity(x, 1-tr.Sigmas[k], cond, refs, guid)
			if err != nil {
				x.MustDrop()
				return
			}
			vfg := v.MustNeg(true) // flow_grpo's velocity points from data to noise
			var step *model.SDEStep
			if stochastic[k] {
				stepNoise := make([]uint64, n)
				j := 0
				for _, i := range idx {
					for s := range f.Group {
						stepNoise[j] = stepSeed(req.Seed, req.GroupIDs[i], s, k)
						j++
					}
				}
				xi := model.InitialNoise(stepNoise, ch, size, size, dev)
				step, err = model.StepSDE(x, vfg, tr.Sigmas[k], tr.Sigmas[k+1], tr.Sigmas[1], f.NoiseLevel, xi, nil)
				xi.MustDrop()
			} else {
				step, err = model.StepSDE(x, vfg, tr.Sigmas[k], tr.Sigmas[k+1], tr.Sigmas[1], 0, nil, nil)
			}
			vfg.MustDrop()
			if err != nil {
				x.MustDrop()
				return
			}
			appendRows(means, step.Mean)
			if step.LogProb != nil {
				lp := step.LogProb.Float64Values(false)
				for s := range lp {
					logps[s] = append(logps[s], float32(lp[s]))
				}
			} else {
				for s := range logps {
					logps[s] = append(logps[s], 0)
				}
			}
			x.MustDrop()
			x = step.Next.MustShallowClone()
			step.Drop()
		}
		appendRows(latents, x)
		final = x
	})
	if err != nil {
		return fmt.Errorf("SDE sampling: %w", err)
	}
	img := sc.Add(model.PixelSpace{}.Decode(final))
	final.MustDrop()
	pngs, err := encodePNGs(img)
	if err != nil {
		return err
	}
	st.ImageTime += time.Since(t1)

	k := 0
	for j, i := range idx {
		cot, instr := splitThinking(b.Tok.Decode(tokens[j]))
		ids := make([]int32, len(tokens[j]))
		for t, id := range tokens[j] {
			ids[t] = int32(id)
		}
		for s := range f.Group {
			row, err := req.baseRow(i, s, seeds[k])
			if err != nil {
				return err
			}
			row.CoT, row.Instruction, row.TokenIDs = cot, instr, ids
			row.ImagePNG = pngs[k]
			row.LatentShape = []int32{int32(ch), int32(size), int32(size)}
			row.SDELatents, row.SDEMeans, row.SDELogProbs = latents[k], means[k], logps[k]
			out[i*f.Group+s] = row
			st.Samples++
			st.Images++
			k++
		}
	}
	return nil
}

// appendRows appends each sample's flattened values of x [n, …] to dst[i].
func appendRows(dst [][][]float32, x *ts.Tensor) {
	flat := x.MustContiguous(false)
	defer flat.MustDrop()
	vals := flat.Float64Values(false)
	per := len(vals) / len(dst)
	for i := range dst {
		row := make([]float32, per)
		for j := range row {
			row[j] = float32(vals[i*per+j])
		}
		dst[i] = append(dst[i], row)
	}
}

// LatentsTensor stacks the latents of step k of rows into [n, C, H, W].
func LatentsTensor(rows []*shards.RolloutRow, k int, dev gotch.Device) (*ts.Tensor, error) {
	if len(rows) == 0 {
		return nil, fmt.Errorf("no rows")
	}
	shape := rows[0].LatentShape
	if len(shape) != 3 {
		return nil, fmt.Errorf("row %s: latent shape %v, want (C, H, W)", rows[0].RowID, shape)
	}
	per := int(shape[0] * shape[1] * shape[2])
	data := make([]float32, 0, per*len(rows))
	for _, r := range rows {
		if k >= len(r.SDELatents) || len(r.SDELatents[k]) != per {
			return nil, fmt.Errorf("row %s sample %d: no latent %d of %d values", r.RowID, r.SampleIndex, k, per)
		}
		data = append(data, r.SDELatents[k]...)
	}
	t := ts.MustOfSlice(data).MustView([]int64{int64(len(rows)), int64(shape[0]), int64(shape[1]), int64(shape[2])}, true)
	if dev != gotch.CPU {
		return t.MustTo(dev, true), nil
	}
	return t, nil
}
