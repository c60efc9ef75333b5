package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/schedule"
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
// importing the base as version 0 (by the controller of epoch) and
// deleting versions it does not keep.
type CheckpointStore interface {
	ImportBase(ctx context.Context, run string, epoch int) (*storage.Manifest, error)
	Delete(ctx context.Context, run string, version int) error
}

// Clock tells the time; the controller reads every timestamp and duration
// it records from it.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

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
	// Progress receives one line per step and one per retried task.
	Progress io.Writer
	// TmpDir holds spooled shards ("" means os.TempDir()).
	TmpDir string
	// Clock tells the time; nil means the system clock.
	Clock Clock
	// LearnerRanks > 1 runs each step's learn as that many rank tasks of
	// one data-parallel group (a gang; see runGang), which need an executor
	// that runs them at the same time on as many learner workers.
	LearnerRanks int
	// Rendezvous returns the address where the learner ranks' group meets,
	// once for every attempt of a gang: a TCPStore served there by this
	// process when RendezvousHosted is set, else one rank 0 hosts.
	// Required with LearnerRanks > 1.
	Rendezvous       func() (string, error)
	RendezvousHosted bool
	// CollectiveTimeout bounds the ranks' rendezvous and each of their
	// collectives (0: 5 minutes): a rank that dies or hangs fails the
	// others within it.
	CollectiveTimeout time.Duration
	// GangAttempts is how many times the learner ranks' gang is formed for
	// one step (0: 3); the queue never retries a rank alone.
	GangAttempts int
	// LeaseTTL is how long the controller's run lease lasts unless renewed
	// (0: DefaultLeaseTTL); it is renewed every third of it and before
	// every commit. A controller killed on another host holds the run up
	// to this long; one killed on this host is taken over at once.
	LeaseTTL time.Duration
	// Holder names this controller in the run lease ("": host/pid/random).
	Holder string
	// AfterManifest, when set, is called once a step's manifest is
	// committed and before its event file and run.json are written; an
	// error stops the controller there, as a kill would. It is a
	// fault-injection hook for tests (train's THINKGEN_FAULT_AFTER_MANIFEST).
	AfterManifest func(step int) error
	// Eval scores policy version v on held-out rows (runeval.Evaluator's
	// Version): every run.eval_every steps, and at the last step, the
	// controller evaluates the version the step's learn made before it
	// commits the step, so that its scores are part of the step's
	// metrics. Required when run.eval_every > 0. It must be
	// deterministic: a resumed run evaluates a re-run step again.
	Eval func(ctx context.Context, v int) (map[string][]reward.Summary, error)
	// Committed, when set, is told of every step the controller commits
	// (or, on resume, finds committed by a run that was killed before it
	// recorded the step): the step, when its metrics were measured and
	// the metrics as the step's shard keeps them (a copy). It runs on the
	// controller's goroutine before the next step starts, so it must not
	// block: experiment trackers and the controller's gauges queue or
	// store what they need.
	Committed func(p schedule.Step, at time.Time, metrics map[string]float64)
}

// DefaultLeaseTTL is Options.LeaseTTL's default.
const DefaultLeaseTTL = time.Minute

// StepReport is one committed step.
type StepReport struct {
	Plan    schedule.Step
	Metrics map[string]float64
	Elapsed time.Duration
}

// Controller drives one run through its schedule. Its plan is computed
// once, from the run's configuration, when it is opened; its state is the
// run's run.json, which it rewrites after every commit.
type Controller struct {
	o     Options // defaults applied; o.Config is the run's configuration
	clock Clock
	plan  []schedule.Step
	state *runs.State
	ahead map[int]*sampling // steps sampling ahead, by step
	busy  busyMeter         // each role's busy time
	epoch int               // of the learner ranks' last group

	lease    *runs.Held
	leaseMu  sync.Mutex // serialises renewals
	lost     context.Context
	stopRenw context.CancelFunc
	renewed  chan struct{} // closed when the renewal loop ends
	writes   map[int]int   // metrics shards written per step in this epoch
}

