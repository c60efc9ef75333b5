package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/learner"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/rollout"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/task"
)

// TrainRows returns the train rows at indices idx that phase p's prompts
// come from (its scenario mix: config.PhaseMix): generated from the run's
// seed, or taken from set, the run's dataset (data.dataset), when set is
// not nil.
func TrainRows(c *config.Config, set *datasets.TrainSet, p config.Phase, idx []int64) ([]datasets.Row, error) {
	if set != nil {
		return set.Rows(c.PhaseMix(p), idx)
	}
	opts := datasets.Options{Seed: uint64(c.Run.Seed), Split: datasets.Train, Size: c.Model.DiT.ImageSize,
		Scenarios: datasets.ScenarioCycle(c.PhaseMix(p))}
	return datasets.Rows(opts, idx)
}

// trainSet returns the dataset run trains on (nil when it generates its
// rows), read once from the run's copy in the store.
func (w *Worker) trainSet(ctx context.Context, run string) (*datasets.TrainSet, error) {
	if w.cfg.Data.Dataset == "" {
		return nil, nil
	}
	if w.set != nil && w.setRun == run {
		return w.set, nil
	}
	rows, info, err := runs.ReadDataset(ctx, w.store, run, w.cacheDir)
	if err != nil {
		return nil, err
	}
	set, err := datasets.NewTrainSet(rows, info, w.cfg.Model.DiT.ImageSize, w.cfg.Data.TrainSize)
	if err != nil {
		return nil, fmt.Errorf("data.dataset (the copy run %s holds): %w", run, err)
	}
	w.set, w.setRun = set, run
	return set, nil
}

// rollout samples the task's prompts with the policy version it names and
// writes them, with their chains of thought and images, as a rollout
// shard.
func (w *Worker) rollout(ctx context.Context, t task.Task) (task.Result, error) {
	set, err := w.trainSet(ctx, t.Run)
	if err != nil {
		return task.Result{}, err
	}
	rows, err := TrainRows(w.cfg, set, t.Phase, t.Rows)
	if err != nil {
		return task.Result{}, err
	}
	pullStart := time.Now()
	b, err := w.policyAt(ctx, t.Run, t.PolicyVersion)
	if err != nil {
		return task.Result{}, err
	}
	pull := time.Since(pullStart) // ~0 unless this worker pulled the version now
	req := rollout.Request{Run: t.Run, Step: t.Step, Task: t.ID, Attempt: t.Attempt, Phase: t.Phase,
		Rows: rows, GroupIDs: t.Rows, Seed: t.Seed, PolicyVersion: int64(t.PolicyVersion),
		Settings: rollout.SettingsFor(w.cfg, t.Phase, t.Seed)}
	start := time.Now()
	var out []shards.RolloutRow
	var st rollout.Stats
	if t.Phase == config.PhaseMLLMGRPO {
		out, st, err = rollout.MLLMContext(ctx, b, req, w.dev)
	} else {
		out, st, err = rollout.DiTContext(ctx, b, req, w.dev)
	}
	if err != nil {
		return task.Result{}, err
	}
	elapsed := time.Since(start)
	obj, err := putShard(ctx, w, t, shards.Rollout, out)
	if err != nil {
		return task.Result{}, err
	}
	// Tasks report additive figures only (the controller sums them over a
	// step's tasks); statistics of the data come from the learner, which
	// sees all of it.
	m := map[string]float64{
		"count/samples":       float64(st.Samples),
		"count/images":        float64(st.Images),
		"count/tokens":        float64(st.Tokens),
		"time/generate_s":     st.GenTime.Seconds(),
		"time/draw_s":         st.ImageTime.Seconds(),
		"time/rollout_task_s": elapsed.Seconds(),
		"time/pull_s":         pull.Seconds(),
	}
	return task.Result{Outputs: []storage.Object{obj}, Metrics: m, Samples: samplesOf(out, samplesPerTask)}, nil
}

// policyAt returns policy version v of run, loading it from the store
// unless it is the version the last rollout task sampled with.
func (w *Worker) policyAt(ctx context.Context, run string, v int) (*model.Bundle, error) {
	if w.policy != nil && w.policyVersion == v {
		return w.policy, nil
	}
	b, _, err := w.load(ctx, run, v)
	if err != nil {
		return nil, err
	}
	if err := sameShape(w.cfg, b); err != nil {
		b.Drop()
		return nil, fmt.Errorf("%w: checkpoint %d of run %s: %v", learner.ErrFatal, v, run, err)
	}
	if w.policy != nil {
		w.policy.Drop()
	}
	w.policy, w.policyVersion = b, v
	if w.cfg.Run.MaxStaleness > 0 {
		// Asynchronous runs commit v+1 while this version still samples.
		w.prefetch(run, v+1)
	}
	return b, nil
}

// samplesPerTask is how many chains a rollout task reports as text.
const samplesPerTask = 2

// samplesOf returns the first chain of each of the first n groups of rows.
func samplesOf(rows []shards.RolloutRow, n int) []task.Sample {
	var out []task.Sample
	for _, r := range rows {
		if r.SampleIndex != 0 || len(out) == n {
			continue
		}
		out = append(out, task.Sample{GroupID: r.GroupID, SampleIndex: r.SampleIndex, Scenario: r.Scenario,
			Prompt: r.Prompt, CoT: r.CoT, Instruction: r.Instruction})
	}
	return out
}
