package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/plan"
)

func TestPlanCommand(t *testing.T) {
	full := filepath.Join("..", "..", "configs", "full.yaml")
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		contains string // in stdout for code 0, else in stderr
	}{
		{"table", []string{"plan", "--config", full, "--gpus", "8", "--gpu-memory", "80GiB"}, 0, "dit-grpo"},
		{"unknown unit", []string{"plan", "--config", full, "--gpus", "8", "--gpu-memory", "80 XB"}, 2, `"80 XB"`},
		{"no unit", []string{"plan", "--config", full, "--gpu-memory", "80"}, 2, `"80"`},
		{"missing memory", []string{"plan", "--config", full}, 2, "--gpu-memory is required"},
		{"bad zero", []string{"plan", "--config", full, "--gpu-memory", "80GiB", "--zero", "3"}, 2, "--zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, errs)
			}
			got := errs
			if code == 0 {
				got = out
			}
			if !strings.Contains(got, tc.contains) {
				t.Errorf("output %q does not contain %q", got, tc.contains)
			}
		})
	}
}

func TestPlanCommandJSON(t *testing.T) {
	full := filepath.Join("..", "..", "configs", "full.yaml")
	code, out, errs := runCLI(t, "plan", "--config", full, "--gpus", "8", "--gpu-memory", "80GiB", "--zero", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var p plan.Plan
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatal(err)
	}
	if p.Options.GPUs != 8 || p.Options.GPUMemory != 80<<30 || !p.Options.FusedAttention {
		t.Errorf("options %+v: want 8 GPUs of 80 GiB, fused attention (run.device cuda)", p.Options)
	}
	roles := map[string]bool{}
	for _, r := range p.Rows {
		roles[r.Phase+"/"+r.Role] = true
		if r.Role == "learner" && r.Optimizer != plan.OptimizerBytes(r.TrainedParams, 2, 1, 8) {
			t.Errorf("%s learner: optimizer %d bytes, want ZeRO-1's /8 share of bfloat16 master + moments", r.Phase, r.Optimizer)
		}
	}
	for _, want := range []string{"mllm-grpo/learner", "mllm-grpo/rollout", "mllm-grpo/reward", "dit-grpo/learner", "dit-grpo/rollout", "dit-grpo/reward"} {
		if !roles[want] {
			t.Errorf("no %s row in %v", want, roles)
		}
	}
}
