package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLatentVAEEndToEnd runs the small configuration with the DiT in a
// VAE's latent space through every command: pretrain (a VAE stage, then
// the four stages, shortened), train (both SepGRPO phases, one step each,
// with eval), a run stopped after its first step and resumed (equal to
// the uninterrupted one), and export (the VAE folder included).
func TestLatentVAEEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("trains")
	}
	cfgPath := filepath.Join("testdata", "vae.yaml")
	dir := t.TempDir()
	if code, out, errs := runCLI(t, "pretrain", "--config", cfgPath, "--run-dir", dir, "--set", "run.name=p", "--eval-rows", "0"); code != 0 {
		t.Fatalf("pretrain: exit %d\n%s\n%s", code, out, errs)
	} else if !strings.Contains(out, "vae ") {
		t.Errorf("pretrain's table has no VAE stage:\n%s", out)
	}
	base := filepath.Join(dir, "runs", "p", "pretrain", "finetune", "final")
	var vaeCfg struct {
		Scaling float64  `json:"scaling_factor"`
		Shift   *float64 `json:"shift_factor"`
	}
	readJSON(t, filepath.Join(base, "vae.json"), &vaeCfg)
	if vaeCfg.Scaling == 1 || vaeCfg.Shift == nil {
		t.Errorf("the pre-trained VAE was not calibrated: scaling_factor %v, shift_factor %v", vaeCfg.Scaling, vaeCfg.Shift)
	}

	common := []string{"--config", cfgPath, "--set", "run.base=" + base, "--run-dir", dir}
	for _, args := range [][]string{{"--run", "a", "--eval-rows", "0"}, {"--run", "b", "--stop-after", "1", "--eval-rows", "0"}, {"--run", "b", "--resume", "--eval-rows", "2"}} {
		if code, out, errs := runCLI(t, append(append([]string{"train"}, args...), common...)...); code != 0 {
			t.Fatalf("train %v: exit %d\n%s\n%s", args, code, out, errs)
		}
	}
	for _, f := range []string{"bundle/mllm.safetensors", "bundle/dit.safetensors", "bundle/vae.safetensors", "optim-dit.safetensors"} {
		a, _ := os.ReadFile(filepath.Join(dir, "runs", "a", "checkpoints", fmt.Sprintf("%06d", 2), f))
		b, _ := os.ReadFile(filepath.Join(dir, "runs", "b", "checkpoints", fmt.Sprintf("%06d", 2), f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			d, err := maxAbsDiff(a, b)
			t.Errorf("version 2 %s: the resumed run differs (max |Δ| %g, %v)", f, d, err)
		}
	}

	out := filepath.Join(t.TempDir(), "export")
	if code, o, errs := runCLI(t, "export", "--run", "a", "--run-dir", dir, "--out", out); code != 0 {
		t.Fatalf("export: exit %d\n%s\n%s", code, o, errs)
	}
	var index map[string]any
	readJSON(t, filepath.Join(out, "model_index.json"), &index)
	if fmt.Sprint(index["vae"]) != "[diffusers AutoencoderKL]" {
		t.Errorf("model_index.json vae = %v, want [diffusers AutoencoderKL]", index["vae"])
	}
	readJSON(t, filepath.Join(out, "vae", "config.json"), &vaeCfg)
	if _, err := os.Stat(filepath.Join(out, "vae", "diffusion_pytorch_model.safetensors")); err != nil {
		t.Errorf("the export has no VAE weights: %v", err)
	}
	if code, o, errs := runCLI(t, "eval", "--model", out, "--rows", "2"); code != 0 {
		t.Fatalf("eval of the export: exit %d\n%s\n%s", code, o, errs)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
