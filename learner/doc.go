// Package learner updates the policy of a SepGRPO step: group-relative
// advantages, the GRPO loss of the MLLM (stage 4), the FlowGRPO and
// advantage-weighted flow-matching losses of the DiT (stage 5), and the
// AdamW steps that apply them. docs/algorithms.md has the formulas.
//
// # Advantages
//
// [GroupAdvantages] normalises rewards within each group of samples drawn
// for one prompt, with the unbiased std (GRPO, as EasyR1) or the population
// std (FlowGRPO, as flow_grpo); [AdvantageRows] does the same over reward
// shard rows and returns advantage shard rows. Groups whose rewards are all
// equal carry no signal and get advantage 0.
//
// # Losses
//
// [GRPOLoss] (MLLM: clipped per-token ratio, k3 KL to the frozen
// reference, token-mean over a mini-batch), [FlowGRPOLoss] (DiT: clipped
// ratio of one SDE step's Gaussian log-probabilities, KL on the step's
// means) and [AWMLoss] (DiT: the flow-matching error on the samples' final
// images weighted by their advantages, squared velocity difference to the
// reference) return a differentiable scalar loss owned by the caller and
// float64 statistics for the step's metrics. They run on gotch tensors and
// must be called inside libtorch.Run; they reject malformed input with an
// error naming the tensor, and report a NaN or infinite term with an error
// wrapping [ErrNonFinite] that names it.
//
// # The update
//
// A [Learner] holds the policy being trained, the frozen reference (the
// run's version 0) and one AdamW per phase: over the MLLM, and over the
// connector and the DiT. [Learner.Step] joins a step's rollout and reward
// rows, computes the advantages and applies the phase's loss: for GRPO,
// grpo.mini_batches optimiser steps per pass over grpo.epochs passes; for
// FlowGRPO, one optimiser step per mini-batch with the gradient
// accumulated over the trained SDE steps ([TrainedSteps], or the window of
// rollout.SDEWindow); for AWM, over as many fresh draws. It freezes the
// networks the phase does not train and returns the step's metrics
// (adv/*, loss/*, learn/*; docs/sepgrpo.md). A non-finite loss or gradient
// fails with an error wrapping [ErrFatal]. Saving the new version is the
// caller's (package checkpoint).
//
// # Data-parallel ranks
//
// With [Learner.SetGroup] (a dist.Group) the learner is one of N ranks:
// each trains its 1/N share of every mini-batch, the losses are normalised
// over all ranks' tokens or samples, and the gradients are all-reduced
// before the clip and the update, so every rank takes the step a single
// learner takes on the whole mini-batch.
package learner
