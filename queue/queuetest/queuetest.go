// Package queuetest gives the tests of the queue, and of the services built
// on it, valid tasks and results, a clock the test moves by hand, and many
// tasks done at once through an Executor.
package queuetest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/queue"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/task"
)

// Task returns a valid task of kind k with id, of step 1 of run "run1".
func Task(k task.Kind, id string) task.Task {
	t := task.Task{Run: "run1", Step: 1, Kind: k, ID: id, Epoch: 1, Phase: config.AllPhases[0], Seed: 7}
	switch k {
	case task.Rollout:
		t.Rows = []int64{1, 2}
	default:
		t.Inputs = []storage.Object{{Key: "runs/run1/steps/000001/rollout/r0-a1.arrow", Size: 3}}
	}
	return t
}

// Result returns a valid result of t whose "attempt" metric is t's attempt.
func Result(t task.Task) task.Result {
	return task.Result{Outputs: []storage.Object{{Key: t.OutputKey(), Size: 10, SHA256: "ab"}},
		Metrics: map[string]float64{"attempt": float64(t.Attempt)}}
}

// Clock is a clock the test moves by hand.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock standing at 2025-01-02 03:04:05 UTC.
func NewClock() *Clock { return &Clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// DoMany does n tasks at once through ex, each in its own goroutine, and
// returns them with their results and errors (index i for each). Task i is
// of kind rollout, reward and learn in turn, has id "t<i>" and seed i.
func DoMany(ctx context.Context, ex *queue.Executor, n int) ([]task.Task, []task.Result, []error) {
	tasks := make([]task.Task, n)
	results := make([]task.Result, n)
	errs := make([]error, n)
	kinds := []task.Kind{task.Rollout, task.Reward, task.Learn}
	var wg sync.WaitGroup
	for i := range n {
		tasks[i] = Task(kinds[i%3], fmt.Sprintf("t%d", i))
		tasks[i].Seed = uint64(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = ex.Do(ctx, tasks[i])
		}()
	}
	wg.Wait()
	return tasks, results, errs
}
