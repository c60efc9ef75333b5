package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestResumeAfterACycleEqualsUninterrupted stops the chaos run after step 6
// (mid-way through its second cycle) and resumes it: every later version
// equals the uninterrupted run's, byte for byte. (A fresh optimiser once
// skipped parameters that no step had reached yet, and a resumed run
// drifted by lr·wd·p.)
func TestResumeAfterACycleEqualsUninterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("trains")
	}
	small := filepath.Join("testdata", "chaos.yaml")
	base := saveBaseOf(t, small)
	dir := t.TempDir()
	common := []string{"--config", small, "--set", "run.base=" + base, "--run-dir", dir, "--eval-rows", "0", "--rollout-tasks", "2"}
	for _, args := range [][]string{{"--run", "a"}, {"--run", "b", "--stop-after", "6"}, {"--run", "b", "--resume"}} {
		if code, out, errs := runCLI(t, append(append([]string{"train"}, args...), common...)...); code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, out, errs)
		}
	}
	for v := 6; v <= 8; v++ {
		for _, f := range []string{"bundle/dit.safetensors", "optim-dit.safetensors"} {
			a, _ := os.ReadFile(filepath.Join(dir, "runs", "a", "checkpoints", fmt.Sprintf("%06d", v), f))
			b, _ := os.ReadFile(filepath.Join(dir, "runs", "b", "checkpoints", fmt.Sprintf("%06d", v), f))
			if len(a) == 0 || !bytes.Equal(a, b) {
				d, err := maxAbsDiff(a, b)
				t.Errorf("version %d %s: the resumed run differs (max |Δ| %g, %v)", v, f, d, err)
			}
		}
	}
}
