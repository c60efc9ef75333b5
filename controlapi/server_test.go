package controlapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/controlapi"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/queue"
	"github.com/thinkgen/thinkgen/queue/queuetest"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/task"
)

type fixture struct {
	q     *queue.Queue
	api   *controlapi.Server
	srv   *httptest.Server
	token string
	log   *testutil.SyncBuffer
}

func newFixture(t *testing.T, qo queue.Options) *fixture {
	t.Helper()
	token, err := controlapi.GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{q: queue.New(qo), token: token, log: &testutil.SyncBuffer{}}
	s, err := controlapi.NewServer(f.q, controlapi.ServerOptions{Token: token,
		Logger: slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	f.api = s
	f.srv = httptest.NewServer(s)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) client(t *testing.T) *controlapi.Client {
	t.Helper()
	c, err := controlapi.NewClient(f.srv.URL, controlapi.ClientOptions{Token: f.token, RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// do sends a raw request and returns the status and body.
func (f *fixture) do(t *testing.T, method, path, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// leased sets up a worker holding a lease of r0 and returns its ID and the
// task.
func leased(t *testing.T, f *fixture) (string, task.Task) {
	t.Helper()
	ctx := context.Background()
	if _, err := f.q.Submit(queuetest.Task(task.Rollout, "r0")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.q.Submit(queuetest.Task(task.Rollout, "r1")); err != nil {
		t.Fatal(err)
	}
	c := f.client(t)
	reg, err := c.Register(ctx, "holder", []queue.Role{queue.RoleRollout}, 2)
	if err != nil {
		t.Fatal(err)
	}
	x, _, ok, err := c.Lease(ctx, reg.WorkerID, time.Second)
	if err != nil || !ok {
		t.Fatalf("Lease = %v, %v", ok, err)
	}
	return reg.WorkerID, x
}

func TestUnauthorizedChangesNothing(t *testing.T) {
	f := newFixture(t, queue.Options{})
	worker, x := leased(t, f)
	key := queue.Key(x)
	requests := []struct{ method, path, body string }{
		{"POST", controlapi.PathRegister, `{"name":"intruder","roles":["rollout"],"capacity":1}`},
		{"POST", controlapi.PathLease, testutil.JSON(t, map[string]any{"worker_id": worker, "timeout_ms": 0})},
		{"POST", controlapi.PathHeartbeat, testutil.JSON(t, map[string]any{"worker_id": worker, "key": key, "attempt": 1})},
		{"POST", controlapi.PathFail, testutil.JSON(t, map[string]any{"worker_id": worker, "key": key, "attempt": 1, "error": "x", "fatal": true})},
		{"POST", controlapi.PathComplete, testutil.JSON(t, map[string]any{"worker_id": worker, "key": key, "attempt": 1, "result": queuetest.Result(x)})},
		{"GET", controlapi.PathStatus, ""},
		{"GET", controlapi.PathMetrics, ""},
		{"GET", "/v1/nothing", ""},
	}
	wrong := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	auths := []string{"", "Bearer " + wrong, "Bearer " + f.token + "x", "Bearer " + f.token[:len(f.token)-1],
		"Basic " + f.token, f.token, "Bearer", "Bearer  " + f.token}
	before := f.q.Status()
	for _, rq := range requests {
		for _, auth := range auths {
			code, body := f.do(t, rq.method, rq.path, auth, rq.body)
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s with Authorization %q: %d %s, want 401", rq.method, rq.path, redact(auth, f.token), code, body)
			}
			if strings.Contains(body, f.token) || strings.Contains(body, wrong) {
				t.Errorf("%s %s: reply shows a token", rq.method, rq.path)
			}
		}
	}
	after := f.q.Status()
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("status changed by unauthorized requests:\nbefore %+v\nafter  %+v", before, after)
	}
	// The same complete, authorized, is accepted: the refusals above were
	// for the token alone.
	rq := requests[4]
	if code, body := f.do(t, rq.method, rq.path, "Bearer "+f.token, rq.body); code != http.StatusOK {
		t.Fatalf("authorized complete: %d %s", code, body)
	}
	if logs := f.log.String(); strings.Contains(logs, f.token) || strings.Contains(logs, wrong) || !strings.Contains(logs, "unauthorized") {
		t.Fatalf("server log shows a token, or no refusal:\n%s", logs)
	}
}

func redact(s, token string) string { return strings.ReplaceAll(s, token, "<token>") }

func TestWorkerCannotCompleteTaskItDoesNotHold(t *testing.T) {
	f := newFixture(t, queue.Options{})
	holder, x := leased(t, f)
	ctx := context.Background()
	c := f.client(t)
	other, err := c.Register(ctx, "other", []queue.Role{queue.RoleRollout}, 1)
	if err != nil {
		t.Fatal(err)
	}
	before := f.q.Status()
	err = c.Complete(ctx, other.WorkerID, queue.Key(x), x.Attempt, queuetest.Result(x))
	var ae *controlapi.APIError
	if !errors.Is(err, queue.ErrNotHolder) || !errors.As(err, &ae) || ae.StatusCode != http.StatusConflict {
		t.Fatalf("Complete by another worker: %v, want 409 not_holder", err)
	}
	if err := c.Fail(ctx, other.WorkerID, queue.Key(x), x.Attempt, "x", true); !errors.Is(err, queue.ErrNotHolder) {
		t.Fatalf("Fail by another worker: %v, want not_holder", err)
	}
	if _, err := c.Heartbeat(ctx, other.WorkerID, queue.Key(x), x.Attempt); !errors.Is(err, queue.ErrNotHolder) {
		t.Fatalf("Heartbeat by another worker: %v, want not_holder", err)
	}
	if err := c.Complete(ctx, "00ff00ff00ff00ff00ff00ff", queue.Key(x), x.Attempt, queuetest.Result(x)); !errors.Is(err, queue.ErrUnknownWorker) {
		t.Fatalf("Complete by an unknown worker: %v, want unknown_worker", err)
	}
	after := f.q.Status()
	if !reflect.DeepEqual(before.Tasks, after.Tasks) {
		t.Fatalf("tasks changed: %v → %v", before.Tasks, after.Tasks)
	}
	if err := c.Complete(ctx, holder, queue.Key(x), x.Attempt, queuetest.Result(x)); err != nil {
		t.Fatalf("the holder's Complete: %v", err)
	}
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t, queue.Options{})
	worker, x := leased(t, f)
	key := queue.Key(x)
	hb := func(k string, attempt int) string {
		return testutil.JSON(t, map[string]any{"worker_id": worker, "key": k, "attempt": attempt})
	}
	tests := []struct {
		name, path, body string
		code             int
		field            string
	}{
		{"worker_id of the wrong type", controlapi.PathLease, `{"worker_id": 5}`, 400, "worker_id"},
		{"missing worker_id", controlapi.PathLease, `{"timeout_ms": 5}`, 400, "worker_id"},
		{"negative timeout", controlapi.PathLease, testutil.JSON(t, map[string]any{"worker_id": worker, "timeout_ms": -1}), 400, "timeout_ms"},
		{"key ../x", controlapi.PathHeartbeat, hb("../x", 1), 400, "key"},
		{"key with a run a/b", controlapi.PathHeartbeat, hb("a/b/1/rollout/r0", 1), 400, "key"},
		{"key with .. inside", controlapi.PathComplete, hb("run1/1/rollout/../r0", 1), 400, "key"},
		{"key with a backslash", controlapi.PathFail, hb(`run1/1/rollout/..\r0`, 1), 400, "key"},
		{"attempt 0", controlapi.PathHeartbeat, hb(key, 0), 400, "attempt"},
		{"attempt of the wrong type", controlapi.PathHeartbeat, `{"attempt":"1"}`, 400, "attempt"},
		{"unknown field", controlapi.PathHeartbeat, `{"worker":"x"}`, 400, "worker"},
		{"malformed JSON", controlapi.PathHeartbeat, `{"worker_id":`, 400, ""},
		{"empty body", controlapi.PathHeartbeat, ``, 400, ""},
		{"trailing data", controlapi.PathHeartbeat, hb(key, 1) + `{}`, 400, ""},
		{"body too large", controlapi.PathComplete, `{"error":"` + strings.Repeat("x", 9<<20) + `"}`, 413, ""},
		{"worker name ../x", controlapi.PathRegister, `{"name":"../x","roles":["rollout"]}`, 400, ""},
		{"unknown role", controlapi.PathRegister, `{"name":"w","roles":["trainer"]}`, 400, ""},
		{"output with path tricks", controlapi.PathComplete, testutil.JSON(t, map[string]any{"worker_id": worker, "key": key, "attempt": 1,
			"result": task.Result{Outputs: []storage.Object{{Key: "runs/run1/../../etc/passwd"}}}}), 400, ""},
		{"output of another run", controlapi.PathComplete, testutil.JSON(t, map[string]any{"worker_id": worker, "key": key, "attempt": 1,
			"result": task.Result{Outputs: []storage.Object{{Key: "runs/other/x"}}}}), 400, ""},
	}
	before := f.q.Status()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := f.do(t, "POST", tc.path, "Bearer "+f.token, tc.body)
			if code != tc.code {
				t.Fatalf("%d %s, want %d", code, body, tc.code)
			}
			var er struct{ Error, Code, Field string }
			if err := json.Unmarshal([]byte(body), &er); err != nil || er.Error == "" {
				t.Fatalf("error reply %q is not {error, code}", body)
			}
			if tc.field != "" && (er.Field != tc.field || !strings.Contains(er.Error, tc.field)) {
				t.Fatalf("reply %s does not name the field %q", body, tc.field)
			}
		})
	}
	after := f.q.Status()
	// A well-formed call by the holder with a bad output still shows the
	// worker alive.
	for i := range after.Workers {
		after.Workers[i].LastSeen = before.Workers[i].LastSeen
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("status changed by bad requests:\nbefore %+v\nafter  %+v", before, after)
	}
}

// addrListener reports a made-up address, to test the loopback check
// without binding anything but loopback.
type addrListener struct {
	net.Listener
	addr net.Addr
}

func (l addrListener) Addr() net.Addr { return l.addr }

func TestTokenRequiredUnlessInsecureLocal(t *testing.T) {
	q := queue.New(queue.Options{})
	if _, err := controlapi.NewServer(q, controlapi.ServerOptions{}); !errors.Is(err, controlapi.ErrNoToken) {
		t.Fatalf("NewServer without a token: %v, want ErrNoToken", err)
	}
	if _, err := controlapi.NewServer(q, controlapi.ServerOptions{Token: "t0k3n"}); err == nil || strings.Contains(err.Error(), "t0k3n") {
		t.Fatalf("NewServer with a short token: %v, want an error that does not show the token", err)
	}
	s, err := controlapi.NewServer(q, controlapi.ServerOptions{InsecureLocal: true})
	if err != nil {
		t.Fatal(err)
	}
	ln := testutil.Listen(t)
	pub := addrListener{ln, &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 8701}}
	if err := s.Serve(context.Background(), pub); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("insecure Serve on a public address: %v, want a refusal", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	c, err := controlapi.NewClient("http://"+ln.Addr().String(), controlapi.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(ctx, "w", []queue.Role{queue.RoleReward}, 1); err != nil {
		t.Fatalf("insecure-local register: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve after cancel: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, queue.Options{})
	leased(t, f)
	f.do(t, "GET", controlapi.PathStatus, "Bearer nope-nope-nope-nope", "")
	code, body := f.do(t, "GET", controlapi.PathMetrics, "Bearer "+f.token, "")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{
		`thinkgen_queue_tasks{state="leased"} 1`,
		`thinkgen_queue_tasks{state="queued"} 1`,
		`thinkgen_queue_workers 1`,
		`thinkgen_controlapi_requests_total{code="401",endpoint="/v1/status"} 1`,
		`thinkgen_controlapi_requests_total{code="200",endpoint="/v1/register"} 1`,
		`thinkgen_controlapi_lease_seconds_count{outcome="task"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}

// TestTrainingGauges sets the training gauges from two committed steps,
// one of each phase, and reads them back from /metrics: every gauge shows
// its step metric, each phase keeps its own, and a metric a step lacks
// keeps the value of the step that had it.
func TestTrainingGauges(t *testing.T) {
	f := newFixture(t, queue.Options{})
	mllm := map[string]float64{"reward/mean": 0.25, "loss/kl": 0.0125, "rollout/tokens_per_s": 812.5,
		"time/rollout_s": 3.5, "time/reward_s": 0.75, "time/learn_s": 2.25, "time/storage_s": 0.125, "time/step_s": 6.75}
	dit := map[string]float64{"reward/mean": 0.5, "loss/kl": 0.03, "rollout/images_per_s": 4.5,
		"time/rollout_s": 5, "time/reward_s": 1.5, "time/learn_s": 4, "time/storage_s": 0.25, "time/step_s": 10.75}
	f.api.ObserveStep(1, "mllm-grpo", mllm)
	f.api.ObserveStep(2, "dit-grpo", dit)
	code, body := f.do(t, "GET", controlapi.PathMetrics, "Bearer "+f.token, "")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	got := testutil.PromSamples(t, body)
	want := map[string]float64{
		`thinkgen_train_step`:                      2,
		`thinkgen_train_rollout_tokens_per_second`: 812.5,
		`thinkgen_train_rollout_images_per_second`: 4.5,
	}
	for _, step := range []struct {
		phase string
		m     map[string]float64
	}{{"mllm-grpo", mllm}, {"dit-grpo", dit}} {
		want[`thinkgen_train_reward_mean{phase="`+step.phase+`"}`] = step.m["reward/mean"]
		want[`thinkgen_train_kl{phase="`+step.phase+`"}`] = step.m["loss/kl"]
		for _, part := range []string{"rollout", "reward", "learn", "storage", "step"} {
			want[`thinkgen_train_step_time_seconds{part="`+part+`",phase="`+step.phase+`"}`] = step.m["time/"+part+"_s"]
		}
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}
