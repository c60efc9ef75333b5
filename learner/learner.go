package learner

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/dist"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/optim"
	"github.com/thinkgen/thinkgen/rollout"
	"github.com/thinkgen/thinkgen/schedule"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/task"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// ErrFatal marks errors a retry cannot fix; it is task.ErrFatal.
var ErrFatal = task.ErrFatal

// Learner holds a policy being trained, the frozen reference it is kept
// close to (the run's version 0), and one AdamW per phase: over the MLLM
// (stage 4) and over the connector and the DiT (stage 5).
type Learner struct {
	cfg     *config.Config
	policy  *model.Bundle
	ref     *model.Bundle
	version int
	mllm    *phaseOpt    // over the MLLM
	dit     *phaseOpt    // over the connector and the DiT
	group   *dist.Group  // data-parallel ranks (SetGroup); nil for one learner
	dev     gotch.Device // the policy's device: every input is made there
	// sharedRef says which of the reference's models are views of the
	// policy's (LoRA: the base without the adapters), which Close leaves
	// to the policy.
	sharedRef struct{ mllm, dit bool }
	// shardedAs is the rank and group size of the optimisers' ZeRO-1
	// shards (when mllm.owner is set).
	shardedAs [2]int
	// lossScale is float16's dynamic loss scale (nil otherwise); skipped
	// counts the optimiser steps it skipped on overflow.
	lossScale *optim.LossScale
	skipped   int
}

// New takes ownership of policy (version v) and ref, both already in the
// run's model.dtype: the optimisers keep float32 masters of half-precision
// weights, and a float16 policy trains with a dynamic loss scale. It must
// run inside libtorch.Run.
func New(cfg *config.Config, policy, ref *model.Bundle, v int) *Learner {
	l := &Learner{cfg: cfg, policy: policy, version: v, dev: policy.MLLM.P.Device(), lossScale: newLossScale(policy.MLLM.P.DType())}
	l.ref = l.shareRef(ref)
	for _, p := range []*model.Params{l.ref.MLLM.P, l.ref.Connector.P, l.ref.DiT.P} {
		p.SetRequiresGrad(false)
	}
	l.mllm = &phaseOpt{name: "mllm", params: paramsOf(l.trained(config.PhaseMLLMGRPO))}
	l.dit = &phaseOpt{name: "dit", params: paramsOf(l.trained(config.PhaseDiTGRPO))}
	for _, p := range l.opts() {
		p.opt = optim.New(p.params, l.optimConfig())
	}
	return l
}

// shareRef returns the reference bundle: ref, except that a model trained
// through LoRA adapters (lora.mllm, lora.dit) has as its reference the
// policy's own weights without the adapters — no second copy; ref's copy
// of it is dropped. ref may be nil when both models have adapters.
func (l *Learner) shareRef(ref *model.Bundle) *model.Bundle {
	if ref == nil {
		ref = &model.Bundle{Model: l.policy.Model, Tok: l.policy.Tok}
	}
	p := l.policy
	if l.cfg.LoRA.MLLM.Rank > 0 {
		if ref.MLLM != nil {
			ref.MLLM.Drop()
		}
		ref.MLLM, l.sharedRef.mllm = p.MLLM.WithoutAdapters(), true
	}
	if l.cfg.LoRA.DiT.Rank > 0 {
		if ref.DiT != nil {
			ref.DiT.Drop()
			ref.Connector.P.Drop()
		}
		// The connector is not trained under DiT adapters.
		ref.DiT, ref.Connector, l.sharedRef.dit = p.DiT.WithoutAdapters(), p.Connector, true
	}
	return ref
}

// trained is the parameters phase trains: a model's adapters when it has
// LoRA, else its weights (and, for the DiT phase, the connector's).
func (l *Learner) trained(phase config.Phase) []*model.Params {
	p := l.policy
	if phase == config.PhaseMLLMGRPO {
		if l.cfg.LoRA.MLLM.Rank > 0 {
			return []*model.Params{p.MLLM.Adapters.P}
		}
		return []*model.Params{p.MLLM.P}
	}
	if l.cfg.LoRA.DiT.Rank > 0 {
		return []*model.Params{p.DiT.Adapters.P}
	}
	return []*model.Params{p.Connector.P, p.DiT.P}
}

func paramsOf(ps []*model.Params) []*ts.Tensor {
	var out []*ts.Tensor
	for _, p := range ps {
		out = append(out, p.Tensors()...)
	}
	return out
}

