package worker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/learner"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/task"
)

// Worker runs tasks of one run configuration.
type Worker struct {
	cfg      *config.Config
	store    storage.Store
	cacheDir string
	dev      gotch.Device
	dtype    gotch.DType // model.dtype: what loaded checkpoints compute in
	rewards  *reward.Registry

	// The policy version rollout tasks last sampled with.
	policy        *model.Bundle
	policyVersion int
	learner       *learner.Learner
	learnerRank   [2]int // the learner's rank and group size ({0, 1} alone)
	pulls         pulls  // checkpoint downloads and the prefetch of the next version
	// The dataset of run setRun (data.dataset), read at its first rollout.
	set    *datasets.TrainSet
	setRun string

	mu sync.Mutex // one task at a time: the models are shared state
}

// Options configure a Worker.
type Options struct {
	Config *config.Config
	Store  storage.Store
	// CacheDir holds fetched checkpoint versions and spooled shards.
	CacheDir string
	// Device overrides run.device when set.
	Device gotch.Device
}

// New returns a worker; Close releases its models.
func New(o Options) (*Worker, error) {
	reg, err := reward.FromConfig(o.Config.Reward)
	if err != nil {
		return nil, err
	}
	pl, err := model.PlacementOf(o.Config)
	if err != nil {
		return nil, err
	}
	if o.Device.Name == "" {
		o.Device = pl.Device
	} else if pl.DType, err = model.ParseDType(o.Config.Model.DType, o.Device); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("worker cache: %w", err)
	}
	return &Worker{cfg: o.Config, store: o.Store, cacheDir: o.CacheDir, dev: o.Device, dtype: pl.DType, rewards: reg, policyVersion: -1}, nil
}

// Close frees the worker's models.
func (w *Worker) Close() {
	w.stopPrefetch()
	if w.policy != nil {
		libtorch.Run(func() error { w.policy.Drop(); return nil })
		w.policy = nil
	}
	if w.learner != nil {
		libtorch.Run(func() error { w.learner.Close(); return nil })
		w.learner = nil
	}
}

// Do runs one task. Errors that a retry cannot fix wrap learner.ErrFatal.
func (w *Worker) Do(ctx context.Context, t task.Task) (task.Result, error) {
	if err := t.Validate(); err != nil {
		return task.Result{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var res task.Result
	err := libtorch.Run(func() error {
		if th := w.cfg.Run.Threads; th > 0 {
			if err := libtorch.SetThreads(th); err != nil {
				return err
			}
		}
		var err error
		switch t.Kind {
		case task.Rollout:
			res, err = w.rollout(ctx, t)
		case task.Reward:
			res, err = w.reward(ctx, t)
		case task.Learn:
			res, err = w.learn(ctx, t)
		}
		return err
	})
	// What the task freed goes back to the OS before the next one: without
	// it the resident set of a learner at 64 FlowGRPO trajectories grew
	// 4 → 12 GB in 7 steps (docs/findings.md, "Stage 5").
	libtorch.ReleaseFreeMemory()
	return res, err
}

// load fetches version v of run and converts it to model.dtype; it also
// returns the fetched version's directory.
func (w *Worker) load(ctx context.Context, run string, v int) (*model.Bundle, string, error) {
	if err := w.fetch(ctx, run, v); err != nil {
		return nil, "", err
	}
	b, dir, err := checkpoint.Load(ctx, w.store, run, v, filepath.Join(w.cacheDir, "checkpoints"), w.dev)
	if err != nil {
		return nil, "", err
	}
	// A run with LoRA starts from a base without adapters: every worker
	// draws the same ones from the run's seed (B is zero: they change
	// nothing until the learner trains them).
	if err := b.AttachLoRA(w.cfg.LoRA, uint64(w.cfg.Run.Seed)); err != nil {
		b.Drop()
		return nil, "", fmt.Errorf("checkpoint %d of run %s: %w", v, run, err)
	}
	b.ToDType(w.dtype)
	return b, dir, nil
}

// sameShape refuses a checkpoint whose models differ from the run's.
func sameShape(run *config.Config, ckpt *model.Bundle) error {
	if diff := ckpt.Model.ShapeDiff(run.Model); len(diff) > 0 {
		return fmt.Errorf("a checkpoint of another model shape (its model section vs the run's: %s)", strings.Join(diff, ", "))
	}
	return nil
}
