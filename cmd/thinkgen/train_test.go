package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/evaluate"
	"github.com/thinkgen/thinkgen/internal/testenv"
	"github.com/thinkgen/thinkgen/internal/testmodel"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/storage/runs"
)

// saveBase writes a freshly initialised bundle of the tiny configuration
// with the given DiT width, as a stand-in base.
func saveBase(t *testing.T, ditHidden int) string {
	t.Helper()
	return saveBaseOf(t, filepath.Join("..", "..", "configs", "tiny.yaml"), "model.dit.hidden="+strconv.Itoa(ditHidden))
}

// TestTrainRejectsBadInput: every bad input is refused before any work,
// with exit code 2 and a message naming the field, and nothing written.
func TestTrainRejectsBadInput(t *testing.T) {
	tiny := filepath.Join("..", "..", "configs", "tiny.yaml")
	base := saveBase(t, 192)
	other := saveBase(t, 96)
	silent := testutil.FreeAddr(t) // no MLflow server there
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"group of one", []string{"--set", "grpo.group=1"}, []string{"grpo.group", ">= 2"}},
		{"flow group of one", []string{"--set", "flow_grpo.group=1"}, []string{"flow_grpo.group", ">= 2"}},
		{"eps_low zero", []string{"--set", "grpo.eps_low=0"}, []string{"grpo.eps_low", "in (0, 1)"}},
		{"eps_high zero", []string{"--set", "grpo.eps_high=0"}, []string{"grpo.eps_high", "> 0"}},
		{"clip_eps zero", []string{"--set", "flow_grpo.clip_eps=0"}, []string{"flow_grpo.clip_eps"}},
		{"empty dataset", []string{"--set", "data.train_size=0"}, []string{"data.train_size"}},
		{"phase mix all zero", []string{"--set", "grpo.mix.reasoning=0", "--set", "grpo.mix.composition=0"}, []string{"grpo.mix", "every scenario has weight 0"}},
		{"unknown scenario", []string{"--config", filepath.Join("testdata", "unknown_scenario.yaml")}, []string{"data.mix", "juggling"}},
		{"no base", []string{"--set", "run.base=" + filepath.Join(t.TempDir(), "nothing")}, []string{"run.base", "nothing"}},
		{"base of another shape", []string{"--set", "run.base=" + other}, []string{"run.base", "another model shape", "dit.hidden 96 vs 192"}},
		{"bad eval rows", []string{"--eval-rows", "-1"}, []string{"--eval-rows"}},
		{"eval rows over data.eval_size", []string{"--set", "data.eval_size=20", "--eval-rows", "30"}, []string{"--eval-rows 30", "data.eval_size (20)"}},
		{"eval_every without eval rows", []string{"--set", "run.eval_every=2", "--eval-rows", "0"}, []string{"run.eval_every 2", "--eval-rows > 0"}},
		{"bad run name", []string{"--run", "a/b"}, []string{"--run"}},
		{"workers and listen", []string{"--workers", "rollout=1,reward=1,learner=1", "--listen", "127.0.0.1:0"}, []string{"--workers and --listen"}},
		{"bad workers", []string{"--workers", "rollout=2,juggler=1"}, []string{"--workers"}},
		{"no learner worker", []string{"--workers", "rollout=2,reward=1"}, []string{"no learner worker"}},
		{"listen without token", []string{"--listen", "127.0.0.1:0"}, []string{"THINKGEN_TOKEN", "--insecure-local"}},
		{"mlflow not a URL", []string{"--set", "tracking.mlflow=127.0.0.1:5000"}, []string{"tracking.mlflow", "http(s) URL"}},
		{"mlflow not answering", []string{"--set", "tracking.mlflow=http://" + silent}, []string{"tracking.mlflow http://" + silent, "experiments/get-by-name"}},
		{"learner ranks with a wildcard listen", []string{"--listen", "0.0.0.0:0", "--set", "cluster.workers.learner=2"}, []string{"--rendezvous", `--listen "0.0.0.0:0" names none`}},
		{"wildcard rendezvous", []string{"--workers", "rollout=1,reward=1,learner=2", "--rendezvous", "0.0.0.0:29500"}, []string{`--rendezvous "0.0.0.0:29500"`, "not a wildcard"}},
		{"rendezvous port", []string{"--workers", "rollout=1,reward=1,learner=2", "--rendezvous", "127.0.0.1:70000"}, []string{`--rendezvous "127.0.0.1:70000"`, "[0, 65535]"}},
		{"rendezvous of one learner", []string{"--workers", "rollout=1,reward=1,learner=1", "--rendezvous", "127.0.0.1:0"}, []string{"--rendezvous", "one learner"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("THINKGEN_TOKEN", "")
			t.Setenv("THINKGEN_TOKEN_FILE", "")
			dir := t.TempDir()
			args := append([]string{"train", "--config", tiny, "--run-dir", dir, "--set", "run.base=" + base}, tt.args...)
			runRefused(t, tt.want, args...)
			entries, _ := os.ReadDir(dir)
			if len(entries) != 0 {
				t.Errorf("the refused run wrote %d entries into its store", len(entries))
			}
		})
	}
}

