package pretrain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/evaluate"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/progress"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/optim"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// Stage names, in the order they run.
const (
	StageVAE      = "vae"      // the VAE of latent: vae (reconstruction)
	StageWarmup   = "warmup"   // MLLM SFT
	StageAlign    = "align"    // stage 1: connector and prepadding only
	StageDiT      = "dit"      // stage 2: DiT (and connector) flow matching
	StageFinetune = "finetune" // stage 3: high-quality fine-tune
)

// AllStages lists the stages in order.
var AllStages = []string{StageVAE, StageWarmup, StageAlign, StageDiT, StageFinetune}

// Options configure a pretraining run.
type Options struct {
	Config *config.Config
	// Dir is the run directory; stages write under Dir/pretrain/.
	Dir string
	// CheckpointEvery saves a resumable checkpoint every k steps (0: 100).
	CheckpointEvery int
	// Progress receives progress bars or lines; nil discards them.
	Progress io.Writer
	// Device to train on; the zero value means run.device.
	Device gotch.Device
	// EvalRows is the number of held-out rows each stage is evaluated on
	// (in thinking and non-thinking mode) when it completes; 0 skips eval.
	EvalRows int
	// AfterStep, if set, is called after every completed step (1-based).
	AfterStep func(stage string, step int, loss float64)
	// From is a bundle directory (a stage's final/, a shipped base, a
	// training checkpoint's bundle/) that the first stage to run starts from instead
	// of fresh weights: with the earlier stages' steps set to 0 it
	// continues pre-training, e.g. more DiT steps on a base. Stages after
	// it start from their predecessor's result as usual.
	From string
	// FromMLLM is a bundle directory whose MLLM the first stage to run
	// starts from, with the connector and the DiT fresh (of run.seed): the
	// DiT side pre-trained again without repeating the MLLM's warm-up, as
	// the connector ablations need (connector.prepad, connector.states),
	// since a DiT trained with one setting would carry it into another.
	// Only the MLLM's shape must match. Not with From.
	FromMLLM string
	// VAE is a diffusers AutoencoderKL folder (vae/ of a pipeline) that a
	// fresh bundle of model.dit.latent vae takes as its VAE instead of one
	// trained by the VAE stage (whose steps must then be 0). Its
	// architecture must be the one model.vae describes.
	VAE string
}

// StageResult summarises one stage.
type StageResult struct {
	Stage string
	Steps int
	// FirstLoss and LastLoss average the first and last tenth of the steps
	// run in this invocation (or the stage's record when it was complete).
	FirstLoss, LastLoss float64
	Resumed             int // step the stage resumed from (0: fresh)
	Skipped             bool
	Elapsed             time.Duration
	// Eval holds the per-scenario scores on held-out rows, by mode
	// ("think", "direct"), when Options.EvalRows > 0.
	Eval map[string][]reward.Summary
	// Facts holds the warm-up's answers to the text-only fact questions
	// (ScoreFacts), when Options.EvalRows > 0.
	Facts []FactScore
}

// stageState is Dir/pretrain/<stage>/state.json.
type stageState struct {
	Stage     string  `json:"stage"`
	Step      int     `json:"step"`
	Done      bool    `json:"done"`
	FirstLoss float64 `json:"first_loss"`
	LastLoss  float64 `json:"last_loss"`
}

func (o *Options) stageDir(stage string) string { return filepath.Join(o.Dir, "pretrain", stage) }

func (o *Options) stageCfg(stage string) config.Stage {
	p := o.Config.Pretrain
	switch stage {
	case StageVAE:
		return p.VAE
	case StageWarmup:
		return p.Warmup
	case StageAlign:
		return p.Align
	case StageDiT:
		return p.DiT
	default:
		return p.Finetune
	}
}

