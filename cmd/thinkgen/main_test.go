package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/storage"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &env{stdout: &out, stderr: &errb, getenv: os.Getenv})
	return code, out.String(), errb.String()
}

// openLocal opens the local store in dir.
func openLocal(t *testing.T, dir string) *storage.Local {
	t.Helper()
	st, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// runRefused runs the CLI with args and checks that it refuses them: exit
// code 2 and a stderr that names every one of want.
func runRefused(t *testing.T, want []string, args ...string) {
	t.Helper()
	code, out, errs := runCLI(t, args...)
	if code != 2 {
		t.Errorf("exit %d, want 2\nstdout: %s\nstderr: %s", code, out, errs)
	}
	testutil.Mentions(t, "stderr", errs, want)
}

func TestExitCodesAndMessages(t *testing.T) {
	tiny := filepath.Join("..", "..", "configs", "tiny.yaml")
	bad := filepath.Join("..", "..", "config", "testdata", "unknown_key.yaml")
	tests := []struct {
		name       string
		args       []string
		code       int
		wantOut    []string
		wantErr    []string
		notWantOut []string
	}{
		{"no args", nil, 2, nil, []string{"Usage:", "doctor"}, nil},
		{"help", []string{"help"}, 0, []string{"Commands:", "config", "doctor", "selftest", "version"}, nil, nil},
		{"help command", []string{"help", "config"}, 0, []string{"Usage: thinkgen config", "--set", "--config", "--store", "--run-dir", "--device", "--seed", "--log-format"}, nil, nil},
		{"-h flag", []string{"doctor", "-h"}, 0, []string{"Usage: thinkgen doctor", "--timeout"}, nil, nil},
		{"help unknown", []string{"help", "nosuch"}, 2, nil, []string{`unknown command "nosuch"`}, nil},
		{"unknown command", []string{"frobnicate"}, 2, nil, []string{`unknown command "frobnicate"`}, nil},
		{"unknown flag", []string{"version", "--bogus"}, 2, nil, []string{"unknown flag: --bogus"}, nil},
		{"version", []string{"version"}, 0, []string{"thinkgen ", "gotch v0.9.1", "libtorch 2.1.0"}, nil, nil},
		{"config print override", []string{"config", "print", "--config", tiny, "--set", "optim.lr=1e-4", "--seed", "7"}, 0,
			[]string{"lr: 0.0001", "seed: 7"}, nil, nil},
		{"config flags beat file", []string{"config", "get", "run.device", "--config", tiny, "--device", "cuda:1"}, 0, []string{"cuda:1"}, nil, nil},
		{"config run-dir", []string{"config", "get", "storage.uri", "--run-dir", "/tmp/x"}, 0, []string{"/tmp/x"}, nil, nil},
		{"config unknown set key", []string{"config", "print", "--config", tiny, "--set", "nosuch.key=1"}, 2, nil, []string{`unknown key "nosuch"`}, nil},
		{"config unknown file key", []string{"config", "validate", "--config", bad}, 2, nil, []string{"unknown_key.yaml:5", "optim.momentum"}, nil},
		{"config invalid value", []string{"config", "validate", "--set", "optim.lr=-1"}, 2, nil, []string{"optim.lr: must be > 0 (got -1)"}, nil},
		{"config missing file", []string{"config", "print", "--config", "nope.yaml"}, 2, nil, []string{"nope.yaml"}, nil},
		{"config no action", []string{"config"}, 2, nil, []string{"missing action"}, nil},
		{"config bad action", []string{"config", "frob"}, 2, nil, []string{`unknown action "frob"`}, nil},
		{"config get unknown", []string{"config", "get", "optim.nope"}, 2, nil, []string{`unknown key "optim.nope"`}, nil},
		{"store and run-dir", []string{"config", "print", "--store", "a", "--run-dir", "b"}, 2, nil, []string{"give one"}, nil},
		{"bad log format", []string{"doctor", "--log-format", "xml", "--run-dir", os.TempDir()}, 2, nil, []string{"--log-format"}, nil},
		{"model info full", []string{"model", "info", "--config", filepath.Join("..", "..", "configs", "full.yaml")}, 0,
			[]string{"8,190,735,360", "576,388,336", "8,767,123,696", "3,961,983,272", "connector", "vae (AutoencoderKL)", "83,819,683"}, nil, nil},
		{"model info tiny", []string{"model", "info", "--config", tiny}, 0, []string{"dit", "connector", "total"}, nil, nil},
		{"model info bad action", []string{"model", "frob"}, 2, nil, []string{"model info"}, nil},
		{"pretrain from a missing bundle", []string{"pretrain", "--config", tiny, "--run-dir", t.TempDir(), "--from", "nosuch-bundle"}, 2, nil, []string{"--from", "nosuch-bundle"}, nil},
		{"pretrain from a missing MLLM", []string{"pretrain", "--config", tiny, "--run-dir", t.TempDir(), "--from-mllm", "nosuch-bundle"}, 2, nil, []string{"--from-mllm", "nosuch-bundle"}, nil},
		{"pretrain from both", []string{"pretrain", "--config", tiny, "--run-dir", t.TempDir(), "--from", "a", "--from-mllm", "b"}, 2, nil, []string{"--from and --from-mllm"}, nil},
		{"pretrain bad checkpoint interval", []string{"pretrain", "--checkpoint-every", "0"}, 2, nil, []string{"--checkpoint-every"}, nil},
		{"compare one file", []string{"compare", "a.json"}, 2, nil, []string{"at least one RUN.json"}, nil},
		{"compare a missing file", []string{"compare", "nope-base.json", "nope-run.json"}, 1, nil, []string{"nope-base.json"}, nil},
		{"compare results without rows", []string{"compare", filepath.Join("testdata", "eval-without-rows.json"), "b.json"}, 1, nil, []string{"eval-without-rows.json: no row_scores"}, nil},
		{"compare a YAML file", []string{"compare", filepath.Join("testdata", "small.yaml"), "b.json"}, 1, nil, []string{"small.yaml"}, nil},
		{"selftest few steps", []string{"selftest", "--steps", "5"}, 2, nil, []string{"--steps"}, nil},
		{"doctor s3 without credentials", []string{"doctor", "--store", "s3://bucket", "--set", "storage.endpoint=127.0.0.1:1", "--set", "storage.insecure=true", "--timeout", "1s"}, 1,
			[]string{"FAIL store", "no S3 credentials"}, []string{"check(s) failed"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("AWS_ACCESS_KEY_ID", "")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "")
			code, out, errs := runCLI(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errs)
			}
			testutil.Mentions(t, "stdout", out, tt.wantOut)
			testutil.Mentions(t, "stderr", errs, tt.wantErr)
		})
	}
}

