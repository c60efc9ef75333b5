package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/controlapi"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/storage/runs"
)

// TestTrainingGaugesFollowTheRun trains testdata/small.yaml as a
// controller (--listen, in this process) with one worker process, scrapes
// the controller's /metrics while it runs, and checks that every scrape
// that shows a committed step shows that step's metrics, as its shard
// keeps them, on the gauges of the step's phase.
func TestTrainingGaugesFollowTheRun(t *testing.T) {
	small, base, dir := processRun(t)
	addr := testutil.FreeAddr(t)
	url := "http://" + addr
	w := startProc(t, "worker", nil, "worker", "--role", "rollout,reward,learner", "--controller", url, "--insecure-local", "--threads", "1", "--run-dir", dir)
	defer w.kill()

	done := make(chan struct{})
	var (
		mu      sync.Mutex
		scrapes = map[float64]map[string]float64{} // the last scrape of each step
	)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			resp, err := http.Get(url + controlapi.PathMetrics)
			if err != nil {
				continue // not listening yet, or stopped
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				continue
			}
			s := testutil.PromSamples(t, string(b))
			mu.Lock()
			scrapes[s["thinkgen_train_step"]] = s
			mu.Unlock()
		}
	}()
	var out strings.Builder
	errs := &testutil.SyncBuffer{}
	code := run(context.Background(), []string{"train", "--config", small, "--set", "run.base=" + base, "--run-dir", dir, "--run", "g",
		"--eval-rows", "0", "--listen", addr, "--insecure-local"}, &env{stdout: &out, stderr: errs, getenv: func(string) string { return "" }})
	close(done)
	if code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s\nworker:\n%s", code, out.String(), errs, w.log)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(scrapes[1]) == 0 {
		t.Fatalf("no scrape of /metrics showed step 1 (scraped steps: %v)", keys(scrapes))
	}
	t.Logf("scrapes showed steps %v", keys(scrapes))
	st := openLocal(t, dir)
	for step, s := range scrapes {
		if step == 0 {
			continue
		}
		sm, err := runs.ReadStepMetrics(context.Background(), st, "g", int(step), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		phase := sm.Phase
		want := map[string]float64{
			`thinkgen_train_reward_mean{phase="` + phase + `"}`: sm.Values["reward/mean"],
			`thinkgen_train_kl{phase="` + phase + `"}`:          sm.Values["loss/kl"],
		}
		for _, part := range []string{"rollout", "reward", "learn", "storage", "step"} {
			want[`thinkgen_train_step_time_seconds{part="`+part+`",phase="`+phase+`"}`] = sm.Values["time/"+part+"_s"]
		}
		// Throughput of what the step sampled: tokens, images or both.
		for metric, gauge := range map[string]string{"rollout/tokens_per_s": "thinkgen_train_rollout_tokens_per_second", "rollout/images_per_s": "thinkgen_train_rollout_images_per_second"} {
			if v, ok := sm.Values[metric]; ok {
				want[gauge] = v
			}
		}
		for k, v := range want {
			if g, ok := s[k]; !ok || g != v {
				t.Errorf("step %v: %s = %v (present %v), want %v", step, k, g, ok, v)
			}
		}
	}
	if t.Failed() {
		t.Logf("train:\n%s", errs)
	}
}

func keys[V any](m map[float64]V) []float64 {
	var out []float64
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestTrainingMetricsAlone: --metrics serves the training gauges of a
// train without a controller API, from loopback only; the committed
// step's values appear on /metrics.
func TestTrainingMetricsAlone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	tr, url, err := serveTrainingMetrics(ctx, &stderr, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr.Observe(3, "mllm-grpo", map[string]float64{"reward/mean": 0.625, "time/step_s": 12.5})
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"thinkgen_train_step 3", `thinkgen_train_reward_mean{phase="mllm-grpo"} 0.625`, `thinkgen_train_step_time_seconds{part="step",phase="mllm-grpo"} 12.5`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if _, _, err := serveTrainingMetrics(ctx, &stderr, "0.0.0.0:0"); err == nil {
		t.Error("--metrics on every interface, without a token, was accepted")
	}
}
