// Package config defines the typed run configuration of thinkgen and loads it.
//
// A configuration is resolved in one order of precedence:
//
//  1. Default() gives every field a value that trains on a laptop CPU;
//  2. a YAML file (--config) overrides what it names;
//  3. --set key=value overrides (and the shorthand flags --device, --seed,
//     --store that the CLI turns into --set) win over both.
//
// Unknown keys are rejected with the file and line (or the --set argument)
// that named them, and Validate names the field and the allowed range of
// every invalid value. [Load] resolves a file and --set arguments over
// [Default]; [Config.Get] and [Config.Set] read and write one key by its
// dotted name (`thinkgen config get`, --set). The resolved configuration
// prints back as YAML ([Config.YAML]), so a run's config snapshot (kept in
// its run.json) parses back to the same configuration ([Parse]).
package config

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration of a run. Keys in YAML and --set are the
// yaml tags joined with dots, e.g. "optim.lr" or "model.dit.layers".
type Config struct {
	Run      Run      `yaml:"run"`
	Model    Model    `yaml:"model"`
	Data     Data     `yaml:"data"`
	Pretrain Pretrain `yaml:"pretrain"`
	Schedule Schedule `yaml:"schedule"`
	GRPO     GRPO     `yaml:"grpo"`
	FlowGRPO FlowGRPO `yaml:"flow_grpo"`
	Sampling Sampling `yaml:"sampling"`
	Eval     Eval     `yaml:"eval"`
	Optim    Optim    `yaml:"optim"`
	Reward   Reward   `yaml:"reward"`
	Storage  Storage  `yaml:"storage"`
	Cluster  Cluster  `yaml:"cluster"`
	Tracking Tracking `yaml:"tracking"`
	LoRA     LoRA     `yaml:"lora"`
}

// LoRA configures low-rank adapters (LoRA, as PEFT applies it) for the
// SepGRPO phases: a model with an adapter rank trains only its adapters —
// for each targeted linear weight W [out, in], A [rank, in] and B [out,
// rank], the layer computing x·(W + alpha/rank·B·A)ᵀ — and its frozen
// reference is the same weights without the adapters. Export writes them
// in PEFT's format next to the base (docs/export.md).
type LoRA struct {
	MLLM Adapter `yaml:"mllm"`
	DiT  Adapter `yaml:"dit"`
}

// Adapter is one model's LoRA: Rank 0 trains the whole model instead.
type Adapter struct {
	Rank  int     `yaml:"rank"`
	Alpha float64 `yaml:"alpha"`
	// Targets are the linear layers that get adapters, by module name:
	// for the MLLM q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj,
	// down_proj; for the DiT to_q, to_k, to_v, to_out.0 and its
	// feed-forward feed_forward.linear_1, .linear_2, .linear_3 (the
	// refiners' blocks included). Empty: all of them.
	Targets []string `yaml:"targets,omitempty"`
}

// MLLMTargets and DiTTargets are the modules an Adapter may target.
var (
	MLLMTargets = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
	DiTTargets  = []string{"to_q", "to_k", "to_v", "to_out.0", "feed_forward.linear_1", "feed_forward.linear_2", "feed_forward.linear_3"}
)

// Run names a run and fixes what makes it reproducible.
type Run struct {
	// Name of the run; runs/<name>/ in the store. Empty means one is made
	// from the config name and the start time.
	Name string `yaml:"name"`
	// Seed from which every other seed derives (data slice, sampling noise,
	// initialisation), as (seed, step, task).
	Seed int64 `yaml:"seed"`
	// Device is "cpu", "cuda" or "cuda:N": where the worker, pretrain,
	// eval and generate build the models and their inputs (docs/scale.md;
	// the CUDA path is unverified).
	Device string `yaml:"device"`
	// Threads is libtorch's intra-op CPU thread count; 0 keeps libtorch's
	// default (one per core). Fix it for bit-reproducible CPU runs.
	Threads int `yaml:"threads"`
	// CheckpointEvery keeps every k-th policy version of a SepGRPO run (and
	// the latest) in the store; the others are deleted once the next step
	// commits (1 = keep all).
	CheckpointEvery int `yaml:"checkpoint_every"`
	// MaxStaleness is k of asynchronous SepGRPO: the rollouts of steps
	// t+1 … t+k run while step t learns, each sampled by a policy version
	// at most k versions older than the one it trains; 0 runs each step's
	// rollout, reward and learn in sequence.
	MaxStaleness int `yaml:"max_staleness"`
	// EvalEvery runs the eval harness every k steps; 0 means only at the end.
	EvalEvery int `yaml:"eval_every"`
	// Base is the directory a SepGRPO run starts from (its policy version
	// 0): a bundle — the shipped base (base/tiny), a pretrain result
	// (<store>/runs/<run>/pretrain/finetune/final), another run's checkpoint
	// (<store>/runs/<run>/checkpoints/<version>/bundle) — an export
	// (thinkgen export), or a transformers Qwen3ForCausalLM folder
	// (Qwen3VLForConditionalGeneration with model.mllm.vision qwen3vl),
	// which a new run imports as thinkgen import --mllm does, the
	// connector and DiT initialised from run.seed.
	Base string `yaml:"base"`
}

// Model holds the shapes of the three networks.
type Model struct {
	// DType the models hold and compute in: float32, bfloat16 or float16
	// (CUDA only). Trained models keep float32 master weights and AdamW
	// moments; log-probs, ratios, KL, advantages and losses are float32;
	// float16 trains with a dynamic loss scale (docs/scale.md).
	DType     string    `yaml:"dtype"`
	MLLM      MLLM      `yaml:"mllm"`
	Connector Connector `yaml:"connector"`
	DiT       DiT       `yaml:"dit"`
	// VAE shapes the autoencoder of dit.latent vae; pixel space ignores it.
	VAE VAE `yaml:"vae"`
}

