package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/internal/testenv"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/tracking/mlflow"
)

// startMLflowServer starts `mlflow server` of the MLflow venv on a free
// loopback port, with a SQLite store and an artifact root in a temporary
// directory, and returns its URL once it answers. The server (uvicorn and
// its worker) runs in a process group of its own, which the test's
// cleanup stops.
func startMLflowServer(t *testing.T, py string) string {
	t.Helper()
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(py, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", port, "--workers", "1",
		"--backend-store-uri", "sqlite:///"+filepath.Join(dir, "mlflow.db"), "--artifacts-destination", filepath.Join(dir, "artifacts"))
	log, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mlflow server: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("mlflow server log:\n%s", b)
		}
	})
	url := "http://" + addr
	if err := testutil.WaitOK(url+"/health", exited, 500*time.Millisecond, 3*time.Minute); err != nil {
		b, _ := os.ReadFile(log.Name())
		t.Fatalf("mlflow server: %v:\n%s", err, b)
	}
	return url
}

// mlflowReadback is what testdata/mlflow_readback.py reads back with
// MLflow's client.
type mlflowReadback struct {
	Runs      int                 `json:"runs"`
	Status    string              `json:"status"`
	Params    map[string]string   `json:"params"`
	Tags      map[string]string   `json:"tags"`
	Metrics   map[string][][3]any `json:"metrics"` // step, repr(value), timestamp
	Artifacts map[string]int64    `json:"artifacts"`
}