// Open opens run o.Run for training: it takes the run's lease (refusing a
// run another live controller holds, with a *runs.HeldError) and the next
// epoch. A new run imports its base checkpoint as version 0 and writes its
// run.json; an existing one is refused unless o.Resume is set, and then
// takes its configuration from run.json (not o.Config) and first repairs a
// step whose commit a kill interrupted. Close gives the lease up.
func Open(ctx context.Context, o Options) (c *Controller, err error) {
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
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.LearnerRanks > 1 && o.Rendezvous == nil {
		return nil, fmt.Errorf("orchestrator: %d learner ranks need a rendezvous address", o.LearnerRanks)
	}
	if o.CollectiveTimeout <= 0 {
		o.CollectiveTimeout = 5 * time.Minute
	}
	if o.GangAttempts <= 0 {
		o.GangAttempts = 3
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.Holder == "" {
		o.Holder = runs.NewHolder()
	}
	lease, err := runs.AcquireLease(ctx, o.Store, o.Run, o.Holder, o.LeaseTTL, o.Clock.Now)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lease.Release(context.WithoutCancel(ctx))
		}
	}()
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
	if o.Config.Run.EvalEvery > 0 && o.Eval == nil {
		return nil, fmt.Errorf("run %s: run.eval_every %d: the controller has no evaluator (thinkgen train needs --eval-rows > 0)", o.Run, o.Config.Run.EvalEvery)
	}
	plan, err := schedule.Plan(o.Config)
	if err != nil {
		return nil, err
	}
	c = &Controller{o: o, clock: o.Clock, plan: plan, state: rs, lease: lease, writes: map[int]int{}}
	if rs == nil {
		if err := c.create(ctx); err != nil {
			return nil, err
		}
	}
	if err := c.repair(ctx); err != nil {
		return nil, err
	}
	c.startRenewal()
	return c, nil
}

// Epoch is the run's epoch under this controller's lease.
func (c *Controller) Epoch() int { return c.lease.Epoch() }

// startRenewal renews the lease every third of its TTL until Close; when
// a renewal finds the lease lost, c.lost ends with that cause.
func (c *Controller) startRenewal() {
	lost, markLost := context.WithCancelCause(context.Background())
	ctx, stop := context.WithCancel(context.Background())
	c.lost, c.stopRenw, c.renewed = lost, stop, make(chan struct{})
	go func() {
		defer close(c.renewed)
		tick := time.NewTicker(c.o.LeaseTTL / 3)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := c.renew(ctx); errors.Is(err, runs.ErrLeaseLost) {
				markLost(err)
				return
			} else if err != nil && ctx.Err() == nil {
				fmt.Fprintf(c.o.Progress, "renew the run lease (will retry): %v\n", err)
			}
		}
	}()
}

func (c *Controller) renew(ctx context.Context) error {
	c.leaseMu.Lock()
	defer c.leaseMu.Unlock()
	return c.lease.Renew(ctx)
}

// releaseTimeout bounds giving the lease up: a controller stopping while
// its store is unreachable does not wait on the store's retries (its
// lease expires by itself).
const releaseTimeout = 5 * time.Second

// Close stops renewing the run's lease and gives it up, so that the next
// controller of the run need not wait for it to expire; it gives up after
// releaseTimeout.
func (c *Controller) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	if c.stopRenw != nil {
		c.stopRenw()
		<-c.renewed
	}
	if c.lost != nil && c.lost.Err() != nil {
		return nil // not ours any more
	}
	c.leaseMu.Lock()
	defer c.leaseMu.Unlock()
	return c.lease.Release(ctx)
}

// create imports the base checkpoint of a new run and writes its run.json.
func (c *Controller) create(ctx context.Context) error {
	if _, err := c.o.Checkpoints.ImportBase(ctx, c.o.Run, c.Epoch()); err != nil {
		return fmt.Errorf("run %s: base checkpoint: %w", c.o.Run, err)
	}
	yml, err := c.o.Config.YAML()
	if err != nil {
		return err
	}
	c.state = &runs.State{Version: runs.StateVersion, Run: c.o.Run, Config: string(yml), Seed: c.o.Config.Run.Seed,
		Steps: len(c.plan), Kept: []int{0}, Started: c.clock.Now().UTC(), Seeds: map[string]uint64{}}
	return c.writeState(ctx)
}

// repair records the steps whose manifest committed after run.json was
// last written (a kill between the two): the manifest is the truth. Only a
// manifest that does not exist means a step is not committed; one that
// cannot be read is retried, then stops the controller.
func (c *Controller) repair(ctx context.Context) error {
	for !c.Done() {
		step := c.state.Committed + 1
		err := readManifest(ctx, c.o.Store, storage.StepManifestKey(c.o.Run, step))
		if errors.Is(err, storage.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("resume run %s: cannot tell whether step %d is committed (stopping rather than running it again): %w", c.o.Run, step, err)
		}
		sm, err := runs.ReadStepMetrics(ctx, c.o.Store, c.o.Run, step, c.o.TmpDir)
		if err != nil {
			return fmt.Errorf("repair step %d: %w", step, err)
		}
		if err := runs.PutStepEvents(ctx, c.o.Store, c.state, step, sm.At, sm.Values, nil); err != nil {
			return err
		}
		if err := c.afterCommit(ctx, c.plan[step-1], sm.Values); err != nil {
			return err
		}
		c.committed(c.plan[step-1], sm.At, sm.Values)
	}
	return nil
}