// SameShape reports whether weights saved for o fit m: the same MLLM,
// DiT and number of prepadding states (the dtype may differ, and so may
// connector.states, which picks states without changing any weight).
func (m Model) SameShape(o Model) bool { return len(m.ShapeDiff(o)) == 0 }

// ShapeDiff lists the keys on which weights saved for o would not fit m,
// as "connector.prepad 4 vs 0" (m's value first), in the order of the
// model section; empty when they fit (SameShape).
func (m Model) ShapeDiff(o Model) []string {
	var diff []string
	var walk func(prefix string, a, b any)
	walk = func(prefix string, a, b any) {
		va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
		for i := range va.NumField() {
			key, _, _ := strings.Cut(va.Type().Field(i).Tag.Get("yaml"), ",")
			x, y := va.Field(i), vb.Field(i)
			switch {
			case x.Kind() == reflect.Struct:
				walk(prefix+"."+key, x.Interface(), y.Interface())
			case x.Kind() == reflect.Slice && x.Len() == 0 && y.Len() == 0:
			case !reflect.DeepEqual(x.Interface(), y.Interface()):
				diff = append(diff, fmt.Sprintf("%s.%s %v vs %v", prefix, key, x.Interface(), y.Interface()))
			}
		}
	}
	a, b := m.MLLM.shapeKeys(), o.MLLM.shapeKeys()
	if a.Vision != b.Vision {
		// Other towers: their own keys would only repeat that.
		a.ViT, a.MRopeSection, b.ViT, b.MRopeSection = ViT{}, nil, ViT{}, nil
	}
	walk("mllm", a, b)
	if m.Connector.Prepad != o.Connector.Prepad {
		diff = append(diff, fmt.Sprintf("connector.prepad %d vs %d", m.Connector.Prepad, o.Connector.Prepad))
	}
	walk("dit", m.DiT, o.DiT)
	if m.DiT.Latent == "vae" || o.DiT.Latent == "vae" {
		walk("vae", m.VAE, o.VAE)
	}
	return diff
}

// MLLM is a Qwen3-style decoder with a small vision patch embedder.
type MLLM struct {
	// Tokenizer is "shapeworld" (the built-in word vocabulary) or the path
	// of a HuggingFace tokenizer.json.
	Tokenizer string `yaml:"tokenizer"`
	// Vocab is the vocabulary size; 0 means the tokenizer's.
	Vocab      int     `yaml:"vocab"`
	Hidden     int     `yaml:"hidden"`
	Layers     int     `yaml:"layers"`
	Heads      int     `yaml:"heads"`
	KVHeads    int     `yaml:"kv_heads"`
	HeadDim    int     `yaml:"head_dim"`
	FFN        int     `yaml:"ffn"`
	MaxSeqLen  int     `yaml:"max_seq_len"`
	RopeTheta  float64 `yaml:"rope_theta"`
	RMSNormEps float64 `yaml:"rms_norm_eps"`
	// TieEmbeddings shares the input embedding with the output head.
	TieEmbeddings bool `yaml:"tie_embeddings"`
	// VisionPatch is the patch size of the vision tower (pixels): the
	// patch embedder's, or the ViT's with vision: qwen3vl.
	VisionPatch int `yaml:"vision_patch"`
	// Vision picks the vision tower: "patch" (a linear patch embedder and
	// an RMSNorm; the tiny base was trained with it) or "qwen3vl" (Qwen3-VL's
	// ViT with its patch merger and DeepStack features, configured by vit,
	// and the text model's interleaved multimodal RoPE; checkpoint names of
	// transformers' Qwen3VLForConditionalGeneration). Empty means "patch".
	Vision string `yaml:"vision,omitempty"`
	// ViT shapes the Qwen3-VL vision tower (vision: qwen3vl only).
	ViT ViT `yaml:"vit,omitempty"`
	// MRopeSection splits the rotary frequencies of vision: qwen3vl's text
	// model between the temporal, height and width position axes
	// (interleaved); its sum is head_dim/2. Qwen3-VL-8B: [24, 20, 20].
	MRopeSection []int `yaml:"mrope_section,omitempty"`
}

// The values of model.mllm.vision.
const (
	VisionPatch   = "patch"
	VisionQwen3VL = "qwen3vl"
)

// ViT is Qwen3-VL's vision transformer (transformers' Qwen3VLVisionConfig).
// Its output width is the MLLM's hidden size.
type ViT struct {
	Depth  int `yaml:"depth"`  // blocks
	Hidden int `yaml:"hidden"` // width
	Heads  int `yaml:"heads"`
	FFN    int `yaml:"ffn"` // the MLP's intermediate width
	// TemporalPatch is the number of frames one patch spans; a still
	// image is repeated to fill it (2 in Qwen3-VL's checkpoints).
	TemporalPatch int `yaml:"temporal_patch"`
	// SpatialMerge is the side of the square of patches the merger turns
	// into one LLM token (2: four patches per image token).
	SpatialMerge int `yaml:"spatial_merge"`
	// PositionEmbeddings is the size of the learned position table, a
	// square grid interpolated bilinearly to each image's patch grid.
	PositionEmbeddings int `yaml:"position_embeddings"`
	// DeepStack lists the blocks whose outputs, merged by their own
	// mergers, are added to the hidden states of the first len(DeepStack)
	// LLM layers at the image tokens.
	DeepStack []int `yaml:"deepstack,flow"`
}

