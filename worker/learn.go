package worker

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/dist"
	"github.com/thinkgen/thinkgen/learner"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/task"
)

// learn reads the step's rollout and reward shards, takes one learner step
// from the policy version the task names and saves the result as the next
// version; its outputs are that version's objects, manifest included.
//
// A task with a rendezvous is one rank of a data-parallel group: the
// worker joins the group (a new one each task), steps on its share of
// every mini-batch, and only rank 0 saves the version; the other ranks
// report the step's metrics and no outputs. A failed collective fails the
// task within the rendezvous' timeout.
func (w *Worker) learn(ctx context.Context, t task.Task) (task.Result, error) {
	var rolls []shards.RolloutRow
	var rews []shards.RewardRow
	for _, obj := range t.Inputs {
		switch filepath.Base(filepath.Dir(obj.Key)) {
		case string(task.Rollout):
			r, err := readShard(ctx, w.store, obj, shards.Rollout, w.cacheDir)
			if err != nil {
				return task.Result{}, err
			}
			rolls = append(rolls, r...)
		case string(task.Reward):
			r, err := readShard(ctx, w.store, obj, shards.Reward, w.cacheDir)
			if err != nil {
				return task.Result{}, err
			}
			rews = append(rews, r...)
		default:
			return task.Result{}, fmt.Errorf("learn task: input %s is neither a rollout nor a reward shard", obj.Key)
		}
	}
	stale, err := stalenessStats(rolls, t.PolicyVersion, w.cfg.Run.MaxStaleness)
	if err != nil {
		return task.Result{}, fmt.Errorf("%w: learn task: %w", learner.ErrFatal, err)
	}
	var group *dist.Group
	if rv := t.Rendezvous; rv != nil {
		var err error
		group, err = dist.New(dist.Config{Addr: rv.Addr, Hosted: rv.Hosted, World: rv.World, Rank: rv.Rank, Epoch: rv.Epoch,
			Timeout: time.Duration(rv.TimeoutMS) * time.Millisecond, Backend: backendFor(w.dev)})
		if err != nil {
			return task.Result{}, fmt.Errorf("learner rank: %w", err)
		}
		defer group.Close()
	}
	if err := w.learnerAt(ctx, t.Run, t.PolicyVersion, group); err != nil {
		return task.Result{}, err
	}
	stats, err := w.learner.StepContext(ctx, t.Phase, t.Seed, rolls, rews)
	if err != nil {
		// The in-memory policy may be half-updated: reload it next time.
		w.learner.Close()
		w.learner = nil
		return task.Result{}, err
	}
	opts, release, err := w.learner.GatherOptimizers()
	if err != nil {
		w.learner.Close()
		w.learner = nil
		return task.Result{}, err
	}
	defer release()
	for k, v := range dataStats(rolls, rews) {
		stats[k] = v
	}
	if w.cfg.Run.MaxStaleness > 0 {
		for k, v := range stale {
			stats[k] = v
		}
	}
	if group != nil && group.Rank() != 0 {
		// Rank 0 saves the version; this rank holds it in memory too.
		w.learner.SetVersion(t.PolicyVersion + 1)
		return task.Result{Metrics: stats}, nil
	}
	man, err := checkpoint.Save(ctx, w.store, t.Run, t.PolicyVersion+1, t.Tag(), w.learner.Policy(), w.cfg, opts, w.cacheDir)
	if err != nil {
		// The policy in memory is already updated but its version was not
		// saved: a retry must start again from the stored version, not
		// update twice.
		w.learner.Close()
		w.learner = nil
		return task.Result{}, err
	}
	w.learner.SetVersion(t.PolicyVersion + 1)
	// The step's manifest lists the checkpoint's objects, its manifest
	// included, so that the step commits only a whole checkpoint.
	outs := append([]storage.Object{}, man.Objects...)
	mobj, err := storage.Describe(ctx, w.store, storage.CheckpointManifestKey(t.Run, t.PolicyVersion+1))
	if err != nil {
		return task.Result{}, err
	}
	return task.Result{Outputs: append(outs, mobj), Metrics: stats}, nil
}

// learnerAt makes sure the learner holds policy version v (loading it and
// its optimiser states from the store when it does not) and the frozen
// reference (version 0), as a rank of g when g is set. A learner that was
// another rank (or of another group size) is loaded again: under ZeRO-1
// its optimiser shard is another rank's.
func (w *Worker) learnerAt(ctx context.Context, run string, v int, g *dist.Group) error {
	rank := [2]int{0, 1}
	if g != nil {
		rank = [2]int{g.Rank(), g.World()}
	}
	if w.learner != nil && w.learner.Version() == v && w.learnerRank == rank {
		w.learner.SetGroup(g)
		return nil
	}
	if w.learner != nil {
		w.learner.Close()
		w.learner = nil
	}
	policy, dir, err := w.load(ctx, run, v)
	if err != nil {
		return err
	}
	if err := sameShape(w.cfg, policy); err != nil {
		policy.Drop()
		return fmt.Errorf("%w: checkpoint %d of run %s: %v", learner.ErrFatal, v, run, err)
	}
	// With adapters on both models the reference is the policy without
	// them (learner.New): no second copy to load.
	var ref *model.Bundle
	if w.cfg.LoRA.MLLM.Rank == 0 || w.cfg.LoRA.DiT.Rank == 0 {
		if ref, _, err = w.load(ctx, run, 0); err != nil {
			policy.Drop()
			return err
		}
	}
	l := learner.New(w.cfg, policy, ref, v)
	l.SetGroup(g)
	if err := l.LoadOptimizers(dir); err != nil {
		l.Close()
		return fmt.Errorf("checkpoint %d of run %s: %w", v, run, err)
	}
	w.learner, w.learnerRank = l, rank
	return nil
}

// backendFor is the collectives' backend on device dev: NCCL for CUDA,
// else Gloo.
func backendFor(dev gotch.Device) dist.Backend {
	if dev.IsCuda() {
		return dist.NCCL
	}
	return dist.Gloo
}
