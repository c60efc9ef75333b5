// Package vlref has transformers build the random
// Qwen3VLForConditionalGeneration checkpoints the Qwen3-VL tests compare
// thinkgen with (model/testdata/qwen3vl_reference.py, run with the second
// test venv's python, testenv.VLPython), and gives those tests their small
// shapes.
package vlref

import (
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/thinkgen/thinkgen/config"
)

// Tiny is a small MLLM with the Qwen3-VL tower: a 6×6 patch grid
// (24-pixel images, patch 4) merged to 3×3 tokens, a 4×4 position table
// interpolated to it, and M-RoPE sections that give each axis
// frequencies.
func Tiny() config.MLLM {
	c := config.Default().Model.MLLM
	c.Hidden, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.FFN, c.MaxSeqLen = 32, 5, 4, 2, 16, 64, 64
	c.RopeTheta, c.RMSNormEps, c.TieEmbeddings = 10000, 1e-6, false
	c.VisionPatch = 4
	c.Vision = config.VisionQwen3VL
	c.MRopeSection = []int{4, 2, 2}
	c.ViT = config.ViT{Depth: 4, Hidden: 32, Heads: 2, FFN: 48, TemporalPatch: 2, SpatialMerge: 2, PositionEmbeddings: 16, DeepStack: []int{0, 2, 3}}
	return c
}

// Tokens are a reference model's vocabulary size and special token ids.
type Tokens struct {
	Vocab, ImagePad, VideoPad, VisionStart, VisionEnd int
}

// Save says how the reference checkpoint is saved: DType "" (float32) or
// "bfloat16", and MaxShardSize "" (one model.safetensors) or
// save_pretrained's max_shard_size (shards and model.safetensors.index.json).
// Saved in bfloat16, the reference outputs are those of the bfloat16
// weights widened to float32.
type Save struct {
	DType        string
	MaxShardSize string
}

// Write runs script (model/testdata/qwen3vl_reference.py) with py to have
// transformers build, save and run a random Qwen3VLForConditionalGeneration
// of c's shapes in dir: dir/model holds the checkpoint, and
// dir/expected.safetensors the reference outputs for images of imageSize
// pixels.
func Write(t testing.TB, py, script, dir string, c config.MLLM, tok Tokens, imageSize int, save Save) {
	t.Helper()
	spec := map[string]any{
		"text": map[string]any{
			"vocab": tok.Vocab, "hidden": c.Hidden, "layers": c.Layers, "heads": c.Heads, "kv_heads": c.KVHeads,
			"head_dim": c.HeadDim, "ffn": c.FFN, "rope_theta": c.RopeTheta, "mrope_section": c.MRopeSection, "tied": c.TieEmbeddings,
		},
		"vision": map[string]any{
			"depth": c.ViT.Depth, "hidden": c.ViT.Hidden, "heads": c.ViT.Heads, "ffn": c.ViT.FFN, "patch": c.VisionPatch,
			"temporal_patch": c.ViT.TemporalPatch, "spatial_merge": c.ViT.SpatialMerge,
			"position_embeddings": c.ViT.PositionEmbeddings, "deepstack": c.ViT.DeepStack,
		},
		"image_pad": tok.ImagePad, "video_pad": tok.VideoPad, "vision_start": tok.VisionStart, "vision_end": tok.VisionEnd,
		"image_size": imageSize,
		"dtype":      save.DType, "max_shard_size": save.MaxShardSize,
	}
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, script, dir, string(js)).CombinedOutput()
	if err != nil {
		t.Fatalf("reference script: %v\n%s", err, out)
	}
}