// TestTrainLogsToMLflow trains testdata/small.yaml against a real MLflow
// tracking server: killed (--stop-after) after its first step and
// resumed, with a held-out evaluation at the end. MLflow's own client
// then reads back one finished run holding every param of the resolved
// configuration, every metric of both steps exactly once with the values
// and times of the run's store, the held-out tables, the curves and the
// sample grids.
func TestTrainLogsToMLflow(t *testing.T) {
	py := testenv.MLflowPython(t)
	if testing.Short() {
		t.Skip("starts an MLflow server and trains")
	}
	url := startMLflowServer(t, py)
	small := filepath.Join("testdata", "small.yaml")
	base := saveBaseOf(t, small)
	store := t.TempDir()
	common := []string{"--config", small, "--set", "run.base=" + base, "--run-dir", store, "--run", "r", "--eval-rows", "2"}
	args := append([]string{"train", "--stop-after", "1", "--set", "tracking.mlflow=" + url, "--set", "tracking.experiment=thinkgen-test"}, common...)
	if code, out, errs := runCLI(t, args...); code != 0 || strings.Contains(errs, "warning") {
		t.Fatalf("train --stop-after 1: exit %d\n%s\n%s", code, out, errs)
	}
	// Stopped as a kill would: the MLflow run is KILLED and holds step 1.
	c, err := mlflow.NewClient(url, mlflow.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	exp, err := c.ExperimentID(ctx, "thinkgen-test")
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.FindRun(ctx, exp, map[string]string{mlflow.TagRun: "r"})
	if err != nil || id == "" {
		t.Fatalf("find the MLflow run: %q, %v", id, err)
	}
	if ri, err := c.Run(ctx, id); err != nil || ri.Status != mlflow.StatusKilled || ri.LastStep != 1 {
		t.Fatalf("MLflow run after --stop-after 1: %+v, %v; want KILLED at step 1", ri, err)
	}
	// The resume names no tracker: the run's recorded one continues.
	args = append([]string{"train", "--resume"}, common...)
	code, out, errs := runCLI(t, args...)
	if code != 0 || strings.Contains(errs, "warning") {
		t.Fatalf("train --resume: exit %d\n%s\n%s", code, out, errs)
	}

	cmd := exec.Command(py, filepath.Join("testdata", "mlflow_readback.py"), url, "thinkgen-test", "r")
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("mlflow_readback.py: %v", err)
	}
	var got mlflowReadback
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("mlflow_readback.py: %v\n%s", err, b)
	}
	if got.Runs != 1 || got.Status != mlflow.StatusFinished {
		t.Fatalf("%d MLflow runs tagged thinkgen.run=r, status %q; want 1, FINISHED", got.Runs, got.Status)
	}

	st := openLocal(t, store)
	rs, err := runs.ReadState(ctx, st, "r")
	if err != nil {
		t.Fatal(err)
	}
	if want := rs.Started.UTC().Format(time.RFC3339Nano); got.Tags[mlflow.TagStarted] != want {
		t.Errorf("tag %s = %q, want %q", mlflow.TagStarted, got.Tags[mlflow.TagStarted], want)
	}
	cfg, err := rs.ParseConfig()
	if err != nil {
		t.Fatal(err)
	}
	kvs, err := cfg.Flatten()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Params) != len(kvs) {
		t.Errorf("%d params, want the %d leaves of the configuration", len(got.Params), len(kvs))
	}
	for _, kv := range kvs {
		want := kv.Value
		if len(want) > mlflow.MaxParamValueLen {
			want = want[:mlflow.MaxParamValueLen]
		}
		if got.Params[kv.Key] != want {
			t.Errorf("param %s = %q, want %q", kv.Key, got.Params[kv.Key], want)
		}
	}
	for key, want := range map[string]string{"grpo.group": "3", "tracking.experiment": "thinkgen-test", "tracking.mlflow": url,
		"schedule.phases": "[{phase: mllm-grpo, steps: 1}, {phase: dit-grpo, steps: 1}]"} {
		if got.Params[key] != want {
			t.Errorf("param %s = %q, want %q", key, got.Params[key], want)
		}
	}

	// Every metric of every step, once, as the step's shard keeps it.
	want := map[string][][3]any{}
	for step := 1; step <= rs.Committed; step++ {
		sm, err := runs.ReadStepMetrics(ctx, st, "r", step, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range sm.Values {
			want[k] = append(want[k], [3]any{float64(step), v, float64(sm.At.UnixMilli())})
		}
	}
	if rs.Committed != 2 || len(want["reward/mean"]) != 2 {
		t.Fatalf("store: %d steps committed, reward/mean of %d", rs.Committed, len(want["reward/mean"]))
	}
	if len(got.Metrics) != len(want) {
		t.Errorf("%d metrics in MLflow, the steps have %d", len(got.Metrics), len(want))
	}
	for k, w := range want {
		h := got.Metrics[k]
		if len(h) != len(w) {
			t.Errorf("metric %s: history of %d, want %d (one per step): %v", k, len(h), len(w), h)
			continue
		}
		for i := range w {
			v, err := strconv.ParseFloat(fmt.Sprint(h[i][1]), 64)
			if err != nil {
				t.Errorf("metric %s: value %v: %v", k, h[i][1], err)
				continue
			}
			wv := w[i][1].(float64)
			if h[i][0] != w[i][0] || h[i][2] != w[i][2] || (v != wv && !(v != v && wv != wv)) {
				t.Errorf("metric %s [%d]: step %v value %v time %v, want step %v value %v time %v", k, i, h[i][0], v, h[i][2], w[i][0], wv, w[i][2])
			}
		}
	}

	curves, err := os.Stat(filepath.Join(store, filepath.FromSlash(runs.CurvesKey("r"))))
	if err != nil {
		t.Fatal(err)
	}
	if got.Artifacts["curves.png"] != curves.Size() {
		t.Errorf("artifact curves.png of %d bytes, the store's has %d", got.Artifacts["curves.png"], curves.Size())
	}
	for _, name := range []string{"eval/eval.json", "eval/eval.txt", "eval/eval-id.json", "eval/eval-id.txt", "grids/000000-think.png", "grids/000002-direct.png"} {
		if got.Artifacts[name] <= 0 {
			t.Errorf("no artifact %s (artifacts: %v)", name, got.Artifacts)
		}
	}
}
