package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/internal/tfevents"
	"github.com/thinkgen/thinkgen/internal/tfevents/tfeventstest"
)

// TestResumeAfterACycleEqualsUninterrupted stops the chaos run after step 6
// (mid-way through its second cycle) and resumes it: every later version
// equals the uninterrupted run's, byte for byte. (A fresh optimiser once
// skipped parameters that no step had reached yet, and a resumed run
// drifted by lr·wd·p.) Both runs leave one TensorBoard point per step.
// Both use --resume-if-exists (thinkgen launch's controller does): run a
// starts, run b resumes.
func TestResumeAfterACycleEqualsUninterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("trains")
	}
	small := filepath.Join("testdata", "chaos.yaml")
	base := saveBaseOf(t, small)
	dir := t.TempDir()
	common := []string{"--config", small, "--set", "run.base=" + base, "--run-dir", dir, "--rollout-tasks", "2"}
	// The resumed run ends with the per-stage eval (2 rows), whose
	// scores go to TensorBoard too.
	for _, args := range [][]string{{"--run", "a", "--resume-if-exists", "--eval-rows", "0"}, {"--run", "b", "--stop-after", "6", "--eval-rows", "0"}, {"--run", "b", "--resume-if-exists", "--eval-rows", "2"}} {
		if code, out, errs := runCLI(t, append(append([]string{"train"}, args...), common...)...); code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, out, errs)
		}
	}
	// TensorBoard: one point per committed step in both runs, the
	// resumed run's values those of the uninterrupted one.
	var runs [2][]tfevents.Event
	for i, r := range []string{"a", "b"} {
		tb := filepath.Join(dir, "runs", r, "tensorboard")
		files, events := readEventDir(t, tb)
		if r == "b" {
			// The eval file sorts last: base and the end of each block.
			if len(files) != 9 || !strings.Contains(files[8], ".eval.") || len(events) != 8+5 {
				t.Fatalf("run b: %d event files with %d events, want 8 steps then the eval file of 5 versions: %v", len(files), len(events), files)
			}
			var versions []int64
			for _, e := range events[8:] {
				versions = append(versions, e.Step)
				if v := scalarOf(e, "eval/think/composition"); v < 0 || v > 1 {
					t.Errorf("version %d: eval/think/composition = %v", e.Step, v)
				}
			}
			if fmt.Sprint(versions) != "[0 2 4 6 8]" {
				t.Errorf("eval scores at steps %v, want [0 2 4 6 8]", versions)
			}
			files, events = files[:8], events[:8]
		}
		if len(files) != 8 || len(events) != 8 {
			t.Fatalf("run %s: %d event files with %d events, want 8 and 8: %v", r, len(files), len(events), files)
		}
		for j, e := range events {
			if e.Step != int64(j+1) {
				t.Errorf("run %s: event file %s holds step %d, want %d", r, files[j], e.Step, j+1)
			}
		}
		runs[i] = events
		t.Run("tensorboard reads run "+r, func(t *testing.T) {
			l := tfeventstest.Read(t, tb)
			for _, tag := range []string{"reward/mean", "loss/kl", "time/step_s"} {
				if ps := l.Scalars[tag]; len(ps) != 8 || ps[0].Step != 1 || ps[7].Step != 8 {
					t.Errorf("%s: %d points %+v, want steps 1…8", tag, len(ps), ps)
				}
			}
		})
	}
	for j := range runs[0] {
		for _, tag := range []string{"reward/mean", "loss/kl", "learn/grad_norm"} {
			if x, y := scalarOf(runs[0][j], tag), scalarOf(runs[1][j], tag); x != y {
				t.Errorf("step %d %s: %v uninterrupted, %v resumed", j+1, tag, x, y)
			}
		}
	}
	for v := 6; v <= 8; v++ {
		for _, f := range []string{"bundle/dit.safetensors", "optim-dit.safetensors"} {
			a, _ := os.ReadFile(filepath.Join(versionDir(t, dir, "a", v), f))
			b, _ := os.ReadFile(filepath.Join(versionDir(t, dir, "b", v), f))
			if len(a) == 0 || !bytes.Equal(a, b) {
				d, err := maxAbsDiff(a, b)
				t.Errorf("version %d %s: the resumed run differs (max |Δ| %g, %v)", v, f, d, err)
			}
		}
	}
}
