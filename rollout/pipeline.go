package rollout

import (
	"context"
	"fmt"
	"image"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// Input is one sample of the think-then-draw pipeline.
type Input struct {
	// Prompt is the chat prompt's tokens (see Prompt).
	Prompt []int
	// Reference is the PNG image the MLLM sees and the DiT edits; nil for
	// none.
	Reference []byte
	// Reply, when set, is taken as what the MLLM wrote instead of sampling
	// a reply (its instruction states still come from the MLLM). The
	// inputs of one call either all set it or none does.
	Reply []int
	// Seed draws the reply's tokens (when sampled); Noise draws the DiT's
	// initial noise.
	Seed, Noise uint64
}

// Output is what the pipeline made of one Input.
type Output struct {
	// Tokens is the MLLM's reply (Input.Reply when it was given); LogProbs
	// the sampling log-probabilities of its tokens (nil for a given reply).
	Tokens   []int
	LogProbs []float32
	// Image is the DiT's drawing.
	Image *image.RGBA
}

// Prompt encodes the generation prompt of a user turn for b: the user's
// text, preceded by one image's <|image_pad|> tokens when hasImage, with
// the assistant's turn opened as mode says (model.ChatPrompt).
func Prompt(b *model.Bundle, user string, hasImage bool, mode tokenizer.ThinkMode) ([]int, error) {
	imgTokens := model.ImageTokens(b.Model.MLLM, b.Model.DiT.ImageSize)
	return model.ChatPrompt(b.Tok, user, hasImage, imgTokens, mode)
}

// ThinkDraw runs the think-then-draw pipeline on in: the MLLM writes a
// reply to each prompt (s.MaxNewTokens, s.Temperature with 0 for greedy,
// s.TopP, seeded by Input.Seed) or takes Input.Reply; the VGI-refine
// states of what it wrote go through the connector; the DiT draws the
// image from Input.Noise by ODE sampling in s.DiTSteps steps (with
// s.TimeShift) with classifier-free guidance s.CFG, editing the reference
// image of inputs that have one. Inputs with and without a reference take
// separate passes (the DiT's sequence layout differs), those without
// first; each pass is one batch. Training rollouts (stage 4), eval and
// generate all draw through it. It must run inside libtorch.Run.
func ThinkDraw(b *model.Bundle, in []Input, s config.Sampling, dev gotch.Device) ([]Output, Stats, error) {
	return thinkDraw(context.Background(), b, in, s, dev)
}

// thinkDraw is ThinkDraw that stops before its next batch once ctx ends.
func thinkDraw(ctx context.Context, b *model.Bundle, in []Input, s config.Sampling, dev gotch.Device) ([]Output, Stats, error) {
	var st Stats
	out := make([]Output, len(in))
	given := 0
	for i := range in {
		if in[i].Reply != nil {
			given++
		}
	}
	if given != 0 && given != len(in) {
		return nil, st, fmt.Errorf("think-then-draw: %d of %d inputs give their reply; give every reply or none", given, len(in))
	}
	for _, idx := range byReference(len(in), func(i int) bool { return len(in[i].Reference) > 0 }) {
		if ctx.Err() != nil {
			return nil, st, context.Cause(ctx)
		}
		if err := thinkDrawPart(b, in, idx, s, dev, out, &st); err != nil {
			return nil, st, err
		}
	}
	return out, st, nil
}

func thinkDrawPart(b *model.Bundle, in []Input, idx []int, s config.Sampling, dev gotch.Device, out []Output, st *Stats) error {
	var sc libtorch.Scope
	defer sc.Close()
	prompts := make([][]int, len(idx))
	seeds := make([]uint64, len(idx))
	noise := make([]uint64, len(idx))
	var pngs [][]byte
	var replies [][]int
	for j, i := range idx {
		prompts[j], seeds[j], noise[j] = in[i].Prompt, in[i].Seed, in[i].Noise
		if len(in[i].Reference) > 0 {
			pngs = append(pngs, in[i].Reference)
		}
		if in[i].Reply != nil {
			replies = append(replies, in[i].Reply)
		}
	}
	refs, err := references(b, pngs, dev)
	if err != nil {
		return err
	}
	if refs != nil {
		sc.Add(refs)
	}

	t0 := time.Now()
	gen, err := write(b, prompts, replies, seeds, refs, s)
	if err != nil {
		return err
	}
	for _, x := range gen.States {
		sc.Add(x)
	}
	st.GenTime += time.Since(t0)

	t1 := time.Now()
	cond, uncond, err := conditions(b, gen.States, dev)
	if err != nil {
		return err
	}
	defer cond.Drop()
	defer uncond.Drop()
	var img *ts.Tensor
	libtorch.NoGrad(func() {
		size := model.LatentSide(b.Model.DiT)
		x0 := sc.Add(model.InitialNoise(noise, b.Model.DiT.Channels, size, size, dev))
		grid := model.TimeGrid(s.DiTSteps, s.TimeShift, size, size)
		var ditRefs *ts.Tensor
		if refs != nil {
			ditRefs = sc.Add(b.RefLatents(refs))
		}
		var lat *ts.Tensor
		lat, err = b.DiT.SampleODE(x0, grid, cond, ditRefs, model.Guidance{Uncond: uncond, TextScale: s.CFG, ImageScale: 1})
		if err != nil {
			return
		}
		img = sc.Add(b.Latent().Decode(lat))
		lat.MustDrop()
	})
	if err != nil {
		return fmt.Errorf("draw: %w", err)
	}
	imgs, err := model.TensorToImages(img)
	if err != nil {
		return err
	}
	st.ImageTime += time.Since(t1)

	for j, i := range idx {
		out[i] = Output{Tokens: gen.Tokens[j], Image: imgs[j]}
		if gen.LogProbs != nil {
			out[i].LogProbs = gen.LogProbs[j]
		}
		st.Samples++
		st.Images++
		st.Tokens += len(gen.Tokens[j])
	}
	return nil
}

// byReference splits the indices 0…n−1 into those without and those with
// a reference image, in order: the two take separate model passes (the
// DiT's sequence layout differs). Empty parts are left out.
func byReference(n int, hasRef func(i int) bool) [][]int {
	var plain, withRef []int
	for i := range n {
		if hasRef(i) {
			withRef = append(withRef, i)
		} else {
			plain = append(plain, i)
		}
	}
	var out [][]int
	for _, g := range [][]int{plain, withRef} {
		if len(g) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// references decodes reference images (each the DiT's image size) into the
// [n, 3, H, W] pixels in [−1, 1] the MLLM reads (nil when there are none;
// Bundle.RefLatents turns them into the DiT's); the caller drops it.
func references(b *model.Bundle, pngs [][]byte, dev gotch.Device) (*ts.Tensor, error) {
	return model.EncodeImages(model.PixelSpace{}, pngs, b.Model.DiT.ImageSize, dev)
}

// write has the MLLM write a reply to each prompt, without gradients: it
// samples them (s.MaxNewTokens, s.Temperature, s.TopP, one seed each)
// unless replies gives them, and returns them with their instruction
// states, which the caller drops.
func write(b *model.Bundle, prompts, replies [][]int, seeds []uint64, refs *ts.Tensor, s config.Sampling) (*model.Generation, error) {
	var gen *model.Generation
	var err error
	libtorch.NoGrad(func() {
		if replies != nil {
			gen = &model.Generation{Tokens: replies}
			gen.States, gen.NoThinkEnd, err = b.MLLM.InstructionStates(prompts, replies, refs)
			return
		}
		gen, err = b.MLLM.Generate(prompts, model.GenerateOptions{
			MaxNewTokens: s.MaxNewTokens, Temperature: s.Temperature, TopP: s.TopP,
			Seeds: seeds, Images: refs, States: true, Threads: s.DecodeThreads,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	return gen, nil
}

// conditions runs the connector (without gradients) on instruction states
// and on empty ones, the unconditional branch of classifier-free guidance.
func conditions(b *model.Bundle, states []*ts.Tensor, dev gotch.Device) (cond, uncond *model.Condition, err error) {
	libtorch.NoGrad(func() {
		cond, err = b.Connector.Forward(states)
		if err != nil {
			return
		}
		empty := make([]*ts.Tensor, len(states))
		for j := range empty {
			empty[j] = ts.MustZeros([]int64{0, int64(b.Connector.In)}, gotch.Float, dev)
		}
		uncond, err = b.Connector.Forward(empty)
		for _, e := range empty {
			e.MustDrop()
		}
		if err != nil {
			cond.Drop()
			cond = nil
		}
	})
	return cond, uncond, err
}
