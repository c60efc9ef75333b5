package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/thinkgen/thinkgen/internal/tfevents"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/schedule"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/task"
)

// runStep runs step p's tasks and commits it.
func (c *Controller) runStep(ctx context.Context, p schedule.Step) (StepReport, error) {
	t0 := c.clock.Now()
	busy := c.busySnapshot()
	seed := schedule.Seed(c.o.Config.Run.Seed, p.Step)
	base := task.Task{Run: c.o.Run, Step: p.Step, Phase: p.Phase, Epoch: c.Epoch(), PolicyVersion: c.state.PolicyVersion, Seed: seed}

	// The rollout and reward tasks (run ahead with run.max_staleness > 0).
	sm, wait, err := c.samples(ctx, p)
	if err != nil {
		return StepReport{}, err
	}
	metrics := sm.metrics
	rolloutOut, rewardOut := sm.rollouts, sm.rewards
	metrics["time/wait_s"] = wait.Seconds()

	// The learn task reads every shard of the step.
	t2 := c.clock.Now()
	learn := base
	learn.Kind, learn.ID = task.Learn, "learn"
	for _, r := range append(append([]task.Result{}, rolloutOut...), rewardOut...) {
		learn.Inputs = append(learn.Inputs, r.Outputs...)
	}
	var learnOut []task.Result
	if c.o.LearnerRanks > 1 {
		learnOut, err = c.runGang(ctx, learn, metrics)
	} else {
		learnOut, err = c.runAll(ctx, []task.Task{learn}, metrics)
	}
	if err != nil {
		return StepReport{}, err
	}
	metrics["time/learn_s"] = c.since(t2).Seconds()
	if c.evaluates(p.Step) {
		t := c.clock.Now()
		scores, err := c.o.Eval(ctx, p.Step)
		if err != nil {
			return StepReport{}, fmt.Errorf("eval policy version %d: %w", p.Step, err)
		}
		evalMetrics(metrics, scores)
		metrics["time/eval_s"] = c.since(t).Seconds()
	}
	c.idleMetrics(t0, busy, metrics)
	outs := append(append(rolloutOut, rewardOut...), learnOut...)
	if err := c.commit(ctx, p, t0, outs, metrics); err != nil {
		return StepReport{}, err
	}
	return StepReport{Plan: p, Metrics: metrics, Elapsed: c.since(t0)}, nil
}

