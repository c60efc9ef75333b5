package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/internal/testutil"
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
	img := testutil.ReadPNG(t, out)
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
			runRefused(t, tt.want, args...)
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("the refused command wrote %d files", len(entries))
			}
		})
	}
}
