package pretrain

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
)

// refImages returns the reference images of a batch as one [N, 3, H, W]
// tensor in [-1, 1] (the MLLM's vision input), or nil when none has one.
func refImages(batch []Example, size int, dev gotch.Device) (*ts.Tensor, error) {
	var pngs [][]byte
	for _, e := range batch {
		if len(e.Reference) > 0 {
			pngs = append(pngs, e.Reference)
		}
	}
	return model.EncodeImages(model.PixelSpace{}, pngs, size, dev)
}

// SFTLoss is the warm-up loss: the mean over every completion token of the
// batch of −log π(token | prefix).
func SFTLoss(m *model.MLLM, batch []Example, imageSize int, dev gotch.Device) (*ts.Tensor, error) {
	prompts := make([][]int, len(batch))
	completions := make([][]int, len(batch))
	for i, e := range batch {
		prompts[i], completions[i] = e.Prompt, e.Completion
	}
	imgs, err := refImages(batch, imageSize, dev)
	if err != nil {
		return nil, err
	}
	if imgs != nil {
		defer imgs.MustDrop()
	}
	lp, err := m.LogProbs(prompts, completions, 1, imgs)
	if err != nil {
		return nil, err
	}
	defer lp.Drop()
	var s libtorch.Scope
	defer s.Close()
	total := s.Add(lp.LogProbs.MustMul(lp.Mask, false).MustSum(gotch.Float, true))
	n := s.Add(lp.Mask.MustSum(gotch.Float, false))
	return total.MustDiv(n, false).MustNeg(true), nil
}

// FlowLoss is the rectified-flow matching loss of the DiT (OmniGen2's
// convention: t = 0 noise, t = 1 data): for each sample a time t =
// sigmoid(n), n ~ N(0, 1) (logit-normal), noise x0 ~ N(0, I),
// x_t = t·x1 + (1 − t)·x0, and the loss is mean((v_θ(x_t, t) − (x1 − x0))²).
// The MLLM is frozen (its states are computed without gradients); the
// connector and the DiT get gradients when their parameters require them.
// Samples with and without a reference image go through the DiT in
// separate passes; the loss is their sample-weighted mean.
func FlowLoss(b *model.Bundle, batch []Example, imageSize int, rng *rand.Rand, dev gotch.Device) (*ts.Tensor, error) {
	var withRef, plain []Example
	for _, e := range batch {
		if len(e.Reference) > 0 {
			withRef = append(withRef, e)
		} else {
			plain = append(plain, e)
		}
	}
	var total *ts.Tensor
	for _, group := range [][]Example{plain, withRef} {
		if len(group) == 0 {
			continue
		}
		l, err := flowGroup(b, group, imageSize, rng, dev)
		if err != nil {
			if total != nil {
				total.MustDrop()
			}
			return nil, err
		}
		w := l.MustMulScalar(ts.FloatScalar(float64(len(group))/float64(len(batch))), true)
		if total == nil {
			total = w
		} else {
			total = total.MustAdd(w, true)
			w.MustDrop()
		}
	}
	if total == nil {
		return nil, fmt.Errorf("pretrain: empty batch")
	}
	return total, nil
}

// condDropout is the probability that a training sample's condition is
// replaced by the empty one.
const condDropout = 0.1

func flowGroup(b *model.Bundle, group []Example, imageSize int, rng *rand.Rand, dev gotch.Device) (*ts.Tensor, error) {
	var s libtorch.Scope
	defer s.Close()
	prompts := make([][]int, len(group))
	completions := make([][]int, len(group))
	targets := make([][]byte, len(group))
	for i, e := range group {
		prompts[i], completions[i], targets[i] = e.Prompt, e.Completion, e.Target
	}
	imgs, err := refImages(group, imageSize, dev)
	if err != nil {
		return nil, err
	}
	if imgs != nil {
		s.Add(imgs)
	}
	states, _, err := b.MLLM.InstructionStates(prompts, completions, imgs)
	if err != nil {
		return nil, err
	}
	// Condition dropout: one sample in ten sees the empty instruction (only
	// the prepadding states), which is what classifier-free guidance's
	// unconditional branch feeds at sampling time.
	for i := range states {
		if rng.Float64() < condDropout {
			states[i].MustDrop()
			states[i] = ts.MustZeros([]int64{0, int64(b.Connector.In)}, gotch.Float, dev)
		}
	}
	cond, err := b.Connector.Forward(states)
	for _, st := range states {
		st.MustDrop()
	}
	if err != nil {
		return nil, err
	}
	defer cond.Drop()

	x1, err := model.EncodeImages(b.Latent(), targets, imageSize, dev)
	if err != nil {
		return nil, err
	}
	if x1 == nil {
		return nil, fmt.Errorf("flow loss: no target images")
	}
	s.Add(x1)
	size := x1.MustSize()
	n := int(size[1] * size[2] * size[3])
	noise := make([]float32, len(group)*n)
	for i := range noise {
		noise[i] = float32(rng.NormFloat64())
	}
	times := make([]float64, len(group))
	tcol := make([]float32, len(group))
	for i := range times {
		times[i] = 1 / (1 + math.Exp(-rng.NormFloat64()))
		tcol[i] = float32(times[i])
	}
	x0 := s.Add(ts.MustOfSlice(noise).MustView(size, true))
	tt := s.Add(ts.MustOfSlice(tcol).MustView([]int64{size[0], 1, 1, 1}, true))
	if dev != gotch.CPU {
		x0 = s.Add(x0.MustTo(dev, false))
		tt = s.Add(tt.MustTo(dev, false))
	}
	// x_t = x0 + t·(x1 − x0)
	diff := s.Add(x1.MustSub(x0, false))
	xt := s.Add(x0.MustAdd(s.Add(diff.MustMul(tt, false)), false))
	var refs *ts.Tensor
	if imgs != nil {
		refs = s.Add(b.RefLatents(imgs))
	}
	v, err := b.DiT.Forward(model.DiTInput{X: xt, T: times, Text: cond, Refs: refs})
	if err != nil {
		return nil, err
	}
	s.Add(v)
	return v.MustMseLoss(diff, int64(ts.ReductionMean), false), nil
}