// commit verifies every output of step p (started at t0), renews the run
// lease, writes its metrics shard, then its manifest (the step's shards
// verified by the batch, the checkpoint's objects here), its TensorBoard
// event file and run.json.
func (c *Controller) commit(ctx context.Context, p schedule.Step, t0 time.Time, outs []task.Result, metrics map[string]float64) error {
	t3 := c.clock.Now()
	// Throughput from the tasks' summed counts and times.
	if s := metrics["time/generate_s"]; s > 0 {
		metrics["rollout/tokens_per_s"] = metrics["count/tokens"] / s
	}
	if s := metrics["time/draw_s"]; s > 0 {
		metrics["rollout/images_per_s"] = metrics["count/images"] / s
	}
	batch := storage.NewBatch(c.o.Store, storage.StepManifestKey(c.o.Run, p.Step), c.o.Run, "step", strconv.Itoa(p.Step))
	// The step's manifest lists its shards; the learn task's checkpoint
	// is committed under its own manifest (and verified here all the
	// same), so that dropping an old version leaves the steps whole.
	prefix := storage.StepPrefix(c.o.Run, p.Step)
	for _, r := range outs {
		for _, obj := range r.Outputs {
			var err error
			if strings.HasPrefix(obj.Key, prefix) {
				err = batch.AddVerified(ctx, obj)
			} else {
				err = storage.Verify(ctx, c.o.Store, obj)
			}
			if err != nil {
				return fmt.Errorf("verify %s: %w", obj.Key, err)
			}
		}
	}
	metrics["time/storage_s"] = c.since(t3).Seconds() // verification so far
	// A controller that lost the run stops before it commits anything.
	if err := c.renew(ctx); err != nil {
		return fmt.Errorf("before the commit: %w", err)
	}
	metrics["time/step_s"] = c.since(t0).Seconds()
	// Milliseconds, as the metrics shard keeps them: the event file of a
	// step whose commit a resume repairs has the same wall time.
	now := time.UnixMilli(c.clock.Now().UnixMilli())
	c.writes[p.Step]++
	key := runs.MetricsKey(c.o.Run, p.Step, c.Epoch(), c.writes[p.Step])
	if err := runs.PutMetrics(ctx, batch, key, c.o.Run, p.Step, p.Phase, now, metrics, shards.WriterOptions{Compression: c.o.Config.Storage.Compression}, c.o.TmpDir); err != nil {
		return err
	}
	events, at := metrics, now
	_, err := batch.Commit(ctx)
	if err == nil && c.o.AfterManifest != nil {
		if herr := c.o.AfterManifest(p.Step); herr != nil {
			return fmt.Errorf("after the manifest of step %d: %w", p.Step, herr)
		}
	}
	if errors.Is(err, storage.ErrCommitted) {
		// Another controller committed the step first: its metrics count.
		sm, err := runs.ReadStepMetrics(ctx, c.o.Store, c.o.Run, p.Step, c.o.TmpDir)
		if err != nil {
			return err
		}
		events, at = sm.Values, sm.At
	} else if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := runs.PutStepEvents(ctx, c.o.Store, c.state, p.Step, at, events, sampleTexts(outs)); err != nil {
		return err
	}
	if err := c.afterCommit(ctx, p, events); err != nil {
		return err
	}
	c.committed(p, at, events)
	return nil
}

// evaluates reports whether step's version is evaluated before the step
// commits: every run.eval_every steps, and the last step.
func (c *Controller) evaluates(step int) bool {
	every := c.o.Config.Run.EvalEvery
	return every > 0 && (step%every == 0 || step == len(c.plan))
}

// evalMetrics adds held-out scores to a step's metrics: eval/<mode>/<scenario>
// (the mean partial score) and eval_strict/<mode>/<scenario> (the strict
// accuracy) as the eval event file names them, eval/<mode>/mean over the
// scenarios, and eval/mean and eval_strict/mean, those of the best mode
// (runs.EvalMean), which the keep-best policy ranks versions by.
func evalMetrics(metrics map[string]float64, scores map[string][]reward.Summary) {
	for mode, sums := range scores {
		var mean float64
		for _, s := range sums {
			metrics["eval/"+mode+"/"+s.Scenario] = s.Score
			metrics["eval_strict/"+mode+"/"+s.Scenario] = s.Strict
			mean += s.Score / float64(len(sums))
		}
		if len(sums) > 0 {
			metrics["eval/"+mode+"/mean"] = mean
		}
	}
	if best, ok := runs.EvalMean(scores); ok {
		metrics["eval/mean"], metrics["eval_strict/mean"] = best.Score, best.Strict
	}
}

