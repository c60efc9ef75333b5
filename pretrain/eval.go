package pretrain

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// Sample is one generated example of an evaluation.
type Sample struct {
	Row *datasets.Row
	// Written is what the MLLM wrote (chain of thought and instruction).
	Written string
	// Instruction is the text after </think> without the end token.
	Instruction string
	Image       *image.RGBA
	Result      reward.Result
}

// Generate runs the think-then-generate pipeline for rows: the MLLM writes
// (greedy) in thinking or non-thinking mode, its instruction states go
// through the connector, and the DiT samples the image with the sampling
// section's steps and guidance (editing and reflection rows edit their
// reference image). It must run inside libtorch.Run.
func Generate(b *model.Bundle, rows []datasets.Row, thinking bool, s config.Sampling, seed uint64, dev gotch.Device) ([]Sample, error) {
	tok := b.Tok
	size := b.Cfg.Model.DiT.ImageSize
	imgTokens := ImageTokens(size, b.Cfg.Model.MLLM.VisionPatch)
	out := make([]Sample, len(rows))
	// Rows with and without a reference image take separate DiT passes.
	for _, withRef := range []bool{false, true} {
		var idx []int
		for i := range rows {
			if (len(rows[i].Reference) > 0) == withRef {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 {
			continue
		}
		if err := generateGroup(b, tok, rows, idx, thinking, s, seed, size, imgTokens, out, dev); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func generateGroup(b *model.Bundle, tok tokenizer.Tokenizer, rows []datasets.Row, idx []int, thinking bool, s config.Sampling, seed uint64, size, imgTokens int, out []Sample, dev gotch.Device) error {
	var sc libtorch.Scope
	defer sc.Close()
	mode := tokenizer.ThinkSkip
	if thinking {
		mode = tokenizer.ThinkOpen
	}
	prompts := make([][]int, len(idx))
	seeds := make([]uint64, len(idx))
	var refs [][]byte
	for j, i := range idx {
		p, err := chatPrompt(tok, rows[i].Prompt, rows[i].Reference, imgTokens, mode)
		if err != nil {
			return fmt.Errorf("row %s: %w", rows[i].ID, err)
		}
		prompts[j] = p
		seeds[j] = seed + uint64(i)
		if len(rows[i].Reference) > 0 {
			refs = append(refs, rows[i].Reference)
		}
	}
	var refImgs *ts.Tensor
	if len(refs) > 0 {
		raw, err := model.ImagesToTensor(refs, size, dev)
		if err != nil {
			return err
		}
		sc.Add(raw)
		refImgs = sc.Add(model.PixelSpace{}.Encode(raw))
	}
	g, err := b.MLLM.Generate(prompts, model.GenerateOptions{MaxNewTokens: s.MaxNewTokens, Temperature: 0, Seeds: seeds, Images: refImgs})
	if err != nil {
		return err
	}
	states, _, err := b.MLLM.InstructionStates(prompts, g.Tokens, refImgs)
	if err != nil {
		return err
	}
	for _, st := range states {
		sc.Add(st)
	}
	var cond, uncond *model.Condition
	var img *ts.Tensor
	libtorch.NoGrad(func() {
		cond, err = b.Connector.Forward(states)
		if err != nil {
			return
		}
		empty := make([]*ts.Tensor, len(idx))
		for j := range empty {
			empty[j] = sc.Add(ts.MustZeros([]int64{0, int64(b.Connector.In)}, gotch.Float, dev))
		}
		uncond, err = b.Connector.Forward(empty)
		if err != nil {
			return
		}
		x0 := sc.Add(model.InitialNoise(seeds, 3, size, size, dev))
		grid := model.TimeGrid(s.DiTSteps, s.TimeShift, size, size)
		var lat *ts.Tensor
		lat, err = b.DiT.SampleODE(x0, grid, cond, refImgs, model.Guidance{Uncond: uncond, TextScale: s.CFG, ImageScale: 1})
		if err != nil {
			return
		}
		img = sc.Add(model.PixelSpace{}.Decode(lat))
		lat.MustDrop()
	})
	if cond != nil {
		defer cond.Drop()
	}
	if uncond != nil {
		defer uncond.Drop()
	}
	if err != nil {
		return err
	}
	imgs, err := model.TensorToImages(img)
	if err != nil {
		return err
	}
	for j, i := range idx {
		written := tok.Decode(g.Tokens[j])
		instr := written
		if k := strings.Index(instr, "</think>"); k >= 0 {
			instr = instr[k+len("</think>"):]
		}
		instr = strings.TrimSpace(strings.ReplaceAll(instr, "<|im_end|>", ""))
		out[i] = Sample{Row: &rows[i], Written: written, Instruction: instr, Image: imgs[j]}
	}
	return nil
}

// Score scores samples with the rule models and fills their Result.
func Score(ctx context.Context, reg *reward.Registry, samples []Sample) ([]reward.Result, error) {
	items := make([]reward.Item, len(samples))
	for i, s := range samples {
		spec, err := json.Marshal(s.Row.Spec)
		if err != nil {
			return nil, err
		}
		it := reward.Item{ID: s.Row.ID, Scenario: s.Row.Scenario, Spec: spec, Image: s.Image, Text: s.Instruction, Answer: s.Row.Answer}
		if len(s.Row.Reference) > 0 {
			ref, err := png.Decode(strings.NewReader(string(s.Row.Reference)))
			if err != nil {
				return nil, fmt.Errorf("row %s: reference: %w", s.Row.ID, err)
			}
			it.Reference = ref
		}
		items[i] = it
	}
	res, err := reg.Score(ctx, items)
	if err != nil {
		return nil, err
	}
	for i := range samples {
		samples[i].Result = res[i]
	}
	return res, nil
}

// WriteGrid writes a PNG with one line per sample: reference (blank when
// none) | generated | target, each scaled up by scale.
func WriteGrid(path string, samples []Sample, scale int) error {
	if len(samples) == 0 {
		return fmt.Errorf("write grid %s: no samples", path)
	}
	size := samples[0].Image.Bounds().Dx() * scale
	pad := 2
	grid := image.NewRGBA(image.Rect(0, 0, 3*size+4*pad, len(samples)*(size+pad)+pad))
	draw.Draw(grid, grid.Bounds(), &image.Uniform{color.RGBA{60, 60, 60, 255}}, image.Point{}, draw.Src)
	put := func(img image.Image, col, row int) {
		if img == nil {
			return
		}
		x0, y0 := pad+col*(size+pad), pad+row*(size+pad)
		b := img.Bounds()
		for y := 0; y < size; y++ {
			for x := 0; x < size; x++ {
				grid.Set(x0+x, y0+y, img.At(b.Min.X+x/scale, b.Min.Y+y/scale))
			}
		}
	}
	for r, s := range samples {
		if len(s.Row.Reference) > 0 {
			ref, err := png.Decode(strings.NewReader(string(s.Row.Reference)))
			if err == nil {
				put(ref, 0, r)
			}
		}
		put(s.Image, 1, r)
		tgt, err := png.Decode(strings.NewReader(string(s.Row.Target)))
		if err == nil {
			put(tgt, 2, r)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write grid: %w", err)
	}
	if err := png.Encode(f, grid); err != nil {
		f.Close()
		return fmt.Errorf("write grid %s: %w", path, err)
	}
	return f.Close()
}

// WriteStageTable prints the per-stage evaluation like the paper's Table 6:
// one line per stage and mode, one column per scenario.
func WriteStageTable(w io.Writer, res []StageResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "stage\tmode")
	for _, sc := range datasets.AllScenarios {
		fmt.Fprintf(tw, "\t%s", sc)
	}
	fmt.Fprintln(tw)
	for _, r := range res {
		for _, mode := range []string{"direct", "think"} {
			sums, ok := r.Eval[mode]
			if !ok {
				continue
			}
			by := map[string]reward.Summary{}
			for _, s := range sums {
				by[s.Scenario] = s
			}
			fmt.Fprintf(tw, "%s\t%s", r.Stage, mode)
			for _, sc := range datasets.AllScenarios {
				if s, ok := by[sc]; ok {
					fmt.Fprintf(tw, "\t%.3f (%.2f)", s.Score, s.Strict)
				} else {
					fmt.Fprint(tw, "\t-")
				}
			}
			fmt.Fprintln(tw)
		}
	}
	return tw.Flush()
}
