package model

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/testenv"
	"github.com/thinkgen/thinkgen/internal/vlref"
)

// Special token ids of the tiny Qwen3-VL reference models (vocabulary 96).
const (
	vlImagePad    = 90
	vlVideoPad    = 91
	vlVisionStart = 92
	vlVisionEnd   = 93
	vlVocab       = 96
)

// tinyQwen3VLConfig is vlref.Tiny.
func tinyQwen3VLConfig() config.MLLM { return vlref.Tiny() }

// writeQwen3VLReference has transformers build, save and run a random
// Qwen3VLForConditionalGeneration of c's shapes in dir.
func writeQwen3VLReference(t *testing.T, py, dir string, c config.MLLM, imageSize int) {
	t.Helper()
	tok := vlref.Tokens{Vocab: vlVocab, ImagePad: vlImagePad, VideoPad: vlVideoPad, VisionStart: vlVisionStart, VisionEnd: vlVisionEnd}
	vlref.Write(t, py, filepath.Join("testdata", "qwen3vl_reference.py"), dir, c, tok, imageSize, vlref.Save{})
}

// newQwen3VL builds an MLLM of c for the reference models' vocabulary.
func newQwen3VL(c config.MLLM) (*MLLM, error) {
	special := SpecialIDs{Pad: 0, EOS: 1, ThinkEnd: 2, ImagePad: vlImagePad}
	return NewMLLM(c, vlVocab, special, true, gotch.CPU, 7)
}

// TestQwen3VLParityWithTransformers loads a random
// Qwen3VLForConditionalGeneration that transformers saved and compares the
// logits and the last two hidden states of a sequence with an image (ViT,
// merger, DeepStack, M-RoPE) and one without, batched together.
func TestQwen3VLParityWithTransformers(t *testing.T) {
	py := testenv.VLPython(t)
	tied := tinyQwen3VLConfig()
	tied.TieEmbeddings = true
	tied.ViT.DeepStack = []int{1}
	tied.MRopeSection = []int{2, 3, 3}
	for _, tc := range []struct {
		name string
		cfg  config.MLLM
	}{
		{"untied, deepstack 0 2 3", tinyQwen3VLConfig()},
		{"tied, deepstack 1", tied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeQwen3VLReference(t, py, dir, tc.cfg, 24)
			exp := readReference(t, filepath.Join(dir, "expected.safetensors"))
			inTorch(t, func() error {
				m, err := newQwen3VL(tc.cfg)
				if err != nil {
					return err
				}
				defer m.Drop()
				if err := m.LoadQwen3VL(filepath.Join(dir, "model")); err != nil {
					return err
				}
				in, image := referenceInput(t, exp)
				defer image.MustDrop()
				var ps libtorch.Scope
				checkReference(t, exp, "pixel_values", float32s(qwen3VLPatches(&ps, tc.cfg, image)), "the image processor's flattening", 0)
				ps.Close()
				run := func() (*forwardOutput, error) {
					var out *forwardOutput
					var err error
					libtorch.NoGrad(func() { out, err = m.forward(in) })
					return out, err
				}
				out, err := run()
				if err != nil {
					return err
				}
				defer out.drop()
				for r, row := range []string{"image", "text"} {
					for name, got := range map[string]*ts.Tensor{"logits_": out.logits, "hidden_prev_": out.prev, "hidden_last_": out.last} {
						sel := got.MustSelect(0, int64(r), false)
						checkReference(t, exp, name+row, float32s(sel), "transformers", 1e-4)
						sel.MustDrop()
					}
				}
				// The forward pass frees what it makes: a second and third
				// pass leave the live tensor count where it was.
				live := libtorch.LiveTensors()
				for i := 0; i < 2; i++ {
					o, err := run()
					if err != nil {
						return err
					}
					o.drop()
				}
				if got := libtorch.LiveTensors(); got != live {
					t.Errorf("live tensors %d after two more forward passes, %d before", got, live)
				}
				return nil
			})
		})
	}
}