// afterCommit records a committed step (its metrics: those of its shard)
// in run.json, its evaluation as the run's best when it beats the best
// so far, and drops the previous checkpoint unless run.checkpoint_every
// keeps it, it ends a block of the schedule or it is the best evaluated
// version; a best that this step's version beats is dropped too, unless
// kept for another of those reasons or still sampled with.
func (c *Controller) afterCommit(ctx context.Context, p schedule.Step, metrics map[string]float64) error {
	rs := c.state
	rs.Committed = p.Step
	rs.PolicyVersion = p.Step
	rs.Phase = p.Phase
	if rs.Seeds == nil {
		rs.Seeds = map[string]uint64{}
	}
	rs.Seeds[strconv.Itoa(p.Step)] = schedule.Seed(c.o.Config.Run.Seed, p.Step)
	rs.Kept = append(rs.Kept, p.Step)
	var beaten []int
	if score, ok := metrics["eval/mean"]; ok {
		cand := runs.BestEval{Version: p.Step, Score: score, Strict: metrics["eval_strict/mean"]}
		if old := rs.BestEval; old == nil || cand.Beats(*old) {
			if old != nil && old.Version < p.Step-c.o.Config.Run.MaxStaleness-1 && c.dropsWhenDone(old.Version) {
				beaten = append(beaten, old.Version)
			}
			rs.BestEval = &cand
		}
	}
	drops := append(c.droppable(p.Step), beaten...)
	if len(drops) > 0 {
		rs.Kept = slices.DeleteFunc(rs.Kept, func(v int) bool { return slices.Contains(drops, v) })
	}
	sort.Ints(rs.Kept)
	if err := c.writeState(ctx); err != nil {
		return err
	}
	// After run.json no longer lists them; a kill in between leaves an
	// orphan that `thinkgen gc` removes.
	for _, v := range drops {
		if err := c.o.Checkpoints.Delete(ctx, c.o.Run, v); err != nil {
			return err
		}
	}
	return nil
}

// droppable lists the versions that the commit of step may delete: the
// one no later step samples with any more (step − 1 − run.max_staleness;
// with k = 0 the previous version), and after the last step every version
// still held for sampling; none that run.checkpoint_every keeps, that
// ends a block of the schedule or that is the run's best evaluated version
// (run.eval_every).
func (c *Controller) droppable(step int) []int {
	k := c.o.Config.Run.MaxStaleness
	first := step - 1 - k
	last := first
	if step == len(c.plan) {
		last = step - 1
	}
	var out []int
	for v := max(1, first); v <= last; v++ {
		if c.dropsWhenDone(v) && (c.state.BestEval == nil || c.state.BestEval.Version != v) {
			out = append(out, v)
		}
	}
	return out
}

// dropsWhenDone reports whether version v is deleted once no step samples
// with it: neither run.checkpoint_every nor the end of a block of the
// schedule keeps it (the best evaluated version is the caller's to check).
func (c *Controller) dropsWhenDone(v int) bool {
	every := c.o.Config.Run.CheckpointEvery
	return v > 0 && (every <= 0 || v%every != 0) && !c.plan[v-1].EndsPhase
}

// runAll runs tasks concurrently (an executor with one worker runs them
// one at a time), each up to o.Attempts times, and merges their metrics
// (counts and times summed, the rest averaged over tasks).
func (c *Controller) runAll(ctx context.Context, ts []task.Task, metrics map[string]float64) ([]task.Result, error) {
	out := make([]task.Result, len(ts))
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	var mu sync.Mutex // serialises progress lines
	for i := range ts {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			t := ts[i]
			var err error
			for a := 1; a <= c.o.Attempts; a++ {
				t.Attempt = a
				if err = t.Validate(); err != nil {
					break
				}
				c.busy.begin(t.Kind, c.clock.Now())
				out[i], err = c.o.Exec.Do(ctx, t)
				c.busy.end(t.Kind, c.clock.Now())
				if err == nil || ctx.Err() != nil || errors.Is(err, task.ErrFatal) || a == c.o.Attempts {
					break
				}
				mu.Lock()
				fmt.Fprintf(c.o.Progress, "%s failed (will retry): %v\n", t, err)
				mu.Unlock()
			}
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", t, err)
			}
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sums := map[string]float64{}
	for i := range out {
		for k, v := range out[i].Metrics {
			sums[k] += v
		}
	}
	for k, v := range sums {
		if strings.HasPrefix(k, "count/") || strings.HasPrefix(k, "time/") {
			metrics[k] = v
		} else {
			metrics[k] = v / float64(len(ts))
		}
	}
	return out, nil
}

