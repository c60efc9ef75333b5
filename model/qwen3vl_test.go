package model

import (
	"slices"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// TestMRopePositions checks the three rotary axes against what
// transformers' get_rope_index assigns (worked by hand): text keeps one
// position, an image's tokens share the time position of its first token
// and count rows and columns of its merged grid, and the text after it
// continues at that position plus max(rows, columns).
func TestMRopePositions(t *testing.T) {
	const p = vlImagePad
	m := &MLLM{Special: SpecialIDs{ImagePad: p}}
	for _, tc := range []struct {
		name           string
		ids            []int64
		positions      []int64
		gh, gw         int64
		shiftIn        int64
		t, h, w        []int64
		shiftOut       int64
		wantErrOnShape bool
	}{
		{name: "text only", ids: []int64{5, 6, 7}, positions: []int64{0, 1, 2}, gh: 2, gw: 2,
			t: []int64{0, 1, 2}, h: []int64{0, 1, 2}, w: []int64{0, 1, 2}},
		{name: "a 2×3 image between text", ids: []int64{5, 6, p, p, p, p, p, p, 7, 8}, positions: []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, gh: 2, gw: 3,
			t:        []int64{0, 1, 2, 2, 2, 2, 2, 2, 5, 6},
			h:        []int64{0, 1, 2, 2, 2, 3, 3, 3, 5, 6},
			w:        []int64{0, 1, 2, 3, 4, 2, 3, 4, 5, 6},
			shiftOut: 3},
		{name: "two 2×2 images back to back", ids: []int64{p, p, p, p, p, p, p, p, 9}, positions: []int64{0, 1, 2, 3, 4, 5, 6, 7, 8}, gh: 2, gw: 2,
			t:        []int64{0, 0, 0, 0, 2, 2, 2, 2, 4},
			h:        []int64{0, 0, 1, 1, 2, 2, 3, 3, 4},
			w:        []int64{0, 1, 0, 1, 2, 3, 2, 3, 4},
			shiftOut: 4},
		{name: "decoding after a cached image", ids: []int64{9}, positions: []int64{12}, gh: 2, gw: 3, shiftIn: 3,
			t: []int64{9}, h: []int64{9}, w: []int64{9}, shiftOut: 3},
		{name: "an image cut short", ids: []int64{5, p, p, p, 6}, positions: []int64{0, 1, 2, 3, 4}, gh: 2, gw: 2, wantErrOnShape: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &forwardInput{ids: tc.ids, positions: tc.positions, batch: 1, t: len(tc.ids)}
			shift := []int64{tc.shiftIn}
			got, err := m.mropePositions(in, tc.gh, tc.gw, shift)
			if tc.wantErrOnShape {
				if err == nil {
					t.Fatal("an incomplete image was accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for a, want := range [][]int64{tc.t, tc.h, tc.w} {
				if !slices.Equal(got[a], want) {
					t.Errorf("axis %d = %v, want %v", a, got[a], want)
				}
			}
			if shift[0] != tc.shiftOut {
				t.Errorf("shift = %d, want %d", shift[0], tc.shiftOut)
			}
		})
	}
}

// TestMRopeAxes checks the interleaved frequency layout of Qwen3-VL-8B
// (mrope_section [24, 20, 20] over 64 frequencies): height takes 1, 4, …,
// 58, width 2, 5, …, 59, time the rest.
func TestMRopeAxes(t *testing.T) {
	axes := mropeAxes([]int{24, 20, 20}, 64)
	count := [3]int{}
	for i, a := range axes {
		count[a]++
		want := 0
		if i < 60 && i%3 == 1 {
			want = 1
		} else if i < 60 && i%3 == 2 {
			want = 2
		}
		if a != want {
			t.Errorf("frequency %d on axis %d, want %d", i, a, want)
		}
	}
	if count != [3]int{24, 20, 20} {
		t.Errorf("axis sizes %v, want [24 20 20]", count)
	}
}

// TestQwen3VLKVCacheMatchesFullPass decodes the last token of a prompt
// with an image through a KV cache filled by the rest, and checks its
// logits against one pass over the whole prompt: the cache carries the
// image's rotary shift.
func TestQwen3VLKVCacheMatchesFullPass(t *testing.T) {
	inTorch(t, func() error {
		c := tinyQwen3VLConfig()
		m, err := newQwen3VL(c)
		if err != nil {
			return err
		}
		defer m.Drop()
		image := randn([]int64{1, 3, 24, 24}, 3)
		defer image.MustDrop()
		ids := []int64{5, 6, vlVisionStart}
		for i := 0; i < ImageTokens(c, 24); i++ {
			ids = append(ids, vlImagePad)
		}
		ids = append(ids, vlVisionEnd, 7, 8)
		n := len(ids)
		full := &forwardInput{ids: ids, batch: 1, t: n, positions: make([]int64, n), keyValid: [][]bool{make([]bool, n)}, images: image}
		for i := range ids {
			full.positions[i], full.keyValid[0][i] = int64(i), true
		}
		var whole, step *forwardOutput
		libtorch.NoGrad(func() { whole, err = m.forward(full) })
		if err != nil {
			return err
		}
		defer whole.drop()
		cache := m.NewKVCache(1, n)
		defer cache.Drop()
		prefill := &forwardInput{ids: ids[:n-1], batch: 1, t: n - 1, positions: full.positions[:n-1], keyValid: full.keyValid, images: image, cache: cache}
		libtorch.NoGrad(func() { step, err = m.forward(prefill) })
		if err != nil {
			return err
		}
		step.drop()
		if want := int64(ImageTokens(c, 24)) - 3; cache.ropeShift[0] != want {
			t.Errorf("cache shift %d after a 3×3 image, want %d", cache.ropeShift[0], want)
		}
		last := &forwardInput{ids: ids[n-1:], batch: 1, t: 1, positions: full.positions[n-1:], keyValid: full.keyValid, cache: cache}
		libtorch.NoGrad(func() { step, err = m.forward(last) })
		if err != nil {
			return err
		}
		defer step.drop()
		a := whole.logits.MustNarrow(1, int64(n-1), 1, false)
		defer a.MustDrop()
		if d := maxAbsDiff(a, step.logits); d > 1e-5 {
			t.Errorf("decoded logits differ from the full pass by %g", d)
		}
		return nil
	})
}

// TestImageTokens counts one token per patch for the patch embedder and
// one per merged block for the Qwen3-VL tower.
func TestImageTokens(t *testing.T) {
	full := tinyQwen3VLConfig()
	full.VisionPatch, full.ViT.SpatialMerge = 16, 2
	for _, tc := range []struct {
		name string
		c    config.MLLM
		size int
		want int
	}{
		{"patch embedder", config.MLLM{VisionPatch: 4}, 32, 64},
		{"qwen3vl tiny", tinyQwen3VLConfig(), 24, 9},
		{"qwen3vl 8B shapes at 1024 px", full, 1024, 1024},
	} {
		if got := ImageTokens(tc.c, tc.size); got != tc.want {
			t.Errorf("%s: ImageTokens = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestQwen3VLRecomputeGradientsEqualPlainBackward: with activation
// checkpointing, the gradients of every parameter of a Qwen3-VL MLLM
// (ViT, mergers, DeepStack mergers, text model) equal an ordinary
// backward's within float32 rounding; the DeepStack features enter the
// recorded layers as inputs from outside them.
func TestQwen3VLRecomputeGradientsEqualPlainBackward(t *testing.T) {
	inTorch(t, func() error {
		c := tinyQwen3VLConfig()
		m, err := newQwen3VL(c)
		if err != nil {
			return err
		}
		defer m.Drop()
		scaleParams(m.P, 8)
		img := func(n int) []int {
			ids := []int{vlVisionStart}
			for i := 0; i < n; i++ {
				ids = append(ids, vlImagePad)
			}
			return append(ids, vlVisionEnd)
		}
		n := ImageTokens(c, 24)
		prompts := [][]int{append(append([]int{5}, img(n)...), 6), append(append([]int{7, 8}, img(n)...), 9)}
		completions := [][]int{{10, 11, 12}, {13, 14}}
		imgs := randn([]int64{2, 3, 24, 24}, 5)
		defer imgs.MustDrop()
		// The cut inputs: the embeddings and the DeepStack features.
		grads, err := plainAndRecordedGrads(t, m, prompts, completions, imgs, 0, c.Layers, 1+len(c.ViT.DeepStack))
		if err != nil {
			return err
		}
		compareGrads(t, "Qwen3-VL MLLM", grads[0], grads[1], 1e-5)
		return nil
	})
}

// TestQwen3VLBFloat16TracksFloat32: the tower runs in bfloat16 (rotary
// products and the attention softmax in float32) with log-probs of a
// prompt with an image close to float32's.
func TestQwen3VLBFloat16TracksFloat32(t *testing.T) {
	inTorch(t, func() error {
		c := tinyQwen3VLConfig()
		m, err := newQwen3VL(c)
		if err != nil {
			return err
		}
		defer m.Drop()
		prompt := []int{5, vlVisionStart}
		for i := 0; i < ImageTokens(c, 24); i++ {
			prompt = append(prompt, vlImagePad)
		}
		prompt = append(prompt, vlVisionEnd, 6)
		img := randn([]int64{1, 3, 24, 24}, 9)
		defer img.MustDrop()
		want, err := m.LogProbs([][]int{prompt}, [][]int{{7, 8, 9}}, 1, img)
		if err != nil {
			return err
		}
		defer want.Drop()
		m.P.ToDType(gotch.BFloat16)
		got, err := m.LogProbs([][]int{prompt}, [][]int{{7, 8, 9}}, 1, img)
		if err != nil {
			return err
		}
		defer got.Drop()
		d := maxAbsDiff(got.LogProbs, want.LogProbs)
		t.Logf("Qwen3-VL log-probs: bfloat16 vs float32 %g", d)
		if d > 0.02 || d == 0 {
			t.Errorf("bfloat16 log-probs differ from float32 by %g, want (0, 0.02]", d)
		}
		return nil
	})
}

// TestQwen3VLChatPrompt: with the Qwen3-VL tower, a prompt's image is
// <|vision_start|>, one <|image_pad|> per merged patch, <|vision_end|>.
func TestQwen3VLChatPrompt(t *testing.T) {
	tok, err := tokenizer.NewWords([]string{"a", "red", "circle"})
	if err != nil {
		t.Fatal(err)
	}
	sp := tok.Specials()
	c := tinyQwen3VLConfig()
	ids, err := ChatPrompt(tok, "a red circle", true, ImageTokens(c, 24), tokenizer.ThinkOpen)
	if err != nil {
		t.Fatal(err)
	}
	start := slices.Index(ids, sp.VisionStart)
	if start < 0 {
		t.Fatalf("no <|vision_start|> in %v", ids)
	}
	want := []int{sp.VisionStart}
	for i := 0; i < 9; i++ {
		want = append(want, sp.ImagePad)
	}
	want = append(want, sp.VisionEnd)
	if got := ids[start:min(len(ids), start+len(want))]; !slices.Equal(got, want) {
		t.Errorf("image tokens %v, want %v (3×3 merged patches)", got, want)
	}
}
