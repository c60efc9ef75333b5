package controlapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/thinkgen/thinkgen/internal/retryhttp"
	"github.com/thinkgen/thinkgen/queue"
	"github.com/thinkgen/thinkgen/task"
)

// ClientOptions configure a Client.
type ClientOptions struct {
	// Token is the bearer token sent with every request ("" with a
	// controller started with --insecure-local).
	Token string
	// RetryMax is how many times a call is retried after a connection
	// error or a 5xx reply; 0 means 4, negative means none.
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff between
	// retries; 0 means 100 ms and 5 s.
	RetryWaitMin, RetryWaitMax time.Duration
	// Timeout bounds each try of a call other than Lease (which waits as
	// long as asked, plus Timeout); 0 means 30 s.
	Timeout time.Duration
	// Transport carries the requests; nil means a pooled transport with
	// keep-alive.
	Transport http.RoundTripper
}

// Client calls the controller API. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	opts  ClientOptions
	http  *retryablehttp.Client // each try bounded by opts.Timeout
	poll  *retryablehttp.Client // for Lease: bounded by the call's context
}

// NewClient returns a client of the controller at baseURL
// ("http://127.0.0.1:8701").
func NewClient(baseURL string, o ClientOptions) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("controller URL %q: want http://host:port or https://host:port", baseURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("controller URL %s: must not carry credentials; pass the token with %s or %s", u.Redacted(), TokenEnv, TokenFileEnv)
	}
	if o.Token != "" {
		if err := checkToken(o.Token); err != nil {
			return nil, fmt.Errorf("controller client: %w", err)
		}
	}
	switch {
	case o.RetryMax == 0:
		o.RetryMax = 4
	case o.RetryMax < 0:
		o.RetryMax = 0
	}
	if o.RetryWaitMin <= 0 {
		o.RetryWaitMin = 100 * time.Millisecond
	}
	if o.RetryWaitMax <= 0 {
		o.RetryWaitMax = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Transport == nil {
		o.Transport = cleanhttp.DefaultPooledTransport()
	}
	newRC := func(timeout time.Duration) *retryablehttp.Client {
		return retryhttp.New(o.Transport, timeout, o.RetryMax, o.RetryWaitMin, o.RetryWaitMax)
	}
	return &Client{base: strings.TrimRight(u.String(), "/"), token: o.Token, opts: o,
		http: newRC(o.Timeout), poll: newRC(0)}, nil
}

// Registration is a worker's registration.
type Registration struct {
	WorkerID string
	// LeaseTTL is how long a lease lasts without a heartbeat.
	LeaseTTL time.Duration
}

// Register registers a worker named name serving roles, holding at most
// capacity leases at a time.
func (c *Client) Register(ctx context.Context, name string, roles []queue.Role, capacity int) (Registration, error) {
	var resp registerResponse
	if _, err := c.call(ctx, "register", c.http, http.MethodPost, PathRegister,
		registerRequest{Name: name, Roles: roles, Capacity: capacity}, &resp); err != nil {
		return Registration{}, err
	}
	return Registration{WorkerID: resp.WorkerID, LeaseTTL: time.Duration(resp.LeaseTTLMS) * time.Millisecond}, nil
}

// Lease waits up to wait for a task for the worker. It returns ok=false
// when none came in time.
func (c *Client) Lease(ctx context.Context, workerID string, wait time.Duration) (t task.Task, deadline time.Time, ok bool, err error) {
	var resp leaseResponse
	// A try waits up to wait for a task, plus Timeout for the round trip.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(c.opts.RetryMax+1)*(wait+c.opts.Timeout+c.opts.RetryWaitMax))
	defer cancel()
	status, err := c.call(ctx, "lease", c.poll, http.MethodPost, PathLease,
		leaseRequest{WorkerID: workerID, TimeoutMS: wait.Milliseconds()}, &resp)
	if err != nil || status == http.StatusNoContent {
		return task.Task{}, time.Time{}, false, err
	}
	if got := queue.Key(resp.Task); got != resp.Key {
		return task.Task{}, time.Time{}, false, fmt.Errorf("controller lease: task key %q does not match its task (%q)", resp.Key, got)
	}
	return resp.Task, resp.Deadline, true, nil
}

// Heartbeat extends the worker's lease of attempt of the task key and
// returns its new deadline.
func (c *Client) Heartbeat(ctx context.Context, workerID, key string, attempt int) (time.Time, error) {
	var resp heartbeatResponse
	_, err := c.call(ctx, "heartbeat", c.http, http.MethodPost, PathHeartbeat,
		heartbeatRequest{WorkerID: workerID, Key: key, Attempt: attempt}, &resp)
	return resp.Deadline, err
}

// Complete reports the result of the worker's attempt of the task key.
func (c *Client) Complete(ctx context.Context, workerID, key string, attempt int, r task.Result) error {
	_, err := c.call(ctx, "complete", c.http, http.MethodPost, PathComplete,
		completeRequest{WorkerID: workerID, Key: key, Attempt: attempt, Result: r}, nil)
	return err
}

// Fail reports that the worker's attempt of the task key failed with msg
// (fatal: a retry cannot fix it).
func (c *Client) Fail(ctx context.Context, workerID, key string, attempt int, msg string, fatal bool) error {
	_, err := c.call(ctx, "fail", c.http, http.MethodPost, PathFail,
		failRequest{WorkerID: workerID, Key: key, Attempt: attempt, Error: msg, Fatal: fatal}, nil)
	return err
}

// Status returns the queue's status.
func (c *Client) Status(ctx context.Context) (queue.Status, error) {
	var st queue.Status
	_, err := c.call(ctx, "status", c.http, http.MethodGet, PathStatus, nil, &st)
	return st, err
}

// call sends body (JSON; nil for none) to path through rc and decodes a 200
// reply into out. It returns the reply's status; an error reply becomes an
// *APIError.
func (c *Client) call(ctx context.Context, op string, rc *retryablehttp.Client, method, path string, body, out any) (int, error) {
	var rb []byte
	if body != nil {
		var err error
		if rb, err = json.Marshal(body); err != nil {
			return 0, fmt.Errorf("controller %s: encode request: %w", op, err)
		}
	}
	var reader any
	if rb != nil {
		reader = bytes.NewReader(rb)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base+path, reader)
	if err != nil {
		return 0, fmt.Errorf("controller %s: %w", op, err)
	}
	if rb != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := rc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("controller %s: %w", op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, fmt.Errorf("controller %s: read reply: %w", op, err)
	}
	switch {
	case resp.StatusCode == http.StatusNoContent:
		return resp.StatusCode, nil
	case resp.StatusCode != http.StatusOK:
		ae := &APIError{Op: op, StatusCode: resp.StatusCode}
		var er errorResponse
		if json.Unmarshal(b, &er) == nil && er.Code != "" {
			ae.Code, ae.Field, ae.Message = er.Code, er.Field, er.Error
		} else {
			ae.Message = http.StatusText(resp.StatusCode)
		}
		return resp.StatusCode, ae
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("controller %s: decode reply: %w", op, err)
		}
	}
	return resp.StatusCode, nil
}
