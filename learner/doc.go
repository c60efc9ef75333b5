// Package learner updates the policy: group-relative advantages, the GRPO
// loss of the MLLM (clipped per-token ratio, k3 KL to a frozen reference)
// and the FlowGRPO loss of the DiT (per-step Gaussian log-probability ratio,
// KL on the means), AdamW, and the checkpoints of each new policy version.
package learner
