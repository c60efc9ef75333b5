package main

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/internal/testenv"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/sweep"
)

// trainingSweep is tinySweep for a test that runs the sweep (skipped
// with -short): it also returns the run directory and lets the trials'
// train subprocesses run this test binary as thinkgen.
func trainingSweep(t *testing.T, name, space, extra string) (file, dir string) {
	t.Helper()
	if testing.Short() {
		t.Skip("trains")
	}
	t.Setenv("THINKGEN_TEST_MAIN", "1")
	return tinySweep(t, name, space, extra), t.TempDir()
}

// tinySweep writes a sweep file over the shipped tiny configuration and
// base, with a schedule of one GRPO step and small rollouts, and returns
// its path; extra holds top-level "key: value" lines that replace the
// defaults (parallel 2, eval_rows 2, objective think/mean).
func tinySweep(t *testing.T, name, space string, extra string) string {
	t.Helper()
	abs := func(p string) string {
		a, err := filepath.Abs(filepath.Join("..", "..", p))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	top := map[string]string{"parallel": "2", "eval_rows": "2", "objective": "{metric: think/mean}"}
	for _, line := range strings.Split(strings.TrimSpace(extra), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			top[k] = v
		}
	}
	body := "name: " + name + "\nbase: " + abs("configs/tiny.yaml") + `
set:
  run.base: ` + abs("base/tiny") + `
  run.threads: 1
  schedule.phases: [{phase: mllm-grpo, steps: 1}]
  # The prompts of every scenario in turn, as data.mix (tiny.yaml's stage 4
  # is reasoning-heavy): the early-stopping test's trials depend on them.
  grpo.mix.composition: 1
  grpo.mix.reasoning: 1
  grpo.mix.text: 1
  grpo.mix.editing: 1
  grpo.mix.reflection: 1
  grpo.prompts_per_step: 2
  grpo.group: 2
  grpo.max_new_tokens: 16
  grpo.image_steps: 2
  sampling.dit_steps: 4
  sampling.max_new_tokens: 16
  flow_grpo.steps: 2
space:
` + space + "\n"
	for _, k := range slices.Sorted(maps.Keys(top)) {
		body += k + ": " + top[k] + "\n"
	}
	path := filepath.Join(t.TempDir(), "sweep.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSweepRejectsBadInput: bad sweeps exit 2 before any work, naming the
// key, and write nothing.
func TestSweepRejectsBadInput(t *testing.T) {
	tests := []struct {
		name  string
		space string
		extra string
		args  []string
		want  []string
	}{
		{"unknown key in the space", "  grpo.lr: [1e-4]\n  grpo.momentum: [0.9]", "", nil, []string{"sweep.yaml:", `unknown key "grpo.momentum"`, "known keys of grpo"}},
		{"empty range", "  grpo.lr: {range: {min: 1, max: 0, step: 0.1}}", "", nil, []string{"space.grpo.lr", "empty range: min 1 > max 0"}},
		{"count zero", "  grpo.lr: {log_range: {min: 1e-5, max: 1e-3, count: 0}}", "", nil, []string{"space.grpo.lr", "count 0"}},
		{"empty values", "  grpo.lr: {values: []}", "", nil, []string{"space.grpo.lr", "empty list"}},
		{"unknown method", "  grpo.lr: [1e-4]", "method: hyperband\n", nil, []string{`unknown method "hyperband"`}},
		{"unknown objective", "  grpo.lr: [1e-4]", "objective: {metric: think/juggling}\n", nil, []string{`unknown objective "think/juggling"`}},
		{"parallel zero in the file", "  grpo.lr: [1e-4]", "parallel: 0\n", nil, []string{"parallel: 0"}},
		{"parallel zero flag", "  grpo.lr: [1e-4]", "", []string{"--parallel", "0"}, []string{"--parallel 0"}},
		{"invalid trial", "  grpo.group: [2, 1]", "", nil, []string{"trial bad-t002 (grpo.group=1)", "grpo.group: must be >= 2"}},
		{"ray without an address", "  grpo.lr: [1e-4]", "", []string{"--cluster", "ray"}, []string{"cluster.ray: empty"}},
		{"unknown cluster", "  grpo.lr: [1e-4]", "", []string{"--cluster", "slurm"}, []string{`unknown mode "slurm"`}},
		{"kuberay with a local store and no image", "  grpo.lr: [1e-4]", "", []string{"--cluster", "kuberay"}, []string{"trial bad-t001", "cluster.image: required", "must be s3://"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := tinySweep(t, "bad", tt.space, tt.extra)
			dir := t.TempDir()
			runRefused(t, tt.want, append([]string{"sweep", "--config", file, "--run-dir", dir}, tt.args...)...)
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("the refused sweep wrote %d entries into its store", len(entries))
			}
		})
	}
	if code, _, errs := runCLI(t, "sweep"); code != 2 || !strings.Contains(errs, "--config") {
		t.Errorf("no sweep file: exit %d, %s", code, errs)
	}
	if code, _, errs := runCLI(t, "sweep", "--config", filepath.Join(t.TempDir(), "none.yaml")); code != 2 || !strings.Contains(errs, "none.yaml") {
		t.Errorf("missing sweep file: exit %d, %s", code, errs)
	}
}

func TestSweepDryRunListsTrials(t *testing.T) {
	file := tinySweep(t, "dry", "  grpo.lr: {log_range: {min: 1e-5, max: 1e-3, count: 3}}\n  grpo.beta: [0, 0.01]", "")
	dir := t.TempDir()
	code, out, errs := runCLI(t, "sweep", "--config", file, "--run-dir", dir, "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	for _, w := range []string{"6 trials (grid)", "dry-t001\tgrpo.lr=1e-05 grpo.beta=0\n", "dry-t006\tgrpo.lr=0.001 grpo.beta=0.01\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("stdout lacks %q:\n%s", w, out)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a dry run wrote into the store")
	}
}

// TestSweepTinyRunsAndResumes runs a real sweep of two trials (each a
// train subprocess of one GRPO step from base/tiny, evaluated on 2 rows),
// checks the leaderboard against the trials' stored eval scores, runs it
// again (nothing is re-run), then marks a trial unfinished as a killed
// sweep would leave it and runs it again (that trial resumes its run).
func TestSweepTinyRunsAndResumes(t *testing.T) {
	file, dir := trainingSweep(t, "tiny", "  grpo.lr: [1.0e-4, 1.0e-3]", "")
	args := []string{"sweep", "--config", file, "--run-dir", dir, "--poll", "1s"}
	code, out, errs := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	for _, w := range []string{"2 trials, 0 finished before, 2 to run, 2 at a time", "trial 1/2 tiny-t001 running (grpo.lr=1.0e-4)", "tiny-t002 step 1/1", "done: think/mean", "ETA"} {
		if !strings.Contains(errs, w) {
			t.Errorf("progress lacks %q:\n%s", w, errs)
		}
	}
	prefix := filepath.Join(dir, "sweeps", "tiny")
	for _, f := range []string{"sweep.json", "leaderboard.csv", "leaderboard.arrow", "objective.png", "logs/tiny-t001.log", "logs/tiny-t002.log"} {
		if st, err := os.Stat(filepath.Join(prefix, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
		if !strings.Contains(out, filepath.Join(prefix, f)) && !strings.HasPrefix(f, "logs/") {
			t.Errorf("the listing lacks %s:\n%s", f, out)
		}
	}
	// The objective is the mean think score of each run's final eval.
	state, err := readSweepState(filepath.Join(prefix, "sweep.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range state.Trials {
		data, err := os.ReadFile(filepath.Join(dir, "runs", tr.Name, "eval", "000001.json"))
		if err != nil {
			t.Fatal(err)
		}
		var scores map[string][]reward.Summary
		if err := json.Unmarshal(data, &scores); err != nil {
			t.Fatal(err)
		}
		var sum float64
		for _, s := range scores["think"] {
			sum += s.Score
		}
		want := sum / float64(len(scores["think"]))
		if tr.Status != sweep.StatusDone || tr.Objective == nil || *tr.Objective != want || tr.Steps != 1 || tr.Attempts != 1 {
			t.Errorf("%s: %+v, want done with objective %v", tr.Name, tr, want)
		}
	}
	// The table ranks them, best first.
	lb := state.Leaderboard()
	if *lb[0].Trial.Objective < *lb[1].Trial.Objective {
		t.Errorf("leaderboard order: %v then %v", *lb[0].Trial.Objective, *lb[1].Trial.Objective)
	}
	if i := strings.Index(out, "rank  trial"); i < 0 || !strings.HasPrefix(strings.Fields(strings.SplitN(out[i:], "\n", 3)[1])[1], lb[0].Trial.Name) {
		t.Errorf("the table does not put %s first:\n%s", lb[0].Trial.Name, out)
	}

	// Again: nothing is re-run.
	runJSON := filepath.Join(dir, "runs", "tiny-t001", "run.json")
	before, _ := os.ReadFile(runJSON)
	logBefore, _ := os.ReadFile(filepath.Join(prefix, "logs", "tiny-t001.log"))
	code, out2, errs := runCLI(t, args...)
	if code != 0 || !strings.Contains(errs, "2 finished before, 0 to run") || strings.Contains(errs, "running (") {
		t.Fatalf("second run: exit %d\n%s\n%s", code, out2, errs)
	}
	after, _ := os.ReadFile(runJSON)
	logAfter, _ := os.ReadFile(filepath.Join(prefix, "logs", "tiny-t001.log"))
	if !bytes.Equal(before, after) || !bytes.Equal(logBefore, logAfter) {
		t.Error("the second sweep touched a finished trial's run or log")
	}

	// A trial a killed sweep left running resumes its run.
	objective := *state.Trials[1].Objective
	state.Trials[1].Status, state.Trials[1].Objective = sweep.StatusRunning, nil
	data, _ := json.Marshal(state)
	if err := os.WriteFile(filepath.Join(prefix, "sweep.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out3, errs := runCLI(t, args...)
	if code != 0 || !strings.Contains(errs, "1 finished before, 1 to run") || !strings.Contains(errs, "tiny-t002 resuming its run") {
		t.Fatalf("third run: exit %d\n%s\n%s", code, out3, errs)
	}
	log2, _ := os.ReadFile(filepath.Join(prefix, "logs", "tiny-t002.log"))
	if !strings.Contains(string(log2), "--resume") || strings.Count(string(log2), "--- ") != 2 {
		t.Errorf("trial 2's log does not show a resumed second attempt:\n%s", log2)
	}
	again, _ := readSweepState(filepath.Join(prefix, "sweep.json"))
	if tr := again.Trials[1]; tr.Status != sweep.StatusDone || tr.Objective == nil || *tr.Objective != objective || tr.Attempts != 2 {
		t.Errorf("resumed trial: %+v, want done with objective %v after 2 attempts", tr, objective)
	}

	// Another space under the same name is refused.
	other := tinySweep(t, "tiny", "  grpo.lr: [1.0e-4, 5.0e-4]", "")
	if code, _, errs := runCLI(t, "sweep", "--config", other, "--run-dir", dir); code != 2 || !strings.Contains(errs, "other trials") {
		t.Errorf("another space: exit %d\n%s", code, errs)
	}
}

func readSweepState(path string) (*sweep.State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s sweep.State
	return &s, json.Unmarshal(data, &s)
}

// TestSweepOnRay runs a one-trial sweep as a Ray job on a real Ray head
// (scripts/ray.sh): the job trains and evaluates, the sweep reads its
// objective and keeps the job's logs.
func TestSweepOnRay(t *testing.T) {
	if testing.Short() {
		t.Skip("trains, needs Ray")
	}
	ray := testenv.RayAddress(t)
	t.Setenv("THINKGEN_TEST_MAIN", "1")
	file := tinySweep(t, "onray", "  grpo.lr: [1.0e-4]", "")
	dir := t.TempDir()
	code, out, errs := runCLI(t, "sweep", "--config", file, "--run-dir", dir, "--cluster", "ray", "--ray-address", ray, "--poll", "1s")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	state, err := readSweepState(filepath.Join(dir, "sweeps", "onray", "sweep.json"))
	if err != nil {
		t.Fatal(err)
	}
	tr := state.Trials[0]
	if tr.Status != sweep.StatusDone || tr.Objective == nil || tr.Job != sweep.JobID("onray-t001", 1) {
		t.Fatalf("trial: %+v", tr)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "sweeps", "onray", "logs", "onray-t001.log"))
	if !strings.Contains(string(log), "ray job "+tr.Job) || !strings.Contains(string(log), "committed 1 steps") {
		t.Errorf("the trial's log lacks the job's output:\n%s", log)
	}
}

// TestSweepStopsALosingTrial runs two real trials one after the other
// with the median rule: the first one's learning rate (1e-2) raises its
// reward by step 2, the second's (1e-5) barely moves the policy, so its
// running mean reward at step 2 falls below the first's (measured: 0.130
// against 0.181) and it is stopped there; the decision recorded matches
// the rule applied to the recorded rewards.
func TestSweepStopsALosingTrial(t *testing.T) {
	// 8 prompts × 4 chains a step: with the fixture's 2 × 2 a step's
	// reward was often 0 for both trials (a tie the rule rightly keeps).
	file, dir := trainingSweep(t, "es", "  grpo.lr: [1.0e-2, 1.0e-5]\n  schedule.phases.0.steps: [3]\n  grpo.prompts_per_step: [8]\n  grpo.group: [4]",
		"parallel: 1\nearly_stop: {rule: median, metric: reward/mean, min_step: 2, min_trials: 1}")
	code, out, errs := runCLI(t, "sweep", "--config", file, "--run-dir", dir, "--poll", "500ms")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	state, err := readSweepState(filepath.Join(dir, "sweeps", "es", "sweep.json"))
	if err != nil {
		t.Fatal(err)
	}
	first, second := state.Trials[0], state.Trials[1]
	if first.Status != sweep.StatusDone || first.Steps != 3 || len(first.Signal) != 3 {
		t.Fatalf("first trial: %+v", first)
	}
	d := second.StoppedAt
	if second.Status != sweep.StatusStopped || d == nil || d.Step != 2 || second.Objective != nil {
		t.Fatalf("second trial: %+v\n%s", second, errs)
	}
	// The rule, recomputed from the stored per-step rewards.
	sig := map[string][]float64{}
	for _, tr := range state.Trials {
		for _, v := range tr.Signal {
			sig[tr.Name] = append(sig[tr.Name], float64(v))
		}
	}
	mine, _ := sweep.RunningMean(sig[second.Name], 2)
	theirs, _ := sweep.RunningMean(sig[first.Name], 2)
	t.Logf("running mean reward at step 2: %.3f (lr 1e-5, stopped) vs %.3f (lr 1e-2)", mine, theirs)
	if !(mine < theirs) || d.Value != mine || d.Median != theirs || d.Others != 1 {
		t.Errorf("decision %+v; running means at step 2: %v (stopped) vs %v", *d, mine, theirs)
	}
	if !strings.Contains(errs, "es-t002: stopping (median rule") || !strings.Contains(out, "stopped") {
		t.Errorf("no stop reported:\n%s\n%s", errs, out)
	}
}

// TestSweepInterruptedResumes interrupts a sweep (as Ctrl-C does) once
// both trials have committed their step: the trials are ended and left
// pending, and the next run resumes both runs (train --resume) to the end.
func TestSweepInterruptedResumes(t *testing.T) {
	file, dir := trainingSweep(t, "int", "  grpo.lr: [1.0e-4, 1.0e-3]", "")
	args := []string{"sweep", "--config", file, "--run-dir", dir, "--poll", "500ms"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testutil.SyncBuffer
	done := make(chan int)
	go func() { done <- run(ctx, args, &env{stdout: &stdout, stderr: &stderr, getenv: os.Getenv}) }()
	deadline := time.After(3 * time.Minute)
	for !(strings.Contains(stderr.String(), "int-t001 step 1/1") && strings.Contains(stderr.String(), "int-t002 step 1/1")) {
		select {
		case code := <-done:
			t.Fatalf("the sweep ended (exit %d) before it was interrupted:\n%s", code, stderr.String())
		case <-deadline:
			t.Fatalf("no step committed in 3 minutes:\n%s", stderr.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != 1 || !strings.Contains(stderr.String(), "context canceled") {
		t.Fatalf("interrupted sweep: exit %d\n%s", code, stderr.String())
	}
	state, err := readSweepState(filepath.Join(dir, "sweeps", "int", "sweep.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range state.Trials {
		if tr.Status.Finished() || !strings.Contains(tr.Error, "interrupted") {
			t.Errorf("%s after the interrupt: %s %q", tr.Name, tr.Status, tr.Error)
		}
	}
	code, out, errs := runCLI(t, args...)
	if code != 0 || strings.Count(errs, "resuming its run") != 2 {
		t.Fatalf("resumed sweep: exit %d\n%s\n%s", code, out, errs)
	}
	state, _ = readSweepState(filepath.Join(dir, "sweeps", "int", "sweep.json"))
	for _, tr := range state.Trials {
		if tr.Status != sweep.StatusDone || tr.Attempts != 2 || tr.Objective == nil {
			t.Errorf("%s after the resume: %+v", tr.Name, tr)
		}
		log, _ := os.ReadFile(filepath.Join(dir, "sweeps", "int", "logs", tr.Name+".log"))
		if !strings.Contains(string(log), "--resume") {
			t.Errorf("%s: the second attempt did not resume:\n%s", tr.Name, log)
		}
	}
}
