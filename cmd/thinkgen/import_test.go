package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportCommand exports base/tiny and imports the export's folders
// back with thinkgen import; bad flags are usage errors (exit 2) naming
// the flag, and a folder that does not fit the configuration is refused.
func TestImportCommand(t *testing.T) {
	exp := filepath.Join(t.TempDir(), "export")
	if code, out, errs := runCLI(t, "export", "--model", shippedBase, "--out", exp); code != 0 {
		t.Fatalf("export: exit %d\n%s%s", code, out, errs)
	}
	tiny := filepath.Join("..", "..", "configs", "tiny.yaml")
	out := filepath.Join(t.TempDir(), "bundle")
	code, stdout, errs := runCLI(t, "import", "--config", tiny, "--mllm", filepath.Join(exp, "mllm"), "--dit", exp, "--out", out)
	if code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, stdout, errs)
	}
	if !strings.Contains(stdout, "(1 safetensors files)") || strings.Contains(stdout, "initialised") {
		t.Errorf("import printed %q; want one file read and nothing initialised", stdout)
	}
	if _, err := os.Stat(filepath.Join(out, "manifest.json")); err != nil {
		t.Errorf("the bundle has no manifest: %v", err)
	}
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no --mllm", []string{"--config", tiny, "--out", filepath.Join(t.TempDir(), "b")}, 2, "--mllm is required"},
		{"no --out", []string{"--config", tiny, "--mllm", filepath.Join(exp, "mllm")}, 2, "--out is required"},
		{"--out not empty", []string{"--config", tiny, "--mllm", filepath.Join(exp, "mllm"), "--out", out}, 2, "--out"},
		{"--vae without latent vae", []string{"--config", tiny, "--mllm", filepath.Join(exp, "mllm"), "--vae", exp, "--out", filepath.Join(t.TempDir(), "b")}, 2, "--vae: model.dit.latent is \"pixel\""},
		{"config does not fit", []string{"--config", tiny, "--set", "model.mllm.layers=5", "--mllm", filepath.Join(exp, "mllm"), "--out", filepath.Join(t.TempDir(), "b")}, 1, "num_hidden_layers is 6, model.mllm.layers is 5"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runCLI(t, append([]string{"import"}, tt.args...)...)
			if code != tt.code || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d saying %q", code, errs, tt.code, tt.want)
			}
		})
	}
}
