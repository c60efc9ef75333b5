package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"

	"github.com/sugarme/gotch/ts"
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
		VocabSize         int     `json:"vocab_size"`
		HiddenSize        int     `json:"hidden_size"`
		IntermediateSize  int     `json:"intermediate_size"`
		NumHiddenLayers   int     `json:"num_hidden_layers"`
		NumAttentionHeads int     `json:"num_attention_heads"`
		NumKeyValueHeads  int     `json:"num_key_value_heads"`
		HeadDim           int     `json:"head_dim"`
		RopeTheta         float64 `json:"rope_theta"`
		RMSNormEps        float64 `json:"rms_norm_eps"`
		RopeScaling       struct {
			MRopeSection []int `json:"mrope_section"`
		} `json:"rope_scaling"`
	} `json:"text_config"`
	VisionConfig struct {
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
	} `json:"vision_config"`
}

// safetensorsDTypes maps config.json's dtype names to safetensors'.
var safetensorsDTypes = map[string]string{"float32": "F32", "bfloat16": "BF16", "float16": "F16"}

// CheckQwen3VLConfig reads the config.json of a transformers
// Qwen3VLForConditionalGeneration folder and checks it against m's
// configuration; the error names the file, the JSON key and the
// thinkgen key that disagree. It returns the safetensors dtype the
// config gives its weights ("" when it names none).
func (m *MLLM) CheckQwen3VLConfig(path string) (string, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("qwen3-vl config: %w", err)
	}
	var q qwen3VLConfigJSON
	if err := json.Unmarshal(buf, &q); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	dt := q.DType
	if dt == "" {
		dt = q.TorchDType
	}
	stDType, ok := safetensorsDTypes[dt]
	if dt != "" && !ok {
		return "", fmt.Errorf("%s: dtype %q, want float32, bfloat16 or float16", path, dt)
	}
	c, t, v := m.Cfg, q.TextConfig, q.VisionConfig
	if t.RopeScaling.MRopeSection == nil {
		// transformers' Qwen3VLTextRotaryEmbedding default.
		t.RopeScaling.MRopeSection = []int{24, 20, 20}
	}
	for _, f := range []struct {
		key       string
		got, want any
		ours      string
	}{
		{"text_config.vocab_size", t.VocabSize, m.Vocab, "model.mllm.vocab (or the tokenizer's size)"},
		{"text_config.hidden_size", t.HiddenSize, c.Hidden, "model.mllm.hidden"},
		{"text_config.intermediate_size", t.IntermediateSize, c.FFN, "model.mllm.ffn"},
		{"text_config.num_hidden_layers", t.NumHiddenLayers, c.Layers, "model.mllm.layers"},
		{"text_config.num_attention_heads", t.NumAttentionHeads, c.Heads, "model.mllm.heads"},
		{"text_config.num_key_value_heads", t.NumKeyValueHeads, c.KVHeads, "model.mllm.kv_heads"},
		{"text_config.head_dim", t.HeadDim, c.HeadDim, "model.mllm.head_dim"},
		{"text_config.rope_theta", t.RopeTheta, c.RopeTheta, "model.mllm.rope_theta"},
		{"text_config.rms_norm_eps", t.RMSNormEps, c.RMSNormEps, "model.mllm.rms_norm_eps"},
		{"text_config.rope_scaling.mrope_section", t.RopeScaling.MRopeSection, c.MRopeSection, "model.mllm.mrope_section"},
		{"tie_word_embeddings", q.TieWordEmbeddings, c.TieEmbeddings, "model.mllm.tie_embeddings"},
		{"image_token_id", q.ImageTokenID, m.Special.ImagePad, "the tokenizer's <|image_pad|>"},
		{"vision_config.depth", v.Depth, c.ViT.Depth, "model.mllm.vit.depth"},
		{"vision_config.hidden_size", v.HiddenSize, c.ViT.Hidden, "model.mllm.vit.hidden"},
		{"vision_config.num_heads", v.NumHeads, c.ViT.Heads, "model.mllm.vit.heads"},
		{"vision_config.intermediate_size", v.IntermediateSize, c.ViT.FFN, "model.mllm.vit.ffn"},
		{"vision_config.patch_size", v.PatchSize, c.VisionPatch, "model.mllm.vision_patch"},
		{"vision_config.temporal_patch_size", v.TemporalPatchSize, c.ViT.TemporalPatch, "model.mllm.vit.temporal_patch"},
		{"vision_config.spatial_merge_size", v.SpatialMergeSize, c.ViT.SpatialMerge, "model.mllm.vit.spatial_merge"},
		{"vision_config.out_hidden_size", v.OutHiddenSize, c.Hidden, "model.mllm.hidden"},
		{"vision_config.num_position_embeddings", v.NumPositionEmbeddings, c.ViT.PositionEmbeddings, "model.mllm.vit.position_embeddings"},
		{"vision_config.deepstack_visual_indexes", v.DeepstackVisualIndexes, c.ViT.DeepStack, "model.mllm.vit.deepstack"},
		{"vision_config.in_channels", v.InChannels, 3, "RGB input"},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			return "", fmt.Errorf("%s: %s is %v, but %s is %v", path, f.key, f.got, f.ours, f.want)
		}
	}
	return stDType, nil
}

