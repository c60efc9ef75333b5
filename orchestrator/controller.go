package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"
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
// importing the base as version 0 and deleting versions it does not keep.
type CheckpointStore interface {
	ImportBase(ctx context.Context, run string) (*storage.Manifest, error)
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
	// Rendezvous returns the address where the learner ranks' group meets
	// (rank 0 hosts its TCPStore there), once for every attempt of a gang.
	// Required with LearnerRanks > 1.
	Rendezvous func() (string, error)
	// CollectiveTimeout bounds the ranks' rendezvous and each of their
	// collectives (0: 5 minutes): a rank that dies or hangs fails the
	// others within it.
	CollectiveTimeout time.Duration
	// GangAttempts is how many times the learner ranks' gang is formed for
	// one step (0: 3); the queue never retries a rank alone.
	GangAttempts int
	// Eval scores policy version v on held-out rows (runeval.Evaluator's
	// Version): every run.eval_every steps, and at the last step, the
	// controller evaluates the version the step's learn made before it
	// commits the step, so that its scores are part of the step's
	// metrics. Required when run.eval_every > 0. It must be
	// deterministic: a resumed run evaluates a re-run step again.
	Eval func(ctx context.Context, v int) (map[string][]reward.Summary, error)
}

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
}

// Open opens run o.Run for training. A new run imports its base checkpoint
// as version 0 and writes its run.json; an existing one is refused unless
// o.Resume is set, and then takes its configuration from run.json (not
// o.Config) and first repairs a step whose commit a kill interrupted.
func Open(ctx context.Context, o Options) (*Controller, error) {
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
	c := &Controller{o: o, clock: o.Clock, plan: plan, state: rs}
	if rs == nil {
		if err := c.create(ctx); err != nil {
			return nil, err
		}
	}
	if err := c.repair(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// create imports the base checkpoint of a new run and writes its run.json.
func (c *Controller) create(ctx context.Context) error {
	if _, err := c.o.Checkpoints.ImportBase(ctx, c.o.Run); err != nil {
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
// last written (a kill between the two): the manifest is the truth.
func (c *Controller) repair(ctx context.Context) error {
	for !c.Done() {
		step := c.state.Committed + 1
		if _, err := storage.ReadManifest(ctx, c.o.Store, storage.StepManifestKey(c.o.Run, step)); err != nil {
			return nil
		}
		sm, err := runs.ReadStepMetrics(ctx, c.o.Store, c.o.Run, step, c.o.TmpDir)
		if err != nil {
			return fmt.Errorf("repair step %d: %w", step, err)
		}
		if err := runs.PutStepEvents(ctx, c.o.Store, c.state, step, sm.At, sm.Values); err != nil {
			return err
		}
		if err := c.afterCommit(ctx, c.plan[step-1], sm.Values); err != nil {
			return err
		}
	}
	return nil
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

// Run runs the remaining steps, writing a progress line after each, until
// the plan is done, o.StopAfter steps are committed or ctx ends. It
// returns the steps it committed.
func (c *Controller) Run(ctx context.Context) ([]StepReport, error) {
	defer c.stopSampling()
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
func Train(ctx context.Context, o Options) ([]StepReport, error) {
	c, err := Open(ctx, o)
	if err != nil {
		return nil, err
	}
	return c.Run(ctx)
}

// since is the time from t to now on the controller's clock.
func (c *Controller) since(t time.Time) time.Duration { return c.clock.Now().Sub(t) }

// writeState records the run's state as of now in run.json.
func (c *Controller) writeState(ctx context.Context) error {
	c.state.Updated = c.clock.Now().UTC()
	return runs.WriteState(ctx, c.o.Store, c.state)
}
