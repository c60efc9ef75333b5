package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// The versions of the libraries whose file formats the export follows
// (what the test-only venv pins; recorded as HuggingFace files record
// their writer).
const (
	transformersVersion = "4.55.4"
	diffusersVersion    = "0.35.1"
)

// transformersVLVersion is recorded by a Qwen3-VL export: its classes
// need transformers ≥ 4.57 (what the second test venv pins,
// scripts/setup-pyenv.sh vl).
const transformersVLVersion = "4.57.6"

// qwen3Config is transformers' Qwen3Config, field for field as
// Qwen3ForCausalLM checkpoints spell it, plus a "thinkgen" section that
// transformers keeps as an unknown attribute.
type qwen3Config struct {
	Architectures []string `json:"architectures"`
	ModelType     string   `json:"model_type"`
	model.HFText
	HiddenAct             string       `json:"hidden_act"`
	MaxPositionEmbeddings int          `json:"max_position_embeddings"`
	RopeScaling           *struct{}    `json:"rope_scaling"`
	AttentionBias         bool         `json:"attention_bias"`
	AttentionDropout      float64      `json:"attention_dropout"`
	TieWordEmbeddings     bool         `json:"tie_word_embeddings"`
	UseSlidingWindow      bool         `json:"use_sliding_window"`
	SlidingWindow         *int         `json:"sliding_window"`
	MaxWindowLayers       int          `json:"max_window_layers"`
	InitializerRange      float64      `json:"initializer_range"`
	UseCache              bool         `json:"use_cache"`
	TorchDType            string       `json:"torch_dtype"`
	BOSTokenID            int          `json:"bos_token_id"`
	EOSTokenID            int          `json:"eos_token_id"`
	PadTokenID            int          `json:"pad_token_id"`
	TransformersVersion   string       `json:"transformers_version"`
	ThinkGen              thinkgenMLLM `json:"thinkgen"`
}

// thinkgenMLLM holds what Qwen3's config has no field for.
type thinkgenMLLM struct {
	// VisionWeights is the file of the vision patch embedder
	// (visual.patch_embed.proj, visual.norm), which Qwen3ForCausalLM
	// does not have.
	// (A Qwen3-VL export has none: its ViT is in model.safetensors.)
	VisionWeights   string `json:"vision_weights,omitempty"`
	VisionPatchSize int    `json:"vision_patch_size,omitempty"`
	VisionChannels  int    `json:"vision_in_channels,omitempty"`
	// ImageTokens is the number of <|image_pad|> tokens per input image.
	ImageTokens     int `json:"image_tokens"`
	ImageTokenID    int `json:"image_token_id"`
	ThinkEndTokenID int `json:"think_end_token_id"`
	// ConditionStates says which hidden states condition the DiT.
	ConditionStates string `json:"condition_states"`
}

func mllmConfig(cfg *config.Config, vocab int, sp tokenizer.Specials, d DType) qwen3Config {
	m := cfg.Model.MLLM
	states := cfg.Model.Connector.States
	if states == "" {
		states = config.StatesCut
	}
	return qwen3Config{
		Architectures: []string{"Qwen3ForCausalLM"}, ModelType: "qwen3",
		HFText:    model.HFTextOf(m, vocab),
		HiddenAct: "silu", MaxPositionEmbeddings: m.MaxSeqLen,
		TieWordEmbeddings: m.TieEmbeddings, MaxWindowLayers: m.Layers, InitializerRange: 0.02, UseCache: true,
		TorchDType: string(d.orFloat32()), BOSTokenID: sp.Pad, EOSTokenID: sp.EOS, PadTokenID: sp.Pad,
		TransformersVersion: transformersVersion,
		ThinkGen: thinkgenMLLM{
			VisionWeights: fileVision, VisionPatchSize: m.VisionPatch, VisionChannels: 3,
			ImageTokens:  model.ImageTokens(m, cfg.Model.DiT.ImageSize),
			ImageTokenID: sp.ImagePad, ThinkEndTokenID: sp.EndThink, ConditionStates: states,
		},
	}
}