// shapeKeys returns c with the keys of a vision tower it does not use
// cleared, and the patch embedder named one way: what fixes its weights.
func (c MLLM) shapeKeys() MLLM {
	if !c.IsQwen3VL() {
		c.Vision, c.ViT, c.MRopeSection = VisionPatch, ViT{}, nil
	}
	return c
}

// IsQwen3VL reports whether the MLLM uses the Qwen3-VL vision tower.
func (c MLLM) IsQwen3VL() bool { return c.Vision == VisionQwen3VL }

// Connector is the VGI-refine connector between the MLLM and the DiT.
type Connector struct {
	// Prepad is K, the number of learnable prepadding states (23 at full scale).
	Prepad int `yaml:"prepad"`
	// States picks the MLLM states that condition the DiT: "cut" (the
	// paper's VGI-refine: only the tokens after the first </think>) or
	// "all" (the whole sequence, prompt and chain of thought included; the
	// paper's ALL ablation). Empty means "cut".
	States string `yaml:"states"`
}

// The values of connector.states.
const (
	StatesCut = "cut"
	StatesAll = "all"
)

// DiT is an OmniGen2-style diffusion transformer.
type DiT struct {
	Hidden  int `yaml:"hidden"`
	Layers  int `yaml:"layers"`
	Heads   int `yaml:"heads"`
	KVHeads int `yaml:"kv_heads"`
	FFN     int `yaml:"ffn"`
	// Patch is the patch size in latent (or pixel) units.
	Patch int `yaml:"patch"`
	// Latent is "pixel" (the DiT works on RGB pixels) or "vae".
	Latent string `yaml:"latent"`
	// Channels of the latent: 3 for pixel space, 16 for the FLUX VAE.
	Channels int `yaml:"channels"`
	// ImageSize is the side of generated images in pixels.
	ImageSize int `yaml:"image_size"`
	// VAEScale is the VAE's downsampling factor (8 for FLUX; 1 for pixel).
	VAEScale int `yaml:"vae_scale"`
	// RefinerLayers is the depth of each of OmniGen2's three refiners (text
	// context, noisy image, reference image) that run before the joint
	// layers; 0 leaves them out.
	RefinerLayers int `yaml:"refiner_layers"`
	// RopeTheta of the 3-axis rotary embedding.
	RopeTheta float64 `yaml:"rope_theta"`
}

// VAE is the architecture of a diffusers AutoencoderKL (the latent space
// of dit.latent vae): log2(dit.vae_scale) + 1 blocks whose widths are
// width·1, 2, 4, 4, … (FLUX's VAE: width 128, layers_per_block 2,
// norm_groups 32, no quant convs), dit.channels latent channels.
type VAE struct {
	Width          int  `yaml:"width"`
	LayersPerBlock int  `yaml:"layers_per_block"`
	NormGroups     int  `yaml:"norm_groups"`
	QuantConv      bool `yaml:"quant_conv"`
}

// BlockWidths returns block_out_channels for a VAE of the given
// downsampling factor (a power of two).
func (v VAE) BlockWidths(scale int) []int {
	var w []int
	for f := 1; f <= scale; f *= 2 {
		w = append(w, v.Width*min(f, 4))
	}
	return w
}

// Data describes the ShapeWorld data a run trains and evaluates on.
type Data struct {
	// Dataset is a dataset file (Arrow IPC with the schema `thinkgen data`
	// writes: docs/shapeworld.md) whose rows a run takes its prompts from
	// instead of generating the train split. It is checked before the run
	// starts (schema, image size, scenarios, reference images; the row at
	// fault named) and copied into the run's store, where every worker
	// reads it (storage/runs.DatasetKey); a resumed run keeps its copy.
	// Each phase's scenario mix picks the rows as it picks generated ones.
	Dataset string `yaml:"dataset"`
	// TrainSize is the number of rows of the train split: a run's prompts
	// are consecutive rows of it, wrapping around. With Dataset, the first
	// TrainSize rows of the file (it must have that many).
	TrainSize int `yaml:"train_size"`
	// EvalSize is the number of rows of each held-out split (eval and
	// eval-id): an evaluation (thinkgen train, eval, pretrain) scores the
	// first --eval-rows of them, and more than EvalSize is refused
	// (CheckEvalRows).
	EvalSize int `yaml:"eval_size"`
	// Mix is the sampling weight of each scenario in a step's prompts.
	Mix map[string]float64 `yaml:"mix"`
}

// CheckEvalRows returns an error naming data.eval_size when an evaluation
// of n rows (flag names them) would score more rows than the held-out
// split has.
func (d Data) CheckEvalRows(flag string, n int) error {
	if n > d.EvalSize {
		return fmt.Errorf("%s %d: more than data.eval_size (%d), the rows of the held-out split; lower it or raise data.eval_size", flag, n, d.EvalSize)
	}
	return nil
}

// Pretrain configures the supervised stages (MLLM warm-up, stages 1-3).
type Pretrain struct {
	// VAE trains the autoencoder of model.dit.latent vae on the data's
	// images before the other stages (0 steps with pretrain --vae DIR,
	// which brings a trained one).
	VAE      Stage `yaml:"vae"`
	Warmup   Stage `yaml:"warmup"`
	Align    Stage `yaml:"align"`
	DiT      Stage `yaml:"dit"`
	Finetune Stage `yaml:"finetune"`
}