// runGang runs learn as the c.o.LearnerRanks rank tasks of one
// data-parallel group, "learn.0" … "learn.<N-1>", all at once: they share
// a rendezvous address and a new epoch, and rank 0's result (the
// checkpoint) is the learn's. When a rank fails (its collective timed out
// because another died or hung, or its own error), the others are
// withdrawn and the whole gang is formed again with a new epoch (at the
// address Rendezvous gives then: the same store of the controller's, or
// a new one), up to c.o.GangAttempts times.
func (c *Controller) runGang(ctx context.Context, learn task.Task, metrics map[string]float64) ([]task.Result, error) {
	n := c.o.LearnerRanks
	var err error
	for a := 1; a <= c.o.GangAttempts; a++ {
		var addr string
		if addr, err = c.o.Rendezvous(); err != nil {
			return nil, fmt.Errorf("learner ranks' rendezvous: %w", err)
		}
		c.epoch++
		ranks := make([]task.Task, n)
		for r := range ranks {
			t := learn
			t.ID, t.Attempt = fmt.Sprintf("learn.%d", r), a
			t.Rendezvous = &task.Rendezvous{Addr: addr, Hosted: c.o.RendezvousHosted, World: n, Rank: r, Epoch: c.epoch, TimeoutMS: c.o.CollectiveTimeout.Milliseconds()}
			ranks[r] = t
		}
		var out []task.Result
		out, err = c.runRanks(ctx, ranks)
		if err == nil {
			for k, v := range out[0].Metrics {
				metrics[k] = v
			}
			return out[:1], nil
		}
		if ctx.Err() != nil || errors.Is(err, task.ErrFatal) {
			break
		}
		fmt.Fprintf(c.o.Progress, "%s learn: %d learner ranks at %s (epoch %d) failed (will form the group again): %v\n",
			c.o.Run, n, addr, c.epoch, err)
	}
	return nil, fmt.Errorf("%s step %d learn (%d learner ranks): %w", c.o.Run, learn.Step, n, err)
}

// runRanks runs the rank tasks at once; the first failure withdraws the
// others. It returns the results by rank, or the failures that were not
// withdrawals.
func (c *Controller) runRanks(ctx context.Context, ranks []task.Task) ([]task.Result, error) {
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([]task.Result, len(ranks))
	errs := make([]error, len(ranks))
	var wg sync.WaitGroup
	for r := range ranks {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			if err := ranks[r].Validate(); err != nil {
				errs[r] = err
			} else {
				out[r], errs[r] = c.o.Exec.Do(gctx, ranks[r])
			}
			if errs[r] != nil {
				cancel()
			}
		}(r)
	}
	wg.Wait()
	var failed []error
	for r, err := range errs {
		if err != nil && (ctx.Err() != nil || !errors.Is(err, context.Canceled)) {
			failed = append(failed, fmt.Errorf("%s: %w", ranks[r], err))
		}
	}
	if len(failed) == 0 && errors.Join(errs...) != nil {
		failed = append(failed, errors.Join(errs...))
	}
	return out, errors.Join(failed...)
}

// sampleTexts are the chains the step's rollout tasks reported, as
// TensorBoard text summaries samples/<k> (Markdown), in group order.
func sampleTexts(outs []task.Result) []tfevents.Text {
	var samples []task.Sample
	for _, r := range outs {
		samples = append(samples, r.Samples...)
	}
	sort.SliceStable(samples, func(i, j int) bool { return samples[i].GroupID < samples[j].GroupID })
	texts := make([]tfevents.Text, len(samples))
	for i, s := range samples {
		texts[i] = tfevents.Text{Tag: fmt.Sprintf("samples/%d", i), Value: fmt.Sprintf(
			"**group %d, chain %d** (%s)\n\n**prompt:** %s\n\n**think:** %s\n\n**instruction:** %s",
			s.GroupID, s.SampleIndex, s.Scenario, s.Prompt, s.CoT, s.Instruction)}
	}
	return texts
}
