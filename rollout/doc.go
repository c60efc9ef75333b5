// Package rollout is the think-then-draw pipeline and the rollout worker
// built on it.
//
// [ThinkDraw] is the one pipeline: the MLLM writes a reply to each prompt
// (sampled or greedy, or given), the VGI-refine states of what it wrote go
// through the connector, and the DiT draws — or, with a reference image,
// edits — the image by ODE sampling with classifier-free guidance.
// Training rollouts, eval (package evaluate) and thinkgen generate all
// draw through it; [Prompt] builds their chat prompts, and replies are
// read back with tokenizer.SplitReply.
//
// For a rollout task ([Request]) the worker samples a group of
// Settings.Group samples per prompt and returns one Arrow row each:
//
//   - [MLLM] (stage 4, mllm-grpo) samples Group chains of thought per
//     prompt with their tokens and sampling log-probabilities, drawn by
//     ThinkDraw from one initial noise per group;
//   - [DiT] (stage 5, dit-grpo) has the frozen MLLM write one instruction
//     per prompt and samples Group SDE image trajectories from it, with
//     every latent, per-step mean and log-probability.
//
// A model bundle carries weights and their shape only: how a task samples
// travels in Request.Settings, which [SettingsFor] resolves from the run
// configuration. Every random draw is a pure function of the task's seed,
// so a re-run task reproduces its rows bit for bit.
package rollout
