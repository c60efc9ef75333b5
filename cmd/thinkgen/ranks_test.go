package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainLearnerRanksEqualOne trains the small run (a GRPO and a
// FlowGRPO step) with one learner process, with two learner ranks under
// ZeRO-1, and with two ranks for the first step then, resumed, one: the
// three final checkpoints agree within 1e-6.
func TestTrainLearnerRanksEqualOne(t *testing.T) {
	if testing.Short() {
		t.Skip("trains, starts processes")
	}
	t.Setenv("THINKGEN_TEST_MAIN", "1")
	small := filepath.Join("testdata", "small.yaml")
	base := saveBaseOf(t, small)
	dir := t.TempDir()
	train := func(run, learners string, extra ...string) string {
		t.Helper()
		args := append([]string{"train", "--config", small, "--set", "run.base=" + base, "--set", "optim.zero=1", "--run-dir", dir, "--run", run,
			"--eval-rows", "0", "--workers", "rollout=1,reward=1,learner=" + learners}, extra...)
		code, out, errs := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("%s (learner=%s): exit %d\n%s\n%s", run, learners, code, out, errs)
		}
		return out
	}
	train("one", "1")
	if out := train("two", "2"); !strings.Contains(out, "committed 2 steps") {
		t.Fatalf("two ranks: %s", out)
	}
	train("switch", "2", "--stop-after", "1")
	train("switch", "1", "--resume")
	shard := filepath.Join(dir, "runs", "two", "checkpoints", "000002", "optim-dit.shard-1-of-2.safetensors")
	if _, err := os.Stat(shard); err != nil {
		t.Errorf("the two ranks' checkpoint has no sharded optimiser state: %v", err)
	}
	for _, run := range []string{"two", "switch"} {
		for _, f := range []string{"bundle/mllm.safetensors", "bundle/dit.safetensors", "bundle/connector.safetensors"} {
			a, err1 := os.ReadFile(filepath.Join(dir, "runs", "one", "checkpoints", "000002", f))
			b, err2 := os.ReadFile(filepath.Join(dir, "runs", run, "checkpoints", "000002", f))
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			d, err := maxAbsDiff(a, b)
			if err != nil || d > 1e-6 {
				t.Errorf("%s of run %s differs from one learner's by %g (%v), want ≤ 1e-6", f, run, d, err)
			}
		}
	}
}