func TestEvalModel(t *testing.T) {
	if testing.Short() {
		t.Skip("generates")
	}
	base := saveBase(t, 192)
	grids := filepath.Join(t.TempDir(), "grids")
	code, out, errs := runCLI(t, "eval", "--model", base, "--rows", "2", "--grids", grids)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	for _, w := range []string{"held-out scores, out of distribution, eval split (2 rows", "held-out scores, in distribution, eval-id split (2 rows", "composition", "direct", "think"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	for _, f := range []string{"grid-direct.png", "grid-think.png", "eval-id/grid-direct.png", "eval-id/grid-think.png"} {
		if _, err := os.Stat(filepath.Join(grids, f)); err != nil {
			t.Error(err)
		}
	}
	if code, _, errs := runCLI(t, "eval", "--model", filepath.Join(t.TempDir(), "none")); code != 2 || !strings.Contains(errs, "--model") {
		t.Errorf("missing bundle: exit %d, %s", code, errs)
	}
	code, out, errs = runCLI(t, "eval", "--model", base, "--rows", "2", "--oracle")
	if code != 0 || !strings.Contains(out, "oracle") {
		t.Errorf("--oracle: exit %d, no oracle line:\n%s\n%s", code, out, errs)
	}
	if code, _, errs := runCLI(t, "eval", "--oracle", "dataset.arrow"); code != 2 || !strings.Contains(errs, "--oracle needs --model") {
		t.Errorf("--oracle without --model: exit %d, %s", code, errs)
	}
	// --seed picks the rows (and noise) of another seed; flags that would
	// change the bundle's configuration are refused, not dropped.
	code, out, errs = runCLI(t, "eval", "--model", base, "--rows", "2", "--seed", "7", "--json")
	seven := out
	var got struct{ Seed int64 }
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || got.Seed != 7 {
		t.Errorf("--seed 7: exit %d, seed %d (%v)\n%s", code, got.Seed, err, errs)
	}
	// Both splits: the out-of-distribution one at the top level, as
	// --splits eval alone gives it, and eval-id under "eval_id", on its
	// own rows.
	type splitJSON struct {
		Split     string
		Scores    evaluate.Scores
		RowScores map[string][]evaluate.RowScore `json:"row_scores"`
	}
	var both struct {
		splitJSON
		EvalID splitJSON `json:"eval_id"`
	}
	if err := json.Unmarshal([]byte(seven), &both); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCLI(t, "eval", "--model", base, "--rows", "2", "--seed", "7", "--json", "--splits", "eval")
	var ood splitJSON
	if err := json.Unmarshal([]byte(out), &ood); code != 0 || err != nil {
		t.Fatalf("--splits eval: exit %d (%v)\n%s", code, err, errs)
	}
	if both.Split != "eval" || both.EvalID.Split != "eval-id" || !reflect.DeepEqual(both.Scores, ood.Scores) || !reflect.DeepEqual(both.RowScores, ood.RowScores) {
		t.Errorf("--splits eval gives %+v, the default's eval split %+v (eval-id %q)", ood, both.splitJSON, both.EvalID.Split)
	}
	for mode, rs := range both.EvalID.RowScores {
		if len(rs) != 2 || !strings.HasPrefix(rs[0].ID, "eval-id-") || rs[0].ID == both.RowScores[mode][0].ID {
			t.Errorf("eval-id row_scores of mode %s: %+v", mode, rs)
		}
	}
	if code, _, errs := runCLI(t, "eval", "--model", base, "--splits", "train"); code != 2 || !strings.Contains(errs, "--splits") {
		t.Errorf("--splits train: exit %d, %s", code, errs)
	}
	// --scenarios and --modes: only those rows and modes are scored.
	code, out, errs = runCLI(t, "eval", "--model", base, "--rows", "3", "--scenarios", "reasoning,text", "--modes", "think,oracle", "--json", "--by-task", "--splits", "eval")
	var sub struct {
		Scenarios []string
		Scores    evaluate.Scores
		Tasks     map[string][]reward.Summary
	}
	if err := json.Unmarshal([]byte(out), &sub); code != 0 || err != nil {
		t.Fatalf("--scenarios/--modes: exit %d (%v)\n%s", code, err, errs)
	}
	if len(sub.Scores) != 2 || sub.Scores["think"] == nil || sub.Scores["oracle"] == nil {
		t.Errorf("--modes think,oracle evaluated modes %v", sub.Scores)
	}
	for mode, sums := range sub.Scores {
		n := 0
		for _, s := range sums {
			if s.Scenario != "reasoning" && s.Scenario != "text" {
				t.Errorf("mode %s scored scenario %s outside --scenarios reasoning,text", mode, s.Scenario)
			}
			n += s.N
		}
		if n != 3 {
			t.Errorf("mode %s scored %d rows, want --rows 3", mode, n)
		}
		// --by-task: the same rows, split by sub-task.
		n = 0
		for _, s := range sub.Tasks[mode] {
			if sc, task, ok := strings.Cut(s.Scenario, "/"); !ok || (sc != "reasoning" && sc != "text") || task == "" {
				t.Errorf("mode %s: task summary %q, want reasoning/<task> or text/<task>", mode, s.Scenario)
			}
			n += s.N
		}
		if n != 3 {
			t.Errorf("mode %s: task summaries count %d rows, want 3", mode, n)
		}
	}
	// row_scores: every scored row in order, what compare pairs.
	var perRow struct {
		RowScores map[string][]evaluate.RowScore `json:"row_scores"`
	}
	if err := json.Unmarshal([]byte(out), &perRow); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"think", "oracle"} {
		rs := perRow.RowScores[mode]
		if len(rs) != 3 || rs[0].ID == "" || rs[0].Task == "" || (rs[0].Scenario != "reasoning" && rs[0].Scenario != "text") {
			t.Errorf("row_scores of mode %s: %+v, want 3 reasoning or text rows with ids and tasks", mode, rs)
		}
	}
	dir := t.TempDir()
	sub3, sub7 := filepath.Join(dir, "sub3.json"), filepath.Join(dir, "seed7.json")
	if err := errors.Join(os.WriteFile(sub3, []byte(out), 0o644), os.WriteFile(sub7, []byte(seven), 0o644)); err != nil {
		t.Fatal(err)
	}
	code, cmp, errs := runCLI(t, "compare", sub3, sub3, sub3, "--by-task")
	if code != 0 || !strings.Contains(cmp, "+0.000  [+0.000, +0.000]") || !strings.Contains(cmp, "gain over 2 runs") || strings.Count(cmp, "0/0") < 4 {
		t.Errorf("compare with itself: exit %d, want zero gains and no row better or worse:\n%s\n%s", code, cmp, errs)
	}
	code, cmp, errs = runCLI(t, "compare", sub3, sub3, "--by-task", "--json")
	var cj struct {
		Runs []struct{ Paired []evaluate.Paired }
	}
	if err := json.Unmarshal([]byte(cmp), &cj); code != 0 || err != nil || len(cj.Runs) != 1 || len(cj.Runs[0].Paired) < 2 {
		t.Errorf("compare --json: exit %d (%v), %+v\n%s", code, err, cj, errs)
	}
	if code, _, errs := runCLI(t, "compare", sub3, sub7); code != 1 || !strings.Contains(errs, "the held-out rows differ") {
		t.Errorf("compare across seeds: exit %d, %s", code, errs)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--scenarios", "poetry"}, `--scenarios: unknown scenario "poetry"`},
		{[]string{"--modes", "dream"}, `--modes: unknown eval mode "dream"`},
		{[]string{"--modes", "think", "--oracle"}, "name oracle among the modes"},
	} {
		args := append([]string{"eval", "--model", base}, c.args...)
		if code, _, errs := runCLI(t, args...); code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("eval %v: exit %d, %s (want %q)", c.args, code, errs, c.want)
		}
	}
	if code, _, errs := runCLI(t, "eval", "--scenarios", "text", "dataset.arrow"); code != 2 || !strings.Contains(errs, "need --model") {
		t.Errorf("--scenarios without --model: exit %d, %s", code, errs)
	}
	if code, _, errs := runCLI(t, "eval", "--by-task", "dataset.arrow"); code != 2 || !strings.Contains(errs, "--by-task needs --model") {
		t.Errorf("--by-task without --model: exit %d, %s", code, errs)
	}
	for _, flag := range [][]string{{"--config", "configs/tiny.yaml"}, {"--set", "sampling.cfg=2"}, {"--remote", "http://127.0.0.1:1"}} {
		args := append([]string{"eval", "--model", base}, flag...)
		if code, _, errs := runCLI(t, args...); code != 2 || !strings.Contains(errs, flag[0]+" does not apply with --model") {
			t.Errorf("eval --model with %s: exit %d, %s", flag[0], code, errs)
		}
	}
}

