package config

import (
	"fmt"
	"maps"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// FieldError is one invalid value: the dotted key, what is allowed and what
// was given.
type FieldError struct {
	Key     string
	Allowed string
	Got     any
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: must be %s (got %v)", e.Key, e.Allowed, e.Got)
}

// ValidationError lists every invalid field of a configuration.
type ValidationError struct {
	Fields []*FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		msgs[i] = f.Error()
	}
	if len(msgs) == 1 {
		return "invalid configuration: " + msgs[0]
	}
	return "invalid configuration:\n\t" + strings.Join(msgs, "\n\t")
}

// Unwrap lets errors.Is(err, ErrInvalid) match.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

type checker struct{ errs []*FieldError }

func (c *checker) add(key, allowed string, got any) {
	c.errs = append(c.errs, &FieldError{Key: key, Allowed: allowed, Got: got})
}

func (c *checker) positive(key string, v int) {
	if v <= 0 {
		c.add(key, "> 0", v)
	}
}

func (c *checker) nonNegative(key string, v int) {
	if v < 0 {
		c.add(key, ">= 0", v)
	}
}

func (c *checker) positiveF(key string, v float64) {
	if !(v > 0) {
		c.add(key, "> 0", v)
	}
}

func (c *checker) nonNegativeF(key string, v float64) {
	if !(v >= 0) {
		c.add(key, ">= 0", v)
	}
}

// dualClip checks a dual clip's c: > 1 (at c ≤ 1 the cap would bind
// inside the clip range).
func (c *checker) dualClip(key string, v float64) {
	if !(v > 1) {
		c.add(key, "> 1 (the dual clip's cap on −r·A for A < 0)", v)
	}
}

// open01 checks 0 < v < 1; closed01 checks 0 <= v <= 1 (with lo excluded if strictLo).
func (c *checker) in01(key string, v float64, strictLo, strictHi bool) {
	lo, hi := "[", "]"
	okLo, okHi := v >= 0, v <= 1
	if strictLo {
		lo, okLo = "(", v > 0
	}
	if strictHi {
		hi, okHi = ")", v < 1
	}
	if !(okLo && okHi) {
		c.add(key, "in "+lo+"0, 1"+hi, v)
	}
}

func (c *checker) oneOf(key, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	c.add(key, "one of "+strings.Join(allowed, ", "), fmt.Sprintf("%q", v))
}

// decay checks a SepGRPO phase's learning-rate decay; empty (a
// configuration written before the key existed) means constant.
func (c *checker) decay(key, v string) {
	if v != "" {
		c.oneOf(key, v, DecayConstant, DecayCosine)
	}
}

var deviceRE = regexp.MustCompile(`^(cpu|cuda|cuda:[0-9]+)$`)