// Run runs every configured stage (steps > 0) in order, resuming a stage
// from its last checkpoint and skipping stages already complete.
func Run(ctx context.Context, o Options) ([]StageResult, error) {
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 100
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if err := o.Config.Data.CheckEvalRows("eval rows", o.EvalRows); err != nil {
		return nil, err
	}
	pl, err := model.PlacementOf(o.Config)
	if err != nil {
		return nil, err
	}
	if o.Device.Name == "" {
		o.Device = pl.Device
	}
	tok, err := model.TokenizerFor(o.Config.Model.MLLM)
	if err != nil {
		return nil, err
	}
	var results []StageResult
	err = libtorch.Run(func() error {
		if o.Config.Run.Threads > 0 {
			if err := libtorch.SetThreads(o.Config.Run.Threads); err != nil {
				return err
			}
		}
		prev := o.From // directory of the bundle the next stage starts from
		if prev != "" && o.FromMLLM != "" {
			return fmt.Errorf("pretrain: start from %s and from the MLLM of %s: choose one", prev, o.FromMLLM)
		}
		if prev != "" {
			if err := CheckFrom(o.Config, prev); err != nil {
				return err
			}
		}
		if o.FromMLLM != "" {
			if err := CheckFromMLLM(o.Config, o.FromMLLM); err != nil {
				return err
			}
		}
		if o.VAE != "" {
			if err := CheckVAE(o.Config, o.VAE); err != nil {
				return err
			}
		}
		for _, stage := range AllStages {
			sc := o.stageCfg(stage)
			final := filepath.Join(o.stageDir(stage), "final")
			if sc.Steps == 0 {
				continue
			}
			if st, err := readState(o.stageDir(stage)); err == nil && st.Done {
				r := StageResult{Stage: stage, Steps: st.Step, FirstLoss: st.FirstLoss, LastLoss: st.LastLoss, Skipped: true}
				if b, err := os.ReadFile(filepath.Join(o.stageDir(stage), "eval.json")); err == nil {
					if err := json.Unmarshal(b, &r.Eval); err != nil {
						return fmt.Errorf("pretrain stage %s: eval.json: %w", stage, err)
					}
				}
				if b, err := os.ReadFile(filepath.Join(o.stageDir(stage), "facts.json")); err == nil {
					if err := json.Unmarshal(b, &r.Facts); err != nil {
						return fmt.Errorf("pretrain stage %s: facts.json: %w", stage, err)
					}
				}
				results = append(results, r)
				prev = final
				continue
			}
			r, err := o.runStage(ctx, stage, sc, tok, prev)
			if err != nil {
				return fmt.Errorf("pretrain stage %s: %w", stage, err)
			}
			results = append(results, r)
			prev = final
		}
		return nil
	})
	return results, err
}

// CheckVAE refuses a VAE folder (Options.VAE) that c cannot use: a
// configuration without latent: vae or with VAE stage steps, or a folder
// that is not a diffusers AutoencoderKL of model.vae's architecture.
func CheckVAE(c *config.Config, dir string) error {
	if c.Model.DiT.Latent != "vae" {
		return fmt.Errorf("pretrain: --vae %s: model.dit.latent is %s, not vae", dir, c.Model.DiT.Latent)
	}
	if c.Pretrain.VAE.Steps > 0 {
		return fmt.Errorf("pretrain: --vae %s brings a trained VAE: set pretrain.vae.steps to 0 (it is %d)", dir, c.Pretrain.VAE.Steps)
	}
	if err := model.CheckBundleVAE(dir, c.Model); err != nil {
		return fmt.Errorf("pretrain: --vae: %w", err)
	}
	return nil
}

// CheckFrom refuses a start bundle (Options.From) that is missing, corrupt
// or of another model shape than c's.
func CheckFrom(c *config.Config, dir string) error {
	_, fcfg, err := model.ReadBundleManifest(dir)
	if err != nil {
		return fmt.Errorf("pretrain: start from %s: %w", dir, err)
	}
	if diff := fcfg.Model.ShapeDiff(c.Model); len(diff) > 0 {
		return fmt.Errorf("pretrain: start from %s: a bundle of another model shape (the bundle's model section vs the configuration's: %s)",
			dir, strings.Join(diff, ", "))
	}
	return nil
}