// TestMain lets the test binary stand in for thinkgen when a test starts
// worker processes of "this executable".
func TestMain(m *testing.M) {
	if os.Getenv("THINKGEN_TEST_MAIN") == "1" {
		main()
		return
	}
	// A test that starts this binary as thinkgen (local workers, sweep
	// trials) without THINKGEN_TEST_MAIN=1 would run every test again in
	// each child, and their children again: refuse instead.
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintf(os.Stderr, "test binary started as `thinkgen %s` without THINKGEN_TEST_MAIN=1 (t.Setenv it before the command starts thinkgen processes)\n", os.Args[1])
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// saveBaseOf writes a freshly initialised bundle of the configuration file
// (with --set style overrides).
func saveBaseOf(t *testing.T, file string, sets ...string) string {
	t.Helper()
	cfg, err := config.Load(file, sets)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "base")
	err = testmodel.SaveBase(cfg, dir, 5)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// trainSmallRun trains testdata/small.yaml (one GRPO and one FlowGRPO
// step, no eval) from a freshly initialised base into a new local store as
// run "r", and returns the store directory and the base.
func trainSmallRun(t *testing.T) (store, base string) {
	t.Helper()
	small := filepath.Join("testdata", "small.yaml")
	base = saveBaseOf(t, small)
	store = t.TempDir()
	if code, out, errs := runCLI(t, "train", "--config", small, "--set", "run.base="+base, "--run-dir", store, "--run", "r", "--eval-rows", "0"); code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, out, errs)
	}
	return store, base
}

