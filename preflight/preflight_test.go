package preflight_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/preflight"
)

func TestCheck(t *testing.T) {
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(c *config.Config)
		want string // "" for no error
	}{
		{"the shipped base and the tiny configuration", func(c *config.Config) {}, ""},
		{"no base", func(c *config.Config) { c.Run.Base = "" }, "run.base: empty"},
		{"a base that is not there", func(c *config.Config) { c.Run.Base = filepath.Join(empty, "nothing") }, "run.base: "},
		{"a directory that is neither a bundle nor an export", func(c *config.Config) { c.Run.Base = empty }, "is neither a bundle nor an export"},
		{"a base of another shape", func(c *config.Config) { c.Model.MLLM.Layers++ }, "a checkpoint of another model shape"},
		{"an empty train split", func(c *config.Config) { c.Data.TrainSize = 0 }, "data.train_size: 0"},
		{"a mix of zero weights", func(c *config.Config) { c.GRPO.Mix = map[string]float64{"reasoning": 0} }, "grpo.mix: every scenario has weight 0"},
		{"a mix of unknown scenarios only", func(c *config.Config) { c.FlowGRPO.Mix = map[string]float64{"juggling": 1} }, "flow_grpo.mix: every scenario has weight 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(filepath.Join("..", "configs", "tiny.yaml"), nil)
			if err != nil {
				t.Fatal(err)
			}
			c.Run.Base = filepath.Join("..", "base", "tiny")
			tt.edit(c)
			err = preflight.Check(c)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Check: %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Check: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