// optimConfig is AdamW's configuration from the run's.
func (l *Learner) optimConfig() optim.Config {
	o := l.cfg.Optim
	return optim.Config{Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, WeightDecay: o.WeightDecay}
}

// Policy is the bundle being trained.
func (l *Learner) Policy() *model.Bundle { return l.policy }

// Ref is the frozen reference bundle (the run's version 0).
func (l *Learner) Ref() *model.Bundle { return l.ref }

// Version is the policy version the learner holds.
func (l *Learner) Version() int { return l.version }

// SetVersion records that the policy was saved as version v.
func (l *Learner) SetVersion(v int) { l.version = v }

// LoadOptimizers restores the optimiser states saved in the fetched
// version directory dir (none for version 0 or a phase not run yet),
// re-sharding them when they were saved by another number of ranks.
func (l *Learner) LoadOptimizers(dir string) error {
	for _, p := range l.opts() {
		if _, err := checkpoint.LoadOptimizer(dir, p.name, p.opt); err != nil {
			return err
		}
	}
	return nil
}

// Close frees the models and optimiser states.
func (l *Learner) Close() {
	l.mllm.opt.Drop()
	l.dit.opt.Drop()
	if !l.sharedRef.mllm {
		l.ref.MLLM.Drop()
	}
	if !l.sharedRef.dit {
		l.ref.Connector.P.Drop()
		l.ref.DiT.Drop()
	}
	if l.ref.VAE != nil {
		l.ref.VAE.Drop()
	}
	l.policy.Drop()
}

// freeze makes only the phase's parameters require gradients.
func (l *Learner) freeze(phase config.Phase) {
	p := l.policy
	all := []*model.Params{p.MLLM.P, p.Connector.P, p.DiT.P}
	for _, a := range []*model.LoRA{p.MLLM.Adapters, p.DiT.Adapters} {
		if a != nil {
			all = append(all, a.P)
		}
	}
	for _, ps := range all {
		ps.SetRequiresGrad(false)
	}
	for _, ps := range l.trained(phase) {
		ps.SetRequiresGrad(true)
	}
}

// sample is one rollout row with its reward and advantage.
type sample struct {
	row  *shards.RolloutRow
	adv  float64
	prox []float32 // decoupled PPO's proximal log-probs of the tokens, or nil
}

// join pairs rollout rows with their rewards by (group, sample index) and
// computes group-relative advantages; it fails when a row has no reward or
// a reward no row.
func join(rolls []shards.RolloutRow, rews []shards.RewardRow, unbiased bool, eps float64) ([]sample, AdvantageStats, error) {
	type key struct {
		g int64
		s int32
	}
	byKey := make(map[key]float64, len(rews))
	for _, r := range rews {
		byKey[key{r.GroupID, r.SampleIndex}] = float64(r.Reward)
	}
	if len(byKey) != len(rolls) {
		return nil, AdvantageStats{}, fmt.Errorf("learner: %d rollout rows but %d rewards", len(rolls), len(byKey))
	}
	rewards := make([]float64, len(rolls))
	groups := make([]int64, len(rolls))
	for i, r := range rolls {
		v, ok := byKey[key{r.GroupID, r.SampleIndex}]
		if !ok {
			return nil, AdvantageStats{}, fmt.Errorf("learner: no reward for group %d sample %d (row %s)", r.GroupID, r.SampleIndex, r.RowID)
		}
		rewards[i], groups[i] = v, r.GroupID
	}
	adv, _, st, err := GroupAdvantages(rewards, groups, unbiased, eps)
	if err != nil {
		return nil, st, err
	}
	out := make([]sample, len(rolls))
	for i := range rolls {
		out[i] = sample{row: &rolls[i], adv: adv[i]}
	}
	// A fixed order (group, sample) whatever order the shards came in.
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].row, out[j].row
		if a.GroupID != b.GroupID {
			return a.GroupID < b.GroupID
		}
		return a.SampleIndex < b.SampleIndex
	})
	return out, st, nil
}

// Step updates the policy on one step's rollouts and rewards with the
// phase's loss and returns the step's metrics. seed drives the choice of
// trained timesteps (FlowGRPO). It must run inside libtorch.Run. A NaN or
// infinite loss fails with an error wrapping ErrFatal and ErrNonFinite
// that names the term; the policy is then unusable (reload it).
func (l *Learner) Step(phase config.Phase, seed uint64, rolls []shards.RolloutRow, rews []shards.RewardRow) (map[string]float64, error) {
	return l.StepContext(context.Background(), phase, seed, rolls, rews)
}