// processRun prepares a test that trains testdata/small.yaml with worker
// processes of the test binary: the configuration, a fresh base and a
// store directory. It skips the test with -short.
func processRun(t *testing.T) (small, base, dir string) {
	t.Helper()
	if testing.Short() {
		t.Skip("trains, starts processes")
	}
	t.Setenv("THINKGEN_TEST_MAIN", "1")
	small = filepath.Join("testdata", "small.yaml")
	return small, saveBaseOf(t, small), t.TempDir()
}

// TestTrainWorkerProcessesEqualEmbedded runs the same small run twice:
// embedded (one process) and with worker processes leasing from the
// controller over HTTP; the final checkpoints are identical.
func TestTrainWorkerProcessesEqualEmbedded(t *testing.T) {
	small, base, dir := processRun(t)
	for _, tt := range []struct{ run, workers string }{{"embedded", ""}, {"processes", "rollout=2,reward=1,learner=1"}} {
		args := []string{"train", "--config", small, "--set", "run.base=" + base, "--run-dir", dir, "--run", tt.run, "--eval-rows", "0"}
		if tt.workers != "" {
			args = append(args, "--workers", tt.workers)
		}
		code, out, errs := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", tt.run, code, out, errs)
		}
		if !strings.Contains(out, "committed 2 steps") {
			t.Errorf("%s: %s", tt.run, out)
		}
		if tt.workers != "" && !strings.Contains(errs, "4 worker processes") {
			t.Errorf("processes: %s", errs)
		}
	}
	testutil.SameFiles(t, versionDir(t, dir, "embedded", 2), versionDir(t, dir, "processes", 2), []string{"bundle/mllm.safetensors", "bundle/dit.safetensors", "bundle/connector.safetensors", "optim-dit.safetensors"}, "differs between the embedded and the multi-process run")
}

