package model

import "github.com/thinkgen/thinkgen/config"

// ModuleCount is the parameter count of one part of the system.
type ModuleCount struct {
	Module string
	Params int64
	// Subtotal marks a row that sums rows above it (not counted again in a total).
	Subtotal bool
}

// Inventory counts the parameters of every module a configuration builds,
// from the shapes alone (nothing is allocated). vocab is the MLLM's
// vocabulary size (the config's, or the tokenizer's when the config says 0).
func Inventory(c *config.Config, vocab int) []ModuleCount {
	m := c.Model
	all := MLLMSpecs(m.MLLM, vocab, 3)
	text := MLLMSpecs(m.MLLM, vocab, 0)
	var embed, head int64
	for _, s := range text {
		switch s.Name {
		case textPrefix(m.MLLM) + "embed_tokens.weight":
			embed = s.Numel()
		case "lm_head.weight":
			head = s.Numel()
		}
	}
	vision := "mllm.vision (patch embedder)"
	if m.MLLM.IsQwen3VL() {
		vision = "mllm.vision (Qwen3-VL ViT, merger, DeepStack mergers)"
	}
	counts := []ModuleCount{
		{"mllm.text (embeddings)", embed, false},
		{"mllm.text (decoder layers + norm)", CountParams(text) - embed - head, false},
		{"mllm.text (untied lm_head)", head, false},
		{"mllm.text total (the Qwen3 LM)", CountParams(text), true},
		{vision, CountParams(all) - CountParams(text), false},
		{"mllm total", CountParams(all), true},
		{"connector (VGI-refine)", CountParams(ConnectorSpecs(m.MLLM.Hidden, m.DiT.Hidden, m.Connector.Prepad)), false},
		{"dit", CountParams(DiTSpecs(m.DiT)), false},
	}
	if m.DiT.Latent == "vae" {
		counts = append(counts, ModuleCount{"vae (AutoencoderKL)", CountParams(VAESpecs(VAEConfigFor(m))), false})
	}
	return counts
}
