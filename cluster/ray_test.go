package cluster

// Tests against a real Ray head on 127.0.0.1 (scripts/ray.sh), found
// through THINKGEN_RAY_ADDRESS; without it they are skipped (failed under
// CI=true).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/testenv"
)

// rayClient returns a client of the test Ray head and a prefix unique to
// this test, for submission ids. The test's jobs still running when it ends
// are stopped (not waited for: the head is thrown away after the tests).
// rayTest runs t in parallel with the other Ray tests and returns a
// context that ends after timeout, with rayClient's client and prefix.
func rayTest(t *testing.T, timeout time.Duration) (context.Context, *Client, string) {
	t.Helper()
	t.Parallel()
	c, prefix := rayClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx, c, prefix
}

func rayClient(t *testing.T) (*Client, string) {
	t.Helper()
	c, err := NewClient(testenv.RayAddress(t), ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("t%x-%s", time.Now().UnixNano(), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		jobs, err := c.List(ctx)
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		for _, j := range jobs {
			if strings.Contains(j.SubmissionID, prefix) && !j.Status.Terminal() {
				if _, err := c.Stop(ctx, j.SubmissionID); err != nil {
					t.Logf("cleanup: %v", err)
				}
			}
		}
	})
	return c, prefix
}

// waitStatus polls the job until ok(status) or ctx ends, and returns the
// job as last seen.
func waitStatus(ctx context.Context, t *testing.T, c *Client, id string, ok func(JobStatus) bool) *Job {
	t.Helper()
	for {
		j, err := c.Info(ctx, id)
		if err != nil {
			t.Errorf("info %s: %v", id, err)
			return nil
		}
		if ok(j.Status) {
			return j
		}
		select {
		case <-ctx.Done():
			t.Errorf("job %s still %s: %s", id, j.Status, j.Message)
			return j
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func is(s JobStatus) func(JobStatus) bool { return func(x JobStatus) bool { return x == s } }

func TestRayJobSucceeds(t *testing.T) {
	ctx, c, prefix := rayTest(t, 40*time.Second)
	greeting := "hello-" + prefix
	id, err := c.Submit(ctx, JobRequest{
		Entrypoint: `echo "greeting: $GREETING"`, SubmissionID: prefix + "-ok",
		RuntimeEnv: &RuntimeEnv{EnvVars: map[string]string{"GREETING": greeting}},
		Metadata:   map[string]string{"thinkgen_role": "test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if id != prefix+"-ok" {
		t.Errorf("submission id %q, want %q", id, prefix+"-ok")
	}
	j := waitStatus(ctx, t, c, id, JobStatus.Terminal)
	if j == nil || j.Status != StatusSucceeded {
		t.Fatalf("job ended %+v, want SUCCEEDED", j)
	}
	if j.Type != TypeSubmission || j.Metadata["thinkgen_role"] != "test" || j.DriverExitCode == nil || *j.DriverExitCode != 0 {
		t.Errorf("job %+v", j)
	}
	if j.StartTime.IsZero() || j.EndTime.Before(j.StartTime) {
		t.Errorf("times %v .. %v", j.StartTime, j.EndTime)
	}
	logs, err := c.Logs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "greeting: "+greeting) {
		t.Errorf("logs lack the job's output:\n%s", logs)
	}
	jobs, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range jobs {
		found = found || l.SubmissionID == id && l.Status == StatusSucceeded
	}
	if !found {
		t.Errorf("List lacks job %s SUCCEEDED", id)
	}
	if err := c.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Info(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("info after delete: %v, want ErrNotFound", err)
	}
}

func TestRayJobFails(t *testing.T) {
	ctx, c, prefix := rayTest(t, 40*time.Second)
	id, err := c.Submit(ctx, JobRequest{Entrypoint: `echo "worker broke" >&2; exit 1`, SubmissionID: prefix + "-fail"})
	if err != nil {
		t.Fatal(err)
	}
	j := waitStatus(ctx, t, c, id, JobStatus.Terminal)
	if j == nil || j.Status != StatusFailed {
		t.Fatalf("job ended %+v, want FAILED", j)
	}
	if !strings.Contains(j.Message, "exit code 1") || !strings.Contains(j.Message, "worker broke") {
		t.Errorf("message %q lacks the exit code and the output", j.Message)
	}
	if j.ErrorType != "JOB_ENTRYPOINT_COMMAND_ERROR" || j.DriverExitCode == nil || *j.DriverExitCode != 1 {
		t.Errorf("error type %q, exit code %v", j.ErrorType, j.DriverExitCode)
	}
}

func TestRayJobStops(t *testing.T) {
	ctx, c, prefix := rayTest(t, 40*time.Second)
	id, err := c.Submit(ctx, JobRequest{Entrypoint: "sleep 60", SubmissionID: prefix + "-long"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(ctx, t, c, id, is(StatusRunning))
	stopped, err := c.Stop(ctx, id)
	if err != nil || !stopped {
		t.Fatalf("Stop = %v, %v; want true", stopped, err)
	}
	j := waitStatus(ctx, t, c, id, JobStatus.Terminal)
	if j == nil || j.Status != StatusStopped {
		t.Fatalf("job ended %+v, want STOPPED", j)
	}
	// A second stop is harmless (Ray may still report true while the
	// job's supervisor lingers).
	if _, err := c.Stop(ctx, id); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestRayErrors(t *testing.T) {
	ctx, c, prefix := rayTest(t, 40*time.Second)
	_, err := c.Info(ctx, prefix+"-nope")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "Job "+prefix+"-nope does not exist") {
		t.Errorf("info of an unknown job: %v", err)
	}
	if _, err := c.Stop(ctx, prefix+"-nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("stop of an unknown job: %v", err)
	}
	const secret = "tok-0123456789abcdef"
	req := JobRequest{
		Entrypoint: "sleep 30", SubmissionID: prefix + "-dup",
		RuntimeEnv: &RuntimeEnv{EnvVars: map[string]string{"THINKGEN_WORKER_TOKEN": secret}},
		SecretEnv:  []string{"THINKGEN_WORKER_TOKEN"},
	}
	if _, err := c.Submit(ctx, req); err != nil {
		t.Fatal(err)
	}
	_, err = c.Submit(ctx, req)
	var e *Error
	if !errors.Is(err, ErrJobExists) || !errors.As(err, &e) || e.Attempts != 1 {
		t.Fatalf("second submit: %v, want ErrJobExists at the first attempt", err)
	}
	if !strings.Contains(err.Error(), "submit job "+prefix+"-dup") || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("error %q lacks the job or Ray's message", err)
	}
	// Ray refuses to delete a running job.
	err = c.Delete(ctx, prefix+"-dup")
	if err == nil {
		t.Error("deleting a running job succeeded")
	}
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Errorf("error holds the secret: %v", err)
	}
}

// supervisorResources reads, through Ray's state API, the resources the
// job's supervisor actor holds: Ray reserves the entrypoint resources
// there (Ray 2.60's job info does not echo them).
func supervisorResources(ctx context.Context, t *testing.T, c *Client, id string) map[string]float64 {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Address()+"/api/v0/actors?detail=true&limit=1000", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Result struct {
				Result []struct {
					Name              string             `json:"name"`
					RequiredResources map[string]float64 `json:"required_resources"`
				} `json:"result"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	for _, a := range out.Data.Result.Result {
		if a.Name == "_ray_internal_job_actor_"+id {
			return a.RequiredResources
		}
	}
	t.Fatalf("no supervisor actor of job %s", id)
	return nil
}

func TestRayEntrypointResources(t *testing.T) {
	ctx, c, prefix := rayTest(t, 40*time.Second)
	// The test head has 4 units of thinkgen_test: a job holding 3 leaves too
	// few for a second asking for 2, which waits until the first ends.
	first, err := c.Submit(ctx, JobRequest{Entrypoint: "sleep 60", SubmissionID: prefix + "-big",
		EntrypointNumCPUs: 0.5, EntrypointMemory: 50 << 20, EntrypointResources: map[string]float64{"thinkgen_test": 3}})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(ctx, t, c, first, is(StatusRunning))
	want := map[string]float64{"CPU": 0.5, "memory": 50 << 20, "thinkgen_test": 3}
	if got := supervisorResources(ctx, t, c, first); !equalResources(got, want) {
		t.Errorf("job %s holds %v, want %v", first, got, want)
	}
	second, err := c.Submit(ctx, JobRequest{Entrypoint: "true", SubmissionID: prefix + "-waits",
		EntrypointResources: map[string]float64{"thinkgen_test": 2}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	j, err := c.Info(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != StatusPending || !strings.Contains(j.Message, "waiting for resources") {
		t.Errorf("second job %s: %s, want PENDING waiting for resources", j.Status, j.Message)
	}
	if _, err := c.Stop(ctx, first); err != nil {
		t.Fatal(err)
	}
	if j := waitStatus(ctx, t, c, second, JobStatus.Terminal); j == nil || j.Status != StatusSucceeded {
		t.Errorf("second job after the first stopped: %+v, want SUCCEEDED", j)
	}
}

func equalResources(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// eventLog collects a placer's events.
type eventLog struct {
	mu     sync.Mutex
	events []Event
	buf    bytes.Buffer
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	fmt.Fprintln(&l.buf, e)
}

func (l *eventLog) has(kind EventKind, role string, index, gen int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.Kind == kind && e.Role == role && e.Index == index && e.Generation == gen {
			return true
		}
	}
	return false
}

func (l *eventLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitWorkers polls the placer until ok holds for its workers.
func waitWorkers(ctx context.Context, t *testing.T, p *Placer, what string, ok func([]Worker) bool) {
	t.Helper()
	for !ok(p.Workers()) {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: workers %+v", what, p.Workers())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func allRunning(ws []Worker) bool {
	for _, w := range ws {
		if w.Status != StatusRunning {
			return false
		}
	}
	return true
}

func TestRayPlacerResubmitsAStoppedWorker(t *testing.T) {
	ctx, c, prefix := rayTest(t, 50*time.Second)
	script, err := filepath.Abs("testdata/fakeworker.sh")
	if err != nil {
		t.Fatal(err)
	}
	const token = "worker-token-4f2a9c7e1b"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	cl := config.Default().Cluster
	cl.Workers = config.Workers{Rollout: 2, Reward: 1}
	cl.Rollout = config.Resources{CPUs: 0.25, Custom: map[string]float64{"thinkgen_test": 0.5}}
	cl.Reward = config.Resources{CPUs: 0.25, Memory: "32Mi"}
	var log eventLog
	run := prefix
	p, err := NewPlacer(c, Groups(cl), PlacerOptions{
		Run: run, Controller: "http://127.0.0.1:1/ctl?x=1&y=2", Command: "sh " + script,
		TokenFile: tokenFile, PollInterval: 250 * time.Millisecond, MaxResubmits: 2, OnEvent: log.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	followed := make(chan error, 1)
	go func() { followed <- p.Follow(ctx) }()
	waitWorkers(ctx, t, p, "3 running workers", func(ws []Worker) bool { return len(ws) == 3 && allRunning(ws) })

	victim := JobID(run, "rollout", 1, 1)
	if stopped, err := c.Stop(ctx, victim); err != nil || !stopped {
		t.Fatalf("stop %s from outside: %v, %v", victim, stopped, err)
	}
	waitWorkers(ctx, t, p, "rollout-1 resubmitted and running", func(ws []Worker) bool {
		return ws[1].Generation == 2 && allRunning(ws)
	})
	if !log.has(EventFailed, "rollout", 1, 1) || !log.has(EventResubmitted, "rollout", 1, 2) {
		t.Errorf("events lack rollout-1's failure and resubmission:\n%s", &log)
	}
	for i, w := range p.Workers() {
		if i != 1 && w.Generation != 1 {
			t.Errorf("worker %s-%d at generation %d, want 1", w.Role, w.Index, w.Generation)
		}
	}

	// The resubmitted worker got its arguments, its resources, and the
	// token by env var only.
	j2 := JobID(run, "rollout", 1, 2)
	info, err := c.Info(ctx, j2)
	if err != nil {
		t.Fatal(err)
	}
	wantEntry := "sh " + script + " worker --role rollout --controller 'http://127.0.0.1:1/ctl?x=1&y=2'"
	if info.Entrypoint != wantEntry {
		t.Errorf("entrypoint %q, want %q", info.Entrypoint, wantEntry)
	}
	if info.Metadata["thinkgen_generation"] != "2" || info.Metadata["thinkgen_run"] != run {
		t.Errorf("metadata %v", info.Metadata)
	}
	if b, _ := json.Marshal(info); strings.Contains(string(b), token) {
		t.Errorf("Ray's job info holds the token: %s", b)
	}
	if got, want := supervisorResources(ctx, t, c, j2), map[string]float64{"CPU": 0.25, "thinkgen_test": 0.5}; !equalResources(got, want) {
		t.Errorf("rollout job holds %v, want %v", got, want)
	}
	if got, want := supervisorResources(ctx, t, c, JobID(run, "reward", 0, 1)), map[string]float64{"CPU": 0.25, "memory": 32 << 20}; !equalResources(got, want) {
		t.Errorf("reward job holds %v, want %v", got, want)
	}
	var logs string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if logs, err = c.Logs(ctx, j2); err != nil || strings.Contains(logs, "fakeworker token") {
			break
		}
	}
	if !strings.Contains(logs, "fakeworker args: worker --role rollout --controller http://127.0.0.1:1/ctl?x=1&y=2") ||
		!strings.Contains(logs, fmt.Sprintf("fakeworker token: set (%d bytes)", len(token))) {
		t.Errorf("worker logs:\n%s", logs)
	}

	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-followed; err != nil {
		t.Errorf("Follow after Stop: %v", err)
	}
	for _, w := range p.Workers() {
		if w.Status != StatusStopped || !w.Done || w.GaveUp {
			t.Errorf("after Stop: %+v", w)
		}
	}
	if s := log.String(); strings.Contains(s, token) {
		t.Errorf("events hold the token:\n%s", s)
	}
	t.Logf("events:\n%s", &log)
}