// TestTrainLearnerRanksEqualOne trains the small run (a GRPO and a
// FlowGRPO step) with one learner process, with two learner ranks under
// ZeRO-1, and with two ranks for the first step then, resumed, one: the
// three final checkpoints agree within 1e-6.
func TestTrainLearnerRanksEqualOne(t *testing.T) {
	small, base, dir := processRun(t)
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
	// With LoRA adapters on both models, two ranks train the adapters as
	// one learner does.
	lora := []string{"--set", "lora.mllm.rank=2", "--set", "lora.mllm.alpha=4", "--set", "lora.dit.rank=2", "--set", "lora.dit.alpha=2"}
	train("lora-one", "1", lora...)
	train("lora-two", "2", lora...)
	closeWeights(t, dir, "lora-one", "lora-two", 2, "bundle/mllm.lora.safetensors", "bundle/dit.lora.safetensors")
	shard := filepath.Join(versionDir(t, dir, "two", 2), "optim-dit.shard-1-of-2.safetensors")
	if _, err := os.Stat(shard); err != nil {
		t.Errorf("the two ranks' checkpoint has no sharded optimiser state: %v", err)
	}
	for _, run := range []string{"two", "switch"} {
		closeWeights(t, dir, "one", run, 2, modelFiles...)
	}
}

// modelFiles are a checkpoint's model weights.
var modelFiles = []string{"bundle/mllm.safetensors", "bundle/dit.safetensors", "bundle/connector.safetensors"}

// closeWeights fails unless the files of version v of runs a and b in
// the store at dir hold the same tensors within 1e-6.
func closeWeights(t *testing.T, dir, a, b string, v int, files ...string) {
	t.Helper()
	da, db := versionDir(t, dir, a, v), versionDir(t, dir, b, v)
	for _, f := range files {
		x, err1 := os.ReadFile(filepath.Join(da, f))
		y, err2 := os.ReadFile(filepath.Join(db, f))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if d, err := maxAbsDiff(x, y); err != nil || d > 1e-6 {
			t.Errorf("%s of run %s differs from run %s's by %g (%v), want ≤ 1e-6", f, b, a, d, err)
		}
	}
}