func TestDoctorLocalStore(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(t, "doctor", "--run-dir", filepath.Join(dir, "runs"))
	if code != 0 {
		t.Fatalf("doctor exit %d\n%s\n%s", code, out, errs)
	}
	for _, w := range []string{"libtorch     2.1.0", "cpu threads", "cuda", "store", "writable"} {
		if !strings.Contains(out, w) {
			t.Errorf("doctor output lacks %q:\n%s", w, out)
		}
	}
}

func TestDoctorJSON(t *testing.T) {
	code, out, errs := runCLI(t, "doctor", "--run-dir", t.TempDir(), "--log-format", "json")
	if code != 0 {
		t.Fatalf("doctor exit %d\n%s\n%s", code, out, errs)
	}
	var rep struct {
		OK     bool    `json:"ok"`
		Checks []check `json:"checks"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("doctor --log-format json is not JSON: %v\n%s", err, out)
	}
	if !rep.OK || len(rep.Checks) != 6 {
		t.Fatalf("report = %+v", rep)
	}
}

func TestDoctorFailsWhenCUDAIsAskedForButMissing(t *testing.T) {
	code, out, _ := runCLI(t, "doctor", "--run-dir", t.TempDir(), "--device", "cuda")
	if strings.Contains(out, "ok   cuda") {
		t.Skip("this machine has CUDA")
	}
	if code != 1 || !strings.Contains(out, "FAIL cuda") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}

func TestSelftestCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("trains")
	}
	code, out, errs := runCLI(t, "selftest", "--steps", "600")
	if code != 0 {
		t.Fatalf("selftest exit %d\n%s\n%s", code, out, errs)
	}
	for _, w := range []string{"selftest: loss", "live tensors", "reloaded outputs differ by 0"} {
		if !strings.Contains(out, w) {
			t.Errorf("stdout lacks %q:\n%s", w, out)
		}
	}
	if !strings.Contains(errs, "selftest 600/600 (100%)") || !strings.Contains(errs, "ETA") {
		t.Errorf("no progress line on stderr:\n%s", errs)
	}
}

func TestPretrainCommandRunsAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("trains")
	}
	dir := t.TempDir()
	args := []string{"pretrain", "--config", filepath.Join("..", "..", "configs", "tiny.yaml"), "--run-dir", dir,
		"--set", "pretrain.warmup.steps=3", "--set", "pretrain.align.steps=2", "--set", "pretrain.dit.steps=2", "--set", "pretrain.finetune.steps=1",
		"--set", "pretrain.warmup.batch=2", "--set", "pretrain.align.batch=2", "--set", "pretrain.dit.batch=2", "--set", "pretrain.finetune.batch=2",
		"--eval-rows", "2", "--set", "sampling.dit_steps=2", "--set", "flow_grpo.steps=2", "--set", "sampling.max_new_tokens=8"}
	code, out, errs := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("pretrain exit %d\n%s\n%s", code, out, errs)
	}
	for _, w := range []string{"warmup", "align", "dit", "finetune"} {
		if !strings.Contains(out, w) {
			t.Errorf("summary lacks stage %s:\n%s", w, out)
		}
	}
	if !strings.Contains(out, "held-out scores") || !strings.Contains(out, "finetune  think") {
		t.Errorf("no per-stage eval table:\n%s", out)
	}
	if !strings.Contains(errs, "pretrain warmup 3/3 (100%)") {
		t.Errorf("no progress line:\n%s", errs)
	}
	code, out, _ = runCLI(t, args...)
	if code != 0 || strings.Count(out, "complete (skipped)") != 4 {
		t.Errorf("second run: exit %d\n%s", code, out)
	}
}

// versionDir fetches version v of run from the local store in storeDir
// (through its manifest, checked) and returns the directory it is in.
func versionDir(t *testing.T, storeDir, run string, v int) string {
	t.Helper()
	dir, err := checkpoint.Fetch(context.Background(), openLocal(t, storeDir), run, v, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