// StepContext is Step that stops before its next mini-batch once ctx ends
// and returns ctx's cause: a worker whose task's lease may have ended stops
// updating. The policy may then be partly updated (reload it). The ranks of
// a group must see their ctx end together (they share the task's).
func (l *Learner) StepContext(ctx context.Context, phase config.Phase, seed uint64, rolls []shards.RolloutRow, rews []shards.RewardRow) (map[string]float64, error) {
	l.freeze(phase)
	skipped := l.skipped
	var m map[string]float64
	var err error
	if phase == config.PhaseMLLMGRPO {
		m, err = l.grpoStep(ctx, rolls, rews)
	} else {
		m, err = l.flowStep(ctx, seed, rolls, rews)
	}
	l.scaleMetrics(m, skipped)
	return m, err
}

// stopped returns ctx's cause once it ended, wrapped as the learner's.
func stopped(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	return fmt.Errorf("learner step stopped: %w", context.Cause(ctx))
}

// phaseLR is the learning rate of phase's step that trains version
// l.Version()+1 (the step of that number in the run's schedule): base
// (optim.lr when 0) after the phase's warm-up and decay
// (optim.ScheduledLR over the phase's steps in the run, counted in order
// across blocks and cycles).
func (l *Learner) phaseLR(phase config.Phase, base float64, warmup int, decay string) (float64, error) {
	if base == 0 {
		base = l.cfg.Optim.LR
	}
	if warmup == 0 && decay != config.DecayCosine {
		return base, nil
	}
	plan, err := schedule.Plan(l.cfg)
	if err != nil {
		return 0, fmt.Errorf("%s learning rate: %w", phase, err)
	}
	step := l.version + 1
	i, n := -1, 0
	for _, p := range plan {
		if p.Phase != phase {
			continue
		}
		if p.Step == step {
			i = n
		}
		n++
	}
	if i < 0 {
		return 0, fmt.Errorf("%w: %s learning rate: step %d (policy version %d) is not a %s step of the schedule", ErrFatal, phase, step, l.version, phase)
	}
	return optim.ScheduledLR(base, i, n, warmup, decay == config.DecayCosine), nil
}

func advMetrics(m map[string]float64, st AdvantageStats) {
	m["adv/mean"], m["adv/std"], m["adv/min"], m["adv/max"] = st.Mean, st.Std, st.Min, st.Max
	m["adv/zero_std_ratio"] = st.ZeroStdRatio
}

// meanFigures averages a step's per-mini-batch figures: add each
// mini-batch's, then into sets each figure's mean.
type meanFigures struct {
	sum map[string]float64
	n   float64
}

func (f *meanFigures) add(figs map[string]float64) {
	if f.sum == nil {
		f.sum = make(map[string]float64, len(figs))
	}
	for k, v := range figs {
		f.sum[k] += v
	}
	f.n++
}

func (f *meanFigures) into(m map[string]float64) {
	for k, v := range f.sum {
		m[k] = v / f.n
	}
}

// chunks splits n items into k consecutive mini-batches.
func chunks(n, k int) [][2]int {
	k = max(1, min(k, n))
	out := make([][2]int, k)
	for i := range out {
		out[i] = [2]int{i * n / k, (i + 1) * n / k}
	}
	return out
}

