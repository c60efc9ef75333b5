package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fastRetries keeps the retry tests quick.
var fastRetries = ClientOptions{RetryMax: 3, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond}

// newTestClient serves h on a loopback httptest server and returns a client
// of it and the number of requests the server got.
func newTestClient(t *testing.T, h http.HandlerFunc) (*Client, *atomic.Int32, string) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, fastRetries)
	if err != nil {
		t.Fatal(err)
	}
	return c, &n, srv.URL
}

func TestJobStatusTerminal(t *testing.T) {
	want := map[JobStatus]bool{StatusPending: false, StatusRunning: false, StatusStopped: true, StatusSucceeded: true, StatusFailed: true}
	if len(AllJobStatuses) != len(want) {
		t.Fatalf("AllJobStatuses has %d states, want %d", len(AllJobStatuses), len(want))
	}
	for _, s := range AllJobStatuses {
		term, ok := want[s]
		if !ok {
			t.Errorf("AllJobStatuses holds unknown %q", s)
		}
		if s.Terminal() != term {
			t.Errorf("%s.Terminal() = %v, want %v", s, s.Terminal(), term)
		}
	}
	if JobStatus("UNKNOWN").Terminal() {
		t.Error("an unknown status is terminal")
	}
}

func TestSubmitRequestBody(t *testing.T) {
	var got map[string]any
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/jobs/" {
			t.Errorf("request %s %s, want POST /api/jobs/", r.Method, r.URL.Path)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
		io.WriteString(w, `{"job_id": "j1", "submission_id": "j1"}`)
	})
	id, err := c.Submit(context.Background(), JobRequest{
		Entrypoint: "thinkgen worker", SubmissionID: "j1",
		RuntimeEnv:        &RuntimeEnv{EnvVars: map[string]string{"A": "1"}},
		Metadata:          map[string]string{"role": "rollout"},
		EntrypointNumCPUs: 2, EntrypointNumGPUs: 0.5, EntrypointMemory: 1 << 30,
		EntrypointResources: map[string]float64{"thinkgen_test": 1},
		SecretEnv:           []string{"A"},
	})
	if err != nil || id != "j1" {
		t.Fatalf("Submit = %q, %v", id, err)
	}
	// The field names of Ray's JobSubmitRequest
	// (ray/dashboard/modules/job/common.py, ray 2.60.0).
	want := `{"entrypoint":"thinkgen worker","entrypoint_memory":1073741824,"entrypoint_num_cpus":2,"entrypoint_num_gpus":0.5,` +
		`"entrypoint_resources":{"thinkgen_test":1},"metadata":{"role":"rollout"},"runtime_env":{"env_vars":{"A":"1"}},"submission_id":"j1"}`
	if b, _ := json.Marshal(got); string(b) != want {
		t.Errorf("request body\n%s\nwant\n%s", b, want)
	}
}

func TestSubmitLeavesOutZeroFields(t *testing.T) {
	var got map[string]any
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&got)
		io.WriteString(w, `{"job_id": "raysubmit_x", "submission_id": "raysubmit_x"}`)
	})
	id, err := c.Submit(context.Background(), JobRequest{Entrypoint: "true"})
	if err != nil || id != "raysubmit_x" {
		t.Fatalf("Submit = %q, %v", id, err)
	}
	if len(got) != 1 || got["entrypoint"] != "true" {
		t.Errorf("request body %v, want only the entrypoint", got)
	}
}

var errorTests = []struct {
	name     string
	status   int
	body     string
	call     func(*Client) error
	attempts int32 // requests the server gets
	sentinel error
	want     []string // substrings of the error
}{
	{
		name: "404 is not retried", status: 404, body: "Job j9 does not exist",
		call:     func(c *Client) error { _, err := c.Info(context.Background(), "j9"); return err },
		attempts: 1, sentinel: ErrNotFound,
		want: []string{"info job j9", "GET ", "/api/jobs/j9", "404 Not Found", "Job j9 does not exist"},
	},
	{
		name: "400 is not retried, the traceback's exception is kept", status: 400,
		body: "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n    raise TypeError(\n TypeError: bad\nTypeError: entrypoint must be a string\n",
		call: func(c *Client) error {
			_, err := c.Submit(context.Background(), JobRequest{Entrypoint: "x", SubmissionID: "j2"})
			return err
		},
		attempts: 1,
		want:     []string{"submit job j2", "POST ", "/api/jobs/", "400 Bad Request", ": TypeError: entrypoint must be a string"},
	},
	{
		name: "500 is retried until the limit", status: 500, body: "No available agent to submit job, please try again later.",
		call:     func(c *Client) error { _, err := c.Stop(context.Background(), "j3"); return err },
		attempts: 4,
		want:     []string{"stop job j3", "POST ", "/api/jobs/j3/stop", "(4 attempts)", "500 Internal Server Error", "No available agent"},
	},
	{
		name: "list names the endpoint", status: 503, body: "down",
		call:     func(c *Client) error { _, err := c.List(context.Background()); return err },
		attempts: 4,
		want:     []string{"list jobs: GET ", "/api/jobs/", "503 Service Unavailable: down"},
	},
	{
		name: "a taken submission id is not retried", status: 500,
		call: func(c *Client) error {
			_, err := c.Submit(context.Background(), JobRequest{Entrypoint: "x", SubmissionID: "fixture-failed"})
			return err
		},
		attempts: 1, sentinel: ErrJobExists,
		want: []string{"submit job fixture-failed", "ValueError: Job with submission_id fixture-failed already exists"},
	},
	{
		name: "bad JSON in a 200", status: 200, body: "<html>",
		call:     func(c *Client) error { _, err := c.Logs(context.Background(), "j4"); return err },
		attempts: 1,
		want:     []string{"logs job j4", "/api/jobs/j4/logs", "decode response"},
	},
	{
		name: "delete refused", status: 200, body: `{"deleted": false}`,
		call:     func(c *Client) error { return c.Delete(context.Background(), "j5") },
		attempts: 1,
		want:     []string{"delete job j5", "DELETE ", "did not delete"},
	},
}

