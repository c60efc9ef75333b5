package main

import (
	"context"
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/pretrain"
	"github.com/thinkgen/thinkgen/storage"
)

func pretrainCommand() *command {
	return &command{
		name:  "pretrain",
		usage: "[flags]",
		short: "run the supervised stages (MLLM warm-up, stages 1-3)",
		long: `Pretrain runs the supervised stages of the configuration's pretrain section
in order: the MLLM warm-up (SFT on ShapeWorld's chat format, reasoning chains
in <think>), stage 1 (alignment: only the VGI-refine connector trains), stage
2 (DiT rectified-flow pre-training) and stage 3 (fine-tune on cleaner rows).
A stage with steps: 0 is skipped.

Each stage checkpoints every --checkpoint-every steps into
<store>/runs/<run>/pretrain/<stage>/ckpt and leaves its result in .../final;
run the same command again after a kill and it resumes from the last
checkpoint (completed stages are skipped). Per-step metrics go to
.../metrics.jsonl, and at each checkpoint and stage end to TensorBoard
event files in <store>/runs/<run>/pretrain/tensorboard/ (one per stage,
each step once even after a resume):
  tensorboard --logdir <store>/runs/<run>/pretrain/tensorboard
The run name is run.name, or "pretrain-<config name>".

--from DIR starts the first stage that runs from a bundle instead of fresh
weights, to continue pre-training: e.g. more DiT steps on the shipped base,
  thinkgen pretrain --config configs/tiny.yaml --run-dir more --from base/tiny \
    --set pretrain.warmup.steps=0 --set pretrain.align.steps=0 \
    --set pretrain.dit.steps=2000 --set pretrain.dit.lr=5e-4

--from-mllm DIR starts from DIR's MLLM with a fresh connector and DiT: the
DiT side pre-trained again for a connector ablation (docs/pretrain.md),
without repeating the warm-up; only the MLLM's shape must match, e.g.
  thinkgen pretrain --config configs/tiny.yaml --run-dir noprepad \
    --from-mllm base/tiny --set pretrain.warmup.steps=0 --set model.connector.prepad=0`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			every := fs.Int("checkpoint-every", 100, "steps between resumable checkpoints")
			evalRows := fs.Int("eval-rows", 50, "held-out rows each stage is evaluated on when it completes (0: none)")
			from := fs.String("from", "", "bundle directory the first stage to run starts from (a stage's final/, a base, a checkpoint's bundle/), to continue pre-training; set the earlier stages' steps to 0")
			fromMLLM := fs.String("from-mllm", "", "bundle directory whose MLLM the first stage to run starts from, with a fresh connector and DiT (for connector ablations); not with --from")
			vae := fs.String("vae", "", "diffusers AutoencoderKL folder (a pipeline's vae/) a fresh bundle of model.dit.latent vae takes instead of training one (pretrain.vae.steps 0)")
			return func(ctx context.Context, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if *from != "" && *fromMLLM != "" {
					return usagef("--from and --from-mllm: choose one")
				}
				if *every <= 0 {
					return usagef("--checkpoint-every must be positive, got %d", *every)
				}
				cfg, err := rf.load()
				if err != nil {
					return err
				}
				loc, err := storage.ParseURI(cfg.Storage.URI)
				if err != nil {
					return &usageError{err}
				}
				if loc.IsS3() {
					return usagef("pretrain writes to a local store for now; %s is an S3 store", cfg.Storage.URI)
				}
				name := cfg.Run.Name
				if name == "" {
					name = "pretrain-" + rf.configName()
				}
				dir := filepath.Join(loc.Dir, "runs", name)
				fmt.Fprintf(e.stderr, "pretrain: run %s in %s\n", name, dir)
				if *evalRows < 0 {
					return usagef("--eval-rows must not be negative, got %d", *evalRows)
				}
				if *from != "" {
					if err := pretrain.CheckFrom(cfg, *from); err != nil {
						return &usageError{fmt.Errorf("--from: %w", err)}
					}
				}
				if *fromMLLM != "" {
					if err := pretrain.CheckFromMLLM(cfg, *fromMLLM); err != nil {
						return &usageError{fmt.Errorf("--from-mllm: %w", err)}
					}
				}
				if *vae != "" {
					if err := pretrain.CheckVAE(cfg, *vae); err != nil {
						return &usageError{err}
					}
				}
				res, err := pretrain.Run(ctx, pretrain.Options{Config: cfg, Dir: dir, CheckpointEvery: *every, EvalRows: *evalRows, Progress: e.stderr,
					From: *from, FromMLLM: *fromMLLM, VAE: *vae})
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "stage\tsteps\tfirst loss\tlast loss\tnote")
				for _, r := range res {
					note := r.Elapsed.Round(time.Second).String()
					switch {
					case r.Skipped:
						note = "complete (skipped)"
					case r.Resumed > 0:
						note += fmt.Sprintf(", resumed at step %d", r.Resumed)
					}
					fmt.Fprintf(w, "%s\t%d\t%.4f\t%.4f\t%s\n", r.Stage, r.Steps, r.FirstLoss, r.LastLoss, note)
				}
				if err := w.Flush(); err != nil {
					return err
				}
				if *evalRows > 0 {
					fmt.Fprintf(e.stdout, "\nheld-out scores (%d eval rows; mean partial score, strict accuracy in brackets):\n", *evalRows)
					return pretrain.WriteStageTable(e.stdout, res)
				}
				return nil
			}
		},
	}
}