// Stage is one supervised stage. Steps 0 skips the stage.
type Stage struct {
	Steps int `yaml:"steps"`
	Batch int `yaml:"batch"`
	// LR overrides optim.lr for this stage when > 0.
	LR float64 `yaml:"lr"`
	// Condition is how a DiT stage (align, dit, finetune) writes the
	// instruction whose MLLM states condition the DiT: "pseudo-cot" (the
	// default) as [C]<think></think>[C], the answer C as the user turn and
	// again as the reply; "pipeline" as the pipeline writes it at
	// inference, the row's prompt as the user turn and its reference
	// chain and answer as the reply, half the rows in thinking mode and
	// half in direct mode; "mixed" alternates the two, row by row. The
	// frozen MLLM's states of the same answer differ between the two
	// contexts, and a DiT trained only on the first reads the second
	// poorly (docs/pretrain.md). The warm-up ignores it.
	Condition string `yaml:"condition"`
	// Facts is the share of each warm-up batch (0 ≤ facts < 1) given to
	// text-only questions about the world-knowledge facts
	// (datasets.FactQuestions), every fact included, held-back ones too:
	// the MLLM learns the world as text, as a VLM's pre-training teaches
	// it, while no image row of any stage shows a held-back fact. The
	// rest of the batch is image rows of the train split. Only the
	// warm-up takes it.
	Facts float64 `yaml:"facts"`
}

// Stage conditions (Stage.Condition).
const (
	ConditionPseudoCoT = "pseudo-cot"
	ConditionPipeline  = "pipeline"
	ConditionMixed     = "mixed"
)

// Schedule orders the SepGRPO phases.
type Schedule struct {
	// Phases run in order; the whole list repeats Cycles times.
	Phases []PhaseSpec `yaml:"phases"`
	Cycles int         `yaml:"cycles"`
}

// PhaseSpec is one entry of the schedule.
type PhaseSpec struct {
	Phase Phase `yaml:"phase"`
	Steps int   `yaml:"steps"`
}

// Phase is a SepGRPO phase.
type Phase string

// The SepGRPO phases.
const (
	PhaseMLLMGRPO Phase = "mllm-grpo" // stage 4: GRPO on the MLLM, DiT frozen
	PhaseDiTGRPO  Phase = "dit-grpo"  // stage 5: FlowGRPO on the DiT, MLLM frozen
)

// AllPhases lists every Phase; keep it in sync with the constants above.
var AllPhases = []Phase{PhaseMLLMGRPO, PhaseDiTGRPO}

// Valid reports whether p is one of AllPhases.
func (p Phase) Valid() bool {
	for _, q := range AllPhases {
		if p == q {
			return true
		}
	}
	return false
}

// GRPO configures stage 4 (GRPO on the MLLM).
type GRPO struct {
	// PromptsPerStep is the number of prompts per step; each gets Group chains.
	PromptsPerStep int `yaml:"prompts_per_step"`
	Group          int `yaml:"group"`
	// EpsLow and EpsHigh clip the per-token ratio to [1-EpsLow, 1+EpsHigh].
	EpsLow  float64 `yaml:"eps_low"`
	EpsHigh float64 `yaml:"eps_high"`
	// ClipRatioC is the dual clip: for a negative advantage the clipped
	// term −r·A is capped at −ClipRatioC·A (> 1).
	ClipRatioC float64 `yaml:"clip_ratio_c"`
	// Proximal is decoupled PPO's proximal policy: "behaviour" (the
	// default: the ratio is taken against the policy that sampled, plain
	// PPO) or "previous" (the policy before this step's update; the term is
	// weighted by π_prox/π_behaviour truncated at BehaviourWeightCap).
	Proximal string `yaml:"proximal"`
	// BehaviourWeightCap truncates the weight π_prox/π_behaviour (≥ 1).
	BehaviourWeightCap float64 `yaml:"behaviour_weight_cap"`
	// Beta weighs the k3 KL to the frozen reference.
	Beta float64 `yaml:"beta"`
	// MiniBatches per step and Epochs over the step's rollouts.
	MiniBatches int `yaml:"mini_batches"`
	Epochs      int `yaml:"epochs"`
	// LR overrides optim.lr when > 0.
	LR float64 `yaml:"lr"`
	// WarmupSteps and Decay shape the phase's learning rate over its
	// steps in the run (every block and cycle of it, counted in order):
	// a linear warm-up over the first WarmupSteps (0: none), then
	// "constant" (the default) or "cosine" (a half cosine down to a
	// tenth of the rate at the phase's last step). The rate of each step
	// is its learn/lr metric.
	WarmupSteps int     `yaml:"warmup_steps"`
	Decay       string  `yaml:"decay"`
	Temperature float64 `yaml:"temperature"`
	TopP        float64 `yaml:"top_p"`
	// MaxNewTokens bounds a chain of thought plus its instruction.
	MaxNewTokens int `yaml:"max_new_tokens"`
	// ImageSteps is the number of ODE steps the frozen DiT draws each
	// chain's image with (0: sampling.dit_steps).
	ImageSteps int `yaml:"image_steps"`
	// Mix weighs the scenarios of this phase's prompts (as data.mix does);
	// empty: data.mix.
	Mix map[string]float64 `yaml:"mix,omitempty"`
}

// The proximal policies of decoupled PPO (grpo.proximal).
const (
	ProximalBehaviour = "behaviour"
	ProximalPrevious  = "previous"
)

// The learning-rate decays of the SepGRPO phases (grpo.decay,
// flow_grpo.decay).
const (
	DecayConstant = "constant"
	DecayCosine   = "cosine"
)

