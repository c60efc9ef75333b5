package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/schedule"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/task"
)

// Executor runs tasks: a worker in this process (embedded mode) or the
// workers behind a task queue.
type Executor interface {
	Do(ctx context.Context, t task.Task) (task.Result, error)
}

// CheckpointStore is what the controller needs of the checkpoint layer:
// importing the base as version 0 and deleting versions it does not keep.
type CheckpointStore interface {
	ImportBase(ctx context.Context, run string) (*storage.Manifest, error)
	Delete(ctx context.Context, run string, version int) error
}

// Options configure a run.
type Options struct {
	Config *config.Config
	Store  storage.Store
	// Run names the run (one key segment).
	Run         string
	Exec        Executor
	Checkpoints CheckpointStore
	// Resume continues an existing run from its last committed step; a run
	// that exists is refused without it.
	Resume bool
	// RolloutTasks splits each step's prompts into this many rollout tasks
	// (0: 1); the result does not depend on it.
	RolloutTasks int
	// Attempts is how many times a failing task is tried (0: 3).
	Attempts int
	// StopAfter, when > 0, stops the run (as a kill would) once that many
	// steps have been committed in this invocation.
	StopAfter int
	// Progress receives one line per step; Log one line per event.
	Progress io.Writer
	// TmpDir holds spooled shards ("" means os.TempDir()).
	TmpDir string
}

// StepReport is one committed step.
type StepReport struct {
	Plan    schedule.Step
	Metrics map[string]float64
	Elapsed time.Duration
}

// writeRunState records rs as of now in run.json.
func writeRunState(ctx context.Context, st storage.Store, rs *runs.State) error {
	rs.Updated = time.Now().UTC()
	return runs.WriteState(ctx, st, rs)
}

