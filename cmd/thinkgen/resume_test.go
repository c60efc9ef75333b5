package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/internal/tfevents"
	"github.com/thinkgen/thinkgen/internal/tfevents/tfeventstest"
	storeruns "github.com/thinkgen/thinkgen/storage/runs"
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
				// The version's sample grids, as the store keeps them.
				var tags []string
				for _, im := range e.Images {
					tags = append(tags, im.Tag)
					mode := strings.TrimPrefix(im.Tag, "grid/")
					grid, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(storeruns.EvalGridKey("b", int(e.Step), mode))))
					if err != nil || !bytes.Equal(grid, im.PNG) || im.Width <= 0 || im.Height <= 0 {
						t.Errorf("version %d: image %s (%dx%d) is not the store's grid (%v)", e.Step, im.Tag, im.Width, im.Height, err)
					}
				}
				if fmt.Sprint(tags) != "[grid/direct grid/think]" {
					t.Errorf("version %d: images %v, want the grids of both modes", e.Step, tags)
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
			// The configuration as hparams: numbers as numbers.
			if g := l.HParams["grpo.group"]; g != 3.0 || l.HParams["schedule.phases"] != "[{phase: mllm-grpo, steps: 2}, {phase: dit-grpo, steps: 2}]" || l.HParamsStart <= 0 {
				t.Errorf("TensorBoard's hparams: grpo.group %v, schedule.phases %v, start %v", g, l.HParams["schedule.phases"], l.HParamsStart)
			}
			// A few of each step's chains as text.
			if tx := l.Texts["samples/0"]; len(tx) != 8 || tx[0].Step != 1 || !strings.Contains(tx[0].Text, "**prompt:**") || !strings.Contains(tx[0].Text, "**think:**") {
				t.Errorf("TensorBoard's samples/0 texts: %+v, want one per step 1…8 with a prompt and a chain of thought", tx)
			}
			if r == "b" {
				var steps []any
				for _, im := range l.Images["grid/think"] {
					steps = append(steps, im[0])
				}
				if fmt.Sprint(steps) != "[0 2 4 6 8]" {
					t.Errorf("TensorBoard's grid/think images at steps %v, want [0 2 4 6 8]", steps)
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
	base, table := pretrainInto(t, cfgPath, dir)
	if !strings.Contains(table, "vae ") {
		t.Errorf("pretrain's table has no VAE stage:\n%s", table)
	}
	var vaeCfg struct {
		Scaling float64  `json:"scaling_factor"`
		Shift   *float64 `json:"shift_factor"`
	}
	readJSON(t, filepath.Join(base, "vae.json"), &vaeCfg)
	if vaeCfg.Scaling == 1 || vaeCfg.Shift == nil {
		t.Errorf("the pre-trained VAE was not calibrated: scaling_factor %v, shift_factor %v", vaeCfg.Scaling, vaeCfg.Shift)
	}

	common := []string{"--config", cfgPath, "--set", "run.base=" + base, "--run-dir", dir}
	checkResumedEqualsUninterrupted(t, dir, common, "2", "bundle/mllm.safetensors", "bundle/dit.safetensors", "bundle/vae.safetensors", "optim-dit.safetensors")

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

// pretrainInto runs every pretrain stage of the configuration at cfgPath
// as run "p" of the local store dir, without evaluations, and returns the
// result's bundle and the command's output.
func pretrainInto(t *testing.T, cfgPath, dir string) (base, out string) {
	t.Helper()
	code, out, errs := runCLI(t, "pretrain", "--config", cfgPath, "--run-dir", dir, "--set", "run.name=p", "--eval-rows", "0")
	if code != 0 {
		t.Fatalf("pretrain: exit %d\n%s\n%s", code, out, errs)
	}
	return filepath.Join(dir, "runs", "p", "pretrain", "finetune", "final"), out
}

// checkResumedEqualsUninterrupted trains two-step runs with the train
// arguments common: "a" uninterrupted, "b" stopped after its first step
// and resumed (then evaluated on evalRows rows). The files of version 2
// must be equal byte for byte.
func checkResumedEqualsUninterrupted(t *testing.T, dir string, common []string, evalRows string, files ...string) {
	t.Helper()
	for _, args := range [][]string{{"--run", "a", "--eval-rows", "0"}, {"--run", "b", "--stop-after", "1", "--eval-rows", "0"}, {"--run", "b", "--resume", "--eval-rows", evalRows}} {
		if code, out, errs := runCLI(t, append(append([]string{"train"}, args...), common...)...); code != 0 {
			t.Fatalf("train %v: exit %d\n%s\n%s", args, code, out, errs)
		}
	}
	for _, f := range files {
		a, _ := os.ReadFile(filepath.Join(versionDir(t, dir, "a", 2), f))
		b, _ := os.ReadFile(filepath.Join(versionDir(t, dir, "b", 2), f))
		if len(a) == 0 || string(a) != string(b) {
			d, err := maxAbsDiff(a, b)
			t.Errorf("version 2 %s: the resumed run differs (max |Δ| %g, %v)", f, d, err)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
}