// FlowGRPO configures stage 5 (FlowGRPO on the DiT).
type FlowGRPO struct {
	PromptsPerStep int `yaml:"prompts_per_step"`
	Group          int `yaml:"group"`
	// Steps is the number of SDE steps in training rollouts ("denoising
	// reduction": fewer than sampling.dit_steps).
	Steps int `yaml:"steps"`
	// NoiseLevel is a in sigma_t = a*sqrt(sigma/(1-sigma)).
	NoiseLevel float64 `yaml:"noise_level"`
	// ClipEps clips the ratio to [1-ClipEps, 1+ClipEps].
	ClipEps float64 `yaml:"clip_eps"`
	// ClipRatioC is the dual clip, as grpo.clip_ratio_c (> 1).
	ClipRatioC float64 `yaml:"clip_ratio_c"`
	// Beta weighs the KL on the means to the frozen reference.
	Beta float64 `yaml:"beta"`
	// AdvClamp clamps advantages to [-AdvClamp, AdvClamp].
	AdvClamp float64 `yaml:"adv_clamp"`
	// TimestepFraction is the fraction of SDE steps trained on per sample
	// (when every step is an SDE step: SDEWindow 0).
	TimestepFraction float64 `yaml:"timestep_fraction"`
	// SDEWindow > 0 samples as Flow-GRPO-Fast (and MixGRPO) do: only
	// SDEWindow consecutive steps are stochastic, at a place drawn each
	// training step within SDEWindowRange, the others deterministic Euler
	// steps; the learner trains on the window's steps, every one of them
	// (TimestepFraction is unused). The group's rewards then differ by the
	// noise of the steps that are trained. 0: every step is an SDE step.
	SDEWindow int `yaml:"sde_window"`
	// SDEWindowRange [lo, hi] bounds the window to steps lo … hi−1;
	// empty means [0, steps].
	SDEWindowRange []int `yaml:"sde_window_range,omitempty"`
	// Objective is the DiT's policy loss: "flow-grpo" (the default, the
	// paper's: the SDE steps' clipped log-prob ratio) or "awm", advantage-
	// weighted flow matching (the decoupled family of AWM and DiffusionNFT):
	// each sample's final image is the target of the pre-training flow
	// loss at round(timestep_fraction × steps) fresh times, weighted by its
	// advantage, plus Beta × the squared velocity difference to the
	// reference at the same points. It needs no log-probs, so the window
	// and noise settings only shape the samples.
	Objective string `yaml:"objective,omitempty"`
	// SameNoise gives the samples of a group one initial noise (flow_grpo's
	// same_latent), so that their rewards differ by the SDE's noise alone.
	SameNoise   bool    `yaml:"same_noise"`
	CFG         float64 `yaml:"cfg"`
	MiniBatches int     `yaml:"mini_batches"`
	// LR overrides optim.lr when > 0.
	LR float64 `yaml:"lr"`
	// WarmupSteps and Decay shape the phase's learning rate as
	// grpo.warmup_steps and grpo.decay do.
	WarmupSteps int    `yaml:"warmup_steps"`
	Decay       string `yaml:"decay"`
	// GreedyInstruction makes the frozen MLLM write its instruction greedily.
	GreedyInstruction bool `yaml:"greedy_instruction"`
	// Mix weighs the scenarios of this phase's prompts (as data.mix does);
	// empty: data.mix.
	Mix map[string]float64 `yaml:"mix,omitempty"`
}

// The DiT's policy losses (flow_grpo.objective).
const (
	ObjectiveFlowGRPO = "flow-grpo"
	ObjectiveAWM      = "awm"
)

// PhaseMix is the scenario mix of phase p's prompts: grpo.mix or
// flow_grpo.mix when set, else data.mix.
func (c *Config) PhaseMix(p Phase) map[string]float64 {
	switch {
	case p == PhaseMLLMGRPO && len(c.GRPO.Mix) > 0:
		return c.GRPO.Mix
	case p == PhaseDiTGRPO && len(c.FlowGRPO.Mix) > 0:
		return c.FlowGRPO.Mix
	}
	return c.Data.Mix
}

// Sampling configures generation outside training (eval, generate).
type Sampling struct {
	Temperature  float64 `yaml:"temperature"`
	TopP         float64 `yaml:"top_p"`
	MaxNewTokens int     `yaml:"max_new_tokens"`
	// DiTSteps is the number of Euler ODE steps.
	DiTSteps int     `yaml:"dit_steps"`
	CFG      float64 `yaml:"cfg"`
	// TimeShift enables OmniGen2's resolution-dependent time shift.
	TimeShift bool `yaml:"time_shift"`
	// DecodeThreads is libtorch's intra-op CPU thread count while the
	// MLLM decodes token by token (rollouts of both phases, eval,
	// generate); 0 keeps run.threads. Decoding a small model is bound by
	// per-token latency, not arithmetic: on two cores the tiny MLLM
	// decodes faster on one thread than on two, while the DiT and the
	// learner gain from two (BENCHMARKS.md).
	DecodeThreads int `yaml:"decode_threads"`
}

// Eval chooses what a SepGRPO run's held-out evaluations score: the
// periodic ones (run.eval_every) and the per-stage table `thinkgen train`
// prints at the end, on --eval-rows rows each. A stage's gain on the
// scenarios it trains needs far more rows than a spread over all five can
// afford: configs/tiny.yaml scores only those, in thinking mode.
type Eval struct {
	// Scenarios are the held-out rows' scenarios, drawn in equal parts;
	// empty: all five, as the split mixes them.
	Scenarios []string `yaml:"scenarios,omitempty"`
	// Modes are the pipeline modes scored: direct, think, oracle (the DiT
	// drawing each row's reference answer) or reference (the reply forced
	// to the row's reference chain); empty: direct and think.
	Modes []string `yaml:"modes,omitempty"`
	// Splits are the held-out splits: eval (out of distribution) and
	// eval-id (in distribution; docs/shapeworld.md); empty: both.
	Splits []string `yaml:"splits,omitempty"`
}