// Validate checks every field and returns a *ValidationError naming each
// invalid one, or nil.
func (c *Config) Validate() error {
	var k checker
	r := c.Run
	if !deviceRE.MatchString(r.Device) {
		k.add("run.device", "cpu, cuda or cuda:N", fmt.Sprintf("%q", r.Device))
	}
	k.nonNegative("run.threads", r.Threads)
	k.positive("run.checkpoint_every", r.CheckpointEvery)
	k.nonNegative("run.max_staleness", r.MaxStaleness)
	k.nonNegative("run.eval_every", r.EvalEvery)
	if strings.ContainsAny(r.Name, "/\\ ") {
		k.add("run.name", "a name without slashes or spaces", fmt.Sprintf("%q", r.Name))
	}

	for _, a := range []struct {
		key     string
		a       Adapter
		targets []string
	}{{"lora.mllm", c.LoRA.MLLM, MLLMTargets}, {"lora.dit", c.LoRA.DiT, DiTTargets}} {
		k.nonNegative(a.key+".rank", a.a.Rank)
		if a.a.Rank > 0 {
			k.positiveF(a.key+".alpha", a.a.Alpha)
		}
		for _, t := range a.a.Targets {
			if !slices.Contains(a.targets, t) {
				k.add(a.key+".targets", "modules among "+strings.Join(a.targets, ", "), fmt.Sprintf("%q", t))
			}
		}
	}

	for _, l := range []struct {
		key     string
		names   []string
		allowed []string
	}{{"eval.scenarios", c.Eval.Scenarios, Scenarios}, {"eval.modes", c.Eval.Modes, EvalModes}, {"eval.splits", c.Eval.Splits, EvalSplits}} {
		for i, n := range l.names {
			if !slices.Contains(l.allowed, n) {
				k.add(l.key, "names among "+strings.Join(l.allowed, ", "), fmt.Sprintf("%q", n))
			} else if slices.Contains(l.names[:i], n) {
				k.add(l.key, "each name once", fmt.Sprintf("%q twice", n))
			}
		}
	}

	m := c.Model
	k.oneOf("model.dtype", m.DType, "float32", "bfloat16", "float16")
	l := m.MLLM
	if l.Tokenizer == "" {
		k.add("model.mllm.tokenizer", `"shapeworld" or the path of a tokenizer.json`, `""`)
	}
	k.nonNegative("model.mllm.vocab", l.Vocab)
	k.positive("model.mllm.hidden", l.Hidden)
	k.positive("model.mllm.layers", l.Layers)
	k.positive("model.mllm.heads", l.Heads)
	k.positive("model.mllm.kv_heads", l.KVHeads)
	k.positive("model.mllm.head_dim", l.HeadDim)
	k.positive("model.mllm.ffn", l.FFN)
	k.positive("model.mllm.max_seq_len", l.MaxSeqLen)
	k.positiveF("model.mllm.rope_theta", l.RopeTheta)
	k.positiveF("model.mllm.rms_norm_eps", l.RMSNormEps)
	k.positive("model.mllm.vision_patch", l.VisionPatch)
	if l.Layers < 2 && l.Layers > 0 {
		k.add("model.mllm.layers", ">= 2 (VGI-refine concatenates the last two layers)", l.Layers)
	}
	if l.Heads > 0 && l.KVHeads > 0 && l.Heads%l.KVHeads != 0 {
		k.add("model.mllm.kv_heads", fmt.Sprintf("a divisor of model.mllm.heads (%d)", l.Heads), l.KVHeads)
	}
	switch l.Vision {
	case "", VisionPatch:
	case VisionQwen3VL:
		validateViT(&k, l, m.DiT.ImageSize)
	default:
		k.add("model.mllm.vision", fmt.Sprintf("%q or %q", VisionPatch, VisionQwen3VL), fmt.Sprintf("%q", l.Vision))
	}
	k.nonNegative("model.connector.prepad", m.Connector.Prepad)
	if s := m.Connector.States; s != "" && s != StatesCut && s != StatesAll {
		k.add("model.connector.states", fmt.Sprintf("%q or %q", StatesCut, StatesAll), s)
	}
	d := m.DiT
	k.positive("model.dit.hidden", d.Hidden)
	k.positive("model.dit.layers", d.Layers)
	k.positive("model.dit.heads", d.Heads)
	k.positive("model.dit.kv_heads", d.KVHeads)
	k.positive("model.dit.ffn", d.FFN)
	k.positive("model.dit.patch", d.Patch)
	k.positive("model.dit.channels", d.Channels)
	k.positive("model.dit.image_size", d.ImageSize)
	k.positive("model.dit.vae_scale", d.VAEScale)
	k.oneOf("model.dit.latent", d.Latent, "pixel", "vae")
	k.nonNegative("model.dit.refiner_layers", d.RefinerLayers)
	k.positiveF("model.dit.rope_theta", d.RopeTheta)
	if d.Heads > 0 && d.Hidden%d.Heads != 0 {
		k.add("model.dit.hidden", fmt.Sprintf("a multiple of model.dit.heads (%d)", d.Heads), d.Hidden)
	}
	if d.Heads > 0 && d.KVHeads > 0 && d.Heads%d.KVHeads != 0 {
		k.add("model.dit.kv_heads", fmt.Sprintf("a divisor of model.dit.heads (%d)", d.Heads), d.KVHeads)
	}
	if d.Heads > 0 && d.Hidden > 0 && d.Hidden%d.Heads == 0 && (d.Hidden/d.Heads)%6 != 0 {
		// 3-axis RoPE splits each head's dimension into three even parts.
		k.add("model.dit.hidden", "such that hidden/heads is a multiple of 6 (3-axis RoPE)", d.Hidden)
	}
	if d.Latent == "pixel" && d.VAEScale != 1 {
		k.add("model.dit.vae_scale", "1 when model.dit.latent is pixel", d.VAEScale)
	}
	if d.Latent == "vae" {
		v := m.VAE
		if d.VAEScale&(d.VAEScale-1) != 0 {
			k.add("model.dit.vae_scale", "a power of two when model.dit.latent is vae", d.VAEScale)
		}
		k.positive("model.vae.width", v.Width)
		k.positive("model.vae.layers_per_block", v.LayersPerBlock)
		k.positive("model.vae.norm_groups", v.NormGroups)
		if v.NormGroups > 0 && v.Width%v.NormGroups != 0 {
			k.add("model.vae.width", fmt.Sprintf("a multiple of model.vae.norm_groups (%d)", v.NormGroups), v.Width)
		}
	}
	if d.VAEScale > 0 && d.Patch > 0 && d.ImageSize%(d.VAEScale*d.Patch) != 0 {
		k.add("model.dit.image_size", fmt.Sprintf("a multiple of vae_scale*patch (%d)", d.VAEScale*d.Patch), d.ImageSize)
	}

	k.nonNegative("data.train_size", c.Data.TrainSize)
	k.nonNegative("data.eval_size", c.Data.EvalSize)
	checkScenarioMap(&k, "data.mix", c.Data.Mix)
	checkScenarioMap(&k, "grpo.mix", c.GRPO.Mix)
	checkScenarioMap(&k, "flow_grpo.mix", c.FlowGRPO.Mix)

	for _, s := range []struct {
		key string
		st  Stage
	}{{"pretrain.vae", c.Pretrain.VAE}, {"pretrain.warmup", c.Pretrain.Warmup}, {"pretrain.align", c.Pretrain.Align}, {"pretrain.dit", c.Pretrain.DiT}, {"pretrain.finetune", c.Pretrain.Finetune}} {
		k.nonNegative(s.key+".steps", s.st.Steps)
		if s.st.Steps > 0 {
			k.positive(s.key+".batch", s.st.Batch)
		}
		k.nonNegativeF(s.key+".lr", s.st.LR)
		if c := s.st.Condition; c != "" && c != ConditionPseudoCoT && c != ConditionPipeline && c != ConditionMixed {
			k.add(s.key+".condition", "one of pseudo-cot, pipeline, mixed", fmt.Sprintf("%q", c))
		}
	}
	if c.Pretrain.VAE.Steps > 0 && c.Model.DiT.Latent != "vae" {
		k.add("pretrain.vae.steps", "0 when model.dit.latent is not vae (there is no VAE to train)", c.Pretrain.VAE.Steps)
	}
	if f := c.Pretrain.Warmup.Facts; f < 0 || f >= 1 || math.IsNaN(f) {
		k.add("pretrain.warmup.facts", "a share in [0, 1)", fmt.Sprint(f))
	}
	for _, s := range []struct {
		key string
		st  Stage
	}{{"pretrain.vae", c.Pretrain.VAE}, {"pretrain.align", c.Pretrain.Align}, {"pretrain.dit", c.Pretrain.DiT}, {"pretrain.finetune", c.Pretrain.Finetune}} {
		if s.st.Facts != 0 {
			k.add(s.key+".facts", "0 (only the warm-up takes text-only fact questions)", fmt.Sprint(s.st.Facts))
		}
	}

	if len(c.Schedule.Phases) == 0 {
		k.add("schedule.phases", "a non-empty list", "[]")
	}
	for i, p := range c.Schedule.Phases {
		if !p.Phase.Valid() {
			k.add(fmt.Sprintf("schedule.phases.%d.phase", i), "one of mllm-grpo, dit-grpo", fmt.Sprintf("%q", p.Phase))
		}
		k.positive(fmt.Sprintf("schedule.phases.%d.steps", i), p.Steps)
	}
	k.positive("schedule.cycles", c.Schedule.Cycles)

	g := c.GRPO
	k.positive("grpo.prompts_per_step", g.PromptsPerStep)
	if g.Group < 2 {
		k.add("grpo.group", ">= 2 (advantages are relative within a group)", g.Group)
	}
	k.in01("grpo.eps_low", g.EpsLow, true, true)
	k.positiveF("grpo.eps_high", g.EpsHigh)
	k.dualClip("grpo.clip_ratio_c", g.ClipRatioC)
	k.oneOf("grpo.proximal", g.Proximal, ProximalBehaviour, ProximalPrevious)
	if !(g.BehaviourWeightCap >= 1) {
		k.add("grpo.behaviour_weight_cap", ">= 1", g.BehaviourWeightCap)
	}
	k.nonNegativeF("grpo.beta", g.Beta)
	k.positive("grpo.mini_batches", g.MiniBatches)
	k.positive("grpo.epochs", g.Epochs)
	k.nonNegativeF("grpo.lr", g.LR)
	k.nonNegative("grpo.warmup_steps", g.WarmupSteps)
	k.decay("grpo.decay", g.Decay)
	k.positiveF("grpo.temperature", g.Temperature)
	k.in01("grpo.top_p", g.TopP, true, false)
	k.positive("grpo.max_new_tokens", g.MaxNewTokens)
	k.nonNegative("grpo.image_steps", g.ImageSteps)
	if g.MiniBatches > 0 && g.PromptsPerStep*g.Group%g.MiniBatches != 0 {
		k.add("grpo.mini_batches", fmt.Sprintf("a divisor of prompts_per_step*group (%d)", g.PromptsPerStep*g.Group), g.MiniBatches)
	}

	f := c.FlowGRPO
	k.positive("flow_grpo.prompts_per_step", f.PromptsPerStep)
	if f.Group < 2 {
		k.add("flow_grpo.group", ">= 2 (advantages are relative within a group)", f.Group)
	}
	k.positive("flow_grpo.steps", f.Steps)
	k.positiveF("flow_grpo.noise_level", f.NoiseLevel)
	k.in01("flow_grpo.clip_eps", f.ClipEps, true, true)
	k.dualClip("flow_grpo.clip_ratio_c", f.ClipRatioC)
	k.nonNegativeF("flow_grpo.beta", f.Beta)
	k.positiveF("flow_grpo.adv_clamp", f.AdvClamp)
	k.in01("flow_grpo.timestep_fraction", f.TimestepFraction, true, false)
	switch f.Objective {
	case "", ObjectiveFlowGRPO, ObjectiveAWM:
	default:
		k.add("flow_grpo.objective", fmt.Sprintf("%q or %q", ObjectiveFlowGRPO, ObjectiveAWM), fmt.Sprintf("%q", f.Objective))
	}
	k.nonNegative("flow_grpo.sde_window", f.SDEWindow)
	if f.Steps > 0 && f.SDEWindow > f.Steps {
		k.add("flow_grpo.sde_window", fmt.Sprintf("<= flow_grpo.steps (%d)", f.Steps), f.SDEWindow)
	}
	if r := f.SDEWindowRange; len(r) > 0 {
		switch {
		case len(r) != 2:
			k.add("flow_grpo.sde_window_range", "[lo, hi]: two steps", r)
		case r[0] < 0 || r[1] > f.Steps || r[1]-r[0] < max(1, f.SDEWindow):
			k.add("flow_grpo.sde_window_range", fmt.Sprintf("0 <= lo, lo + sde_window (%d) <= hi <= flow_grpo.steps (%d)", f.SDEWindow, f.Steps), r)
		}
	}
	if f.CFG < 1 {
		k.add("flow_grpo.cfg", ">= 1 (1 disables guidance)", f.CFG)
	}
	k.positive("flow_grpo.mini_batches", f.MiniBatches)
	k.nonNegativeF("flow_grpo.lr", f.LR)
	k.nonNegative("flow_grpo.warmup_steps", f.WarmupSteps)
	k.decay("flow_grpo.decay", f.Decay)

	s := c.Sampling
	k.nonNegativeF("sampling.temperature", s.Temperature)
	k.in01("sampling.top_p", s.TopP, true, false)
	k.positive("sampling.max_new_tokens", s.MaxNewTokens)
	k.positive("sampling.dit_steps", s.DiTSteps)
	k.nonNegative("sampling.decode_threads", s.DecodeThreads)
	if s.CFG < 1 {
		k.add("sampling.cfg", ">= 1 (1 disables guidance)", s.CFG)
	}
	if f.Steps > 0 && s.DiTSteps > 0 && f.Steps > s.DiTSteps {
		k.add("flow_grpo.steps", fmt.Sprintf("<= sampling.dit_steps (%d): training rollouts use fewer steps than eval", s.DiTSteps), f.Steps)
	}

	o := c.Optim
	k.positiveF("optim.lr", o.LR)
	k.in01("optim.beta1", o.Beta1, false, true)
	k.in01("optim.beta2", o.Beta2, false, true)
	k.positiveF("optim.eps", o.Eps)
	k.nonNegativeF("optim.weight_decay", o.WeightDecay)
	k.nonNegativeF("optim.grad_clip", o.GradClip)
	k.nonNegative("optim.warmup_steps", o.WarmupSteps)
	if o.Zero < 0 || o.Zero > 2 {
		k.add("optim.zero", "0 (every learner rank holds the whole optimiser state), 1 (ZeRO-1: each holds 1/N) or 2 (ZeRO-2: 1/N of the gradients too)", o.Zero)
	}

	checkScenarioMap(&k, "reward.weights", c.Reward.Weights)
	for _, sc := range sortedKeys(c.Reward.Remote) {
		u := c.Reward.Remote[sc]
		key := "reward.remote." + sc
		if !isScenario(sc) {
			k.add(key, "keyed by a scenario ("+strings.Join(Scenarios, ", ")+")", fmt.Sprintf("%q", sc))
		}
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			k.add(key, "an http(s) URL", fmt.Sprintf("%q", u))
		}
	}
	if c.Reward.Timeout <= 0 {
		k.add("reward.timeout", "a positive duration", c.Reward.Timeout)
	}
	k.in01("reward.instruction", c.Reward.Instruction, false, false)

	st := c.Storage
	if strings.Contains(st.URI, "://") {
		u, err := url.Parse(st.URI)
		switch {
		case err != nil:
			k.add("storage.uri", "a directory, file:///dir or s3://bucket/prefix", fmt.Sprintf("%q", st.URI))
		case u.Scheme == "s3" && u.Host == "":
			k.add("storage.uri", "s3://bucket/prefix with a bucket", fmt.Sprintf("%q", st.URI))
		case u.Scheme != "s3" && u.Scheme != "file":
			k.add("storage.uri", "a directory, file:///dir or s3://bucket/prefix", fmt.Sprintf("%q", st.URI))
		}
	}
	k.oneOf("storage.compression", st.Compression, "none", "lz4", "zstd")

	cl := c.Cluster
	k.nonNegative("cluster.workers.rollout", cl.Workers.Rollout)
	k.nonNegative("cluster.workers.reward", cl.Workers.Reward)
	k.nonNegative("cluster.workers.learner", cl.Workers.Learner)
	if cl.Ray != "" {
		if u, err := url.Parse(cl.Ray); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			k.add("cluster.ray", "an http(s) URL of the Ray dashboard", fmt.Sprintf("%q", cl.Ray))
		}
	}
	for _, res := range []struct {
		key string
		r   Resources
	}{{"cluster.head", cl.Head}, {"cluster.rollout", cl.Rollout}, {"cluster.reward", cl.Reward}, {"cluster.learner", cl.Learner}} {
		k.nonNegativeF(res.key+".cpus", res.r.CPUs)
		k.nonNegativeF(res.key+".gpus", res.r.GPUs)
		if _, err := res.r.MemoryBytes(); err != nil {
			k.add(res.key+".memory", "bytes or a quantity such as 512Mi or 80Gi", fmt.Sprintf("%q", res.r.Memory))
		}
		for _, name := range sortedKeys(res.r.Custom) {
			switch strings.ToLower(name) {
			case "", "cpu", "gpu", "memory", "object_store_memory":
				k.add(res.key+".custom."+name, "a custom resource name (not CPU, GPU or memory: they have their own keys)", fmt.Sprintf("%q", name))
				continue
			}
			k.nonNegativeF(res.key+".custom."+name, res.r.Custom[name])
		}
		validateScheduling(&k, res.key, res.r)
	}
	if cl.ShmSize != "" && !quantityRE.MatchString(cl.ShmSize) {
		k.add("cluster.shm_size", `a Kubernetes quantity such as "2Gi"`, fmt.Sprintf("%q", cl.ShmSize))
	}
	if cl.Secret != "" && !dnsSubdomainRE.MatchString(cl.Secret) {
		k.add("cluster.secret", "a Kubernetes object name (lower-case letters, digits, '-', '.')", fmt.Sprintf("%q", cl.Secret))
	}
	if cl.ServiceAccount != "" && !dnsSubdomainRE.MatchString(cl.ServiceAccount) {
		k.add("cluster.service_account", "a Kubernetes object name (lower-case letters, digits, '-', '.')", fmt.Sprintf("%q", cl.ServiceAccount))
	}
	if cl.Namespace != "" && !dnsLabelRE.MatchString(cl.Namespace) {
		k.add("cluster.namespace", "a Kubernetes namespace name (lower-case letters, digits, '-')", fmt.Sprintf("%q", cl.Namespace))
	}
	k.positive("cluster.max_attempts", cl.MaxAttempts)
	if cl.TaskTimeout <= 0 {
		k.add("cluster.task_timeout", "a positive duration", cl.TaskTimeout)
	}
	if cl.CollectiveTimeout <= 0 {
		k.add("cluster.collective_timeout", "a positive duration", cl.CollectiveTimeout)
	}
	if cl.LeaseTimeout <= 0 {
		k.add("cluster.lease_timeout", "a positive duration", cl.LeaseTimeout)
	}

	if tr := c.Tracking; tr.MLflow != "" {
		if u, err := url.Parse(tr.MLflow); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			k.add("tracking.mlflow", "an http(s) URL of an MLflow tracking server", fmt.Sprintf("%q", tr.MLflow))
		}
	}
	if strings.TrimSpace(c.Tracking.Experiment) == "" {
		k.add("tracking.experiment", "an MLflow experiment name", fmt.Sprintf("%q", c.Tracking.Experiment))
	}

	if len(k.errs) > 0 {
		return &ValidationError{Fields: k.errs}
	}
	return nil
}