// Train runs (or resumes) the SepGRPO schedule: for each step, the rollout
// tasks, one reward task per rollout shard, the learn task, then the step's
// commit. It returns the steps it committed.
func Train(ctx context.Context, o Options) ([]StepReport, error) {
	if err := storage.ValidateRun(o.Run); err != nil {
		return nil, err
	}
	if o.Exec == nil || o.Checkpoints == nil || o.Store == nil {
		return nil, errors.New("orchestrator: Train needs an executor, a checkpoint store and a store")
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	rs, err := runs.ReadState(ctx, o.Store, o.Run)
	switch {
	case err == nil && !o.Resume:
		return nil, fmt.Errorf("run %s exists in %s (step %d of %d committed): pass --resume to continue it, or name another run", o.Run, o.Store, rs.Committed, rs.Steps)
	case err == nil:
		cfg, perr := rs.ParseConfig()
		if perr != nil {
			return nil, fmt.Errorf("resume run %s: %w", o.Run, perr)
		}
		o.Config = cfg
	case errors.Is(err, storage.ErrNotExist):
		if o.Resume {
			return nil, fmt.Errorf("resume run %s: no run.json in %s", o.Run, o.Store)
		}
		if o.Config == nil {
			return nil, errors.New("orchestrator: Train needs a configuration")
		}
		rs = nil
	default:
		return nil, err
	}
	plan, err := schedule.Plan(o.Config)
	if err != nil {
		return nil, err
	}
	if rs == nil {
		if _, err := o.Checkpoints.ImportBase(ctx, o.Run); err != nil {
			return nil, fmt.Errorf("run %s: base checkpoint: %w", o.Run, err)
		}
		yml, err := o.Config.YAML()
		if err != nil {
			return nil, err
		}
		now := time.Now().UTC()
		rs = &runs.State{Version: runs.StateVersion, Run: o.Run, Config: string(yml), Seed: o.Config.Run.Seed,
			Steps: len(plan), Kept: []int{0}, Started: now, Seeds: map[string]uint64{}}
		if err := writeRunState(ctx, o.Store, rs); err != nil {
			return nil, err
		}
	}
	// A step whose manifest committed after run.json was last written (a
	// kill between the two) is committed: the manifest is the truth.
	for rs.Committed < len(plan) {
		step := rs.Committed + 1
		if _, err := storage.ReadManifest(ctx, o.Store, storage.StepManifestKey(o.Run, step)); err != nil {
			break
		}
		sm, err := runs.ReadStepMetrics(ctx, o.Store, o.Run, step, o.TmpDir)
		if err != nil {
			return nil, fmt.Errorf("repair step %d: %w", step, err)
		}
		if err := runs.PutStepEvents(ctx, o.Store, rs, step, sm.At, sm.Values); err != nil {
			return nil, err
		}
		if err := o.afterCommit(ctx, rs, plan[rs.Committed]); err != nil {
			return nil, err
		}
	}

	var reports []StepReport
	start := time.Now()
	first := rs.Committed
	for rs.Committed < len(plan) {
		if err := ctx.Err(); err != nil {
			return reports, err
		}
		if o.StopAfter > 0 && len(reports) >= o.StopAfter {
			return reports, nil
		}
		p := plan[rs.Committed]
		rep, err := o.runStep(ctx, rs, p)
		if err != nil {
			return reports, fmt.Errorf("step %d (%s): %w", p.Step, p.Phase, err)
		}
		reports = append(reports, rep)
		done := rs.Committed - first
		eta := time.Duration(float64(time.Since(start)) / float64(done) * float64(len(plan)-rs.Committed))
		fmt.Fprintf(o.Progress, "%s | ETA %s\n", StepLine(rep, len(plan)), eta.Round(time.Second))
	}
	return reports, nil
}

func (o *Options) runStep(ctx context.Context, rs *runs.State, p schedule.Step) (StepReport, error) {
	t0 := time.Now()
	seed := schedule.Seed(o.Config.Run.Seed, p.Step)
	metrics := map[string]float64{}
	base := task.Task{Run: o.Run, Step: p.Step, Phase: p.Phase, PolicyVersion: rs.PolicyVersion, Seed: seed}

	// Rollout tasks: the step's prompts, split evenly.
	rows := p.Rows(o.Config.Data.TrainSize)
	n := max(1, min(o.RolloutTasks, len(rows)))
	var rollouts []task.Task
	for i := 0; i < n; i++ {
		t := base
		t.Kind, t.ID = task.Rollout, fmt.Sprintf("r%d", i)
		t.Rows = rows[i*len(rows)/n : (i+1)*len(rows)/n]
		rollouts = append(rollouts, t)
	}
	rolloutOut, err := o.runAll(ctx, rollouts, metrics, "rollout")
	if err != nil {
		return StepReport{}, err
	}
	tRollout := time.Since(t0)

	// Reward tasks: one per rollout shard.
	t1 := time.Now()
	var rewards []task.Task
	for i, out := range rolloutOut {
		t := base
		t.Kind, t.ID = task.Reward, fmt.Sprintf("s%d", i)
		t.Inputs = out.Outputs
		rewards = append(rewards, t)
	}
	rewardOut, err := o.runAll(ctx, rewards, metrics, "reward")
	if err != nil {
		return StepReport{}, err
	}
	tReward := time.Since(t1)

	// The learn task reads every shard of the step.
	t2 := time.Now()
	learn := base
	learn.Kind, learn.ID = task.Learn, "learn"
	for _, r := range append(append([]task.Result{}, rolloutOut...), rewardOut...) {
		learn.Inputs = append(learn.Inputs, r.Outputs...)
	}
	learnOut, err := o.runAll(ctx, []task.Task{learn}, metrics, "learn")
	if err != nil {
		return StepReport{}, err
	}
	tLearn := time.Since(t2)

	// Commit: verify every output, write the metrics shard, then the
	// step's manifest, then run.json.
	t3 := time.Now()
	// Throughput from the tasks' summed counts and times.
	if s := metrics["time/generate_s"]; s > 0 {
		metrics["rollout/tokens_per_s"] = metrics["count/tokens"] / s
	}
	if s := metrics["time/draw_s"]; s > 0 {
		metrics["rollout/images_per_s"] = metrics["count/images"] / s
	}
	metrics["time/rollout_s"] = tRollout.Seconds()
	metrics["time/reward_s"] = tReward.Seconds()
	metrics["time/learn_s"] = tLearn.Seconds()
	batch := storage.NewBatch(o.Store, storage.StepManifestKey(o.Run, p.Step), o.Run, "step", strconv.Itoa(p.Step))
	// The step's manifest lists its shards; the learn task's checkpoint
	// is committed under its own manifest (and verified here all the
	// same), so that dropping an old version leaves the steps whole.
	prefix := storage.StepPrefix(o.Run, p.Step)
	for _, r := range append(append(rolloutOut, rewardOut...), learnOut...) {
		for _, obj := range r.Outputs {
			if err := storage.Verify(ctx, o.Store, obj); err != nil {
				return StepReport{}, fmt.Errorf("verify %s: %w", obj.Key, err)
			}
			if strings.HasPrefix(obj.Key, prefix) {
				batch.Add(obj)
			}
		}
	}
	metrics["time/storage_s"] = time.Since(t3).Seconds() // verification so far
	metrics["time/step_s"] = time.Since(t0).Seconds()
	// Milliseconds, as the metrics shard keeps them: the event file of a
	// step whose commit a resume repairs has the same wall time.
	now := time.UnixMilli(time.Now().UnixMilli())
	if err := runs.PutMetrics(ctx, batch, o.Run, p.Step, p.Phase, now, metrics, shards.WriterOptions{Compression: o.Config.Storage.Compression}, o.TmpDir); err != nil {
		return StepReport{}, err
	}
	events, at := metrics, now
	if _, err := batch.Commit(ctx); errors.Is(err, storage.ErrCommitted) {
		// Another controller committed the step first: its metrics count.
		sm, err := runs.ReadStepMetrics(ctx, o.Store, o.Run, p.Step, o.TmpDir)
		if err != nil {
			return StepReport{}, err
		}
		events, at = sm.Values, sm.At
	} else if err != nil {
		return StepReport{}, fmt.Errorf("commit: %w", err)
	}
	if err := runs.PutStepEvents(ctx, o.Store, rs, p.Step, at, events); err != nil {
		return StepReport{}, err
	}
	if err := o.afterCommit(ctx, rs, p); err != nil {
		return StepReport{}, err
	}
	return StepReport{Plan: p, Metrics: metrics, Elapsed: time.Since(t0)}, nil
}

// afterCommit records a committed step in run.json and drops the previous
// checkpoint unless run.checkpoint_every keeps it.
func (o *Options) afterCommit(ctx context.Context, rs *runs.State, p schedule.Step) error {
	rs.Committed = p.Step
	rs.PolicyVersion = p.Step
	rs.Phase = p.Phase
	if rs.Seeds == nil {
		rs.Seeds = map[string]uint64{}
	}
	rs.Seeds[strconv.Itoa(p.Step)] = schedule.Seed(o.Config.Run.Seed, p.Step)
	rs.Kept = append(rs.Kept, p.Step)
	every := o.Config.Run.CheckpointEvery
	prev := p.Step - 1
	plan, err := schedule.Plan(o.Config)
	if err != nil {
		return err
	}
	drop := prev > 0 && (every <= 0 || prev%every != 0) && !plan[prev-1].EndsPhase
	if drop {
		var kept []int
		for _, v := range rs.Kept {
			if v != prev {
				kept = append(kept, v)
			}
		}
		rs.Kept = kept
	}
	sort.Ints(rs.Kept)
	if err := writeRunState(ctx, o.Store, rs); err != nil {
		return err
	}
	if drop {
		// After run.json no longer lists it; a kill in between leaves an
		// orphan that `thinkgen gc` removes.
		if err := o.Checkpoints.Delete(ctx, o.Run, prev); err != nil {
			return err
		}
	}
	return nil
}

// runAll runs tasks concurrently (an executor with one worker runs them
// one at a time), each up to o.Attempts times, and merges their metrics
// (counts and times summed, the rest averaged over tasks).
func (o *Options) runAll(ctx context.Context, ts []task.Task, metrics map[string]float64, kind string) ([]task.Result, error) {
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
			for a := 1; a <= o.Attempts; a++ {
				t.Attempt = a
				if err = t.Validate(); err != nil {
					break
				}
				out[i], err = o.Exec.Do(ctx, t)
				if err == nil || ctx.Err() != nil || errors.Is(err, task.ErrFatal) {
					break
				}
				mu.Lock()
				fmt.Fprintf(o.Progress, "%s failed (will retry): %v\n", t, err)
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

// StepLine is the one-line progress report of a step.
func StepLine(r StepReport, total int) string {
	m := r.Metrics
	get := func(k string) float64 {
		v, ok := m[k]
		if !ok {
			return math.NaN()
		}
		return v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "step %d/%d %s | reward %.3f±%.3f zero-std %.2f | kl %.4f clip %.3f/%.3f ratio₀ %.4f | grad %.3f",
		r.Plan.Step, total, r.Plan.Phase, get("reward/mean"), get("reward/std"), get("adv/zero_std_ratio"),
		get("loss/kl"), get("loss/clip_low"), get("loss/clip_high"), get("loss/ratio_first"), get("learn/grad_norm"))
	if r.Plan.Phase == config.PhaseMLLMGRPO {
		fmt.Fprintf(&b, " | cot %.1f tok ent %.3f instr/reasoning %.3f | %.0f tok/s", get("rollout/cot_tokens"), get("loss/entropy"), get("rollout/instruction/reasoning"), get("rollout/tokens_per_s"))
	} else {
		fmt.Fprintf(&b, " | %.2f img/s", get("rollout/images_per_s"))
	}
	fmt.Fprintf(&b, " | rollout %.1fs reward %.1fs learn %.1fs storage %.2fs",
		get("time/rollout_s"), get("time/reward_s"), get("time/learn_s"), get("time/storage_s"))
	return b.String()
}
