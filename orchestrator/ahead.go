package orchestrator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/thinkgen/thinkgen/schedule"
	"github.com/thinkgen/thinkgen/task"
)

// Asynchronous SepGRPO (run.max_staleness = k > 0): the rollout and reward
// tasks of steps t+1 … t+k run while step t learns. Which policy version
// samples step s is fixed by the plan alone, never by timing:
//
//	version(s) = max(s − 1 − k, the version that ended the previous block)
//
// so a run is a deterministic function of its seed and k, and a resumed
// run samples exactly what an uninterrupted one did. Step s learns from
// version s − 1, so its rows are at most k versions old. The pipeline
// drains at every block boundary of the schedule: the first step of a
// block samples with the version that ended the previous block, so no
// rollout of one phase runs on the other phase's frozen model from an
// earlier version, and no rollout is in flight across a phase switch.

// sampling is the rollout and reward tasks of one step, run ahead of (or
// just before) its learn task.
type sampling struct {
	done   chan struct{}
	rolled chan struct{} // closed once its rollout tasks are over

	cancel   context.CancelFunc
	rollouts []task.Result
	rewards  []task.Result
	metrics  map[string]float64 // the tasks' merged metrics and their times
	err      error
}

// samplingVersion is the policy version that samples step s (1-based).
func (c *Controller) samplingVersion(s int) int {
	v := s - 1 - c.o.Config.Run.MaxStaleness
	for b := s - 1; b >= 1; b-- { // the last step of the previous block
		if c.plan[b-1].EndsPhase {
			return max(v, b)
		}
	}
	return max(v, 0)
}

// startSampling starts the sampling of step p and of every later step up
// to p + run.max_staleness whose sampling version is committed and that
// is not started yet.
func (c *Controller) startSampling(ctx context.Context, p schedule.Step) {
	if c.ahead == nil {
		c.ahead = map[int]*sampling{}
	}
	last := min(len(c.plan), p.Step+c.o.Config.Run.MaxStaleness)
	for s := p.Step; s <= last; s++ {
		if _, ok := c.ahead[s]; ok {
			continue
		}
		v := c.samplingVersion(s)
		if v > c.state.PolicyVersion {
			break
		}
		sctx, cancel := context.WithCancel(ctx)
		sm := &sampling{done: make(chan struct{}), rolled: make(chan struct{}), cancel: cancel, metrics: map[string]float64{}}
		// A step's rollouts wait for those of the step before: the
		// rollout workers serve the steps in order, the next to learn
		// first.
		var prev chan struct{}
		if p, ok := c.ahead[s-1]; ok {
			prev = p.rolled
		}
		c.ahead[s] = sm
		go func(q schedule.Step) {
			defer close(sm.done)
			if prev != nil {
				select {
				case <-prev:
				case <-sctx.Done():
					close(sm.rolled)
					sm.err = sctx.Err()
					return
				}
			}
			sm.rollouts, sm.rewards, sm.err = c.sample(sctx, q, v, sm.metrics, sm.rolled)
		}(c.plan[s-1])
	}
}

// samples returns step p's sampling once it is done (starting it, and the
// steps after it that may run ahead, when not yet started), and how long
// the controller waited for it.
func (c *Controller) samples(ctx context.Context, p schedule.Step) (*sampling, time.Duration, error) {
	c.startSampling(ctx, p)
	sm := c.ahead[p.Step]
	t := c.clock.Now()
	<-sm.done
	wait := c.since(t)
	delete(c.ahead, p.Step)
	sm.cancel()
	return sm, wait, sm.err
}

// stopSampling cancels every sampling still running ahead and waits for
// it: a run that stops or fails leaves no task of its own behind. A
// resumed run samples those steps again, with the same versions.
func (c *Controller) stopSampling() {
	for s, sm := range c.ahead {
		sm.cancel()
		<-sm.done
		delete(c.ahead, s)
	}
}

// sample runs step q's rollout tasks (its prompts, split evenly) with
// policy version v, closes rolled, then runs one reward task per rollout
// shard, merging their metrics and times into metrics.
func (c *Controller) sample(ctx context.Context, q schedule.Step, v int, metrics map[string]float64, rolled chan struct{}) (rollouts, rewards []task.Result, err error) {
	t0 := c.clock.Now()
	base := task.Task{Run: c.o.Run, Step: q.Step, Phase: q.Phase, Epoch: c.Epoch(), PolicyVersion: v, Seed: schedule.Seed(c.o.Config.Run.Seed, q.Step)}
	rows := q.Rows(c.o.Config.Data.TrainSize)
	n := max(1, min(c.o.RolloutTasks, len(rows)))
	var ts []task.Task
	for i := 0; i < n; i++ {
		t := base
		t.Kind, t.ID = task.Rollout, fmt.Sprintf("r%d", i)
		t.Rows = rows[i*len(rows)/n : (i+1)*len(rows)/n]
		ts = append(ts, t)
	}
	rollouts, err = c.runAll(ctx, ts, metrics)
	close(rolled)
	if err != nil {
		return nil, nil, err
	}
	metrics["time/rollout_s"] = c.since(t0).Seconds()

	t1 := c.clock.Now()
	ts = ts[:0]
	for i, out := range rollouts {
		t := base
		t.Kind, t.ID = task.Reward, fmt.Sprintf("s%d", i)
		t.Inputs = out.Outputs
		ts = append(ts, t)
	}
	if rewards, err = c.runAll(ctx, ts, metrics); err != nil {
		return nil, nil, err
	}
	metrics["time/reward_s"] = c.since(t1).Seconds()
	return rollouts, rewards, nil
}

// busyMeter measures, per task kind, the time during which at least one
// task of that kind runs: a role's busy time, whatever its parallelism.
type busyMeter struct {
	mu     sync.Mutex
	active map[task.Kind]int
	since  map[task.Kind]time.Time
	total  map[task.Kind]time.Duration
}

func (b *busyMeter) begin(k task.Kind, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.active == nil {
		b.active, b.since, b.total = map[task.Kind]int{}, map[task.Kind]time.Time{}, map[task.Kind]time.Duration{}
	}
	if b.active[k] == 0 {
		b.since[k] = now
	}
	b.active[k]++
}

func (b *busyMeter) end(k task.Kind, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.active[k]--
	if b.active[k] == 0 {
		b.total[k] += now.Sub(b.since[k])
	}
}

// busy is kind k's busy time up to now.
func (b *busyMeter) busy(k task.Kind, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.total[k]
	if b.active[k] > 0 {
		d += now.Sub(b.since[k])
	}
	return d
}

// roles are the task kinds whose idle share a step reports.
var roles = []task.Kind{task.Rollout, task.Reward, task.Learn}

// busySnapshot is every role's busy time up to now.
func (c *Controller) busySnapshot() map[task.Kind]time.Duration {
	now := c.clock.Now()
	out := map[task.Kind]time.Duration{}
	for _, k := range roles {
		out[k] = c.busy.busy(k, now)
	}
	return out
}

// idleMetrics records each role's idle share of the window since t0 (when
// the roles' busy times were before): idle/<role> = 1 − busy/window.
func (c *Controller) idleMetrics(t0 time.Time, before map[task.Kind]time.Duration, metrics map[string]float64) {
	window := c.since(t0)
	if window <= 0 {
		return
	}
	now := c.busySnapshot()
	for _, k := range roles {
		metrics["idle/"+string(k)] = 1 - float64(now[k]-before[k])/float64(window)
	}
}
