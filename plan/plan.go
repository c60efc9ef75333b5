package plan

import (
	"fmt"

	"github.com/thinkgen/thinkgen/config"
)

// Options are the cluster and the assumptions a Plan is made for.
type Options struct {
	// GPUs is N, the number of data-parallel learner ranks (one GPU each).
	GPUs int
	// GPUMemory is the memory of one GPU in bytes (ParseGPUMemory).
	GPUMemory int64
	// ZeRO is the stage the table's learner rows are shown at: 0 (none),
	// 1 (optimizer states sharded over the N ranks) or 2 (gradients too).
	ZeRO int
	// MicroBatch is the sequences (MLLM) or samples (DiT) a learner rank
	// runs forward and backward at once in the table's rows; 0 means 1.
	MicroBatch int
	// PromptTokens is the length of an MLLM prompt (the chat template and
	// the user's text; an editing prompt's image adds
	// (image_size/vision_patch)² tokens).
	PromptTokens int
	// ConditionTokens is the number of instruction tokens that condition
	// the DiT (the connector adds connector.prepad more).
	ConditionTokens int
	// FusedAttention says attention saves no probabilities (flash or
	// memory-efficient scaled-dot-product attention, as on CUDA); false
	// counts them (the math kernel libtorch runs on the CPU with a mask).
	FusedAttention bool
}

// Defaults for the Options a command does not set.
const (
	DefaultPromptTokens    = 256
	DefaultConditionTokens = 128
	// MaxGPUs bounds the search for the smallest N.
	MaxGPUs = 1024
)

// Choice is a way to run a role that fits one GPU.
type Choice struct {
	GPUs          int   `json:"gpus"`
	ZeRO          int   `json:"zero"`
	Checkpointing bool  `json:"checkpointing"`
	MicroBatch    int   `json:"micro_batch"`
	Total         int64 `json:"total_bytes"`
}

func (c *Choice) String() string {
	if c == nil {
		return "none"
	}
	ck := ""
	if c.Checkpointing {
		ck = " ckpt"
	}
	return fmt.Sprintf("N=%d ZeRO-%d%s mb=%d", c.GPUs, c.ZeRO, ck, c.MicroBatch)
}

// Row is the memory of one role of one phase on one GPU, in bytes.
type Row struct {
	Phase string `json:"phase"`
	Role  string `json:"role"`
	// TrainedParams and FrozenParams count the parameters the role trains
	// and those it holds frozen (other modules, the reference policy).
	TrainedParams int64 `json:"trained_params"`
	FrozenParams  int64 `json:"frozen_params"`
	Weights       int64 `json:"weights_bytes"`          // trained + frozen, compute dtype
	Gradients     int64 `json:"gradients_bytes"`        // compute dtype; /N under ZeRO-2
	Optimizer     int64 `json:"optimizer_bytes"`        // float32 master + AdamW m, v; /N under ZeRO-1, 2
	Activations   int64 `json:"activations_bytes"`      // per micro-batch, no checkpointing (rollout: inference working set)
	ActivationsCk int64 `json:"activations_ckpt_bytes"` // per micro-batch, with activation checkpointing
	KVCache       int64 `json:"kv_cache_bytes"`
	// MicroBatch is the micro-batch the activations are for (rollout: the
	// sequences or images generated at once).
	MicroBatch int `json:"micro_batch"`
	// PerUpdate is the samples a learner rank trains on per update
	// (mini-batch / N), or the samples a rollout worker generates a step.
	PerUpdate int   `json:"per_update"`
	Total     int64 `json:"total_bytes"`
	TotalCk   int64 `json:"total_ckpt_bytes"`
	Fits      bool  `json:"fits"`
	FitsCk    bool  `json:"fits_ckpt"`
	// AtGPUs is the lowest ZeRO stage (checkpointing last) and the largest
	// micro-batch that fit on the given N; nil when none does.
	AtGPUs *Choice `json:"at_gpus"`
	// Smallest is the smallest N that fits, with its choice; nil when no
	// N up to MaxGPUs does (data parallelism cannot shard the weights).
	Smallest *Choice `json:"smallest"`
	Note     string  `json:"note,omitempty"`
}

