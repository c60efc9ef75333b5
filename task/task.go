// Package task defines the unit of work the controller hands to workers and
// what a worker reports back. It is the only thing the controller and the
// workers share: a worker never imports the controller, and the controller
// never looks inside a worker.
//
// A SepGRPO step is three kinds of task, in order: rollout tasks (sample
// chains of thought or SDE trajectories for a slice of the step's prompts,
// write one rollout shard each), reward tasks (score one rollout shard,
// write one reward shard) and one learn task (read every shard of the step,
// update the policy, commit the next checkpoint version). Every output is an
// object in the run's store named by (run, step, task, attempt), reported
// with its size and sha256 so the controller can verify it before the step
// commits.
package task

import (
	"errors"
	"fmt"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/storage"
)

// Kind is the kind of a task.
type Kind string

// The kinds of task of a step.
const (
	Rollout Kind = "rollout"
	Reward  Kind = "reward"
	Learn   Kind = "learn"
)

// Task is one unit of work.
type Task struct {
	Run  string `json:"run"`
	Step int    `json:"step"`
	Kind Kind   `json:"kind"`
	// ID names the task within its step ("r0", "s0", "learn").
	ID string `json:"id"`
	// Epoch is the run's epoch (the generation of the controller's run
	// lease, from 1) the task was issued in; Attempt counts from 1 within
	// it. A task handed out again after a failure or an expired lease gets
	// the next attempt, one issued by a later controller a later epoch:
	// every key a task writes carries both, so no key is written twice.
	Epoch   int          `json:"epoch"`
	Attempt int          `json:"attempt"`
	Phase   config.Phase `json:"phase"`
	// PolicyVersion is the checkpoint version the task samples with
	// (rollout) or updates (learn: it writes PolicyVersion+1).
	PolicyVersion int `json:"policy_version"`
	// Rows are the dataset row indices of a rollout task's prompts.
	Rows []int64 `json:"rows,omitempty"`
	// Seed derives every random draw of the task.
	Seed uint64 `json:"seed"`
	// Inputs are the objects the task reads: a reward task's rollout shard;
	// the learn task's rollout and reward shards. Each is verified (size,
	// sha256) when read.
	Inputs []storage.Object `json:"inputs,omitempty"`
	// Rendezvous, on a learn task of N > 1 learner ranks, is the group this
	// task is one rank of (nil for a single learner).
	Rendezvous *Rendezvous `json:"rendezvous,omitempty"`
}

// Rendezvous tells one learner rank how to join its data-parallel group:
// the N rank tasks of a step's learn (a gang) share Addr and Epoch and
// differ in Rank. The group's TCPStore at Addr is served by the controller
// when Hosted is set, else by rank 0.
type Rendezvous struct {
	Addr   string `json:"addr"`
	Hosted bool   `json:"hosted,omitempty"`
	World  int    `json:"world"`
	Rank   int    `json:"rank"`
	// Epoch tells apart the groups formed at one address: every attempt of
	// the gang forms a new one.
	Epoch int `json:"epoch"`
	// TimeoutMS bounds the rendezvous and every collective, in
	// milliseconds: a rank that dies or hangs fails the others' learn
	// tasks within it.
	TimeoutMS int64 `json:"timeout_ms"`
}

// String names the task in logs and errors.
func (t Task) String() string {
	return fmt.Sprintf("%s step %d %s task %s attempt %d", t.Run, t.Step, t.Kind, t.ID, t.Attempt)
}

// Validate checks the fields every worker relies on.
func (t Task) Validate() error {
	if err := storage.ValidateRun(t.Run); err != nil {
		return fmt.Errorf("task %s: %w", t.ID, err)
	}
	switch {
	case t.Step < 1:
		return fmt.Errorf("task %s: step %d, want >= 1", t.ID, t.Step)
	case t.Epoch < 1:
		return fmt.Errorf("task %s: epoch %d, want >= 1", t.ID, t.Epoch)
	case t.Attempt < 1:
		return fmt.Errorf("task %s: attempt %d, want >= 1", t.ID, t.Attempt)
	case !t.Phase.Valid():
		return fmt.Errorf("task %s: unknown phase %q", t.ID, t.Phase)
	case t.PolicyVersion < 0:
		return fmt.Errorf("task %s: policy version %d", t.ID, t.PolicyVersion)
	}
	switch t.Kind {
	case Rollout:
		if len(t.Rows) == 0 {
			return fmt.Errorf("task %s: a rollout task without prompts", t.ID)
		}
	case Reward:
		if len(t.Inputs) != 1 {
			return fmt.Errorf("task %s: a reward task reads one rollout shard, got %d inputs", t.ID, len(t.Inputs))
		}
	case Learn:
		if len(t.Inputs) == 0 {
			return fmt.Errorf("task %s: a learn task without shards", t.ID)
		}
		if rv := t.Rendezvous; rv != nil {
			switch {
			case rv.Addr == "":
				return fmt.Errorf("task %s: rendezvous without an address", t.ID)
			case rv.World < 2 || rv.Rank < 0 || rv.Rank >= rv.World:
				return fmt.Errorf("task %s: rendezvous rank %d of %d, want 0 <= rank < world and world >= 2", t.ID, rv.Rank, rv.World)
			case rv.Epoch < 0 || rv.TimeoutMS < 1:
				return fmt.Errorf("task %s: rendezvous epoch %d and timeout %d ms, want >= 0 and >= 1", t.ID, rv.Epoch, rv.TimeoutMS)
			}
		}
	default:
		return fmt.Errorf("task %s: unknown kind %q", t.ID, t.Kind)
	}
	return nil
}

// OutputKey is the key of the shard a rollout or reward task writes.
func (t Task) OutputKey() string {
	return storage.ShardKey(t.Run, t.Step, string(t.Kind), t.ID, t.Epoch, t.Attempt)
}

// Tag is the task's attempt tag (storage.AttemptTag): the learn task
// writes its checkpoint's files under it.
func (t Task) Tag() string { return storage.AttemptTag(t.Epoch, t.Attempt) }

// Result is what a worker reports for a finished task.
type Result struct {
	// Outputs are the objects the task wrote (a shard; for the learn task
	// the new checkpoint's manifest and files), with size and sha256.
	Outputs []storage.Object `json:"outputs"`
	// Metrics are the task's scalars, by their fixed names (e.g.
	// "reward/mean", "time/rollout_s").
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// Samples are a few of a rollout task's chains as text, for the
	// step's TensorBoard text summaries.
	Samples []Sample `json:"samples,omitempty"`
}

// Sample is one rollout chain as text: the prompt, the chain of thought
// and the instruction the MLLM wrote.
type Sample struct {
	GroupID     int64  `json:"group_id"`
	SampleIndex int32  `json:"sample_index"`
	Scenario    string `json:"scenario"`
	Prompt      string `json:"prompt"`
	CoT         string `json:"cot"`
	Instruction string `json:"instruction"`
}

// ErrFatal marks a task error that a retry cannot fix (a NaN loss, a
// checkpoint of another model shape): the run stops at that step and keeps
// its last committed checkpoint.
var ErrFatal = errors.New("fatal")