// TestTrainOnRay places the workers of the small run as Ray jobs on a real
// Ray head (scripts/ray.sh) and checks the run ends like the embedded one.
func TestTrainOnRay(t *testing.T) {
	if testing.Short() {
		t.Skip("trains, needs Ray")
	}
	ray := testenv.RayAddress(t)
	t.Setenv("THINKGEN_TEST_MAIN", "1")
	// The workers read the token from its file: Ray jobs carry its path.
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("ray-test-token-0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("THINKGEN_TOKEN_FILE", tokenFile)
	small := filepath.Join("testdata", "small.yaml")
	base := saveBaseOf(t, small)
	dir := t.TempDir()
	common := []string{"--config", small, "--set", "run.base=" + base, "--run-dir", dir, "--eval-rows", "0"}
	if code, out, errs := runCLI(t, append([]string{"train", "--run", "embedded"}, common...)...); code != 0 {
		t.Fatalf("embedded: exit %d\n%s\n%s", code, out, errs)
	}
	args := append([]string{"train", "--run", "onray", "--listen", "127.0.0.1:0",
		"--set", "cluster.ray=" + ray, "--set", "cluster.workers.rollout=1", "--set", "cluster.workers.reward=1", "--set", "cluster.workers.learner=1",
		"--set", "cluster.rollout.cpus=0.5", "--set", "cluster.reward.cpus=0.5", "--set", "cluster.learner.cpus=0.5"}, common...)
	code, out, errs := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("on Ray: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "submitted") || strings.Contains(errs, "ray-test-token") {
		t.Errorf("placement events (token must not appear):\n%s", errs)
	}
	testutil.SameFiles(t, versionDir(t, dir, "embedded", 2), versionDir(t, dir, "onray", 2), []string{"bundle/mllm.safetensors", "bundle/dit.safetensors"}, "differs between the embedded run and the run on Ray")

	// Two learner ranks placed on Ray as separate jobs meet at the store
	// the controller serves, at an address other than its API's (both on
	// the loopback here; on a cluster, one the ranks' machines reach).
	args = append([]string{"train", "--run", "onray-ranks", "--listen", "127.0.0.1:0", "--rendezvous", "127.0.0.2:0",
		"--set", "cluster.ray=" + ray, "--set", "cluster.workers.rollout=1", "--set", "cluster.workers.reward=1", "--set", "cluster.workers.learner=2",
		"--set", "cluster.rollout.cpus=0.25", "--set", "cluster.reward.cpus=0.25", "--set", "cluster.learner.cpus=0.25", "--set", "optim.zero=1"}, common...)
	if code, out, errs := runCLI(t, args...); code != 0 {
		t.Fatalf("two learner ranks on Ray: exit %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(versionDir(t, dir, "onray-ranks", 2), "optim-dit.shard-1-of-2.safetensors")); err != nil {
		t.Errorf("the run on Ray was not trained by two ranks: %v", err)
	}
	closeWeights(t, dir, "embedded", "onray-ranks", 2, modelFiles...)
}

// TestTrainOnRayRefusesTokenInEnv: a token given only as $THINKGEN_TOKEN
// would have to travel in the Ray jobs' environment; placement refuses it
// before submitting anything.
func TestTrainOnRayRefusesTokenInEnv(t *testing.T) {
	t.Setenv("THINKGEN_TOKEN", "ray-test-token-0123456789abcdef")
	code, _, errs := runCLI(t, "train", "--config", filepath.Join("testdata", "small.yaml"), "--run-dir", t.TempDir(), "--listen", "127.0.0.1:0",
		"--set", "run.base="+saveBaseOf(t, filepath.Join("testdata", "small.yaml")), "--set", "cluster.ray=http://127.0.0.1:1", "--set", "cluster.workers.rollout=1")
	if code != 2 || !strings.Contains(errs, "pass --token-file or $THINKGEN_TOKEN_FILE") || strings.Contains(errs, "ray-test-token") {
		t.Fatalf("exit %d, stderr:\n%s\nwant a usage error naming the token file", code, errs)
	}
}

// TestTrainOnADataset: a run with data.dataset takes its prompts from the
// file's rows (their ids reach the rollout shards), keeps a copy in its
// store, and refuses a file it could not train on, naming what is wrong.
func TestTrainOnADataset(t *testing.T) {
	small, base, dir := processRun(t)
	rows, err := datasets.Generate(datasets.Options{Seed: 77, Size: 32}, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		rows[i].ID = "mine-" + rows[i].ID
	}
	write := func(name string, rows []datasets.Row) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), name)
		if err := datasets.WriteFile(path, rows, 32); err != nil {
			t.Fatal(err)
		}
		return path
	}
	mine := write("mine.arrow", rows)
	train := func(run, dataset string, extra ...string) (int, string) {
		t.Helper()
		code, _, errs := runCLI(t, append([]string{"train", "--config", small, "--set", "run.base=" + base, "--run-dir", dir, "--run", run,
			"--eval-rows", "0", "--set", "data.dataset=" + dataset, "--set", "data.train_size=10"}, extra...)...)
		return code, errs
	}
	if code, errs := train("mine", mine); code != 0 {
		t.Fatalf("train on a dataset: exit %d\n%s", code, errs)
	}
	var seen int
	err = filepath.WalkDir(filepath.Join(dir, "runs", "mine"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(path, "rollout") || filepath.Ext(path) != ".arrow" {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		rd, err := shards.NewReader(f, path, shards.Rollout, shards.ReadOptions{})
		if err != nil {
			return err
		}
		defer rd.Close()
		got, err := rd.ReadAll()
		for _, r := range got {
			seen++
			if !strings.HasPrefix(r.RowID, "mine-") {
				t.Errorf("rollout row %q is not one of the dataset's", r.RowID)
			}
		}
		return err
	})
	if err != nil || seen == 0 {
		t.Fatalf("read %d rollout rows: %v", seen, err)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(runs.DatasetKey("mine")))); err != nil {
		t.Errorf("the run keeps no copy of its dataset: %v", err)
	}

	other := write("other.arrow", rows[:9])
	notArrow := filepath.Join(t.TempDir(), "notes.arrow")
	if err := os.WriteFile(notArrow, []byte("a red circle\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unknown := append([]datasets.Row(nil), rows...)
	unknown[2].Scenario = "juggling"
	bad := []struct {
		name, run, dataset string
		want               []string
	}{
		{"missing file", "m1", filepath.Join(t.TempDir(), "none.arrow"), []string{"data.dataset", "none.arrow"}},
		{"too few rows", "m2", other, []string{"data.dataset", "9 rows", "data.train_size"}},
		{"unknown scenario", "m3", write("juggling.arrow", unknown), []string{"data.dataset", "row 2", rows[2].ID, `"juggling"`}},
		{"not a dataset", "m4", notArrow, []string{"data.dataset", "notes.arrow", "read dataset"}},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			code, errs := train(b.run, b.dataset)
			if code != 2 {
				t.Errorf("exit %d, want 2: %s", code, errs)
			}
			testutil.Mentions(t, "stderr", errs, b.want)
		})
	}
	// The run began with mine: another dataset under its name is refused.
	if code, errs := train("mine", write("changed.arrow", rows[1:]), "--set", "data.train_size=9"); code == 0 || !strings.Contains(errs, "differs from the dataset run mine began with") {
		t.Errorf("a changed dataset for run mine: exit %d\n%s", code, errs)
	}
}