// Plan is the memory plan of a configuration on a cluster.
type Plan struct {
	DType     string  `json:"dtype"`
	Vocab     int     `json:"vocab"`
	Params    Params  `json:"params"`
	Options   Options `json:"options"`
	Rows      []Row   `json:"rows"`
	MLLMSeq   int     `json:"mllm_tokens"`
	DiTTokens int     `json:"dit_tokens"`
}

// learnerSpec is a learner role: what it trains and holds, and the
// activations of one sample.
type learnerSpec struct {
	phase          string
	trained, other int64 // trained parameters; frozen ones it also holds
	perUpdate      int   // samples per optimizer update across all ranks
	act            Activations
	note           string
}

// Build makes the plan of c (vocabulary vocab) under o.
func Build(c *config.Config, vocab int, o Options) (*Plan, error) {
	e, err := DTypeBytes(c.Model.DType)
	if err != nil {
		return nil, err
	}
	if o.GPUs < 1 {
		return nil, fmt.Errorf("plan: --gpus must be at least 1, got %d", o.GPUs)
	}
	if o.GPUMemory <= 0 {
		return nil, fmt.Errorf("plan: GPU memory must be positive")
	}
	if o.ZeRO < 0 || o.ZeRO > 2 {
		return nil, fmt.Errorf("plan: --zero must be 0, 1 or 2, got %d", o.ZeRO)
	}
	if vocab <= 0 {
		return nil, fmt.Errorf("plan: vocabulary size must be positive, got %d", vocab)
	}
	if o.MicroBatch <= 0 {
		o.MicroBatch = 1
	}
	if o.PromptTokens <= 0 {
		o.PromptTokens = DefaultPromptTokens
	}
	if o.ConditionTokens <= 0 {
		o.ConditionTokens = DefaultConditionTokens
	}
	m := c.Model
	ps := CountParams(c, vocab)
	p := &Plan{DType: m.DType, Vocab: vocab, Params: ps, Options: o}
	fused := o.FusedAttention
	txt := m.Connector.Prepad + o.ConditionTokens
	p.DiTTokens = DiTImageTokens(m.DiT) + txt
	seqOf := func(newTokens int) int { return min(o.PromptTokens+newTokens, max(m.MLLM.MaxSeqLen, 1)) }
	cfgMul := func(scale float64) int64 {
		if scale > 1 {
			return 2 // classifier-free guidance runs the conditional and unconditional pass
		}
		return 1
	}
	refOf := func(beta float64, n int64) int64 {
		if beta > 0 {
			return n
		}
		return 0
	}
	ditTrained := ps.Connector + ps.DiT

	var learners []learnerSpec
	for _, st := range []struct {
		name string
		s    config.Stage
	}{{"warmup", c.Pretrain.Warmup}, {"align", c.Pretrain.Align}, {"dit", c.Pretrain.DiT}, {"finetune", c.Pretrain.Finetune}} {
		if st.s.Steps <= 0 || st.s.Batch <= 0 {
			continue
		}
		ls := learnerSpec{phase: "pretrain/" + st.name, perUpdate: st.s.Batch}
		switch st.name {
		case "warmup":
			seq := seqOf(c.Sampling.MaxNewTokens)
			ls.trained, ls.other = ps.MLLM, ditTrained
			ls.act = MLLMActivations(m.MLLM, vocab, 1, seq, e, fused)
		case "align":
			ls.trained, ls.other = ps.Connector, ps.MLLM+ps.DiT
			ls.act = DiTActivations(m.DiT, 1, txt, e, fused) // backward runs through the frozen DiT
		default:
			ls.trained, ls.other = ditTrained, ps.MLLM
			ls.act = DiTActivations(m.DiT, 1, txt, e, fused)
		}
		learners = append(learners, ls)
	}
	var rows []Row
	for _, ph := range phasesOf(c) {
		switch ph {
		case config.PhaseMLLMGRPO:
			g := c.GRPO
			seq := seqOf(g.MaxNewTokens)
			p.MLLMSeq = seq
			learners = append(learners, learnerSpec{
				phase: string(ph), trained: ps.MLLM, other: ditTrained + refOf(g.Beta, ps.MLLM),
				perUpdate: ceilDivInt(g.PromptsPerStep*g.Group, max(g.MiniBatches, 1)),
				act:       MLLMActivations(m.MLLM, vocab, 1, seq, e, fused),
				note:      "the reference MLLM's log-probs and the old policy's are no-grad forwards: transient",
			})
			seqs := ceilDivInt(g.PromptsPerStep*g.Group, max(c.Cluster.Workers.Rollout, 1))
			rows = append(rows, rolloutRow(string(ph), ps, e, seqs, o, fused, func(b int) (kv, work int64) {
				kv = KVCacheBytes(m.MLLM, b, seq, e)
				work = max(MLLMInference(m.MLLM, vocab, b, o.PromptTokens, e, fused),
					int64(b)*cfgMul(c.Sampling.CFG)*DiTInference(m.DiT, 1, txt, e, fused))
				return kv, work
			}))
		case config.PhaseDiTGRPO:
			f := c.FlowGRPO
			learners = append(learners, learnerSpec{
				phase: string(ph), trained: ditTrained, other: ps.MLLM + refOf(f.Beta, ditTrained),
				perUpdate: ceilDivInt(f.PromptsPerStep*f.Group, max(f.MiniBatches, 1)),
				act:       DiTActivations(m.DiT, 1, txt, e, fused).scale(cfgMul(f.CFG)),
				note:      "one SDE timestep per backward (gradients accumulate over timesteps)",
			})
			seqs := ceilDivInt(f.PromptsPerStep*f.Group, max(c.Cluster.Workers.Rollout, 1))
			seq := seqOf(c.Sampling.MaxNewTokens)
			rows = append(rows, rolloutRow(string(ph), ps, e, seqs, o, fused, func(b int) (kv, work int64) {
				kv = KVCacheBytes(m.MLLM, b, seq, e)
				work = max(MLLMInference(m.MLLM, vocab, b, o.PromptTokens, e, fused),
					int64(b)*cfgMul(f.CFG)*DiTInference(m.DiT, 1, txt, e, fused))
				return kv, work
			}))
		}
	}
	var out []Row
	for _, ls := range learners {
		out = append(out, learnerRow(ls, e, o))
	}
	// Rollout rows follow their phase's learner; reward rows close each phase.
	for _, r := range rows {
		for i := range out {
			if out[i].Phase == r.Phase && out[i].Role == "learner" {
				out = append(out[:i+1], append([]Row{r, rewardRow(r.Phase)}, out[i+1:]...)...)
				break
			}
		}
	}
	p.Rows = out
	return p, nil
}