// Kubernetes quantities (a decimal number with an optional binary or decimal
// suffix) and object names, checked here without importing Kubernetes.
var (
	quantityRE     = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$`)
	dnsLabelRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
)

func isScenario(s string) bool {
	for _, sc := range Scenarios {
		if s == sc {
			return true
		}
	}
	return false
}

func checkScenarioMap(k *checker, key string, m map[string]float64) {
	for _, sc := range sortedKeys(m) {
		w := m[sc]
		if !isScenario(sc) {
			k.add(key+"."+sc, "keyed by a scenario ("+strings.Join(Scenarios, ", ")+")", fmt.Sprintf("%q", sc))
			continue
		}
		k.nonNegativeF(key+"."+sc, w)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// labelNameRE is a Kubernetes label name or value part: at most 63
// alphanumerics, '-', '_' or '.', alphanumeric at both ends.
var labelNameRE = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$`)

// validLabelKey reports whether key is a Kubernetes label key: a name,
// optionally prefixed by a DNS subdomain and '/'.
func validLabelKey(key string) bool {
	prefix, name, found := strings.Cut(key, "/")
	if !found {
		return labelNameRE.MatchString(key)
	}
	return len(prefix) <= 253 && dnsSubdomainRE.MatchString(prefix) && labelNameRE.MatchString(name)
}

