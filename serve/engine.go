package serve

import (
	"fmt"
	"image"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/rollout"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// An Engine runs one model worker's batches. A worker calls its methods
// from one goroutine locked to one OS thread (libtorch.Run), one call at a
// time, and Close when it stops.
type Engine interface {
	// Draw runs the think-then-draw pipeline on every input as one batch.
	Draw(in []DrawInput) ([]Drawn, error)
	// Complete has the MLLM continue every prompt as one batch.
	Complete(in []CompleteInput, o CompleteOptions) ([]Completion, error)
	// Tokenizer returns the model's tokenizer.
	Tokenizer() tokenizer.Tokenizer
	// Close frees the engine's model.
	Close()
}

// DrawInput is one image to draw: its chat prompt's tokens, and the seed
// of its sampled tokens and initial noise.
type DrawInput struct {
	Prompt []int
	Seed   uint64
}

// Drawn is what the pipeline made of one DrawInput: what the MLLM wrote
// and the image.
type Drawn struct {
	Tokens []int
	Image  *image.RGBA
}

// CompleteInput is one completion: its chat prompt's tokens and the seed
// of its sampled tokens.
type CompleteInput struct {
	Prompt []int
	Seed   uint64
}

// CompleteOptions say how a batch of completions samples.
type CompleteOptions struct {
	MaxTokens   int
	Temperature float64 // 0: greedy
	TopP        float64
}

// Completion is one completion's tokens; Stopped reports that it ended
// with the end-of-turn token rather than at MaxTokens.
type Completion struct {
	Tokens  []int
	Stopped bool
}

// BundleEngine is the Engine of a model bundle: Draw is rollout.ThinkDraw
// with the given sampling settings, Complete the MLLM's Generate.
type BundleEngine struct {
	b *model.Bundle
	s config.Sampling
}

// NewBundleEngine returns the engine of b, drawing with s. It owns b:
// Close drops it.
func NewBundleEngine(b *model.Bundle, s config.Sampling) *BundleEngine {
	return &BundleEngine{b: b, s: s}
}

// Draw implements Engine.
func (e *BundleEngine) Draw(in []DrawInput) ([]Drawn, error) {
	inputs := make([]rollout.Input, len(in))
	for i, d := range in {
		inputs[i] = rollout.Input{Prompt: d.Prompt, Seed: d.Seed, Noise: d.Seed}
	}
	out, _, err := rollout.ThinkDraw(e.b, inputs, e.s, e.b.MLLM.P.Device())
	if err != nil {
		return nil, err
	}
	drawn := make([]Drawn, len(out))
	for i, o := range out {
		drawn[i] = Drawn{Tokens: o.Tokens, Image: o.Image}
	}
	return drawn, nil
}

// Complete implements Engine.
func (e *BundleEngine) Complete(in []CompleteInput, o CompleteOptions) ([]Completion, error) {
	prompts := make([][]int, len(in))
	seeds := make([]uint64, len(in))
	for i, c := range in {
		prompts[i], seeds[i] = c.Prompt, c.Seed
	}
	var gen *model.Generation
	var err error
	libtorch.NoGrad(func() {
		gen, err = e.b.MLLM.Generate(prompts, model.GenerateOptions{
			MaxNewTokens: o.MaxTokens, Temperature: o.Temperature, TopP: o.TopP, Seeds: seeds,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("complete: %w", err)
	}
	out := make([]Completion, len(in))
	for i := range out {
		out[i] = Completion{Tokens: gen.Tokens[i], Stopped: gen.Stopped[i]}
	}
	return out, nil
}

// Tokenizer implements Engine.
func (e *BundleEngine) Tokenizer() tokenizer.Tokenizer { return e.b.Tok }

// Close implements Engine.
func (e *BundleEngine) Close() { e.b.Drop() }

// ModelFor describes the model of configuration c, with tokenizer tok (nil:
// the loaded engine's) and the draw settings s, to the server as id.
func ModelFor(id string, c *config.Config, tok tokenizer.Tokenizer, s config.Sampling) Model {
	return Model{
		ID: id, Tok: tok,
		ImageSize:        c.Model.DiT.ImageSize,
		MaxSeqLen:        c.Model.MLLM.MaxSeqLen,
		DrawTokens:       s.MaxNewTokens,
		DefaultMaxTokens: s.MaxNewTokens,
	}
}
