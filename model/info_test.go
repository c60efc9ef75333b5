package model

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/thinkgen/thinkgen/config"
)

// Published parameter counts the full-scale shapes must reproduce.
const (
	// Qwen3-8B (text tower of Qwen3-VL-8B): 8,190,735,360 parameters
	// (config: hidden 4096, 36 layers, 32/8 heads of 128, FFN 12288,
	// vocab 151,936, untied head).
	qwen3_8BParams = 8_190_735_360
	// Qwen3-VL-8B (Qwen3VLForConditionalGeneration, its published shapes
	// in configs/full.yaml): 8,767,123,696 parameters, the text tower above
	// plus a 576,388,336-parameter vision side (27-block ViT of width 1152,
	// its patch merger and three DeepStack mergers).
	qwen3VL8BParams = 8_767_123_696
	// OmniGen2's DiT: "about 4B" parameters (hidden 2520, 32 layers,
	// 21/7 heads of 120, FFN 10240, 2-layer refiners, patch 2, 16 channels).
	omniGen2DiTParams = 4.0e9
	// FLUX.1's VAE (ae.safetensors; diffusers' AutoencoderKL with block
	// widths 128 256 512 512, 2 layers per block, 16 latent channels, no
	// quant convs): 83,819,683 parameters.
	fluxVAEParams = 83_819_683
)

func TestFullScaleParameterCounts(t *testing.T) {
	cfg, err := config.Load(filepath.Join("..", "configs", "full.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	text := CountParams(MLLMSpecs(cfg.Model.MLLM, cfg.Model.MLLM.Vocab, 0))
	if rel := math.Abs(float64(text)-qwen3_8BParams) / qwen3_8BParams; rel > 0.02 {
		t.Errorf("MLLM text tower: %d parameters, %.2f%% off Qwen3-8B's %d", text, 100*rel, int64(qwen3_8BParams))
	}
	if all := CountParams(MLLMSpecs(cfg.Model.MLLM, cfg.Model.MLLM.Vocab, 3)); all != qwen3VL8BParams {
		t.Errorf("MLLM with the Qwen3-VL tower: %d parameters, Qwen3-VL-8B has %d", all, int64(qwen3VL8BParams))
	}
	dit := CountParams(DiTSpecs(cfg.Model.DiT))
	if rel := math.Abs(float64(dit)-omniGen2DiTParams) / omniGen2DiTParams; rel > 0.02 {
		t.Errorf("DiT: %d parameters, %.2f%% off OmniGen2's ~4.0B", dit, 100*rel)
	}
	if vae := CountParams(VAESpecs(VAEConfigFor(cfg.Model))); vae != fluxVAEParams {
		t.Errorf("VAE: %d parameters, FLUX.1's has %d", vae, fluxVAEParams)
	}
	t.Logf("full scale: MLLM text %d, DiT %d, connector %d", text, dit,
		CountParams(ConnectorSpecs(cfg.Model.MLLM.Hidden, cfg.Model.DiT.Hidden, cfg.Model.Connector.Prepad)))
}