// validateScheduling checks the Kubernetes placement keys of one role.
func validateScheduling(k *checker, key string, r Resources) {
	for _, name := range sortedKeys(r.NodeSelector) {
		if !validLabelKey(name) {
			k.add(key+".node_selector", "label keys such as cloud.google.com/gke-nodepool", fmt.Sprintf("%q", name))
		}
		if v := r.NodeSelector[name]; v != "" && !labelNameRE.MatchString(v) {
			k.add(key+".node_selector."+name, "a label value (at most 63 letters, digits, '-', '_', '.')", fmt.Sprintf("%q", v))
		}
	}
	for i, t := range r.Tolerations {
		tk := fmt.Sprintf("%s.tolerations[%d]", key, i)
		if t.Key != "" && !validLabelKey(t.Key) {
			k.add(tk+".key", "a taint key such as nvidia.com/gpu", fmt.Sprintf("%q", t.Key))
		}
		switch t.Operator {
		case "", "Equal":
			if t.Key == "" {
				k.add(tk+".key", "a taint key (only operator Exists may leave it empty)", `""`)
			}
		case "Exists":
			if t.Value != "" {
				k.add(tk+".value", "empty with operator Exists", fmt.Sprintf("%q", t.Value))
			}
		default:
			k.add(tk+".operator", "Equal or Exists", fmt.Sprintf("%q", t.Operator))
		}
		if t.Effect != "" {
			k.oneOf(tk+".effect", t.Effect, "NoSchedule", "PreferNoSchedule", "NoExecute")
		}
	}
	for i, p := range r.GPUProducts {
		if !labelNameRE.MatchString(p) {
			k.add(fmt.Sprintf("%s.gpu_products[%d]", key, i), "an nvidia.com/gpu.product label value such as NVIDIA-A100-SXM4-80GB", fmt.Sprintf("%q", p))
		}
	}
	k.nonNegative(key+".gpu_memory_mib", r.GPUMemoryMiB)
	if r.PriorityClass != "" && !dnsSubdomainRE.MatchString(r.PriorityClass) {
		k.add(key+".priority_class", "a Kubernetes object name (lower-case letters, digits, '-', '.')", fmt.Sprintf("%q", r.PriorityClass))
	}
	if r.ShmSize != "" && !quantityRE.MatchString(r.ShmSize) {
		k.add(key+".shm_size", `a Kubernetes quantity such as "16Gi"`, fmt.Sprintf("%q", r.ShmSize))
	}
}

