package queue

import (
	"context"
	"fmt"

	"github.com/thinkgen/thinkgen/task"
)

// Executor runs tasks through a Queue: Do submits the task and waits for
// it, so the controller (orchestrator.Executor) runs over the queue
// unchanged. Do may be called concurrently; the workers run the tasks.
type Executor struct {
	q *Queue
}

// NewExecutor returns an Executor over q.
func NewExecutor(q *Queue) *Executor { return &Executor{q: q} }

// Do submits t and returns its result once a worker completed it. A task
// that failed permanently returns a *TaskError, which wraps task.ErrFatal
// when the failure was fatal. If ctx ends first, the task is canceled (its
// worker's heartbeats are refused, so the worker stops) and Do returns
// ctx's error.
//
// The queue retries a task up to Options.MaxAttempts itself; a caller that
// retries Do after a non-fatal failure continues with the next attempt.
func (x *Executor) Do(ctx context.Context, t task.Task) (task.Result, error) {
	key, err := x.q.Submit(t)
	if err != nil {
		return task.Result{}, err
	}
	r, err := x.q.Wait(ctx, key)
	if err != nil && ctx.Err() != nil {
		if cerr := x.q.Cancel(key); cerr != nil {
			return task.Result{}, fmt.Errorf("%w (and %v)", err, cerr)
		}
	}
	return r, err
}
