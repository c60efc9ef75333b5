package model

import (
	"fmt"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// ChatPrompt renders and encodes the generation prompt of one request: the
// user's text, preceded by one image of imageTokens <|image_pad|> tokens
// when hasImage, with the assistant's turn opened as mode says. Every
// stage and worker builds prompts through it, so that the tokens a rollout
// sampled after are the tokens the learner re-scores after.
func ChatPrompt(tok tokenizer.Tokenizer, user string, hasImage bool, imageTokens int, mode tokenizer.ThinkMode) ([]int, error) {
	c := tokenizer.Chat{User: user, Think: mode}
	if hasImage {
		c.Images = []int{imageTokens}
	}
	text, err := c.Prompt()
	if err != nil {
		return nil, fmt.Errorf("chat prompt: %w", err)
	}
	return tok.Encode(text)
}

// ImageTokens is the number of <|image_pad|> tokens of one square image of
// imageSize pixels: one per vision patch, or with the Qwen3-VL tower one per
// merged block of spatial_merge² patches (what the patch merger emits).
func ImageTokens(c config.MLLM, imageSize int) int {
	side := imageSize / c.VisionPatch
	if c.IsQwen3VL() && c.ViT.SpatialMerge > 0 {
		side /= c.ViT.SpatialMerge
	}
	return side * side
}
