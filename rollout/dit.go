package rollout

import (
	"context"
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
// thinking mode as Settings.Sampling says (greedily with
// flow_grpo.greedy_instruction), and the DiT draws Settings.Group images
// from it by the SDE of Settings.SDE — or, with an SDE window, by the SDE
// on the window's steps and Euler's ODE step on the others — each image
// from its own initial noise unless SDE.SameNoise gives the group one;
// every latent, per-step mean and log-probability (0 on an ODE step) is
// kept for the learner. It must run inside libtorch.Run.
func DiT(b *model.Bundle, req Request, dev gotch.Device) ([]shards.RolloutRow, Stats, error) {
	return DiTContext(context.Background(), b, req, dev)
}

// DiTContext is DiT that stops before its next denoising step once ctx
// ends and returns ctx's cause.
func DiTContext(ctx context.Context, b *model.Bundle, req Request, dev gotch.Device) ([]shards.RolloutRow, Stats, error) {
	var st Stats
	if err := req.validate(b); err != nil {
		return nil, st, err
	}
	if req.Settings.SDE.Steps < 1 {
		return nil, st, fmt.Errorf("rollout task %s: %d SDE steps", req.Task, req.Settings.SDE.Steps)
	}
	out := make([]shards.RolloutRow, len(req.Rows)*req.Settings.Group)
	for _, idx := range byReference(len(req.Rows), func(i int) bool { return len(req.Rows[i].Reference) > 0 }) {
		if err := ditPart(ctx, b, &req, idx, dev, out, &st); err != nil {
			return nil, st, fmt.Errorf("rollout task %s: %w", req.Task, err)
		}
	}
	return out, st, nil
}

// referencesOf decodes the reference images of the rows at idx, each
// repeated rep times (nil when none has one); the caller drops the tensor.
func (r *Request) referencesOf(b *model.Bundle, idx []int, rep int, dev gotch.Device) (*ts.Tensor, error) {
	var pngs [][]byte
	for _, i := range idx {
		if ref := r.Rows[i].Reference; len(ref) > 0 {
			for range rep {
				pngs = append(pngs, ref)
			}
		}
	}
	return references(b, pngs, dev)
}

func ditPart(ctx context.Context, b *model.Bundle, req *Request, idx []int, dev gotch.Device, out []shards.RolloutRow, st *Stats) error {
	var sc libtorch.Scope
	defer sc.Close()
	f := req.Settings.SDE
	group := req.Settings.Group
	size := model.LatentSide(b.Model.DiT)
	ch := b.Model.DiT.Channels
	refs1, err := req.referencesOf(b, idx, 1, dev)
	if err != nil {
		return err
	}
	if refs1 != nil {
		sc.Add(refs1)
	}
	t0 := time.Now()
	prompts := make([][]int, len(idx))
	chains := make([]uint64, len(idx))
	for j, i := range idx {
		row := &req.Rows[i]
		if prompts[j], err = Prompt(b, row.Prompt, len(row.Reference) > 0, tokenizer.ThinkOpen); err != nil {
			return fmt.Errorf("row %s: %w", row.ID, err)
		}
		chains[j] = chainSeed(req.Seed, req.GroupIDs[i], 0)
	}
	gen, err := write(b, prompts, nil, chains, refs1, req.Settings.Sampling)
	if err != nil {
		return err
	}
	tokens, states := gen.Tokens, gen.States
	for _, s := range states {
		sc.Add(s)
	}
	st.GenTime += time.Since(t0)
	for _, t := range tokens {
		st.Tokens += len(t)
	}

	t1 := time.Now()
	// Every sample of a group shares its prompt's instruction states.
	n := len(idx) * group
	rep := make([]*ts.Tensor, 0, n)
	seeds := make([]uint64, 0, n)
	for j, i := range idx {
		for s := range group {
			rep = append(rep, states[j])
			if f.SameNoise {
				seeds = append(seeds, noiseSeed(req.Seed, req.GroupIDs[i], 0))
			} else {
				seeds = append(seeds, noiseSeed(req.Seed, req.GroupIDs[i], s))
			}
		}
	}
	stochastic := make([]bool, f.Steps)
	if f.Window != nil {
		for _, k := range f.Window {
			if k < 0 || k >= f.Steps {
				return fmt.Errorf("SDE window %v: step %d outside the %d steps", f.Window, k, f.Steps)
			}
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
	pixelRefs, err := req.referencesOf(b, idx, group, dev)
	if err != nil {
		return err
	}
	var refs *ts.Tensor
	if pixelRefs != nil {
		sc.Add(pixelRefs)
		refs = sc.Add(b.RefLatents(pixelRefs))
	}
	tr := Trajectory(f.Steps, f.TimeShift, size)
	guid := model.Guidance{Uncond: uncond, TextScale: f.CFG, ImageScale: 1}
	latents := make([][][]float32, n) // [sample][step] flattened
	means := make([][][]float32, n)
	logps := make([][]float32, n)
	var final *ts.Tensor
	libtorch.NoGrad(func() {
		x := model.InitialNoise(seeds, ch, size, size, dev)
		for k := 0; k < f.Steps; k++ {
			if ctx.Err() != nil {
				err = context.Cause(ctx)
				x.MustDrop()
				return
			}
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
					for s := range group {
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
	img := sc.Add(b.Latent().Decode(final))
	final.MustDrop()
	imgs, err := model.TensorToImages(img)
	if err != nil {
		return err
	}
	pngs, err := encodePNGs(imgs)
	if err != nil {
		return err
	}
	st.ImageTime += time.Since(t1)

	k := 0
	for j, i := range idx {
		cot, instr := tokenizer.SplitReply(b.Tok.Decode(tokens[j]))
		ids := make([]int32, len(tokens[j]))
		for t, id := range tokens[j] {
			ids[t] = int32(id)
		}
		for s := range group {
			row, err := req.baseRow(i, s, seeds[k])
			if err != nil {
				return err
			}
			row.CoT, row.Instruction, row.TokenIDs = cot, instr, ids
			row.ImagePNG = pngs[k]
			row.LatentShape = []int32{int32(ch), int32(size), int32(size)}
			row.SDELatents, row.SDEMeans, row.SDELogProbs = latents[k], means[k], logps[k]
			out[i*group+s] = row
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