// qwen3VLConfig is transformers' Qwen3VLConfig as
// Qwen3VLForConditionalGeneration checkpoints spell it, plus the
// "thinkgen" section.
type qwen3VLConfig struct {
	Architectures       []string      `json:"architectures"`
	ModelType           string        `json:"model_type"`
	TextConfig          qwen3VLText   `json:"text_config"`
	VisionConfig        qwen3VLVision `json:"vision_config"`
	ImageTokenID        int           `json:"image_token_id"`
	VideoTokenID        int           `json:"video_token_id"`
	VisionStartTokenID  int           `json:"vision_start_token_id"`
	VisionEndTokenID    int           `json:"vision_end_token_id"`
	TieWordEmbeddings   bool          `json:"tie_word_embeddings"`
	DType               string        `json:"dtype"`
	TransformersVersion string        `json:"transformers_version"`
	ThinkGen            thinkgenMLLM  `json:"thinkgen"`
}

// qwen3VLText is Qwen3VLTextConfig (text_config).
type qwen3VLText struct {
	ModelType string `json:"model_type"`
	model.HFText
	HiddenAct             string  `json:"hidden_act"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	AttentionBias         bool    `json:"attention_bias"`
	AttentionDropout      float64 `json:"attention_dropout"`
	InitializerRange      float64 `json:"initializer_range"`
	UseCache              bool    `json:"use_cache"`
	TieWordEmbeddings     bool    `json:"tie_word_embeddings"`
	RopeScaling           struct {
		RopeType         string `json:"rope_type"`
		MRopeSection     []int  `json:"mrope_section"`
		MRopeInterleaved bool   `json:"mrope_interleaved"`
	} `json:"rope_scaling"`
	DType      string `json:"dtype"`
	BOSTokenID int    `json:"bos_token_id"`
	EOSTokenID int    `json:"eos_token_id"`
}

// qwen3VLVision is Qwen3VLVisionConfig (vision_config).
type qwen3VLVision struct {
	ModelType string `json:"model_type"`
	model.HFVision
	HiddenAct        string  `json:"hidden_act"`
	InitializerRange float64 `json:"initializer_range"`
}

// mllmConfigFor is the MLLM's config.json: Qwen3VLForConditionalGeneration's
// for model.mllm.vision qwen3vl, Qwen3ForCausalLM's otherwise.
func mllmConfigFor(cfg *config.Config, vocab int, tok tokenizer.Tokenizer, d DType) any {
	m, sp := cfg.Model.MLLM, tok.Specials()
	q := mllmConfig(cfg, vocab, sp, d)
	if !m.IsQwen3VL() {
		return q
	}
	q.ThinkGen.VisionWeights, q.ThinkGen.VisionPatchSize, q.ThinkGen.VisionChannels = "", 0, 0
	dt := string(d.orFloat32())
	text := qwen3VLText{ModelType: "qwen3_vl_text", HFText: q.HFText, HiddenAct: q.HiddenAct,
		MaxPositionEmbeddings: q.MaxPositionEmbeddings, InitializerRange: q.InitializerRange, UseCache: true,
		TieWordEmbeddings: m.TieEmbeddings, DType: dt, BOSTokenID: q.BOSTokenID, EOSTokenID: q.EOSTokenID}
	text.RopeScaling.RopeType, text.RopeScaling.MRopeSection, text.RopeScaling.MRopeInterleaved = "default", m.MRopeSection, true
	return qwen3VLConfig{
		Architectures: []string{"Qwen3VLForConditionalGeneration"}, ModelType: "qwen3_vl",
		TextConfig:   text,
		VisionConfig: qwen3VLVision{ModelType: "qwen3_vl", HFVision: model.HFVisionOf(m), HiddenAct: "gelu_pytorch_tanh", InitializerRange: 0.02},
		ImageTokenID: sp.ImagePad, VideoTokenID: videoPadID(tok), VisionStartTokenID: sp.VisionStart, VisionEndTokenID: sp.VisionEnd,
		TieWordEmbeddings: m.TieEmbeddings, DType: dt, TransformersVersion: transformersVLVersion, ThinkGen: q.ThinkGen,
	}
}

// videoPadID is the id of <|video_pad|> in tok, or tok.VocabSize() (no
// token's id) when it has none: thinkgen feeds no video, and
// Qwen3VLConfig needs an id that no image prompt holds.
func videoPadID(tok tokenizer.Tokenizer) int {
	if ids, err := tok.Encode("<|video_pad|>"); err == nil && len(ids) == 1 {
		return ids[0]
	}
	return tok.VocabSize()
}

// generationConfig is transformers' GenerationConfig with the sampling
// settings of the run (sampling.temperature, top_p, max_new_tokens).
func generationConfig(cfg *config.Config, sp tokenizer.Specials) map[string]any {
	s := cfg.Sampling
	g := map[string]any{
		"bos_token_id": sp.Pad, "eos_token_id": []int{sp.EOS}, "pad_token_id": sp.Pad,
		"do_sample": s.Temperature > 0, "max_new_tokens": s.MaxNewTokens,
		"transformers_version": transformersVersion,
	}
	if s.Temperature > 0 {
		g["temperature"], g["top_p"] = s.Temperature, s.TopP
	}
	return g
}

// chatTemplate renders tokenizer.Chat's prompts in Jinja, for
// apply_chat_template: a message's content is a string, or a list of
// {"type": "image"} and {"type": "text", "text": …} parts (an image
// becomes <|vision_start|>, imageTokens × <|image_pad|>, <|vision_end|>,
// already expanded, since the export has no processor). The generation
// prompt opens the reasoning block (tokenizer.ThinkOpen, ThinkGen's
// thinking mode); enable_thinking=False closes an empty one
// (tokenizer.ThinkSkip, direct mode).
func chatTemplate(imageTokens int) string {
	image := fmt.Sprintf("'%s' + '%s' * %d + '%s'", tokenizer.VisionStart, tokenizer.ImagePad, imageTokens, tokenizer.VisionEnd)
	lines := []string{
		`{%- for message in messages -%}`,
		`{{- '<|im_start|>' + message['role'] + '\n' -}}`,
		`{%- if message['content'] is string -%}`,
		`{{- message['content'] -}}`,
		`{%- else -%}`,
		`{%- for part in message['content'] -%}`,
		`{%- if part['type'] == 'image' -%}`,
		`{{- ` + image + ` -}}`,
		`{%- elif part['type'] == 'text' -%}`,
		`{{- part['text'] -}}`,
		`{%- endif -%}`,
		`{%- endfor -%}`,
		`{%- endif -%}`,
		`{{- '<|im_end|>\n' -}}`,
		`{%- endfor -%}`,
		`{%- if add_generation_prompt -%}`,
		`{{- '<|im_start|>assistant\n' -}}`,
		`{%- if enable_thinking is defined and enable_thinking is false -%}`,
		`{{- '<think>\n\n</think>\n\n' -}}`,
		`{%- else -%}`,
		`{{- '<think>\n' -}}`,
		`{%- endif -%}`,
		`{%- endif -%}`,
	}
	return strings.Join(lines, "\n")
}

// tokenizerJSON returns the HuggingFace tokenizer.json of tok.
func tokenizerJSON(tok tokenizer.Tokenizer) ([]byte, error) {
	switch t := tok.(type) {
	case *tokenizer.Words:
		return t.MarshalHF()
	case *tokenizer.BPE:
		return t.MarshalJSON() // the tokenizer.json it was loaded from
	}
	return nil, fmt.Errorf("tokenizer %T has no HuggingFace form", tok)
}

// tokenizerConfig is tokenizer_config.json for PreTrainedTokenizerFast.
func tokenizerConfig(cfg *config.Config, imageTokens int) map[string]any {
	var extra []string
	for _, s := range tokenizer.SpecialTokens {
		if s != tokenizer.EndOfText && s != tokenizer.ImEnd {
			extra = append(extra, s)
		}
	}
	return map[string]any{
		"tokenizer_class":              "PreTrainedTokenizerFast",
		"model_max_length":             cfg.Model.MLLM.MaxSeqLen,
		"eos_token":                    tokenizer.ImEnd,
		"pad_token":                    tokenizer.EndOfText,
		"bos_token":                    nil,
		"unk_token":                    nil,
		"additional_special_tokens":    extra,
		"clean_up_tokenization_spaces": false,
		"split_special_tokens":         false,
		"padding_side":                 "left",
		"chat_template":                chatTemplate(imageTokens),
	}
}

func specialTokensMap(cfg map[string]any) map[string]any {
	return map[string]any{
		"eos_token":                 cfg["eos_token"],
		"pad_token":                 cfg["pad_token"],
		"additional_special_tokens": cfg["additional_special_tokens"],
	}
}

// modelIndex is diffusers' model_index.json: each part's folder and
// (library, class). Classes that only thinkgen implements say so.
func modelIndex(cfg *config.Config) map[string]any {
	vae := []any{nil, nil}
	if cfg.Model.DiT.Latent == "vae" {
		vae = []any{"diffusers", "AutoencoderKL"}
	}
	return map[string]any{
		"_class_name":        "ThinkGenPipeline",
		"_diffusers_version": diffusersVersion,
		"mllm":               []string{"transformers", mllmClass(cfg)},
		"connector":          []string{"thinkgen", "VGIRefineConnector"},
		"transformer":        []string{"thinkgen", "ThinkGenDiT"},
		"scheduler":          []string{"diffusers", "FlowMatchEulerDiscreteScheduler"},
		"vae":                vae,
	}
}

// mllmClass is the transformers class of the exported MLLM.
func mllmClass(cfg *config.Config) string {
	if cfg.Model.MLLM.IsQwen3VL() {
		return "Qwen3VLForConditionalGeneration"
	}
	return "Qwen3ForCausalLM"
}

// ditConfig names the DiT's shape after diffusers'
// OmniGen2Transformer2DModel where a field exists.
func ditConfig(cfg *config.Config) map[string]any {
	d := cfg.Model.DiT
	hd := d.Hidden / d.Heads
	return map[string]any{
		"_class_name":         "ThinkGenDiT",
		"_diffusers_version":  diffusersVersion,
		"hidden_size":         d.Hidden,
		"num_layers":          d.Layers,
		"num_refiner_layers":  d.RefinerLayers,
		"num_attention_heads": d.Heads,
		"num_kv_heads":        d.KVHeads,
		"intermediate_size":   d.FFN,
		"patch_size":          d.Patch,
		"in_channels":         d.Channels,
		"out_channels":        d.Channels,
		"sample_size":         d.ImageSize / max(d.VAEScale, 1),
		"image_size":          d.ImageSize,
		"latent":              d.Latent,
		"vae_scale_factor":    d.VAEScale,
		"text_feat_dim":       d.Hidden,
		"norm_eps":            1e-5,
		"axes_dim_rope":       []int{hd / 3, hd / 3, hd / 3},
		"rope_theta":          d.RopeTheta,
		"timestep_embed_dim":  256,
		// OmniGen2's field: what the transformer multiplies its timestep
		// input by before the sinusoidal features. OmniGen2's pipeline
		// passes t; the exported scheduler passes 1000·t (timestep_input
		// in the scheduler's thinkgen section), which this transformer
		// embeds as given: 1. Exports before this fix wrote 1000, which
		// checkDiffusersConfig still accepts.
		"timestep_scale": 1,
		"prediction":     "velocity x_data - noise at time t (t = 0 noise, t = 1 data)",
	}
}

// connectorConfig describes the VGI-refine connector and its prepadding
// states.
func connectorConfig(cfg *config.Config) map[string]any {
	states := cfg.Model.Connector.States
	if states == "" {
		states = config.StatesCut
	}
	return map[string]any{
		"_class_name":        "VGIRefineConnector",
		"_diffusers_version": diffusersVersion,
		"in_features":        2 * cfg.Model.MLLM.Hidden,
		"out_features":       cfg.Model.DiT.Hidden,
		"num_prepad_states":  cfg.Model.Connector.Prepad,
		"norm_eps":           cfg.Model.MLLM.RMSNormEps,
		"condition_states":   states,
		"input":              "concat(hidden_states[-2], hidden_states[-1]) of the MLLM's tokens after the first </think> (condition_states cut) or of every token (all)",
		"forward":            "proj(rms_norm(concat(prepad, input)))",
	}
}

// schedulerConfig is diffusers' FlowMatchEulerDiscreteScheduler config
// under which diffusers' Euler steps are thinkgen's: invert_sigmas turns
// diffusers' σ (1 = noise) into thinkgen's t = 1 − σ (0 = noise), so the
// timesteps it hands the transformer are 1000·t and a step is
// x + (t_next − t)·v with the DiT's own output v = x_data − noise; the
// static shift is OmniGen2's resolution-dependent m (1 without
// sampling.time_shift). The grid is the caller's, as FluxPipeline passes
// it: sigmas = linspace(1, 1/N, N). The "thinkgen" section spells it out.
func schedulerConfig(cfg *config.Config) map[string]any {
	s := cfg.Sampling
	side := cfg.Model.DiT.ImageSize / max(cfg.Model.DiT.VAEScale, 1)
	shift := 1.0
	if s.TimeShift {
		shift = model.TimeShift(side, side)
	}
	return map[string]any{
		"_class_name":          "FlowMatchEulerDiscreteScheduler",
		"_diffusers_version":   diffusersVersion,
		"num_train_timesteps":  1000,
		"shift":                shift,
		"use_dynamic_shifting": false,
		"invert_sigmas":        true,
		"thinkgen": map[string]any{
			"set_timesteps":       "scheduler.set_timesteps(sigmas=numpy.linspace(1, 1 / N, N)) with N = num_inference_steps (FluxPipeline's grid); the default grid of set_timesteps(N) is not thinkgen's",
			"solver":              "euler ODE from t = 0 (noise) to t = 1 (data); with invert_sigmas the scheduler's sigmas are t and step() computes x_{i+1} = x_i + (t_{i+1} - t_i) * v(x_i, t_i)",
			"interpolation":       "x_t = (1 - t) * noise + t * x_data",
			"model_output":        "v = x_data - noise, the transformer's output as is (no negation under invert_sigmas)",
			"timestep_input":      "scheduler.timesteps = 1000 * t; the transformer embeds it as given",
			"time_shift":          s.TimeShift,
			"time_shift_rule":     "t' = t / (m - m*t + t), m = sqrt(latent_h * latent_w) / 40 (OmniGen2) = the config's shift",
			"num_inference_steps": s.DiTSteps,
			"guidance_scale":      s.CFG,
			"guidance":            "v = v_uncond + s * (v_cond - v_uncond); the unconditional condition is the connector's output for an empty instruction (prepadding only)",
		},
	}
}

// writeJSON writes v as indented JSON (no HTML escaping) to path.
func writeJSON(path string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return nil
}

// ensureDir creates dir (and parents) for the files of one part.
func ensureDir(root, part string) (string, error) {
	dir := filepath.Join(root, part)
	return dir, os.MkdirAll(dir, 0o755)
}

// adapterConfig is PEFT's adapter_config.json of a LoRA adapter a on a
// model whose adapter targets are allTargets (a.Targets when set), for
// the task type task ("" for none) and the base model at base (relative
// to the adapter folder).
func adapterConfig(a config.Adapter, allTargets []string, task, base string) map[string]any {
	targets := a.Targets
	if len(targets) == 0 {
		targets = allTargets
	}
	c := map[string]any{
		"peft_type":               "LORA",
		"r":                       a.Rank,
		"lora_alpha":              a.Alpha,
		"lora_dropout":            0.0,
		"target_modules":          targets,
		"bias":                    "none",
		"fan_in_fan_out":          false,
		"init_lora_weights":       true,
		"inference_mode":          true,
		"use_rslora":              false,
		"modules_to_save":         nil,
		"base_model_name_or_path": base,
	}
	if task != "" {
		c["task_type"] = task
	}
	return c
}