// committed tells o.Committed of a committed step.
func (c *Controller) committed(p schedule.Step, at time.Time, metrics map[string]float64) {
	if c.o.Committed != nil {
		c.o.Committed(p, at, maps.Clone(metrics))
	}
}

// Plan returns the run's steps.
func (c *Controller) Plan() []schedule.Step { return c.plan }

// Committed is the run's last committed step (0: none).
func (c *Controller) Committed() int { return c.state.Committed }

// Done reports whether every step of the plan is committed.
func (c *Controller) Done() bool { return c.state.Committed >= len(c.plan) }

// Step runs the next step of the plan and commits it.
func (c *Controller) Step(ctx context.Context) (StepReport, error) {
	if c.Done() {
		return StepReport{}, fmt.Errorf("run %s: every step of its %d is committed", c.o.Run, len(c.plan))
	}
	p := c.plan[c.state.Committed]
	rep, err := c.runStep(ctx, p)
	if err != nil {
		c.stopSampling()
		return StepReport{}, fmt.Errorf("step %d (%s): %w", p.Step, p.Phase, err)
	}
	return rep, nil
}

// readTries and readBackoff bound repair's retries of a manifest read.
const (
	readTries   = 4
	readBackoff = 100 * time.Millisecond
)

// readManifest reads a manifest, retrying errors other than not-found
// (backing off, readTries times in all).
func readManifest(ctx context.Context, st storage.Store, key string) error {
	var err error
	for try := 0; try < readTries; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(readBackoff << (try - 1)):
			}
		}
		_, err = storage.ReadManifest(ctx, st, key)
		if err == nil || errors.Is(err, storage.ErrNotExist) {
			return err
		}
	}
	return fmt.Errorf("%d tries: %w", readTries, err)
}

// Run runs the remaining steps, writing a progress line after each, until
// the plan is done, o.StopAfter steps are committed, ctx ends or the
// controller loses its lease. It returns the steps it committed.
func (c *Controller) Run(ctx context.Context) ([]StepReport, error) {
	defer c.stopSampling()
	if c.lost != nil {
		var stop context.CancelCauseFunc
		ctx, stop = context.WithCancelCause(ctx)
		defer stop(nil)
		unhook := context.AfterFunc(c.lost, func() { stop(context.Cause(c.lost)) })
		defer unhook()
	}
	reports, err := c.run(ctx)
	if err != nil && ctx.Err() != nil {
		if cause := context.Cause(ctx); errors.Is(cause, runs.ErrLeaseLost) {
			return reports, cause
		}
	}
	return reports, err
}

func (c *Controller) run(ctx context.Context) ([]StepReport, error) {
	var reports []StepReport
	start := c.clock.Now()
	first := c.state.Committed
	for !c.Done() {
		if err := ctx.Err(); err != nil {
			return reports, err
		}
		if c.o.StopAfter > 0 && len(reports) >= c.o.StopAfter {
			return reports, nil
		}
		rep, err := c.Step(ctx)
		if err != nil {
			return reports, err
		}
		reports = append(reports, rep)
		done := c.state.Committed - first
		eta := time.Duration(float64(c.since(start)) / float64(done) * float64(len(c.plan)-c.state.Committed))
		fmt.Fprintf(c.o.Progress, "%s | ETA %s\n", StepLine(rep, len(c.plan)), eta.Round(time.Second))
	}
	return reports, nil
}

// Train opens run o.Run (Open) and runs it (Run): for each step, the
// rollout tasks, one reward task per rollout shard, the learn task, then
// the step's commit. It returns the steps it committed.
func Train(ctx context.Context, o Options) (reps []StepReport, err error) {
	c, err := Open(ctx, o)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := c.Close(context.WithoutCancel(ctx)); cerr != nil && err == nil {
			err = fmt.Errorf("release the run lease: %w", cerr)
		}
	}()
	return c.Run(ctx)
}

// since is the time from t to now on the controller's clock.
func (c *Controller) since(t time.Time) time.Duration { return c.clock.Now().Sub(t) }

// writeState records the run's state as of now in run.json.
func (c *Controller) writeState(ctx context.Context) error {
	c.state.Updated = c.clock.Now().UTC()
	return runs.WriteState(ctx, c.o.Store, c.state)
}
