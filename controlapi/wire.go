package controlapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/thinkgen/thinkgen/queue"
	"github.com/thinkgen/thinkgen/task"
)

// The paths of the API.
const (
	PathRegister  = "/v1/register"
	PathLease     = "/v1/lease"
	PathHeartbeat = "/v1/heartbeat"
	PathComplete  = "/v1/complete"
	PathFail      = "/v1/fail"
	PathStatus    = "/v1/status"
	PathMetrics   = "/metrics"
)

type registerRequest struct {
	Name     string       `json:"name"`
	Roles    []queue.Role `json:"roles"`
	Capacity int          `json:"capacity"`
}

type registerResponse struct {
	WorkerID   string `json:"worker_id"`
	LeaseTTLMS int64  `json:"lease_ttl_ms"`
}

type leaseRequest struct {
	WorkerID  string `json:"worker_id"`
	TimeoutMS int64  `json:"timeout_ms"`
}

type leaseResponse struct {
	Key        string    `json:"key"`
	Task       task.Task `json:"task"`
	Deadline   time.Time `json:"deadline"`
	LeaseTTLMS int64     `json:"lease_ttl_ms"`
}

type heartbeatRequest struct {
	WorkerID string `json:"worker_id"`
	Key      string `json:"key"`
	Attempt  int    `json:"attempt"`
}

type heartbeatResponse struct {
	Deadline time.Time `json:"deadline"`
}

type completeRequest struct {
	WorkerID string      `json:"worker_id"`
	Key      string      `json:"key"`
	Attempt  int         `json:"attempt"`
	Result   task.Result `json:"result"`
}

type failRequest struct {
	WorkerID string `json:"worker_id"`
	Key      string `json:"key"`
	Attempt  int    `json:"attempt"`
	Error    string `json:"error"`
	Fatal    bool   `json:"fatal"`
}

type errorResponse struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	Field string `json:"field,omitempty"`
}

// ErrUnauthorized is the error of a request the controller refused for a
// missing or wrong bearer token.
var ErrUnauthorized = errors.New("thinkgen/controlapi: unauthorized (missing or wrong bearer token)")

// ErrBadRequest is the error of a request the controller refused as
// malformed (bad JSON, a bad field, a body too large).
var ErrBadRequest = errors.New("thinkgen/controlapi: bad request")

// codes maps the error codes of the wire to the errors they stand for, most
// specific first (ErrLeaseExpired wraps ErrStaleAttempt).
var codes = []struct {
	code   string
	status int
	err    error
}{
	{"unauthorized", http.StatusUnauthorized, ErrUnauthorized},
	{"invalid", http.StatusBadRequest, queue.ErrInvalid},
	{"bad_request", http.StatusBadRequest, ErrBadRequest},
	{"unknown_worker", http.StatusNotFound, queue.ErrUnknownWorker},
	{"unknown_task", http.StatusNotFound, queue.ErrUnknownTask},
	{"lease_expired", http.StatusConflict, queue.ErrLeaseExpired},
	{"stale_attempt", http.StatusConflict, queue.ErrStaleAttempt},
	{"not_holder", http.StatusConflict, queue.ErrNotHolder},
	{"canceled", http.StatusConflict, queue.ErrCanceled},
	{"at_capacity", http.StatusConflict, queue.ErrAtCapacity},
	{"duplicate", http.StatusConflict, queue.ErrDuplicate},
}

// classify returns the HTTP status and wire code of err.
func classify(err error) (int, string) {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.status, c.code
		}
	}
	return http.StatusInternalServerError, "internal"
}

// APIError is an error reply of the controller.
type APIError struct {
	// Op is the call ("lease", "complete", ...).
	Op         string
	StatusCode int
	Code       string
	Field      string
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("controller %s: %d %s: %s", e.Op, e.StatusCode, e.Code, e.Message)
}

// Unwrap returns the sentinel error the reply's code stands for
// (queue.ErrNotHolder, ErrUnauthorized, ...), or nil.
func (e *APIError) Unwrap() error {
	for _, c := range codes {
		if c.code == e.Code {
			return c.err
		}
	}
	if e.StatusCode == http.StatusUnauthorized {
		return ErrUnauthorized
	}
	return nil
}