func (l *Learner) grpoStep(ctx context.Context, rolls []shards.RolloutRow, rews []shards.RewardRow) (map[string]float64, error) {
	g := l.cfg.GRPO
	samples, ast, err := join(rolls, rews, true, 1e-6)
	if err != nil {
		return nil, err
	}
	l.balanceRanks(samples, g.MiniBatches)
	m := map[string]float64{}
	advMetrics(m, ast)
	lr, err := l.phaseLR(config.PhaseMLLMGRPO, g.LR, g.WarmupSteps, g.Decay)
	if err != nil {
		return nil, err
	}
	cfg := GRPOConfig{EpsLow: g.EpsLow, EpsHigh: g.EpsHigh, Beta: g.Beta, ClipRatioC: g.ClipRatioC}
	decoupled := g.Proximal == config.ProximalPrevious
	if decoupled {
		cfg.WeightCap = g.BehaviourWeightCap
		if err := l.proximalLogProbs(samples, g.MiniBatches); err != nil {
			return nil, err
		}
	}
	var means meanFigures
	first := true
	for epoch := 0; epoch < max(1, g.Epochs); epoch++ {
		for _, c := range chunks(len(samples), g.MiniBatches) {
			if err := stopped(ctx); err != nil {
				return nil, err
			}
			st, gn, err := l.grpoMiniBatch(samples[c[0]:c[1]], cfg, lr)
			if err != nil {
				return nil, err
			}
			if first {
				m["loss/ratio_first"] = st.RatioMean
				if decoupled {
					m["loss/ratio_first_prox"] = st.ProxRatioMean
				}
				first = false
			}
			figs := map[string]float64{
				"loss/total":      st.Loss,
				"loss/pg":         st.PGLoss,
				"loss/kl":         st.KL,
				"loss/ratio_mean": st.RatioMean,
				"loss/clip_low":   st.ClipFracLow,
				"loss/clip_high":  st.ClipFracHigh,
				"loss/dual_clip":  st.DualClipFrac,
				"loss/entropy":    st.Entropy,
				"learn/grad_norm": gn,
			}
			if decoupled {
				figs["loss/behaviour_weight"] = st.WeightMean
				figs["loss/behaviour_weight_capped"] = st.WeightCapped
			}
			means.add(figs)
			m["learn/tokens"] += st.Tokens
		}
	}
	means.into(m)
	m["learn/lr"] = lr
	return m, nil
}

// chatBatch is a mini-batch laid out for the MLLM (model.MLLM.LogProbs,
// model.MLLM.InstructionStates).
type chatBatch struct {
	prompts, completions [][]int
	adv                  []float64
	imgs                 *ts.Tensor // reference images, or nil; in the caller's scope
}

// chatBatchOf lays out mb's chat prompts, completions, advantages and
// reference images; the images are added to sc.
func (l *Learner) chatBatchOf(sc *libtorch.Scope, mb []sample) (chatBatch, error) {
	c := l.cfg
	size := c.Model.DiT.ImageSize
	imgTokens := model.ImageTokens(c.Model.MLLM, size)
	b := chatBatch{prompts: make([][]int, len(mb)), completions: make([][]int, len(mb)), adv: make([]float64, len(mb))}
	var refPNGs [][]byte
	for i, s := range mb {
		p, err := model.ChatPrompt(l.policy.Tok, s.row.Prompt, len(s.row.ReferencePNG) > 0, imgTokens, tokenizer.ThinkOpen)
		if err != nil {
			return b, fmt.Errorf("row %s: %w", s.row.RowID, err)
		}
		b.prompts[i] = p
		b.completions[i] = ints(s.row.TokenIDs)
		b.adv[i] = s.adv
		if len(s.row.ReferencePNG) > 0 {
			refPNGs = append(refPNGs, s.row.ReferencePNG)
		}
	}
	imgs, err := model.EncodeImages(model.PixelSpace{}, refPNGs, size, l.dev)
	if err != nil {
		return b, err
	}
	if imgs != nil {
		b.imgs = sc.Add(imgs)
	}
	return b, nil
}

// tokenMatrix lays out per-sample token values as a [B, T] tensor of
// shape size (zeros past each sample's values); the caller drops it.
func tokenMatrix(mb []sample, size []int64, values func(sample) []float32) *ts.Tensor {
	flat := make([]float32, size[0]*size[1])
	for i, s := range mb {
		copy(flat[int64(i)*size[1]:int64(i+1)*size[1]], values(s))
	}
	return ts.MustOfSlice(flat).MustView(size, true)
}