// LoadQwen3VL loads a transformers Qwen3VLForConditionalGeneration folder
// (config.json and model.safetensors, or shards listed in
// model.safetensors.index.json) into m, a vision: qwen3vl MLLM, widening
// bfloat16 or float16 weights to float32. Nothing is copied before
// config.json and every file's header have been checked (shapes, and the
// dtype config.json gives): the error names the file and the key or
// tensor that does not fit.
func (m *MLLM) LoadQwen3VL(dir string) error {
	if !m.Cfg.IsQwen3VL() {
		return fmt.Errorf("load %s: the MLLM is not configured with vision: qwen3vl", dir)
	}
	dt, err := m.CheckQwen3VLConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return err
	}
	files, err := qwen3VLShards(dir, m.P.Specs())
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := CheckSafetensorsHeader(f.path, f.specs); err != nil {
			return err
		}
		if dt == "" {
			continue
		}
		header, err := readSafetensorsHeader(f.path)
		if err != nil {
			return err
		}
		for _, s := range f.specs {
			if got := header[s.Name].DType; got != dt {
				return fmt.Errorf("%s: tensor %s has dtype %s, but config.json's dtype allows %s", f.path, s.Name, got, dt)
			}
		}
	}
	for _, f := range files {
		tensors := make([]*ts.Tensor, len(f.specs))
		names := make([]string, len(f.specs))
		for i, s := range f.specs {
			names[i], tensors[i] = s.Name, m.P.Get(s.Name)
		}
		if _, err := LoadTensors(f.path, names, tensors); err != nil {
			return err
		}
	}
	return nil
}

// shardSpecs is one safetensors file of a folder and the parameters it holds.
type shardSpecs struct {
	path  string
	specs []Spec
}

// qwen3VLShards assigns specs to the folder's weight files: all to
// model.safetensors, or each to the shard model.safetensors.index.json
// names for it.
func qwen3VLShards(dir string, specs []Spec) ([]shardSpecs, error) {
	index := filepath.Join(dir, "model.safetensors.index.json")
	buf, err := os.ReadFile(index)
	if os.IsNotExist(err) {
		return []shardSpecs{{path: filepath.Join(dir, "model.safetensors"), specs: specs}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(buf, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", index, err)
	}
	byFile := map[string][]Spec{}
	for _, s := range specs {
		f, ok := idx.WeightMap[s.Name]
		if !ok {
			return nil, fmt.Errorf("%s: tensor %s is missing from weight_map", index, s.Name)
		}
		if filepath.Base(f) != f {
			return nil, fmt.Errorf("%s: shard %q of tensor %s is not a file name", index, f, s.Name)
		}
		byFile[f] = append(byFile[f], s)
	}
	var out []shardSpecs
	for f, ss := range byFile {
		out = append(out, shardSpecs{path: filepath.Join(dir, f), specs: ss})
	}
	for name, f := range idx.WeightMap {
		if _, ok := byFile[f]; !ok {
			return nil, fmt.Errorf("%s: tensor %s in shard %s, which holds no parameter of the model", index, name, f)
		}
	}
	slices.SortFunc(out, func(a, b shardSpecs) int {
		if a.path < b.path {
			return -1
		}
		if a.path > b.path {
			return 1
		}
		return 0
	})
	return out, nil
}