// EvalModes and EvalSplits are the names eval.modes and eval.splits take.
var (
	EvalModes  = []string{"direct", "think", "oracle", "reference"}
	EvalSplits = []string{"eval", "eval-id"}
)

// Optim is the AdamW optimiser shared by every stage unless a stage sets LR.
type Optim struct {
	LR          float64 `yaml:"lr"`
	Beta1       float64 `yaml:"beta1"`
	Beta2       float64 `yaml:"beta2"`
	Eps         float64 `yaml:"eps"`
	WeightDecay float64 `yaml:"weight_decay"`
	// GradClip is the max global grad norm; 0 disables clipping.
	GradClip float64 `yaml:"grad_clip"`
	// WarmupSteps of linear LR warm-up of each pre-training stage, which
	// then decays by cosine to a tenth (pretrain/run.go). The SepGRPO
	// phases take their own: grpo.warmup_steps and flow_grpo.warmup_steps.
	WarmupSteps int `yaml:"warmup_steps"`
	// Zero is the ZeRO stage of the learner ranks (cluster.workers.learner
	// > 1): 0 keeps the whole AdamW state on every rank; 1 shards it, each
	// rank holding and updating the moments of about 1/N of the
	// parameters and the ranks exchanging the updated values; 2 also
	// releases, after each update, the gradients of the parameters other
	// ranks own (ZeRO-2).
	Zero int `yaml:"zero"`
	// ActivationCheckpointing recomputes each layer of the trained model
	// in backward instead of keeping its activations (model.Recompute):
	// per model, for the SepGRPO learner and pre-training.
	ActivationCheckpointing ActivationCheckpointing `yaml:"activation_checkpointing"`
}

// ActivationCheckpointing switches activation checkpointing per model: a
// forward then keeps each layer's input only (about 1/(activations per
// token of a layer ÷ hidden) of the memory; `thinkgen plan` shows it) and
// backward runs every layer's forward a second time.
type ActivationCheckpointing struct {
	MLLM bool `yaml:"mllm"`
	DiT  bool `yaml:"dit"`
}

// Reward configures the reward workers.
type Reward struct {
	// Weights scales each scenario's reward; missing scenarios weigh 1.
	Weights map[string]float64 `yaml:"weights"`
	// Remote maps a scenario to the URL of a remote reward service; missing
	// scenarios are scored in process.
	Remote map[string]string `yaml:"remote"`
	// Timeout of one remote reward request.
	Timeout time.Duration `yaml:"timeout"`
	// Instruction is the share λ in [0, 1] of the MLLM phase's (mllm-grpo)
	// reward of a composition or reasoning sample that goes to the instruction the
	// MLLM wrote, read back as a caption and checked against the row's
	// requirements (datasets.ScoreCaption), the rest going to the image:
	// reward = weight × ((1 − λ) × image + λ × instruction). An accuracy
	// reward on the answer, as R1-style GRPO uses; it gives the MLLM's
	// phase a signal that the DiT's drawing does not blur. 0 (the default)
	// rewards the image alone, as the paper does. Eval always scores the
	// image.
	Instruction float64 `yaml:"instruction"`
}

// Storage says where datasets, shards, checkpoints and manifests live.
type Storage struct {
	// URI is a local directory ("store", "/data/thinkgen", "file:///data")
	// or "s3://bucket/prefix". Empty means the local directory "store".
	URI string `yaml:"uri"`
	// Endpoint of the S3 service (host:port); empty means AWS S3.
	Endpoint string `yaml:"endpoint"`
	Region   string `yaml:"region"`
	// Insecure talks plain HTTP to the endpoint (tests, local MinIO).
	Insecure bool `yaml:"insecure"`
	// CredentialsFile holds "access_key" and "secret_key" lines; empty means
	// the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). Keys are
	// never logged or printed.
	CredentialsFile string `yaml:"credentials_file"`
	// Compression of Arrow shards: none, lz4 or zstd.
	Compression string `yaml:"compression"`
}