// proximalLogProbs evaluates, without gradient, this rank's share of every
// mini-batch under the current policy (the version before the step's
// update: decoupled PPO's proximal policy) and keeps each sample's
// log-probs in its prox.
func (l *Learner) proximalLogProbs(samples []sample, miniBatches int) error {
	for _, c := range chunks(len(samples), miniBatches) {
		mb, err := l.rankShare(samples[c[0]:c[1]])
		if err != nil {
			return err
		}
		err = func() error {
			var sc libtorch.Scope
			defer sc.Close()
			b, err := l.chatBatchOf(&sc, mb)
			if err != nil {
				return err
			}
			var lp *model.TokenLogProbs
			libtorch.NoGrad(func() {
				lp, err = l.policy.MLLM.LogProbs(b.prompts, b.completions, l.cfg.GRPO.Temperature, b.imgs)
			})
			if err != nil {
				return err
			}
			defer lp.Drop()
			t := lp.LogProbs.MustSize()[1]
			flat := lp.LogProbs.Float64Values()
			for i := range mb {
				prox := make([]float32, len(mb[i].row.TokenIDs))
				for j := range prox {
					prox[j] = float32(flat[int64(i)*t+int64(j)])
				}
				mb[i].prox = prox
			}
			return nil
		}()
		if err != nil {
			return fmt.Errorf("learner: proximal log-probs: %w", err)
		}
	}
	return nil
}

// grpoMiniBatch runs one optimiser step of GRPO on a mini-batch.
func (l *Learner) grpoMiniBatch(mb []sample, cfg GRPOConfig, lr float64) (GRPOStats, float64, error) {
	mb, err := l.rankShare(mb)
	if err != nil {
		return GRPOStats{}, 0, err
	}
	var sc libtorch.Scope
	defer sc.Close()
	c := l.cfg
	b, err := l.chatBatchOf(&sc, mb)
	if err != nil {
		return GRPOStats{}, 0, err
	}
	prompts, completions, imgs := b.prompts, b.completions, b.imgs
	temp := c.GRPO.Temperature
	mllm, rec := l.trainedMLLM()
	defer rec.Drop()
	lp, err := mllm.LogProbs(prompts, completions, temp, imgs)
	if err != nil {
		return GRPOStats{}, 0, err
	}
	defer lp.Drop()
	size2 := lp.LogProbs.MustSize()
	oldT := sc.Add(l.onDevice(tokenMatrix(mb, size2, func(s sample) []float32 { return s.row.TokenLogProbs })))
	in := GRPOInput{LogProbs: lp.LogProbs, OldLogProbs: oldT, Mask: lp.Mask, Entropy: lp.Entropy, Advantages: b.adv}
	if mb[0].prox != nil {
		in.ProxLogProbs = sc.Add(l.onDevice(tokenMatrix(mb, size2, func(s sample) []float32 { return s.prox })))
	}
	if cfg.Beta > 0 {
		var ref *model.TokenLogProbs
		libtorch.NoGrad(func() {
			ref, err = l.ref.MLLM.LogProbs(prompts, completions, temp, imgs)
		})
		if err != nil {
			return GRPOStats{}, 0, err
		}
		defer ref.Drop()
		in.RefLogProbs = ref.LogProbs
	}
	loss, st, err := GRPOLoss(in, cfg)
	if err != nil {
		return st, 0, fmt.Errorf("%w: %w", ErrFatal, err)
	}
	defer loss.MustDrop()
	st, share, err := l.globalGRPO(st)
	if err != nil {
		return st, 0, err
	}
	// Each rank's token-mean, weighted by its share of the tokens, sums
	// over the ranks to the mini-batch's token-mean.
	l.mllm.opt.ZeroGrad()
	l.backward(loss, share, rec)
	gn, err := l.stepOptimizer(l.mllm, lr, "GRPO")
	return st, gn, err
}

// backward back-propagates scale × loss (times the loss scale), then
// through rec's recorded segments (rec may be nil). loss stays the
// caller's.
func (l *Learner) backward(loss *ts.Tensor, scale float64, rec *model.Recompute) {
	scaled := loss.MustMulScalar(ts.FloatScalar(scale*l.gradScale()), false)
	defer scaled.MustDrop()
	scaled.MustBackward()
	rec.Backward()
}

// stepOptimizer ends a mini-batch of phase p once its gradients are in:
// it sums them over the ranks, unscales them, clips their norm and steps
// the optimiser at lr. It returns the norm before clipping (0 when the
// loss scale skipped the step) and fails with ErrFatal and ErrNonFinite,
// naming loss, when the norm is NaN or infinite.
func (l *Learner) stepOptimizer(p *phaseOpt, lr float64, loss string) (float64, error) {
	if err := l.allReduceGrads(p); err != nil {
		return 0, err
	}
	if !l.unscale(p.params) {
		return 0, nil
	}
	gn := p.opt.ClipGradNorm(l.cfg.Optim.GradClip)
	if math.IsNaN(gn) || math.IsInf(gn, 0) {
		return gn, fmt.Errorf("%w: %w: %s gradient norm is %g", ErrFatal, ErrNonFinite, loss, gn)
	}
	return gn, l.update(p, lr)
}

