// Package learner updates the policy: group-relative advantages, the GRPO
// loss of the MLLM (clipped per-token ratio, k3 KL to a frozen reference)
// and the FlowGRPO loss of the DiT (per-step Gaussian log-probability ratio,
// KL on the means), AdamW, and the checkpoints of each new policy version.
//
// # Advantages
//
// [GroupAdvantages] normalises rewards within each group of samples drawn
// for one prompt; [AdvantageRows] does the same over reward shard rows and
// returns advantage shard rows. Groups whose rewards are all equal carry no
// signal and get advantage 0.
//
// # Losses
//
// [GRPOLoss] (MLLM, token-mean over a mini-batch) and [FlowGRPOLoss] (DiT,
// one SDE step of a batch of trajectories) return a differentiable scalar
// loss owned by the caller and float64 statistics for the step's metrics.
// Both run on gotch tensors and must be called inside libtorch.Run; both
// reject malformed input with an error naming the tensor, and report a
// NaN or infinite term with an error wrapping [ErrNonFinite] that names it.
package learner