// validateViT checks model.mllm.vit and model.mllm.mrope_section of a
// vision: qwen3vl MLLM whose input images are imageSize pixels square.
func validateViT(k *checker, l MLLM, imageSize int) {
	v := l.ViT
	k.positive("model.mllm.vit.depth", v.Depth)
	k.positive("model.mllm.vit.hidden", v.Hidden)
	k.positive("model.mllm.vit.heads", v.Heads)
	k.positive("model.mllm.vit.ffn", v.FFN)
	k.positive("model.mllm.vit.temporal_patch", v.TemporalPatch)
	k.positive("model.mllm.vit.spatial_merge", v.SpatialMerge)
	k.positive("model.mllm.vit.position_embeddings", v.PositionEmbeddings)
	if v.Heads > 0 && v.Hidden > 0 && (v.Hidden%v.Heads != 0 || (v.Hidden/v.Heads)%4 != 0) {
		k.add("model.mllm.vit.hidden", fmt.Sprintf("a multiple of 4·model.mllm.vit.heads (%d): 2-D RoPE splits a head in quarters", 4*v.Heads), v.Hidden)
	}
	if side := int(math.Sqrt(float64(v.PositionEmbeddings))); v.PositionEmbeddings > 0 && side*side != v.PositionEmbeddings {
		k.add("model.mllm.vit.position_embeddings", "a square number (the table is a square grid)", v.PositionEmbeddings)
	}
	seen := map[int]bool{}
	for i, d := range v.DeepStack {
		if d < 0 || d >= v.Depth || seen[d] {
			k.add(fmt.Sprintf("model.mllm.vit.deepstack.%d", i), fmt.Sprintf("distinct blocks in [0, model.mllm.vit.depth=%d)", v.Depth), d)
		}
		seen[d] = true
	}
	if len(v.DeepStack) > l.Layers && l.Layers > 0 {
		k.add("model.mllm.vit.deepstack", fmt.Sprintf("at most model.mllm.layers (%d) entries", l.Layers), len(v.DeepStack))
	}
	if unit := l.VisionPatch * v.SpatialMerge; unit > 0 && imageSize > 0 && imageSize%unit != 0 {
		k.add("model.dit.image_size", fmt.Sprintf("a multiple of vision_patch·vit.spatial_merge (%d) with vision: qwen3vl", unit), imageSize)
	}
	sum := 0
	for i, s := range l.MRopeSection {
		if s < 0 {
			k.add(fmt.Sprintf("model.mllm.mrope_section.%d", i), ">= 0", s)
		}
		sum += s
	}
	if len(l.MRopeSection) != 3 || (l.HeadDim > 0 && sum != l.HeadDim/2) {
		k.add("model.mllm.mrope_section", fmt.Sprintf("three sizes (temporal, height, width) summing to head_dim/2 (%d)", l.HeadDim/2), fmt.Sprint(l.MRopeSection))
	}
}