// onDevice moves t, made on the CPU, to the learner's device (dropping the
// CPU copy when it moves).
func (l *Learner) onDevice(t *ts.Tensor) *ts.Tensor {
	if !l.dev.IsCuda() {
		return t
	}
	return t.MustTo(l.dev, true)
}

func ints(x []int32) []int {
	out := make([]int, len(x))
	for i, v := range x {
		out[i] = int(v)
	}
	return out
}

// TrainedSteps picks the SDE steps FlowGRPO trains on: a fraction of the
// steps (at least one), drawn without replacement from seed, in order.
func TrainedSteps(steps int, fraction float64, seed uint64) []int {
	n := max(1, min(steps, int(math.Round(fraction*float64(steps)))))
	r := rand.New(rand.NewPCG(seed, 0x74696d65))
	perm := r.Perm(steps)[:n]
	sort.Ints(perm)
	return perm
}

func (l *Learner) flowStep(ctx context.Context, seed uint64, rolls []shards.RolloutRow, rews []shards.RewardRow) (map[string]float64, error) {
	f := l.cfg.FlowGRPO
	samples, ast, err := join(rolls, rews, false, 1e-4)
	if err != nil {
		return nil, err
	}
	m := map[string]float64{}
	advMetrics(m, ast)
	lr, err := l.phaseLR(config.PhaseDiTGRPO, f.LR, f.WarmupSteps, f.Decay)
	if err != nil {
		return nil, err
	}
	// FlowGRPO trains the SDE window's steps when there is one, else a
	// fraction of the steps; AWM draws as many fresh times as that fraction.
	trained := TrainedSteps(f.Steps, f.TimestepFraction, seed)
	if w := rollout.SDEWindow(f, seed); w != nil && f.Objective != config.ObjectiveAWM {
		trained = w
	}
	cfg := FlowConfig{ClipRange: f.ClipEps, AdvClamp: f.AdvClamp, Beta: f.Beta, ClipRatioC: f.ClipRatioC}
	var means meanFigures
	first := true
	for _, c := range chunks(len(samples), f.MiniBatches) {
		if err := stopped(ctx); err != nil {
			return nil, err
		}
		st, gn, err := l.flowMiniBatch(seed, samples[c[0]:c[1]], trained, cfg, lr)
		if err != nil {
			return nil, err
		}
		if first && f.Objective != config.ObjectiveAWM { // AWM has no ratio
			m["loss/ratio_first"] = st.RatioMean
		}
		first = false
		means.add(map[string]float64{
			"loss/total":      st.Loss,
			"loss/policy":     st.PolicyLoss,
			"loss/kl":         st.KL,
			"loss/ratio_mean": st.RatioMean,
			"loss/clip_high":  st.ClipFrac,
			"loss/dual_clip":  st.DualClipFrac,
			"loss/approx_kl":  st.ApproxKL,
			"adv/clamped":     st.AdvClampedFrac,
			"learn/grad_norm": gn,
		})
	}
	means.into(m)
	m["loss/clip_low"] = 0 // FlowGRPO's clip is symmetric: clip_high holds |r−1| > ε
	m["learn/lr"] = lr
	m["learn/timesteps"] = float64(len(trained))
	if f.Objective != config.ObjectiveAWM {
		m["learn/first_timestep"] = float64(trained[0])
	}
	return m, nil
}

// flowMiniBatch accumulates the FlowGRPO loss of a mini-batch over the
// trained steps and takes one optimiser step; samples with and without a
// reference image take separate DiT passes (their sequence layouts
// differ). The returned stats are means over the trained steps.
func (l *Learner) flowMiniBatch(seed uint64, mb []sample, trained []int, cfg FlowConfig, lr float64) (FlowStats, float64, error) {
	// A rank weighs its samples by the whole mini-batch's size.
	share, err := l.rankShare(mb)
	if err != nil {
		return FlowStats{}, 0, err
	}
	var plain, withRef []sample
	for _, s := range share {
		if len(s.row.ReferencePNG) > 0 {
			withRef = append(withRef, s)
		} else {
			plain = append(plain, s)
		}
	}
	l.dit.opt.ZeroGrad()
	var acc FlowStats
	for _, part := range [][]sample{plain, withRef} {
		if len(part) == 0 {
			continue
		}
		w := float64(len(part)) / float64(len(mb))
		st, err := l.flowPart(seed, part, trained, cfg, w)
		if err != nil {
			return acc, 0, err
		}
		acc.addScaled(st, w)
	}
	if acc, err = l.globalFlow(acc); err != nil {
		return acc, 0, err
	}
	gn, err := l.stepOptimizer(l.dit, lr, "FlowGRPO")
	return acc, gn, err
}

