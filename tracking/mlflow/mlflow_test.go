package mlflow

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/internal/testutil"
)

// fakeServer is the part of MLflow's REST API a Tracker uses, in memory,
// with log-batch replies that fail while failBatches > 0. The real server
// is tested in cmd/thinkgen (TestTrainLogsToMLflow); this one makes
// failures on demand and counts requests.
type fakeServer struct {
	mu          sync.Mutex
	failBatches int
	batches     []batch
	status      []string
	artifacts   map[string]string
	params      map[string]string
	metrics     []Metric
}

type batch struct {
	Metrics []Metric `json:"metrics"`
	Params  []Param  `json:"params"`
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reply := func(v any) { json.NewEncoder(w).Encode(v) }
	run := map[string]any{"info": map[string]any{"run_id": "r1", "status": "RUNNING", "artifact_uri": "mlflow-artifacts:/7/r1/artifacts"}}
	switch {
	case r.URL.Path == "/api/2.0/mlflow/experiments/get-by-name":
		reply(map[string]any{"experiment": map[string]any{"experiment_id": "7", "lifecycle_stage": "active"}})
	case r.URL.Path == "/api/2.0/mlflow/runs/search":
		reply(map[string]any{})
	case r.URL.Path == "/api/2.0/mlflow/runs/create", r.URL.Path == "/api/2.0/mlflow/runs/get":
		reply(map[string]any{"run": run})
	case r.URL.Path == "/api/2.0/mlflow/runs/log-batch":
		if f.failBatches > 0 {
			f.failBatches--
			w.WriteHeader(http.StatusServiceUnavailable)
			reply(map[string]string{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"})
			return
		}
		// Values as raw JSON: NaN arrives as a string.
		var b struct {
			Metrics []struct {
				Key       string          `json:"key"`
				Value     json.RawMessage `json:"value"`
				Timestamp int64           `json:"timestamp"`
				Step      int64           `json:"step"`
			} `json:"metrics"`
			Params []Param `json:"params"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var got batch
		for _, m := range b.Metrics {
			var v float64
			if string(m.Value) == `"NaN"` {
				v = math.NaN()
			} else if err := json.Unmarshal(m.Value, &v); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			got.Metrics = append(got.Metrics, Metric{Key: m.Key, Value: Value(v), Timestamp: m.Timestamp, Step: m.Step})
		}
		got.Params = b.Params
		f.batches = append(f.batches, got)
		f.metrics = append(f.metrics, got.Metrics...)
		for _, p := range b.Params {
			f.params[p.Key] = p.Value
		}
		reply(map[string]any{})
	case r.URL.Path == "/api/2.0/mlflow/runs/update":
		var b struct {
			Status string `json:"status"`
		}
		json.NewDecoder(r.Body).Decode(&b)
		f.status = append(f.status, b.Status)
		reply(map[string]any{})
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/api/2.0/mlflow-artifacts/artifacts/"):
		b, _ := io.ReadAll(r.Body)
		f.artifacts[strings.TrimPrefix(r.URL.Path, "/api/2.0/mlflow-artifacts/artifacts/")] = string(b)
		reply(map[string]any{})
	default:
		w.WriteHeader(http.StatusNotFound)
		reply(map[string]string{"error_code": "ENDPOINT_NOT_FOUND", "message": r.URL.Path})
	}
}

func newFake(t *testing.T) (*fakeServer, *Client) {
	t.Helper()
	f := &fakeServer{artifacts: map[string]string{}, params: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, ClientOptions{RetryMax: -1})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

// TestLogBatchSplitsAtLimits logs 2,500 metrics and 250 params: at most
// 100 params and 1,000 entities a request, every metric once, in order.
func TestLogBatchSplitsAtLimits(t *testing.T) {
	f, c := newFake(t)
	var ms []Metric
	for i := range 2500 {
		ms = append(ms, Metric{Key: fmt.Sprintf("m%d", i), Value: Value(i), Step: 1})
	}
	var ps []Param
	for i := range 250 {
		ps = append(ps, Param{Key: fmt.Sprintf("p%d", i), Value: "v"})
	}
	if err := c.LogBatch(context.Background(), "r1", ms, ps); err != nil {
		t.Fatal(err)
	}
	var shape []string
	for _, b := range f.batches {
		shape = append(shape, fmt.Sprintf("%d+%d", len(b.Params), len(b.Metrics)))
	}
	if got := strings.Join(shape, " "); got != "100+900 100+900 50+700" {
		t.Errorf("batches (params+metrics) %s, want 100+900 100+900 50+700", got)
	}
	if len(f.metrics) != 2500 || len(f.params) != 250 {
		t.Fatalf("%d metrics, %d params arrived", len(f.metrics), len(f.params))
	}
	for i, m := range f.metrics {
		if m.Key != fmt.Sprintf("m%d", i) {
			t.Fatalf("metric %d is %s", i, m.Key)
		}
	}
}

// TestTrackerDropsAndResends fails the first metrics call: the tracker
// warns with the count of dropped calls, sends step 1 again with step 2,
// ignores a step handed over twice, and ends the run FINISHED.
func TestTrackerDropsAndResends(t *testing.T) {
	f, c := newFake(t)
	warn := &testutil.SyncBuffer{}
	long := strings.Repeat("é", 400) // 800 bytes
	tr, err := Start(context.Background(), Options{Client: c, Experiment: "e", Run: "r", Started: time.Unix(100, 0),
		Params: []Param{{Key: "optim.lr", Value: "0.0001"}, {Key: "x.long", Value: long}}, Warn: warn})
	if err != nil {
		t.Fatal(err)
	}
	if f.params["optim.lr"] != "0.0001" || f.params["x.long"] != strings.Repeat("é", 250) {
		t.Errorf("params %q, want the lr and the long value cut to 500 bytes", f.params)
	}
	f.mu.Lock()
	f.failBatches = 1
	f.mu.Unlock()
	at := time.UnixMilli(1_700_000_000_123)
	tr.Step(1, at, map[string]float64{"reward/mean": 0.5, "loss/kl": math.NaN()})
	waitFor(t, func() bool { return tr.Dropped() == 1 })
	tr.Step(2, at.Add(time.Second), map[string]float64{"reward/mean": 0.75, "eval/think@k": 1})
	waitFor(t, func() bool { return tr.LastStep() == 2 })
	tr.Step(1, at, map[string]float64{"reward/mean": 0.5})
	tr.Artifact("eval/eval.json", []byte(`[]`))
	if n := tr.Close(context.Background(), StatusFinished); n != 1 {
		t.Errorf("Close: %d dropped, want 1", n)
	}
	var got []string
	for _, m := range f.metrics {
		got = append(got, fmt.Sprintf("%d %s %v %d", m.Step, m.Key, float64(m.Value), m.Timestamp))
	}
	want := []string{
		"1 loss/kl NaN 1700000000123", "1 reward/mean 0.5 1700000000123",
		"2 eval/think_k 1 1700000001123", "2 reward/mean 0.75 1700000001123",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("metrics logged:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Join(f.status, ",") != "FINISHED" {
		t.Errorf("run updates %v, want FINISHED (the fake's run is RUNNING already)", f.status)
	}
	if f.artifacts["7/r1/artifacts/eval/eval.json"] != "[]" {
		t.Errorf("artifacts %v", f.artifacts)
	}
	testutil.Mentions(t, "warnings", warn.String(), []string{"log steps 1–1", "TEMPORARILY_UNAVAILABLE", "1 calls dropped so far"})
}

// TestStartFailsWithoutServer: a tracking server that does not answer
// stops the run before it starts, naming the server.
func TestStartFailsWithoutServer(t *testing.T) {
	url := "http://" + testutil.FreeAddr(t)
	c, err := NewClient(url, ClientOptions{RetryMax: -1, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(context.Background(), Options{Client: c, Experiment: "e", Run: "r", Started: time.Now()})
	if err == nil || !strings.Contains(err.Error(), url) {
		t.Fatalf("Start: %v, want an error naming %s", err, url)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("timed out")
}

func TestSanitizeKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"reward/mean", "reward/mean"},
		{"eval/think/composition", "eval/think/composition"},
		{"time/rollout_s", "time/rollout_s"},
		{"a b-c.d:e", "a b-c.d:e"},
		{"λ@x", "__x"},
		{"/abs", "_abs"},
		{"a/../b", "a/__/b"},
		{"", "_"},
		{strings.Repeat("k", 300), strings.Repeat("k", 250)},
	}
	for _, tt := range tests {
		if got := SanitizeKey(tt.in); got != tt.want {
			t.Errorf("SanitizeKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestValueJSON(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{{0.25, "0.25"}, {math.NaN(), `"NaN"`}, {math.Inf(1), `"Infinity"`}, {math.Inf(-1), `"-Infinity"`}, {-3, "-3"}}
	for _, tt := range tests {
		b, err := json.Marshal(Value(tt.v))
		if err != nil || string(b) != tt.want {
			t.Errorf("Value(%v): %s, %v; want %s", tt.v, b, err, tt.want)
		}
	}
}

func TestArtifactPath(t *testing.T) {
	tests := []struct{ uri, want, err string }{
		{"mlflow-artifacts:/1/abc/artifacts", "1/abc/artifacts", ""},
		{"mlflow-artifacts://host:5000/1/abc/artifacts", "1/abc/artifacts", ""},
		{"s3://bucket/1/abc/artifacts", "", "--serve-artifacts"},
		{"/srv/mlruns/1/abc/artifacts", "", "--serve-artifacts"},
		{"mlflow-artifacts:/", "", "no path"},
	}
	for _, tt := range tests {
		got, err := ArtifactPath(tt.uri)
		if got != tt.want || (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ArtifactPath(%q) = %q, %v; want %q, error with %q", tt.uri, got, err, tt.want, tt.err)
		}
	}
}