// CheckFromMLLM refuses a bundle (Options.FromMLLM) that is missing,
// corrupt or holds an MLLM of another shape than c's.
func CheckFromMLLM(c *config.Config, dir string) error {
	_, fcfg, err := model.ReadBundleManifest(dir)
	if err != nil {
		return fmt.Errorf("pretrain: start from the MLLM of %s: %w", dir, err)
	}
	diff := fcfg.Model.ShapeDiff(config.Model{MLLM: c.Model.MLLM, Connector: fcfg.Model.Connector, DiT: fcfg.Model.DiT})
	if len(diff) > 0 {
		return fmt.Errorf("pretrain: start from the MLLM of %s: an MLLM of another shape (the bundle's vs the configuration's: %s)",
			dir, strings.Join(diff, ", "))
	}
	return nil
}

func readState(dir string) (stageState, error) {
	var st stageState
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(b, &st)
	return st, err
}

// writeJSON writes v to path atomically.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// trainable returns the parameters a stage updates, after freezing the rest.
func trainable(b *model.Bundle, stage string) []*ts.Tensor {
	for _, p := range []*model.Params{b.MLLM.P, b.Connector.P, b.DiT.P} {
		p.SetRequiresGrad(false)
	}
	if b.VAE != nil {
		b.VAE.P.SetRequiresGrad(false)
	}
	var on []*model.Params
	switch stage {
	case StageVAE:
		on = []*model.Params{b.VAE.P}
	case StageWarmup:
		on = []*model.Params{b.MLLM.P}
	case StageAlign:
		on = []*model.Params{b.Connector.P}
	default:
		on = []*model.Params{b.Connector.P, b.DiT.P}
	}
	var ps []*ts.Tensor
	for _, p := range on {
		p.SetRequiresGrad(true)
		ps = append(ps, p.Tensors()...)
	}
	return ps
}