// TestTrainWithLoRA: a small run with adapters on both models keeps the
// base's weights and trains the adapters; stopped after its first step
// and resumed, it ends byte for byte where the uninterrupted run ends;
// its export holds PEFT's adapter folders.
func TestTrainWithLoRA(t *testing.T) {
	small, base, dir := processRun(t)
	lora := []string{"--set", "lora.mllm.rank=2", "--set", "lora.mllm.alpha=4", "--set", "lora.dit.rank=2", "--set", "lora.dit.alpha=2"}
	for _, args := range [][]string{{"--run", "full"}, {"--run", "part", "--stop-after", "1"}, {"--run", "part", "--resume"}} {
		args = append(append([]string{"train", "--config", small, "--set", "run.base=" + base, "--run-dir", dir, "--eval-rows", "0"}, lora...), args...)
		if code, out, errs := runCLI(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, out, errs)
		}
	}
	v0, full, part := versionDir(t, dir, "full", 0), versionDir(t, dir, "full", 2), versionDir(t, dir, "part", 2)
	files := []string{"bundle/mllm.safetensors", "bundle/connector.safetensors", "bundle/dit.safetensors", "bundle/mllm.lora.safetensors", "bundle/dit.lora.safetensors"}
	testutil.SameFiles(t, full, part, files, "differs between the uninterrupted run and the resumed one")
	for _, f := range []string{"mllm.safetensors", "connector.safetensors", "dit.safetensors"} {
		a, err1 := os.ReadFile(filepath.Join(v0, "bundle", f))
		b, err2 := os.ReadFile(filepath.Join(full, "bundle", f))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		// The tensors are the base's (the same names, shapes and bytes);
		// only the header's step metadata differs.
		data := func(x []byte) []byte { return x[8+binary.LittleEndian.Uint64(x[:8]):] }
		if !bytes.Equal(data(a), data(b)) {
			t.Errorf("%s changed under LoRA", f)
		}
	}
	out := filepath.Join(t.TempDir(), "export")
	if code, _, errs := runCLI(t, "export", "--run", "full", "--run-dir", dir, "--out", out); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, errs)
	}
	for _, f := range []string{"mllm/adapter/adapter_model.safetensors", "mllm/adapter/adapter_config.json", "transformer/adapter/adapter_model.safetensors"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("the export lacks %s: %v", f, err)
		}
	}
}
