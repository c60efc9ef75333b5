package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Sentinel errors, matched with errors.Is on an *Error.
var (
	// ErrNotFound: Ray knows no job with that id (HTTP 404).
	ErrNotFound = errors.New("thinkgen/cluster: job not found")
	// ErrJobExists: a job with that submission id was already submitted.
	ErrJobExists = errors.New("thinkgen/cluster: job already exists")
)

// Error is a failed call of the Job Submission API: the operation, the job
// and the endpoint, and what Ray said.
type Error struct {
	Op     string // "submit", "info", "list", "stop", "logs" or "delete"
	Job    string // the submission id; empty for list
	Method string
	URL    string
	// StatusCode is Ray's HTTP status; 0 when no response came.
	StatusCode int
	// Message is Ray's error message from the response body (for a Python
	// traceback, its last line), with secret values redacted.
	Message string
	// Attempts is how many times the request was sent.
	Attempts int
	// Err is the transport error (nil when Ray answered) or a sentinel
	// (ErrNotFound, ErrJobExists).
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("cluster: ")
	b.WriteString(e.Op)
	if e.Job != "" {
		b.WriteString(" job ")
		b.WriteString(e.Job)
	} else {
		b.WriteString(" jobs")
	}
	fmt.Fprintf(&b, ": %s %s", e.Method, e.URL)
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (%d attempts)", e.Attempts)
	}
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil && e.Err != ErrNotFound && e.Err != ErrJobExists {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ClientOptions tune a Client; the zero value is ready to use.
type ClientOptions struct {
	// HTTPClient sends the requests; nil means a pooled client with a
	// 30 s timeout per attempt.
	HTTPClient *http.Client
	// RetryMax is how many times a request is retried after a connection
	// error or a 5xx answer (never after a 4xx); 0 means 4, negative means
	// no retries.
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff between
	// attempts; zero means 200 ms and 5 s.
	RetryWaitMin, RetryWaitMax time.Duration
}

// Client talks to the Job Submission API of a Ray cluster's dashboard. Every
// request goes through go-retryablehttp. A Client is safe for concurrent
// use.
type Client struct {
	base *url.URL
	http *retryablehttp.Client
}

// NewClient returns a client of the Ray dashboard at address, e.g.
// "http://127.0.0.1:8265".
func NewClient(address string, opts ClientOptions) (*Client, error) {
	u, err := url.Parse(address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("cluster: Ray address %q: want http(s)://host:port of the Ray dashboard", address)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	rc := retryablehttp.NewClient()
	rc.Logger = nil
	if opts.HTTPClient != nil {
		rc.HTTPClient = opts.HTTPClient
	} else {
		rc.HTTPClient.Timeout = 30 * time.Second
	}
	switch {
	case opts.RetryMax < 0:
		rc.RetryMax = 0
	case opts.RetryMax > 0:
		rc.RetryMax = opts.RetryMax
	}
	rc.RetryWaitMin, rc.RetryWaitMax = 200*time.Millisecond, 5*time.Second
	if opts.RetryWaitMin > 0 {
		rc.RetryWaitMin = opts.RetryWaitMin
	}
	if opts.RetryWaitMax > 0 {
		rc.RetryWaitMax = opts.RetryWaitMax
	}
	rc.CheckRetry = checkRetry
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	rc.RequestLogHook = countAttempt
	return &Client{base: u, http: rc}, nil
}

// Address returns the dashboard's URL the client talks to.
func (c *Client) Address() string { return c.base.String() }

// Submit submits a job and returns its submission id (the request's, or
// the one Ray chose). A job with the request's submission id already there
// is an *Error wrapping ErrJobExists.
func (c *Client) Submit(ctx context.Context, req JobRequest) (string, error) {
	if req.Entrypoint == "" {
		return "", fmt.Errorf("cluster: submit job %s: empty entrypoint", req.SubmissionID)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("cluster: submit job %s: encode request: %w", req.SubmissionID, err)
	}
	var out struct {
		SubmissionID string `json:"submission_id"`
		JobID        string `json:"job_id"`
	}
	if err := c.do(ctx, call{op: "submit", job: req.SubmissionID, method: http.MethodPost, path: "/api/jobs/", body: body, secrets: req.secrets()}, &out); err != nil {
		return "", err
	}
	if out.SubmissionID == "" {
		out.SubmissionID = out.JobID
	}
	return out.SubmissionID, nil
}

// Info returns what Ray knows about the job with the submission id.
func (c *Client) Info(ctx context.Context, id string) (*Job, error) {
	var j Job
	if err := c.do(ctx, call{op: "info", job: id, method: http.MethodGet, path: "/api/jobs/" + url.PathEscape(id)}, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// List returns every job of the cluster, submitted ones and driver jobs.
func (c *Client) List(ctx context.Context) ([]Job, error) {
	var jobs []Job
	if err := c.do(ctx, call{op: "list", method: http.MethodGet, path: "/api/jobs/"}, &jobs); err != nil {
		return nil, err
	}
	return jobs, nil
}

// Stop asks Ray to stop the job; it reports whether Ray sent the stop to
// the job's live supervisor (false for a job long ended; a job that has
// just ended may still report true). A running job reaches STOPPED shortly
// after, not when Stop returns.
func (c *Client) Stop(ctx context.Context, id string) (bool, error) {
	var out struct {
		Stopped bool `json:"stopped"`
	}
	if err := c.do(ctx, call{op: "stop", job: id, method: http.MethodPost, path: "/api/jobs/" + url.PathEscape(id) + "/stop"}, &out); err != nil {
		return false, err
	}
	return out.Stopped, nil
}

// Logs returns the job's output so far (its entrypoint's stdout and stderr).
func (c *Client) Logs(ctx context.Context, id string) (string, error) {
	var out struct {
		Logs string `json:"logs"`
	}
	if err := c.do(ctx, call{op: "logs", job: id, method: http.MethodGet, path: "/api/jobs/" + url.PathEscape(id) + "/logs"}, &out); err != nil {
		return "", err
	}
	return out.Logs, nil
}

// Delete removes an ended job and its information from the cluster; Ray
// refuses to delete a job that is not in a terminal state.
func (c *Client) Delete(ctx context.Context, id string) error {
	var out struct {
		Deleted bool `json:"deleted"`
	}
	if err := c.do(ctx, call{op: "delete", job: id, method: http.MethodDelete, path: "/api/jobs/" + url.PathEscape(id)}, &out); err != nil {
		return err
	}
	if !out.Deleted {
		return &Error{Op: "delete", Job: id, Method: http.MethodDelete, URL: c.base.String() + "/api/jobs/" + url.PathEscape(id), StatusCode: http.StatusOK, Message: "Ray did not delete the job"}
	}
	return nil
}

// call is one request of the API.
type call struct {
	op, job, method, path string
	body                  []byte
	secrets               []string
}

// maxMessage caps the part of an error body kept in an Error.
const maxMessage = 2000

func (c *Client) do(ctx context.Context, cl call, out any) error {
	u := c.base.String() + cl.path
	fail := func(status int, msg string, attempts int, err error) error {
		return &Error{Op: cl.op, Job: cl.job, Method: cl.method, URL: u, StatusCode: status,
			Message: redact(msg, cl.secrets), Attempts: attempts, Err: redactErr(err, cl.secrets)}
	}
	attempts := new(int)
	var body any
	if cl.body != nil {
		body = cl.body
	}
	req, err := retryablehttp.NewRequestWithContext(context.WithValue(ctx, attemptsKey{}, attempts), cl.method, u, body)
	if err != nil {
		return fail(0, "", 0, err)
	}
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return fail(0, "", *attempts, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fail(resp.StatusCode, "", *attempts, fmt.Errorf("read response: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		var sentinel error
		msg := rayMessage(data)
		switch {
		case resp.StatusCode == http.StatusNotFound:
			sentinel = ErrNotFound
		case isExists(cl, data):
			sentinel = ErrJobExists
		}
		return fail(resp.StatusCode, msg, *attempts, sentinel)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fail(resp.StatusCode, "", *attempts, fmt.Errorf("decode response %.200q: %w", data, err))
	}
	return nil
}

// exceptionRE matches the line of a Python traceback that names the
// exception, e.g. "ValueError: Job with submission_id x already exists.".
var exceptionRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*: \S`)

// rayMessage extracts Ray's error message from an error body: plain text
// ("Job x does not exist"), or a Python traceback, of which it keeps the
// last exception line (Ray chains tracebacks: the last one is the cause).
func rayMessage(body []byte) string {
	s := strings.TrimSpace(string(body))
	if strings.HasPrefix(s, "Traceback") {
		lines := strings.Split(s, "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			if exceptionRE.MatchString(lines[i]) {
				s = strings.TrimSpace(lines[i])
				break
			}
		}
	}
	if len(s) > maxMessage {
		s = s[:maxMessage] + "…"
	}
	return s
}

// isExists reports whether a failed submission was refused because its
// submission id is taken. Ray 2.60 answers that with a 500 and a
// traceback ending in "ValueError: Job with submission_id … already
// exists".
func isExists(cl call, body []byte) bool {
	return cl.op == "submit" && bytes.Contains(body, []byte("already exists"))
}

// redact replaces each secret in s with "[redacted]".
func redact(s string, secrets []string) string {
	for _, v := range secrets {
		s = strings.ReplaceAll(s, v, "[redacted]")
	}
	return s
}

// redactErr returns err, or an error with err's text redacted if it holds a
// secret (the wrapped chain is then dropped, so no secret can be reached).
func redactErr(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	s := err.Error()
	if r := redact(s, secrets); r != s {
		return errors.New(r)
	}
	return err
}

// checkRetry retries connection errors and 5xx answers (except 501, and
// except a submission refused because its id exists), never 4xx, and stops
// when the context is done.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	if resp.StatusCode < 500 || resp.StatusCode == http.StatusNotImplemented {
		return false, nil
	}
	if resp.Request != nil && resp.Request.Method == http.MethodPost && strings.HasSuffix(resp.Request.URL.Path, "/api/jobs/") {
		// Peek at the body, and put it back for the caller.
		data, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(data))
		if rerr == nil && bytes.Contains(data, []byte("already exists")) {
			return false, nil
		}
	}
	return true, nil
}

type attemptsKey struct{}

// countAttempt counts the attempts of a request in the counter its
// context carries.
func countAttempt(_ retryablehttp.Logger, req *http.Request, _ int) {
	if n, ok := req.Context().Value(attemptsKey{}).(*int); ok {
		*n++
	}
}