// phasesOf lists the schedule's phases once each, in order.
func phasesOf(c *config.Config) []config.Phase {
	var out []config.Phase
	seen := map[config.Phase]bool{}
	for _, s := range c.Schedule.Phases {
		if !seen[s.Phase] {
			seen[s.Phase] = true
			out = append(out, s.Phase)
		}
	}
	return out
}

// learnerRow evaluates a learner at the options' N, ZeRO stage and
// micro-batch, and searches for the choices that fit.
func learnerRow(ls learnerSpec, e int64, o Options) Row {
	static := func(n, zero int) (w, g, opt int64) {
		return WeightBytes(ls.trained+ls.other, e), GradientBytes(ls.trained, e, zero, n), OptimizerBytes(ls.trained, e, zero, n)
	}
	share := func(n int) int { return max(ceilDivInt(ls.perUpdate, n), 1) }
	w, g, opt := static(o.GPUs, o.ZeRO)
	mb := min(o.MicroBatch, share(o.GPUs))
	r := Row{
		Phase: ls.phase, Role: "learner", TrainedParams: ls.trained, FrozenParams: ls.other,
		Weights: w, Gradients: g, Optimizer: opt,
		Activations: ls.act.Full * int64(mb), ActivationsCk: ls.act.Checkpointed * int64(mb),
		MicroBatch: mb, PerUpdate: share(o.GPUs), Note: ls.note,
	}
	r.Total = w + g + opt + r.Activations
	r.TotalCk = w + g + opt + r.ActivationsCk
	r.Fits, r.FitsCk = r.Total <= o.GPUMemory, r.TotalCk <= o.GPUMemory
	// best is the lowest ZeRO stage, without checkpointing first, and the
	// largest micro-batch (up to the rank's share) that fit on n GPUs.
	best := func(n int) *Choice {
		for _, ck := range []bool{false, true} {
			per := ls.act.Full
			if ck {
				per = ls.act.Checkpointed
			}
			for zero := 0; zero <= 2; zero++ {
				if zero > 0 && n == 1 {
					break // nothing to shard over
				}
				w, g, opt := static(n, zero)
				free := o.GPUMemory - w - g - opt
				if free < 0 || free < per {
					continue
				}
				k := share(n)
				if per > 0 {
					k = min(k, int(free/per))
				}
				return &Choice{GPUs: n, ZeRO: zero, Checkpointing: ck, MicroBatch: k, Total: w + g + opt + per*int64(k)}
			}
		}
		return nil
	}
	r.AtGPUs = best(o.GPUs)
	for n := 1; n <= MaxGPUs; n++ {
		if c := best(n); c != nil {
			r.Smallest = c
			break
		}
	}
	return r
}