// Cluster configures distributed mode: worker processes, Ray and KubeRay.
type Cluster struct {
	// Workers per role; all zero means embedded mode (one process).
	Workers Workers `yaml:"workers"`
	// Ray is the address of a Ray dashboard (Job Submission API),
	// e.g. "http://127.0.0.1:8265"; empty means no Ray placement.
	Ray string `yaml:"ray"`
	// Namespace of the KubeRay RayJob (thinkgen launch); "default" by default.
	Namespace string `yaml:"namespace"`
	// Image of every pod of the RayJob: a Ray image (the submitter runs
	// `ray job submit`, every pod runs `ray start`) with the thinkgen binary
	// on PATH. Required by thinkgen launch.
	Image string `yaml:"image"`
	// ServiceAccount the RayJob's pods run as; empty means the namespace's
	// default service account.
	ServiceAccount string `yaml:"service_account"`
	// Secret names the Kubernetes Secret (in Namespace) from which the pods
	// take the store credentials (keys aws-access-key-id,
	// aws-secret-access-key) and the workers' bearer token (key token); the
	// values never appear in the RayJob. "thinkgen" by default.
	Secret string `yaml:"secret"`
	// RayVersion of the image's Ray, recorded in the RayCluster spec; empty
	// leaves it unset.
	RayVersion string `yaml:"ray_version"`
	// ShmSize bounds the memory-backed /dev/shm of every pod (a Kubernetes
	// quantity, e.g. "2Gi"); empty means no bound beyond the pod's memory.
	ShmSize string `yaml:"shm_size"`
	// Head holds the resources of the Ray head pod, which runs the
	// controller (thinkgen train --listen) as the RayJob's entrypoint.
	Head Resources `yaml:"head"`
	// Resources of one worker of each role.
	Rollout Resources `yaml:"rollout"`
	Reward  Resources `yaml:"reward"`
	Learner Resources `yaml:"learner"`
	// LeaseTimeout after which a task without a heartbeat is re-queued.
	LeaseTimeout time.Duration `yaml:"lease_timeout"`
	// MaxAttempts bounds the attempts of one task in distributed mode
	// (failures and expired leases both count); then the run stops.
	MaxAttempts int `yaml:"max_attempts"`
	// TaskTimeout bounds one attempt of a task: past it the lease ends even
	// if the worker still heartbeats (its task hangs) and another worker
	// takes the task.
	TaskTimeout time.Duration `yaml:"task_timeout"`
	// CollectiveTimeout bounds the learner ranks' rendezvous and each of
	// their collectives (workers.learner > 1): a rank that dies or hangs
	// fails the others' learn tasks within it, and the controller forms
	// the group again. It must exceed one mini-batch's forward and
	// backward, which a rank may wait on another for.
	CollectiveTimeout time.Duration `yaml:"collective_timeout"`
}

// Tracking names the experiment trackers a training run also reports to
// (docs/tracking.md). The run's own record (its metrics history, eval
// results, TensorBoard event files and curves in the store) is kept
// whatever this says.
type Tracking struct {
	// MLflow is the URL of an MLflow tracking server (its REST API,
	// e.g. "http://mlflow.example:5000"); empty means none. thinkgen
	// train then logs the configuration as params, every committed
	// step's metrics, the held-out tables and the curves to one MLflow
	// run per thinkgen run, which --resume continues.
	MLflow string `yaml:"mlflow"`
	// Experiment is the MLflow experiment the runs go to, created when
	// missing.
	Experiment string `yaml:"experiment"`
}

// Workers counts worker processes per role.
type Workers struct {
	Rollout int `yaml:"rollout"`
	Reward  int `yaml:"reward"`
	// Learner > 1 makes the learners one data-parallel group of that many
	// ranks, each training on 1/N of every mini-batch.
	Learner int `yaml:"learner"`
}

// Resources of one worker. On Kubernetes they are both the requests and
// the limits of its pod's container.
type Resources struct {
	// CPUs of the worker (fractions allowed); 0 means no CPU request.
	CPUs float64 `yaml:"cpus"`
	// GPUs of the worker; on Kubernetes a whole number of nvidia.com/gpu.
	GPUs float64 `yaml:"gpus"`
	// Memory is a Kubernetes-style quantity: bytes ("1000000"), or a number
	// with a binary (Ki, Mi, Gi, Ti, Pi, Ei) or decimal (k, M, G, T, P, E)
	// suffix, e.g. "80Gi". Empty means no memory request. See MemoryBytes.
	Memory string `yaml:"memory"`
	// Custom are Ray custom resources (name → quantity) a worker of the role
	// needs, e.g. {"accelerator_type:A100": 1}; Ray schedules the worker's
	// job only on a node that has them. CPU, GPU and memory have their own
	// fields and are not allowed here. Empty means none.
	Custom map[string]float64 `yaml:"custom,omitempty"`

	// The keys below place the role's pods on Kubernetes (thinkgen launch
	// and the Helm chart; docs/kubernetes.md). Ray job placement
	// (cluster.ray) does not read them: Ray schedules on Custom.

	// NodeSelector are node labels a pod of the role requires (the pod
	// spec's nodeSelector), e.g. {"cloud.google.com/gke-nodepool": "a100"}.
	NodeSelector map[string]string `yaml:"node_selector,omitempty"`
	// Tolerations let the role's pods onto tainted nodes, e.g. GPU nodes
	// tainted nvidia.com/gpu:NoSchedule.
	Tolerations []Toleration `yaml:"tolerations,omitempty"`
	// GPUProducts, when set, restricts the role to nodes whose
	// nvidia.com/gpu.product label (NVIDIA GPU feature discovery) is one
	// of them, e.g. ["NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"].
	GPUProducts []string `yaml:"gpu_products,omitempty"`
	// GPUMemoryMiB, when positive, restricts the role to nodes whose
	// nvidia.com/gpu.memory label (MiB per GPU, as GPU feature discovery
	// reports it: 81920 for an A100 80GB, 81559 for an H100 80GB) is at
	// least this.
	GPUMemoryMiB int `yaml:"gpu_memory_mib"`
	// PriorityClass names the Kubernetes PriorityClass of the role's pods;
	// empty means the cluster's default.
	PriorityClass string `yaml:"priority_class"`
	// ShmSize bounds the role's memory-backed /dev/shm (a Kubernetes
	// quantity); empty means cluster.shm_size.
	ShmSize string `yaml:"shm_size"`
}

// Toleration is one Kubernetes toleration of a role's pods.
type Toleration struct {
	// Key of the taint; empty with operator Exists tolerates every taint.
	Key string `yaml:"key"`
	// Operator is "Equal" (the default: Value must match) or "Exists".
	Operator string `yaml:"operator"`
	// Value the taint must have with operator Equal; empty with Exists.
	Value string `yaml:"value"`
	// Effect tolerated: NoSchedule, PreferNoSchedule or NoExecute; empty
	// means all.
	Effect string `yaml:"effect"`
}

