package pretrain

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
)

// vaeConfig is smallConfig with the DiT in the latent of a tiny VAE.
func vaeConfig() *config.Config {
	c := smallConfig()
	d := &c.Model.DiT
	d.Latent, d.Channels, d.VAEScale, d.Patch = "vae", 4, 4, 2
	c.Model.VAE = config.VAE{Width: 8, LayersPerBlock: 1, NormGroups: 4}
	return c
}

// TestCheckVAE refuses --vae folders that the configuration cannot use,
// naming why, and accepts one of model.vae's architecture.
func TestCheckVAE(t *testing.T) {
	c := vaeConfig()
	fit, other := filepath.Join(t.TempDir(), "fit"), filepath.Join(t.TempDir(), "other")
	wide := vaeConfig()
	wide.Model.VAE.Width = 16
	err := libtorch.Run(func() error {
		for dir, m := range map[string]config.Model{fit: c.Model, other: wide.Model} {
			v, err := model.NewVAE(model.VAEConfigFor(m), gotch.CPU, 1)
			if err != nil {
				return err
			}
			err = v.Save(dir)
			v.Drop()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pixel := smallConfig()
	training := vaeConfig()
	training.Pretrain.VAE = config.Stage{Steps: 5, Batch: 2}
	cases := []struct {
		name string
		cfg  *config.Config
		dir  string
		want string // "" accepts
	}{
		{"fits", c, fit, ""},
		{"pixel space", pixel, fit, "model.dit.latent is pixel"},
		{"vae stage too", training, fit, "pretrain.vae.steps to 0"},
		{"other architecture", c, other, "block_out_channels [16 32 64]"},
		{"no folder", c, t.TempDir(), "config.json"},
	}
	for _, tc := range cases {
		err := CheckVAE(tc.cfg, tc.dir)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one naming %q", tc.name, err, tc.want)
		}
	}
}
