package queue

import (
	"errors"
	"fmt"

	"github.com/thinkgen/thinkgen/task"
)

// Errors the queue returns, wrapped with the worker, task and attempt
// concerned; test them with errors.Is.
var (
	// ErrUnknownWorker: the worker is not registered (never was, or was
	// dropped after missing its heartbeats). It should register again.
	ErrUnknownWorker = errors.New("thinkgen/queue: unknown worker (not registered, or dropped after missing heartbeats)")
	// ErrUnknownTask: no task has that key.
	ErrUnknownTask = errors.New("thinkgen/queue: unknown task")
	// ErrNotHolder: the worker does not hold the task's current lease.
	ErrNotHolder = errors.New("thinkgen/queue: worker does not hold the task's lease")
	// ErrStaleAttempt: the worker held an earlier attempt of the task, which
	// has ended; its outputs are ignored.
	ErrStaleAttempt = errors.New("thinkgen/queue: stale attempt")
	// ErrLeaseExpired: the lease passed its deadline (or its worker was
	// dropped); the task was put back with the next attempt. It wraps
	// ErrStaleAttempt.
	ErrLeaseExpired = fmt.Errorf("thinkgen/queue: lease expired: %w", ErrStaleAttempt)
	// ErrDuplicate: a task with that key is queued, leased or done.
	ErrDuplicate = errors.New("thinkgen/queue: task already submitted")
	// ErrAtCapacity: the worker already holds (or waits for) as many leases
	// as its capacity.
	ErrAtCapacity = errors.New("thinkgen/queue: worker at capacity")
	// ErrCanceled: the controller withdrew the task (see [Queue.Cancel]).
	ErrCanceled = errors.New("thinkgen/queue: task canceled by the controller")
	// ErrInvalid: a request field is malformed (a key with path tricks, an
	// unknown role, an output outside the task's run).
	ErrInvalid = errors.New("thinkgen/queue: invalid request")
)

// TaskError is the error of a task that failed permanently.
type TaskError struct {
	Key string
	// Attempt is the last attempt.
	Attempt int
	// Msg is the last failure as the worker (or the queue) reported it.
	Msg string
	// Fatal reports a failure a retry cannot fix; Unwrap then returns
	// task.ErrFatal.
	Fatal bool
	// Canceled reports a task withdrawn by Cancel; Unwrap then returns
	// ErrCanceled.
	Canceled bool
}

func (e *TaskError) Error() string {
	how := "failed"
	switch {
	case e.Fatal:
		how = "failed (fatal)"
	case e.Canceled:
		how = "canceled"
	}
	return fmt.Sprintf("task %s %s on attempt %d: %s", e.Key, how, e.Attempt, e.Msg)
}

// Unwrap returns task.ErrFatal for a fatal failure, ErrCanceled for a
// canceled task, and nil otherwise.
func (e *TaskError) Unwrap() error {
	switch {
	case e.Fatal:
		return task.ErrFatal
	case e.Canceled:
		return ErrCanceled
	}
	return nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