// memorySuffixes are the multipliers of the quantity suffixes Memory accepts.
var memorySuffixes = map[string]float64{
	"":  1,
	"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
	"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60,
}

var memoryRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$`)

// MemoryBytes returns Memory in bytes (rounded up to a whole byte), or 0
// when Memory is empty.
func (r Resources) MemoryBytes() (int64, error) {
	if r.Memory == "" {
		return 0, nil
	}
	m := memoryRE.FindStringSubmatch(r.Memory)
	if m == nil {
		return 0, fmt.Errorf("memory %q: want bytes or a number with a suffix (Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E)", r.Memory)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("memory %q: %w", r.Memory, err)
	}
	b := math.Ceil(v * memorySuffixes[m[2]])
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("memory %q: too large", r.Memory)
	}
	return int64(b), nil
}

// Scenarios lists the five reward scenarios, the keys of data.mix,
// reward.weights and reward.remote.
var Scenarios = []string{"composition", "reasoning", "text", "editing", "reflection"}

// Default returns the default configuration: the tiny shapes that train on
// two CPU cores.
func Default() *Config {
	return &Config{
		Run: Run{Seed: 1, Device: "cpu", CheckpointEvery: 1},
		Model: Model{
			DType: "float32",
			MLLM: MLLM{
				Tokenizer: "shapeworld", Hidden: 128, Layers: 6, Heads: 4, KVHeads: 2, HeadDim: 32,
				FFN: 384, MaxSeqLen: 256, RopeTheta: 10000, RMSNormEps: 1e-6, TieEmbeddings: true,
				VisionPatch: 4,
			},
			Connector: Connector{Prepad: 4},
			DiT: DiT{
				Hidden: 192, Layers: 4, Heads: 4, KVHeads: 2, FFN: 512, Patch: 4,
				Latent: "pixel", Channels: 3, ImageSize: 32, VAEScale: 1, RefinerLayers: 1, RopeTheta: 10000,
			},
		},
		Data: Data{
			TrainSize: 20000, EvalSize: 500,
			Mix: map[string]float64{"composition": 1, "reasoning": 1, "text": 1, "editing": 1, "reflection": 1},
		},
		Pretrain: Pretrain{
			Warmup:   Stage{Steps: 2000, Batch: 32, LR: 1e-3, Facts: 0.25},
			Align:    Stage{Steps: 500, Batch: 32, LR: 1e-3},
			DiT:      Stage{Steps: 3000, Batch: 32, LR: 5e-4},
			Finetune: Stage{Steps: 500, Batch: 32, LR: 1e-4},
		},
		Schedule: Schedule{
			Phases: []PhaseSpec{{Phase: PhaseMLLMGRPO, Steps: 20}, {Phase: PhaseDiTGRPO, Steps: 20}},
			Cycles: 1,
		},
		GRPO: GRPO{
			PromptsPerStep: 8, Group: 5, EpsLow: 0.2, EpsHigh: 0.3, ClipRatioC: 3, Proximal: ProximalBehaviour, BehaviourWeightCap: 2, Beta: 1e-2,
			MiniBatches: 1, Epochs: 1, LR: 1e-5, Decay: DecayConstant, Temperature: 1.0, TopP: 1.0, MaxNewTokens: 64, ImageSteps: 10,
		},
		FlowGRPO: FlowGRPO{
			PromptsPerStep: 4, Group: 8, Steps: 10, NoiseLevel: 0.7, ClipEps: 1e-4, ClipRatioC: 3, Beta: 0.04,
			AdvClamp: 5, TimestepFraction: 0.6, CFG: 4.5, MiniBatches: 1, LR: 1e-5, Decay: DecayConstant,
		},
		Sampling: Sampling{Temperature: 0.7, TopP: 0.9, MaxNewTokens: 64, DiTSteps: 40, CFG: 4.5, TimeShift: true},
		Optim:    Optim{LR: 1e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-2, GradClip: 1.0},
		Reward: Reward{
			Weights: map[string]float64{"composition": 1, "reasoning": 1, "text": 1, "editing": 1, "reflection": 1},
			Timeout: 30 * time.Second,
		},
		Storage: Storage{URI: "store", Region: "us-east-1", Compression: "zstd"},
		Cluster: Cluster{
			Namespace:         "default",
			Secret:            "thinkgen",
			Head:              Resources{CPUs: 1, Memory: "2Gi"},
			Rollout:           Resources{CPUs: 1},
			Reward:            Resources{CPUs: 1},
			Learner:           Resources{CPUs: 1},
			LeaseTimeout:      2 * time.Minute,
			MaxAttempts:       3,
			TaskTimeout:       30 * time.Minute,
			CollectiveTimeout: 5 * time.Minute,
		},
		Tracking: Tracking{Experiment: "thinkgen"},
		LoRA:     LoRA{MLLM: Adapter{Alpha: 16}, DiT: Adapter{Alpha: 16}},
	}
}

// TotalSteps returns the number of SepGRPO steps the schedule runs.
func (s Schedule) TotalSteps() int {
	n := 0
	for _, p := range s.Phases {
		n += p.Steps
	}
	return n * s.Cycles
}

// String names the phase spec for logs, e.g. "mllm-grpo×20".
func (p PhaseSpec) String() string { return fmt.Sprintf("%s×%d", p.Phase, p.Steps) }