// flowPart runs backward on weight × the mean FlowGRPO loss over the trained
// steps of samples that share a sequence layout (or, with objective awm,
// the mean AWM loss over as many draws).
func (l *Learner) flowPart(seed uint64, part []sample, trained []int, cfg FlowConfig, weight float64) (FlowStats, error) {
	var sc libtorch.Scope
	defer sc.Close()
	c := l.cfg
	f := c.FlowGRPO
	rows := make([]*shards.RolloutRow, len(part))
	for i, s := range part {
		rows[i] = s.row
		if len(s.row.SDELatents) != f.Steps+1 || len(s.row.SDELogProbs) != f.Steps {
			return FlowStats{}, fmt.Errorf("row %s sample %d: %d latents and %d log-probs, want %d and %d (flow_grpo.steps %d)",
				s.row.RowID, s.row.SampleIndex, len(s.row.SDELatents), len(s.row.SDELogProbs), f.Steps+1, f.Steps, f.Steps)
		}
		// The rollout stores log-prob 0 for an ODE step: a step FlowGRPO
		// trains must have been an SDE step (AWM uses the final image alone).
		for _, k := range trained {
			if f.Objective != config.ObjectiveAWM && s.row.SDELogProbs[k] == 0 {
				return FlowStats{}, fmt.Errorf("row %s sample %d: step %d was sampled by the ODE, but the learner trains steps %v (the rollout's flow_grpo.sde_window or seed differ from the learner's)",
					s.row.RowID, s.row.SampleIndex, k, trained)
			}
		}
	}
	b, err := l.chatBatchOf(&sc, part)
	if err != nil {
		return FlowStats{}, err
	}
	adv, pixelRefs := b.adv, b.imgs
	var refs *ts.Tensor // the DiT's reference latents
	if pixelRefs != nil {
		refs = sc.Add(l.policy.RefLatents(pixelRefs))
	}
	// The instruction states come from the (frozen) MLLM; the policy's and
	// the reference's connectors map them to each DiT's condition.
	states, _, err := l.policy.MLLM.InstructionStates(b.prompts, b.completions, pixelRefs)
	if err != nil {
		return FlowStats{}, err
	}
	for _, s := range states {
		sc.Add(s)
	}
	empty := make([]*ts.Tensor, len(part))
	for i := range empty {
		empty[i] = sc.Add(ts.MustZeros([]int64{0, int64(l.policy.Connector.In)}, gotch.Float, l.dev))
	}
	var refCond, refUncond *model.Condition
	libtorch.NoGrad(func() {
		if refCond, err = l.ref.Connector.Forward(states); err != nil {
			return
		}
		refUncond, err = l.ref.Connector.Forward(empty)
	})
	if err != nil {
		return FlowStats{}, err
	}
	defer refCond.Drop()
	defer refUncond.Drop()

	if f.Objective == config.ObjectiveAWM {
		return l.awmPart(seed, rows, adv, states, refCond, refs, len(trained), cfg, weight)
	}
	tr := rollout.Trajectory(f.Steps, c.Sampling.TimeShift, model.LatentSide(c.Model.DiT))
	var acc FlowStats
	scale := weight / float64(len(trained))
	for _, k := range trained {
		st, err := l.flowTimestep(rows, adv, k, tr, states, empty, refCond, refUncond, refs, cfg, scale)
		if err != nil {
			return acc, err
		}
		acc.addScaled(st, 1/float64(len(trained)))
	}
	return acc, nil
}

