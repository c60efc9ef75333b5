package model

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/testenv"
)

// TestVAEParityWithDiffusers loads a random AutoencoderKL that diffusers
// saved (with and without the quant convolutions, as SD's and FLUX's VAEs
// differ) and compares the posterior mean of encode and the output of
// decode with diffusers' on the same inputs.
func TestVAEParityWithDiffusers(t *testing.T) {
	ref := t.TempDir()
	cmd := exec.Command(testenv.Python(t), filepath.Join("testdata", "vae_reference.py"), ref)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reference script: %v\n%s", err, out)
	}
	for _, variant := range []string{"quant", "flux"} {
		t.Run(variant, func(t *testing.T) {
			dir := filepath.Join(ref, variant)
			exp := readReference(t, filepath.Join(dir, "expected.safetensors"))
			inTorch(t, func() error {
				v, err := LoadVAE(filepath.Join(dir, "vae"), gotch.CPU)
				if err != nil {
					return err
				}
				defer v.Drop()
				if v.Scale() != 2 || v.Channels() != 4 || v.Cfg.Shift() != 0.1159 || v.Cfg.ScalingFactor != 0.3611 {
					t.Errorf("scale %d channels %d shift %g scaling %g, want 2 4 0.1159 0.3611", v.Scale(), v.Channels(), v.Cfg.Shift(), v.Cfg.ScalingFactor)
				}
				x := float32Tensor(referenceFloats(t, exp, "x"), []int64{2, 3, 16, 16}, gotch.CPU)
				z := float32Tensor(referenceFloats(t, exp, "z"), []int64{2, 4, 8, 8}, gotch.CPU)
				defer x.MustDrop()
				defer z.MustDrop()
				libtorch.NoGrad(func() {
					mean, logvar := v.Posterior(x)
					dec := v.DecodeRaw(z)
					checkReference(t, exp, "mean", float32s(mean), "diffusers", 1e-4)
					checkReference(t, exp, "decoded", float32s(dec), "diffusers", 1e-4)
					mean.MustDrop()
					logvar.MustDrop()
					dec.MustDrop()
				})
				return nil
			})
		})
	}
}

// TestLoadVAERefusesMismatchedFolders edits a saved folder's config.json
// so that it no longer describes the weights, and checks that LoadVAE
// names the file and the first tensor that differs.
func TestLoadVAERefusesMismatchedFolders(t *testing.T) {
	c := tinyVAEConfig()
	dir := t.TempDir()
	inTorch(t, func() error {
		v, err := NewVAE(c, gotch.CPU, 1)
		if err != nil {
			return err
		}
		defer v.Drop()
		return v.Save(dir)
	})
	cases := []struct {
		name string
		edit func(m map[string]any)
		want []string
	}{
		{"wider first block", func(m map[string]any) { m["block_out_channels"] = []int{16, 16} },
			[]string{VAEWeightsFile, "encoder.conv_in.weight", "[16 3 3 3]"}},
		{"more latent channels", func(m map[string]any) { m["latent_channels"] = 8 },
			[]string{VAEWeightsFile, "encoder.conv_out.weight", "[16 16 3 3]"}},
		{"no quant conv", func(m map[string]any) { m["use_quant_conv"] = false },
			[]string{VAEWeightsFile, "unexpected tensors quant_conv.bias, quant_conv.weight"}},
		{"unsupported activation", func(m map[string]any) { m["act_fn"] = "gelu" },
			[]string{VAEConfigFile, "act_fn"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := t.TempDir()
			raw, err := os.ReadFile(filepath.Join(dir, VAEConfigFile))
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			tc.edit(m)
			edited, _ := json.Marshal(m)
			if err := os.WriteFile(filepath.Join(bad, VAEConfigFile), edited, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(filepath.Join(dir, VAEWeightsFile), filepath.Join(bad, VAEWeightsFile)); err != nil {
				t.Fatal(err)
			}
			before := libtorch.LiveTensors()
			var loadErr error
			inTorch(t, func() error {
				_, loadErr = LoadVAE(bad, gotch.CPU)
				return nil
			})
			if loadErr == nil {
				t.Fatal("LoadVAE accepted a config that does not match the weights")
			}
			t.Log(loadErr)
			for _, w := range tc.want {
				if !strings.Contains(loadErr.Error(), w) {
					t.Errorf("error %q does not name %q", loadErr, w)
				}
			}
			if after := libtorch.LiveTensors(); after != before {
				t.Errorf("a refused folder left %d tensors allocated", after-before)
			}
		})
	}
}

// TestVAESaveLoadRoundTrip saves a VAE as a diffusers folder and loads it
// back: same config, same outputs.
func TestVAESaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	inTorch(t, func() error {
		v, err := NewVAE(tinyVAEConfig(), gotch.CPU, 3)
		if err != nil {
			return err
		}
		defer v.Drop()
		if err := v.Save(dir); err != nil {
			return err
		}
		w, err := LoadVAE(dir, gotch.CPU)
		if err != nil {
			return err
		}
		defer w.Drop()
		if got, want := w.Cfg.summary(), v.Cfg.summary(); got != want {
			t.Errorf("config after load: %s, want %s", got, want)
		}
		img := float32Tensor(make([]float32, 2*3*8*8), []int64{2, 3, 8, 8}, gotch.CPU)
		defer img.MustDrop()
		a, b := v.Encode(img), w.Encode(img)
		defer a.MustDrop()
		defer b.MustDrop()
		if sz := a.MustSize(); sz[1] != 4 || sz[2] != 4 {
			t.Errorf("latent shape %v, want [2 4 4 4]", sz)
		}
		if d := maxAbsDiff(a, b); d != 0 {
			t.Errorf("encodings differ by %g after a save and load", d)
		}
		return nil
	})
}

func tinyVAEConfig() VAEConfig {
	c := DefaultVAEConfig()
	c.BlockOutChannels = []int{8, 16}
	c.DownBlockTypes = []string{"DownEncoderBlock2D", "DownEncoderBlock2D"}
	c.UpBlockTypes = []string{"UpDecoderBlock2D", "UpDecoderBlock2D"}
	c.NormNumGroups = 4
	c.LatentChannels = 4
	return c
}
