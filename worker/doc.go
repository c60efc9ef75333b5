// Package worker executes the tasks of a SepGRPO step, one file per task
// kind:
//
//   - rollout (rollout.go): samples the phase's train prompts
//     (TrainRows, the phase's scenario mix) with the policy version the
//     task names, through package rollout, and writes a rollout shard;
//   - reward (reward.go): scores a rollout shard's images with package
//     reward's registry (rule models in process or remote services),
//     shapes each score into the training reward (reward.Shape) and
//     writes a reward shard;
//   - learn (learn.go): reads the step's rollout and reward shards, takes
//     one learner step (package learner) and saves the next policy version
//     (package checkpoint); it reports the step's data statistics
//     (stats.go) beside the learner's.
//
// A Worker loads the policy version a task names from the run's store once
// and caches it (the rollout policy and the learner's state are kept
// apart). It reads its inputs through their recorded size and sha256 and
// writes its outputs under keys named by (run, step, task, attempt)
// (shard.go), reporting them back: the controller commits them. The same
// Worker serves embedded mode (called in process by the controller) and
// the worker processes of distributed mode.
package worker
