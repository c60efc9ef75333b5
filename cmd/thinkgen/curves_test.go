package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCurvesCommand draws a trained run's curves, and refuses an unknown
// run, a metric no run logged, no run and no --out, writing nothing.
func TestCurvesCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("trains")
	}
	store, _ := trainSmallRun(t)
	out := filepath.Join(t.TempDir(), "curves.png")
	code, stdout, errs := runCLI(t, "curves", "--run-dir", store, "--out", out, "--metric", "reward/mean,loss/kl,reward/composition/mean", "--raw", "r", "r")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, errs)
	}
	if !strings.Contains(stdout, "(2 runs, 3 panels)") {
		t.Errorf("stdout: %s", stdout)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if b := img.Bounds(); b.Dx() <= b.Dy() {
		t.Errorf("three panels in a row drew %v", b)
	}

	bad := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown run", []string{"--out", "x.png", "r", "nosuch"}, []string{"run nosuch", "no run.json"}},
		{"metric no run logged", []string{"--out", "x.png", "--metric", "reward/mean,loss/klx", "r"}, []string{`--metric: metric "loss/klx"`, "loss/kl, "}},
		{"no run", []string{"--out", "x.png"}, []string{"name at least one run"}},
		{"no out", []string{"r"}, []string{"--out is required"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"curves", "--run-dir", store}
			for _, a := range tt.args {
				if a == "x.png" {
					a = filepath.Join(dir, a)
				}
				args = append(args, a)
			}
			code, _, errs := runCLI(t, args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2\n%s", code, errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("the refused command wrote %d files", len(entries))
			}
		})
	}
}