// rolloutRow is a rollout worker: every module in the compute dtype, the
// KV cache and working set of the samples it generates at once
// (work(b)), and the largest such batch that fits.
func rolloutRow(phase string, ps Params, e int64, seqs int, o Options, fused bool, work func(b int) (kv, act int64)) Row {
	w := WeightBytes(ps.MLLM+ps.Connector+ps.DiT, e)
	b := min(o.MicroBatch, seqs)
	kv, act := work(b)
	r := Row{
		Phase: phase, Role: "rollout", FrozenParams: ps.MLLM + ps.Connector + ps.DiT,
		Weights: w, KVCache: kv, Activations: act, ActivationsCk: act, MicroBatch: b, PerUpdate: seqs,
		Note: "no-grad: the working set is one layer's tensors at a time",
	}
	r.Total = w + kv + act
	r.TotalCk = r.Total
	r.Fits, r.FitsCk = r.Total <= o.GPUMemory, r.Total <= o.GPUMemory
	kv1, act1 := work(1)
	if per := kv1 + act1; w+per <= o.GPUMemory {
		k := seqs
		if per > 0 {
			k = min(seqs, int((o.GPUMemory-w)/per))
		}
		kvk, actk := work(k)
		r.AtGPUs = &Choice{GPUs: 1, MicroBatch: k, Total: w + kvk + actk}
		r.Smallest = &Choice{GPUs: 1, MicroBatch: 1, Total: w + per}
	}
	return r
}

// rewardRow is a reward worker: ShapeWorld's rewards are programs run on
// the CPU, so it holds no GPU memory.
func rewardRow(phase string) Row {
	return Row{Phase: phase, Role: "reward", Fits: true, FitsCk: true,
		Note: "ShapeWorld rewards are CPU programs (reward.remote models are served elsewhere)"}
}

func ceilDivInt(a, b int) int { return int(ceilDiv(int64(a), int64(b))) }
