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

func TestBundleSaveLoadRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ckpt")
	tok, err := tokenizer.NewWords([]string{"a", "red", "circle", "left", "of"})
	if err != nil {
		t.Fatal(err)
	}
	inTorch(t, func() error {
		cfg := testBundleConfig()
		b, err := NewBundle(cfg, tok, gotch.CPU, 42)
		if err != nil {
			return err
		}
		defer b.Drop()
		if b.MLLM.Vocab != tok.VocabSize() {
			t.Errorf("MLLM vocab %d, tokenizer %d", b.MLLM.Vocab, tok.VocabSize())
		}
		// The manifest records a configuration of the bundle's shape only.
		other := testBundleConfig()
		other.Model.DiT.Layers++
		if err := b.Save(dir, 7, other); err == nil || !strings.Contains(err.Error(), "dit.layers") {
			t.Errorf("Save with a configuration of another shape: %v, want an error naming dit.layers", err)
		}
		if err := b.Save(dir, 7, cfg); err != nil {
			return err
		}
		got, man, err := LoadBundle(dir, gotch.CPU)
		if err != nil {
			return err
		}
		defer got.Drop()
		if man.Step != 7 || len(man.Files) != 4 {
			t.Errorf("manifest %+v", man)
		}
		for _, pair := range [][2]*Params{{b.MLLM.P, got.MLLM.P}, {b.Connector.P, got.Connector.P}, {b.DiT.P, got.DiT.P}} {
			for i, p := range pair[0].Tensors() {
				if d := maxAbsDiff(p, pair[1].Tensors()[i]); d != 0 {
					t.Errorf("%s differs by %g after reload", pair[0].Specs()[i].Name, d)
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