// rowsFor returns the rows of one step: a deterministic slice of the train
// split. The fine-tune stage keeps the cleaner rows (at most three objects,
// and no reflection rows, whose targets repeat the composition ones).
func (o *Options) rowsFor(stage string, step, batch int) ([]datasets.Row, error) {
	size := o.Config.Model.DiT.ImageSize
	n := o.Config.Data.TrainSize
	if n <= 0 {
		n = 1 << 30
	}
	opts := datasets.Options{Seed: uint64(o.Config.Run.Seed), Split: datasets.Train, Size: size}
	if stage == StageFinetune {
		opts.Scenarios = []string{datasets.Composition, datasets.Reasoning, datasets.Text, datasets.Editing}
	}
	// Each step owns a window of stride·batch row indices; the fine-tune
	// filter keeps the first batch rows of its window that pass.
	stride := 1
	if stage == StageFinetune {
		stride = 4
	}
	var rows []datasets.Row
	for i := 0; i < stride*batch && len(rows) < batch; i++ {
		r, err := datasets.GenerateRow(opts, (step*stride*batch+i)%n)
		if err != nil {
			return nil, err
		}
		if stage == StageFinetune && len(r.Spec.Scene.Objects) > 3 {
			continue
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("step %d: no rows pass the %s filter", step, stage)
	}
	return rows, nil
}

// stepRows returns the rows of one step: rowsFor's image rows, and for the
// warm-up the share sc.Facts of the batch as text-only fact questions
// (datasets.FactQuestions), drawn uniformly from (seed, step) and placed
// after the image rows.
func (o *Options) stepRows(stage string, sc config.Stage, step int) ([]datasets.Row, error) {
	nf := 0
	if stage == StageWarmup {
		nf = factsInBatch(sc.Facts, sc.Batch)
	}
	rows, err := o.rowsFor(stage, step, sc.Batch-nf)
	if err != nil || nf == 0 {
		return rows, err
	}
	qs := datasets.FactQuestions()
	rng := rand.New(rand.NewPCG(uint64(o.Config.Run.Seed), uint64(step)<<8|0xfa))
	for range nf {
		rows = append(rows, qs[rng.IntN(len(qs))])
	}
	return rows, nil
}

// factsInBatch is the number of fact questions in a warm-up batch: the
// share rounded, and at least one image row.
func factsInBatch(share float64, batch int) int {
	return min(int(math.Round(share*float64(batch))), batch-1)
}

func (o *Options) runStage(ctx context.Context, stage string, sc config.Stage, tok tokenizer.Tokenizer, prev string) (StageResult, error) {
	start := time.Now()
	dir := o.stageDir(stage)
	ckpt := filepath.Join(dir, "ckpt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return StageResult{}, err
	}
	res := StageResult{Stage: stage, Steps: sc.Steps}

	// Start from this stage's checkpoint, else the previous stage's result,
	// else fresh weights.
	// The checkpoint's manifest (written last) says which step it holds. A
	// kill between the two renames of a checkpoint swap leaves only the
	// previous checkpoint, as ckpt.old: it is still whole, so resume from it.
	var b *model.Bundle
	var err error
	step := 0
	if _, err := os.Stat(filepath.Join(ckpt, "manifest.json")); err != nil {
		if _, oldErr := os.Stat(filepath.Join(ckpt+".old", "manifest.json")); oldErr == nil {
			if err := os.Rename(ckpt+".old", ckpt); err != nil {
				return res, err
			}
		}
	}
	_, ckptErr := os.Stat(filepath.Join(ckpt, "manifest.json"))
	switch {
	case ckptErr == nil:
		var man *model.Manifest
		if b, man, err = model.LoadBundle(ckpt, o.Device); err != nil {
			return res, err
		}
		step = man.Step
		res.Resumed = step
	case prev != "":
		if b, _, err = model.LoadBundle(prev, o.Device); err != nil {
			return res, fmt.Errorf("start from %s: %w", prev, err)
		}
	default:
		if b, err = model.NewBundle(o.Config, tok, o.Device, uint64(o.Config.Run.Seed)); err != nil {
			return res, err
		}
		if o.FromMLLM != "" {
			if err := model.LoadBundleMLLM(o.FromMLLM, b.MLLM.P); err != nil {
				b.Drop()
				return res, fmt.Errorf("start from the MLLM of %s: %w", o.FromMLLM, err)
			}
		}
		if o.VAE != "" {
			b.VAE.Drop()
			if b.VAE, err = model.LoadBundleVAE(o.VAE, o.Config.Model, o.Device); err != nil {
				b.Drop()
				return res, err
			}
		}
	}
	defer b.Drop()
	dt, err := model.ParseDType(o.Config.Model.DType, o.Device)
	if err != nil {
		return res, err
	}
	b.ToDType(dt)
	if diff := b.Model.ShapeDiff(o.Config.Model); len(diff) > 0 {
		return res, fmt.Errorf("a bundle of another model shape than the configuration's (%s)", strings.Join(diff, ", "))
	}

	params := trainable(b, stage)
	oc := o.Config.Optim
	opt := optim.New(params, optim.Config{Beta1: oc.Beta1, Beta2: oc.Beta2, Eps: oc.Eps, WeightDecay: oc.WeightDecay})
	defer opt.Drop()
	names := optimNames(opt)
	if res.Resumed > 0 {
		st, _ := opt.State()
		if _, err := model.LoadTensors(filepath.Join(ckpt, "optim.safetensors"), names, tensorsByName(st, names)); err != nil {
			return res, err
		}
		opt.SetStep(int64(step))
		opt.SyncParams()
	}
	lr := sc.LR
	if lr == 0 {
		lr = oc.LR
	}
	imgTokens := ImageTokens(o.Config.Model.MLLM, o.Config.Model.DiT.ImageSize)
	metrics, err := os.OpenFile(filepath.Join(dir, "metrics.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return res, err
	}
	defer metrics.Close()

	bar := progress.New(o.Progress, "pretrain "+stage, sc.Steps-step, 5*time.Second)
	var losses []float64
	var rss float64
	const rssEvery = 25
	for ; step < sc.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		rows, err := o.stepRows(stage, sc, step)
		if err != nil {
			return res, err
		}
		batch := make([]Example, len(rows))
		for i := range rows {
			if stage == StageVAE {
				break // the VAE reads the target images alone
			}
			batch[i], err = stageExample(stage, sc, tok, &rows[i], imgTokens, step+i)
			if err != nil {
				return res, err
			}
		}
		var loss *ts.Tensor
		rng := rand.New(rand.NewPCG(uint64(o.Config.Run.Seed), uint64(step)<<8|uint64(len(stage))))
		// With optim.activation_checkpointing the trained model records its
		// layers into rec, which back-propagates through them after loss.
		var rec *model.Recompute
		ac := o.Config.Optim.ActivationCheckpointing
		switch stage {
		case StageVAE:
			loss, err = VAELoss(b.VAE, targetImages(rows), o.Config.Model.DiT.ImageSize, rng, o.Device)
		case StageWarmup:
			m := b.MLLM
			if ac.MLLM {
				rec = new(model.Recompute)
				m = m.Recording(rec)
			}
			loss, err = SFTLoss(m, batch, o.Config.Model.DiT.ImageSize, o.Device)
		default:
			fb := b
			if ac.DiT {
				rec = new(model.Recompute)
				c := *b
				c.DiT = b.DiT.Recording(rec)
				fb = &c
			}
			loss, err = FlowLoss(fb, batch, o.Config.Model.DiT.ImageSize, rng, o.Device)
		}
		if err != nil {
			rec.Drop()
			return res, err
		}
		opt.ZeroGrad()
		loss.MustBackward()
		rec.Backward()
		gradNorm := opt.ClipGradNorm(oc.GradClip)
		cur := optim.ScheduledLR(lr, step, sc.Steps, oc.WarmupSteps, true)
		opt.Step(cur)
		l := loss.Float64Values(true)[0]
		if math.IsNaN(l) || math.IsInf(l, 0) {
			return res, fmt.Errorf("step %d: loss is %g", step, l)
		}
		losses = append(losses, l)
		if step%rssEvery == 0 {
			rss = float64(libtorch.RSS()) / (1 << 20) // a GC each time: not every step
		}
		fmt.Fprintf(metrics, `{"stage":%q,"step":%d,"loss":%.6g,"lr":%.6g,"grad_norm":%.6g,"live_tensors":%d,"rss_mib":%.1f,"time":%q}`+"\n",
			stage, step+1, l, cur, gradNorm, libtorch.LiveTensors(), rss, time.Now().UTC().Format(time.RFC3339))
		bar.Step(fmt.Sprintf("loss %.4f", l))
		if o.AfterStep != nil {
			o.AfterStep(stage, step+1, l)
		}
		if (step+1)%o.CheckpointEvery == 0 && step+1 < sc.Steps {
			if err := o.checkpoint(b, opt, names, ckpt, step+1); err != nil {
				return res, err
			}
			if err := writeEvents(o.Dir, dir, stage, slices.Index(AllStages, stage)); err != nil {
				return res, err
			}
		}
	}
	if err := writeEvents(o.Dir, dir, stage, slices.Index(AllStages, stage)); err != nil {
		return res, err
	}
	res.FirstLoss, res.LastLoss = windowMeans(losses)
	if stage == StageVAE {
		// Normalise the latents on a batch the stage did not train on.
		rows, err := o.rowsFor(stage, sc.Steps, sc.Batch)
		if err != nil {
			return res, err
		}
		if err := calibrateVAE(b.VAE, targetImages(rows), o.Config.Model.DiT.ImageSize, o.Device); err != nil {
			return res, err
		}
	}
	if err := b.Save(filepath.Join(dir, "final"), sc.Steps, o.Config); err != nil {
		return res, err
	}
	if o.EvalRows > 0 && stage != StageVAE { // nothing draws images yet
		if res.Eval, err = o.evaluate(ctx, b, dir); err != nil {
			return res, fmt.Errorf("eval: %w", err)
		}
		if stage == StageWarmup {
			if res.Facts, err = ScoreFacts(b.MLLM, tok, o.Config.Sampling.MaxNewTokens); err != nil {
				return res, err
			}
			if err := writeJSON(filepath.Join(dir, "facts.json"), res.Facts); err != nil {
				return res, err
			}
		}
	}
	if err := writeJSON(filepath.Join(dir, "state.json"), stageState{Stage: stage, Step: sc.Steps, Done: true, FirstLoss: res.FirstLoss, LastLoss: res.LastLoss}); err != nil {
		return res, err
	}
	os.RemoveAll(ckpt)
	res.Elapsed = time.Since(start)
	return res, nil
}

// checkpoint saves the bundle and the optimiser state into a temporary
// directory and swaps it in (ckpt → ckpt.old, tmp → ckpt, remove ckpt.old);
// the bundle's manifest names the step. A kill at any point leaves the
// previous or the new checkpoint whole, under ckpt or ckpt.old.
func (o *Options) checkpoint(b *model.Bundle, opt *optim.AdamW, names []string, ckpt string, step int) error {
	tmp := ckpt + ".tmp"
	os.RemoveAll(tmp)
	if err := b.Save(tmp, step, o.Config); err != nil {
		return err
	}
	tensors, _ := opt.State()
	if err := model.SaveTensors(filepath.Join(tmp, "optim.safetensors"), names, tensorsByName(tensors, names), map[string]string{"step": fmt.Sprint(step)}); err != nil {
		return err
	}
	old := ckpt + ".old"
	os.RemoveAll(old)
	if err := os.Rename(ckpt, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, ckpt); err != nil {
		return err
	}
	os.RemoveAll(old)
	return nil
}

func optimNames(opt *optim.AdamW) []string {
	st, _ := opt.State()
	names := make([]string, 0, len(st))
	for k := range st {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func tensorsByName(m map[string]*ts.Tensor, names []string) []*ts.Tensor {
	out := make([]*ts.Tensor, len(names))
	for i, n := range names {
		out[i] = m[n]
	}
	return out
}

// windowMeans averages the first and the last tenth (at least one value).
func windowMeans(x []float64) (first, last float64) {
	if len(x) == 0 {
		return 0, 0
	}
	w := max(1, len(x)/10)
	for i := 0; i < w; i++ {
		first += x[i]
		last += x[len(x)-1-i]
	}
	return first / float64(w), last / float64(w)
}

// evaluate scores the bundle on the first EvalRows rows of the eval split in
// both modes, writes eval.json and one image grid per mode into dir.
func (o *Options) evaluate(ctx context.Context, b *model.Bundle, dir string) (map[string][]reward.Summary, error) {
	rows, err := datasets.Generate(datasets.Options{Seed: uint64(o.Config.Run.Seed), Split: datasets.Eval, Size: o.Config.Model.DiT.ImageSize}, 0, o.EvalRows)
	if err != nil {
		return nil, err
	}
	out, _, err := evaluate.Run(ctx, b, reward.Builtin(o.Config.Reward.Weights), evaluate.Options{
		Rows: rows, Sampling: o.Config.Sampling, Seed: uint64(o.Config.Run.Seed), GridDir: dir, GridRows: 10, Device: o.Device, Progress: o.Progress,
	})
	if err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(dir, "eval.json"), out); err != nil {
		return nil, err
	}
	return out, nil
}

// WriteStageTable prints the per-stage evaluation like the paper's Table 6:
// one line per stage and mode, one column per scenario; then the
// warm-up's answers to the fact questions, by split of the fact table.
func WriteStageTable(w io.Writer, res []StageResult) error {
	entries := make([]evaluate.Entry, len(res))
	for i, r := range res {
		entries[i] = evaluate.Entry{Label: r.Stage, Scores: r.Eval}
	}
	if err := evaluate.WriteTable(w, entries); err != nil {
		return err
	}
	for _, r := range res {
		if len(r.Facts) > 0 {
			fmt.Fprintf(w, "\n%s: text-only fact questions, greedy answer right:\n", r.Stage)
			WriteFactScores(w, r.Facts)
		}
	}
	return nil
}
