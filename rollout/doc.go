// Package rollout is the rollout worker: for a task it loads the policy
// version the task names, samples G chains of thought per prompt with their
// VGI-refine states (mllm-grpo phase) or G SDE image trajectories per prompt
// with per-step means and log-probabilities (dit-grpo phase), and writes one
// Arrow shard of rollout rows.
package rollout
