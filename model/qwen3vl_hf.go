package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/thinkgen/thinkgen/config"
)

// qwen3VLConfigJSON is the part of a Qwen3VLForConditionalGeneration
// config.json that fixes the shapes of its weights.
type qwen3VLConfigJSON struct {
	// DType is the weights' dtype (transformers ≥ 4.56 writes dtype,
	// earlier versions torch_dtype).
	DType             string `json:"dtype"`
	TorchDType        string `json:"torch_dtype"`
	TieWordEmbeddings bool   `json:"tie_word_embeddings"`
	ImageTokenID      int    `json:"image_token_id"`
	TextConfig        struct {
		HFText
		RopeScaling struct {
			MRopeSection []int `json:"mrope_section"`
		} `json:"rope_scaling"`
	} `json:"text_config"`
	VisionConfig HFVision `json:"vision_config"`
}

// HFVision is the vision_config of a Qwen3VLForConditionalGeneration
// config.json: the keys that fix the shapes of the ViT's weights.
type HFVision struct {
	Depth                  int   `json:"depth"`
	HiddenSize             int   `json:"hidden_size"`
	NumHeads               int   `json:"num_heads"`
	IntermediateSize       int   `json:"intermediate_size"`
	PatchSize              int   `json:"patch_size"`
	TemporalPatchSize      int   `json:"temporal_patch_size"`
	SpatialMergeSize       int   `json:"spatial_merge_size"`
	OutHiddenSize          int   `json:"out_hidden_size"`
	NumPositionEmbeddings  int   `json:"num_position_embeddings"`
	DeepstackVisualIndexes []int `json:"deepstack_visual_indexes"`
	InChannels             int   `json:"in_channels"`
}

// HFVisionOf is the vision_config of model section c (vision: qwen3vl).
func HFVisionOf(c config.MLLM) HFVision {
	return HFVision{Depth: c.ViT.Depth, HiddenSize: c.ViT.Hidden, NumHeads: c.ViT.Heads, IntermediateSize: c.ViT.FFN,
		PatchSize: c.VisionPatch, TemporalPatchSize: c.ViT.TemporalPatch, SpatialMergeSize: c.ViT.SpatialMerge,
		OutHiddenSize: c.Hidden, NumPositionEmbeddings: c.ViT.PositionEmbeddings,
		DeepstackVisualIndexes: c.ViT.DeepStack, InChannels: 3}
}

// CheckQwen3VLConfig reads the config.json of a transformers
// Qwen3VLForConditionalGeneration folder and checks it against model
// section c with vocabulary vocab and <|image_pad|> id imagePad; the
// error names the file, the JSON key and the thinkgen key that disagree.
// It returns the dtype the config gives the weights.
func CheckQwen3VLConfig(path string, c config.MLLM, vocab, imagePad int) (WeightDType, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return WeightDType{}, fmt.Errorf("qwen3-vl config: %w", err)
	}
	var q qwen3VLConfigJSON
	if err := json.Unmarshal(buf, &q); err != nil {
		return WeightDType{}, fmt.Errorf("%s: %w", path, err)
	}
	dt, err := ConfigDType(path, q.DType, q.TorchDType)
	if err != nil {
		return WeightDType{}, err
	}
	t, v, w := q.TextConfig, q.VisionConfig, HFVisionOf(c)
	if t.RopeScaling.MRopeSection == nil {
		// transformers' Qwen3VLTextRotaryEmbedding default.
		t.RopeScaling.MRopeSection = []int{24, 20, 20}
	}
	fields := append(t.Fields("text_config.", c, vocab), []ConfigField{
		{"text_config.rope_scaling.mrope_section", t.RopeScaling.MRopeSection, c.MRopeSection, "model.mllm.mrope_section"},
		{"tie_word_embeddings", q.TieWordEmbeddings, c.TieEmbeddings, "model.mllm.tie_embeddings"},
		{"image_token_id", q.ImageTokenID, imagePad, "the tokenizer's <|image_pad|>"},
		{"vision_config.depth", v.Depth, w.Depth, "model.mllm.vit.depth"},
		{"vision_config.hidden_size", v.HiddenSize, w.HiddenSize, "model.mllm.vit.hidden"},
		{"vision_config.num_heads", v.NumHeads, w.NumHeads, "model.mllm.vit.heads"},
		{"vision_config.intermediate_size", v.IntermediateSize, w.IntermediateSize, "model.mllm.vit.ffn"},
		{"vision_config.patch_size", v.PatchSize, w.PatchSize, "model.mllm.vision_patch"},
		{"vision_config.temporal_patch_size", v.TemporalPatchSize, w.TemporalPatchSize, "model.mllm.vit.temporal_patch"},
		{"vision_config.spatial_merge_size", v.SpatialMergeSize, w.SpatialMergeSize, "model.mllm.vit.spatial_merge"},
		{"vision_config.out_hidden_size", v.OutHiddenSize, w.OutHiddenSize, "model.mllm.hidden"},
		{"vision_config.num_position_embeddings", v.NumPositionEmbeddings, w.NumPositionEmbeddings, "model.mllm.vit.position_embeddings"},
		{"vision_config.deepstack_visual_indexes", v.DeepstackVisualIndexes, w.DeepstackVisualIndexes, "model.mllm.vit.deepstack"},
		{"vision_config.in_channels", v.InChannels, w.InChannels, "RGB input"},
	}...)
	if f, bad := Mismatch(fields); bad {
		return WeightDType{}, fmt.Errorf("%s: %s is %v, but %s is %v", path, f.Key, f.Got, f.Ours, f.Want)
	}
	return dt, nil
}

// LoadQwen3VL loads a transformers Qwen3VLForConditionalGeneration folder
// (config.json and model.safetensors, or shards listed in
// model.safetensors.index.json) into m, a vision: qwen3vl MLLM, widening
// bfloat16 or float16 weights to float32 a tensor at a time. Nothing is
// copied before config.json and every file's header have been checked
// (shapes, and the dtype config.json gives): the error names the file and
// the key or tensor that does not fit.
func (m *MLLM) LoadQwen3VL(dir string) error {
	if !m.Cfg.IsQwen3VL() {
		return fmt.Errorf("load %s: the MLLM is not configured with vision: qwen3vl", dir)
	}
	dt, err := CheckQwen3VLConfig(filepath.Join(dir, HFConfigFile), m.Cfg, m.Vocab, m.Special.ImagePad)
	if err != nil {
		return err
	}
	var files HFFiles
	defer files.Close()
	tensors, _, err := files.Weights(dir, m.P.Specs(), dt)
	if err != nil {
		return err
	}
	for _, t := range tensors {
		vals, err := t.Float32s()
		if err != nil {
			return fmt.Errorf("load %s: %w", dir, err)
		}
		setFloat32s(m.P.Get(t.Name), vals, t.Shape)
	}
	return nil
}