func (l *Learner) flowTimestep(rows []*shards.RolloutRow, adv []float64, k int, tr rollout.DiTTrajectory,
	states, empty []*ts.Tensor, refCond, refUncond *model.Condition, refs *ts.Tensor, cfg FlowConfig, scale float64) (FlowStats, error) {
	var sc libtorch.Scope
	defer sc.Close()
	f := l.cfg.FlowGRPO
	// The policy's connector runs per timestep: each backward frees the
	// graph it was part of.
	cond, err := l.policy.Connector.Forward(states)
	if err != nil {
		return FlowStats{}, err
	}
	defer cond.Drop()
	uncond, err := l.policy.Connector.Forward(empty)
	if err != nil {
		return FlowStats{}, err
	}
	defer uncond.Drop()
	x, err := rollout.LatentsTensor(rows, k, l.dev)
	if err != nil {
		return FlowStats{}, err
	}
	sc.Add(x)
	next, err := rollout.LatentsTensor(rows, k+1, l.dev)
	if err != nil {
		return FlowStats{}, err
	}
	sc.Add(next)
	old := make([]float32, len(rows))
	for i, r := range rows {
		old[i] = r.SDELogProbs[k]
	}
	oldT := sc.Add(l.onDevice(ts.MustOfSlice(old)))
	sigma, sigmaNext := tr.Sigmas[k], tr.Sigmas[k+1]
	t := 1 - sigma

	dit, rec := l.trainedDiT()
	defer rec.Drop()
	v, err := dit.Velocity(x, t, cond, refs, model.Guidance{Uncond: uncond, TextScale: f.CFG, ImageScale: 1})
	if err != nil {
		return FlowStats{}, err
	}
	vfg := sc.Add(v.MustNeg(true))
	step, err := model.StepSDE(x, vfg, sigma, sigmaNext, tr.Sigmas[1], f.NoiseLevel, nil, next)
	if err != nil {
		return FlowStats{}, err
	}
	defer step.Drop()
	in := FlowInput{LogProb: step.LogProb, OldLogProb: oldT, Mean: step.Mean, SigmaT: step.Std / math.Sqrt(sigma-sigmaNext), Advantages: adv}
	if cfg.Beta > 0 {
		var refStep *model.SDEStep
		libtorch.NoGrad(func() {
			var rv *ts.Tensor
			rv, err = l.ref.DiT.Velocity(x, t, refCond, refs, model.Guidance{Uncond: refUncond, TextScale: f.CFG, ImageScale: 1})
			if err != nil {
				return
			}
			rfg := rv.MustNeg(true)
			defer rfg.MustDrop()
			refStep, err = model.StepSDE(x, rfg, sigma, sigmaNext, tr.Sigmas[1], f.NoiseLevel, nil, next)
		})
		if err != nil {
			return FlowStats{}, err
		}
		defer refStep.Drop()
		in.RefMean = refStep.Mean
	}
	loss, st, err := FlowGRPOLoss(in, cfg)
	if err != nil {
		return st, fmt.Errorf("%w: SDE step %d: %w", ErrFatal, k, err)
	}
	defer loss.MustDrop()
	l.backward(loss, scale, rec)
	return st, nil
}

// trainedMLLM returns the policy's MLLM for a forward that will be
// back-propagated: with optim.activation_checkpointing.mllm, a view that
// records into the returned Recompute (call its Backward after the loss's;
// nil otherwise — its methods then do nothing).
func (l *Learner) trainedMLLM() (*model.MLLM, *model.Recompute) {
	return recording(l.policy.MLLM, l.cfg.Optim.ActivationCheckpointing.MLLM)
}

// trainedDiT is trainedMLLM for the DiT (optim.activation_checkpointing.dit).
func (l *Learner) trainedDiT() (*model.DiT, *model.Recompute) {
	return recording(l.policy.DiT, l.cfg.Optim.ActivationCheckpointing.DiT)
}

// recording returns m itself, or with checkpointing a view of m that
// records into the returned Recompute.
func recording[M interface{ Recording(*model.Recompute) M }](m M, checkpointing bool) (M, *model.Recompute) {
	if !checkpointing {
		return m, nil
	}
	r := new(model.Recompute)
	return m.Recording(r), r
}

// addScaled adds w times each figure of o to s (weighted means of stats).
func (s *FlowStats) addScaled(o FlowStats, w float64) {
	s.Loss += w * o.Loss
	s.PolicyLoss += w * o.PolicyLoss
	s.KL += w * o.KL
	s.RatioMean += w * o.RatioMean
	s.ClipFrac += w * o.ClipFrac
	s.DualClipFrac += w * o.DualClipFrac
	s.ApproxKL += w * o.ApproxKL
	s.AdvClampedFrac += w * o.AdvClampedFrac
}