func TestErrors(t *testing.T) {
	exists, err := os.ReadFile("testdata/submit_exists.txt") // a real Ray 2.60 answer
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range errorTests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if body == "" {
				body = string(exists)
			}
			c, n, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				io.WriteString(w, body)
			})
			err := tt.call(c)
			if err == nil {
				t.Fatal("no error")
			}
			if got := n.Load(); got != tt.attempts {
				t.Errorf("server got %d requests, want %d", got, tt.attempts)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v, want an *Error", err, err)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("error %v does not match %v", err, tt.sentinel)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestRetry500Then200(t *testing.T) {
	var n atomic.Int32
	c, calls, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			http.Error(w, "transient", http.StatusInternalServerError)
			return
		}
		f, _ := os.ReadFile("testdata/job_failed.json")
		w.Write(f)
	})
	j, err := c.Info(context.Background(), "fixture-failed")
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 {
		t.Errorf("server got %d requests, want 2", calls.Load())
	}
	if j.Status != StatusFailed || j.SubmissionID != "fixture-failed" || j.ErrorType != "JOB_ENTRYPOINT_COMMAND_ERROR" {
		t.Errorf("job %+v", j)
	}
	if j.DriverExitCode == nil || *j.DriverExitCode != 3 {
		t.Errorf("driver exit code %v, want 3", j.DriverExitCode)
	}
	if j.StartTime.UnixMilli() != 1795794105890 || j.EndTime.Sub(j.StartTime) != 3736*time.Millisecond {
		t.Errorf("times %v .. %v", j.StartTime, j.EndTime)
	}
	if j.Metadata["role"] != "rollout" || !strings.Contains(j.Message, "exit code 3") {
		t.Errorf("metadata %v, message %q", j.Metadata, j.Message)
	}
}

func TestRetryConnectionError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there now
	c, err := NewClient(addr, fastRetries)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Info(context.Background(), "j1")
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != 0 || e.Attempts != 4 {
		t.Fatalf("error %v, want an *Error with no status after 4 attempts", err)
	}
	if !strings.Contains(err.Error(), "info job j1: GET "+addr+"/api/jobs/j1") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("error %q does not name the job, the endpoint and the cause", err)
	}
}

func TestContextCancelStopsRetries(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c, n, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		cancel()
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	_, err := c.Info(ctx, "j1")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if n.Load() != 1 {
		t.Errorf("server got %d requests after the cancel, want 1", n.Load())
	}
}

func TestSecretsRedactedFromErrors(t *testing.T) {
	const secret = "s3cr3t-token-value"
	// A server that echoes the request, as a traceback of a validation
	// error may.
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		http.Error(w, "bad request: "+string(b), http.StatusBadRequest)
	})
	_, err := c.Submit(context.Background(), JobRequest{
		Entrypoint: "thinkgen worker", SubmissionID: "j1",
		RuntimeEnv: &RuntimeEnv{EnvVars: map[string]string{"THINKGEN_WORKER_TOKEN": secret, "PLAIN": "visible"}},
		SecretEnv:  []string{"THINKGEN_WORKER_TOKEN"},
	})
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error holds the secret: %q", err)
	}
	if !strings.Contains(err.Error(), "[redacted]") || !strings.Contains(err.Error(), "visible") {
		t.Errorf("error %q: want the secret redacted and the rest kept", err)
	}
}

func TestNewClientRejectsBadAddress(t *testing.T) {
	for _, a := range []string{"", "127.0.0.1:8265", "ftp://x", "http://"} {
		if _, err := NewClient(a, ClientOptions{}); err == nil || !strings.Contains(err.Error(), "Ray address") {
			t.Errorf("NewClient(%q) error %v", a, err)
		}
	}
}