// referenceInput returns the forward input of the reference's ids (every
// token real, positions 0…T−1) with its image.
func referenceInput(t *testing.T, exp safetensors.SafeTensors) (*forwardInput, *ts.Tensor) {
	t.Helper()
	idv, ok := exp.Tensor("ids")
	if !ok {
		t.Fatal("the reference has no ids")
	}
	b, n := int(idv.Shape()[0]), int(idv.Shape()[1])
	in := &forwardInput{ids: make([]int64, b*n), batch: b, t: n, positions: make([]int64, b*n), keyValid: make([][]bool, b), hidden: true}
	for i := range in.ids {
		in.ids[i] = int64(binary.LittleEndian.Uint64(idv.Data()[8*i:]))
		in.positions[i] = int64(i % n)
	}
	for i := range in.keyValid {
		in.keyValid[i] = make([]bool, n)
		for j := range in.keyValid[i] {
			in.keyValid[i][j] = true
		}
	}
	iv, _ := exp.Tensor("image")
	shape := make([]int64, len(iv.Shape()))
	for i, d := range iv.Shape() {
		shape[i] = int64(d)
	}
	in.images = float32Tensor(referenceFloats(t, exp, "image"), shape, gotch.CPU)
	return in, in.images
}

// TestQwen3VLRefusesMismatchedFolders checks that a folder whose
// config.json disagrees with the configuration, whose weights disagree
// with its config.json (shape or dtype), or that lacks a tensor or holds
// an extra one is refused naming the file and the key or tensor.
func TestQwen3VLRefusesMismatchedFolders(t *testing.T) {
	py := testenv.VLPython(t)
	c := tinyQwen3VLConfig()
	src := t.TempDir()
	writeQwen3VLReference(t, py, src, c, 24)
	model := filepath.Join(src, "model")

	// copyFolder copies the saved model into a new folder, letting edit
	// change config.json's text and drop decides which tensors to keep.
	copyFolder := func(t *testing.T, edit func(string) string, drop string) string {
		dir := t.TempDir()
		cfg, err := os.ReadFile(filepath.Join(model, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(edit(string(cfg))), 0o644); err != nil {
			t.Fatal(err)
		}
		buf, err := os.ReadFile(filepath.Join(model, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := safetensors.Deserialize(buf)
		if err != nil {
			t.Fatal(err)
		}
		views := map[string]safetensors.TensorView{}
		for _, name := range st.Names() {
			if name != drop {
				v, _ := st.Tensor(name)
				views[name] = v
			}
		}
		f, err := os.Create(filepath.Join(dir, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := safetensors.SerializeToWriter(views, nil, f); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	same := func(s string) string { return s }
	deeper := func(s string) string { return strings.Replace(s, `"depth": 4`, `"depth": 5`, 1) }
	c5 := c
	c5.ViT.Depth = 5
	for _, tc := range []struct {
		name       string
		cfg        config.MLLM
		edit       func(string) string
		drop       string
		file, want string
	}{
		{"config.json against model.mllm", c, deeper, "", "config.json", "vision_config.depth is 5, but model.mllm.vit.depth is 4"},
		{"weights against config.json", c5, deeper, "", "model.safetensors", "tensor model.visual.blocks.4.norm1.weight is missing"},
		{"a dtype config.json does not allow", c, func(s string) string { return strings.Replace(s, `"dtype": "float32"`, `"dtype": "bfloat16"`, 1) },
			"", "model.safetensors", "has dtype F32, but config.json's dtype allows BF16"},
		{"a missing tensor", c, same, "model.visual.deepstack_merger_list.1.linear_fc2.weight", "model.safetensors", "tensor model.visual.deepstack_merger_list.1.linear_fc2.weight is missing"},
		{"an extra tensor", tinyQwen3VLConfigWith(func(c *config.MLLM) { c.ViT.DeepStack = []int{0, 2} }), func(s string) string {
			return strings.Replace(s, `"deepstack_visual_indexes": [
      0,
      2,
      3
    ]`, `"deepstack_visual_indexes": [
      0,
      2
    ]`, 1)
		}, "", "model.safetensors", "unexpected tensors model.visual.deepstack_merger_list.2."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFolder(t, tc.edit, tc.drop)
			inTorch(t, func() error {
				m, err := newQwen3VL(tc.cfg)
				if err != nil {
					return err
				}
				defer m.Drop()
				err = m.LoadQwen3VL(dir)
				if err == nil {
					t.Fatal("the folder was accepted")
				}
				if !strings.Contains(err.Error(), filepath.Join(dir, tc.file)) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %q does not name %s and %q", err, tc.file, tc.want)
				}
				return nil
			})
		})
	}
}

// tinyQwen3VLConfigWith returns tinyQwen3VLConfig changed by edit.
func tinyQwen3VLConfigWith(edit func(*config.MLLM)) config.MLLM {
	c := tinyQwen3VLConfig()
	edit(&c)
	return c
}
