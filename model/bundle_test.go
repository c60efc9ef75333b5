package model

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/tokenizer"
)

func testBundleConfig() *config.Config {
	cfg := config.Default()
	cfg.Model.MLLM = tinyMLLMConfig()
	cfg.Model.DiT = tinyDiTConfig()
	cfg.Model.Connector.Prepad = 2
	return cfg
}

// A bundle saves and loads its weights, tokenizer and (a LoRA run's)
// adapters exactly; the manifest refuses a configuration that does not
// fit the weights and catches a flipped byte.
func TestBundleSaveLoadRoundTrip(t *testing.T) {
	tok, err := tokenizer.NewWords([]string{"a", "red", "circle", "left", "of"})
	if err != nil {
		t.Fatal(err)
	}
	withLoRA := config.LoRA{MLLM: config.Adapter{Rank: 2, Alpha: 4}, DiT: config.Adapter{Rank: 3, Alpha: 3}}
	for _, tc := range []struct {
		name  string
		lora  config.LoRA
		files int
	}{{"weights", config.LoRA{}, 4}, {"with adapters", withLoRA, 6}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ckpt")
			inTorch(t, func() error {
				cfg := testBundleConfig()
				cfg.LoRA = tc.lora
				b, err := NewBundle(cfg, tok, gotch.CPU, 42)
				if err != nil {
					return err
				}
				defer b.Drop()
				if b.MLLM.Vocab != tok.VocabSize() {
					t.Errorf("MLLM vocab %d, tokenizer %d", b.MLLM.Vocab, tok.VocabSize())
				}
				pairs := func(x *Bundle) []*Params { return []*Params{x.MLLM.P, x.Connector.P, x.DiT.P} }
				if tc.lora.MLLM.Rank > 0 {
					randomizeB(b.MLLM.Adapters)
					randomizeB(b.DiT.Adapters)
					pairs = func(x *Bundle) []*Params {
						return []*Params{x.MLLM.P, x.Connector.P, x.DiT.P, x.MLLM.Adapters.P, x.DiT.Adapters.P}
					}
				}
				// The manifest records a configuration that fits the bundle only.
				other := testBundleConfig()
				other.Model.DiT.Layers++
				other.LoRA = tc.lora
				if err := b.Save(dir, 7, other); err == nil || !strings.Contains(err.Error(), "dit.layers") {
					t.Errorf("Save with a configuration of another shape: %v, want an error naming dit.layers", err)
				}
				other = testBundleConfig()
				other.LoRA = withLoRA
				if tc.lora.MLLM.Rank > 0 {
					other.LoRA = config.LoRA{}
				}
				if err := b.Save(dir, 7, other); err == nil || !strings.Contains(err.Error(), "lora") {
					t.Errorf("Save with a configuration of other adapters: %v, want an error naming lora", err)
				}
				if err := b.Save(dir, 7, cfg); err != nil {
					return err
				}
				got, man, err := LoadBundle(dir, gotch.CPU)
				if err != nil {
					return err
				}
				defer got.Drop()
				if man.Step != 7 || len(man.Files) != tc.files {
					t.Errorf("manifest %+v, want %d files", man, tc.files)
				}
				want, have := pairs(b), pairs(got)
				for k, p := range want {
					for i, x := range p.Tensors() {
						if d := maxAbsDiff(x, have[k].Tensors()[i]); d != 0 {
							t.Errorf("%s differs by %g after reload", p.Specs()[i].Name, d)
						}
					}
				}
				if got.Tok.VocabSize() != tok.VocabSize() {
					t.Errorf("tokenizer vocab %d after reload, want %d", got.Tok.VocabSize(), tok.VocabSize())
				}
				// A flipped byte in a weights file is caught by the manifest.
				path := filepath.Join(dir, "dit.safetensors")
				raw, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				raw[len(raw)-1] ^= 0xff
				if err := os.WriteFile(path, raw, 0o644); err != nil {
					return err
				}
				if _, _, err := LoadBundle(dir, gotch.CPU); err == nil || !strings.Contains(err.Error(), "dit.safetensors") || !strings.Contains(err.Error(), "sha256") {
					t.Errorf("corrupted checkpoint: %v", err)
				}
				return nil
			})
		})
	}
}

func TestImagesRoundTrip(t *testing.T) {
	inTorch(t, func() error {
		img := image.NewRGBA(image.Rect(0, 0, 4, 4))
		for i := range img.Pix {
			img.Pix[i] = uint8(i * 7)
		}
		for i := 3; i < len(img.Pix); i += 4 {
			img.Pix[i] = 255
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			return err
		}
		x, err := ImagesToTensor([][]byte{buf.Bytes(), buf.Bytes()}, 4, gotch.CPU)
		if err != nil {
			return err
		}
		defer x.MustDrop()
		back, err := TensorToImages(x)
		if err != nil {
			return err
		}
		if !bytes.Equal(back[1].Pix, img.Pix) {
			t.Errorf("round trip changed the pixels")
		}
		if _, err := ImagesToTensor([][]byte{buf.Bytes()}, 8, gotch.CPU); err == nil || !strings.Contains(err.Error(), "image 0 is 4x4, want 8x8") {
			t.Errorf("wrong size: %v", err)
		}
		if _, err := ImagesToTensor([][]byte{[]byte("nope")}, 4, gotch.CPU); err == nil {
			t.Error("garbage PNG accepted")
		}
		return nil
	})
}
