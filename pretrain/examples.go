// Package pretrain runs the supervised stages that precede SepGRPO: the
// MLLM warm-up (SFT on ShapeWorld's chat format and reasoning chains),
// stage 1 (alignment: only the VGI-refine connector and its prepadding
// states train), stage 2 (DiT pre-training by rectified-flow matching) and
// stage 3 (a high-quality fine-tune).
//
// Every stage reads deterministic slices of the ShapeWorld train split
// (seed, step), checkpoints the bundle and the optimiser state, and resumes
// from its last checkpoint after a kill.
package pretrain

import (
	"fmt"

	"github.com/thinkgen/thinkgen/config"

	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// Example is one tokenised training example.
type Example struct {
	Prompt, Completion []int
	// Reference is the PNG of the input image (editing, reflection), or nil.
	Reference []byte
	// Target is the PNG the DiT should draw.
	Target []byte
	Row    *datasets.Row
}

// ImageTokens is the number of <|image_pad|> tokens of one image of the
// MLLM c (model.ImageTokens).
func ImageTokens(c config.MLLM, imageSize int) int { return model.ImageTokens(c, imageSize) }

func chatPrompt(tok tokenizer.Tokenizer, user string, ref []byte, imageTokens int, mode tokenizer.ThinkMode) ([]int, error) {
	return model.ChatPrompt(tok, user, len(ref) > 0, imageTokens, mode)
}

// SFTExample makes the MLLM warm-up example of a row. In thinking mode the
// prompt opens <think> and the completion is the reasoning chain (empty for
// rows that need none), </think>, the answer and <|im_end|>; in
// non-thinking mode the prompt already closes an empty think block and the
// completion is the answer alone.
func SFTExample(tok tokenizer.Tokenizer, row *datasets.Row, imageTokens int, thinking bool) (Example, error) {
	mode := tokenizer.ThinkSkip
	if thinking {
		mode = tokenizer.ThinkOpen
	}
	completion := tokenizer.Reply(mode, row.Think, row.Answer)
	p, err := chatPrompt(tok, row.Prompt, row.Reference, imageTokens, mode)
	if err != nil {
		return Example{}, fmt.Errorf("row %s: prompt: %w", row.ID, err)
	}
	c, err := tok.Encode(completion)
	if err != nil {
		return Example{}, fmt.Errorf("row %s: completion: %w", row.ID, err)
	}
	return Example{Prompt: p, Completion: c, Reference: row.Reference, Target: row.Target, Row: row}, nil
}

// FlowExample makes the example of a row for the DiT stages, with the
// pseudo chain of thought of the paper's supervised stages:
// [SYS][C]<think></think>[C] — the caption (or edit instruction) C as the
// user turn, an empty think block, and C repeated as the answer, whose
// hidden states condition the DiT.
func FlowExample(tok tokenizer.Tokenizer, row *datasets.Row, imageTokens int) (Example, error) {
	p, err := chatPrompt(tok, row.Answer, row.Reference, imageTokens, tokenizer.ThinkSkip)
	if err != nil {
		return Example{}, fmt.Errorf("row %s: prompt: %w", row.ID, err)
	}
	c, err := tok.Encode(row.Answer)
	if err != nil {
		return Example{}, fmt.Errorf("row %s: caption: %w", row.ID, err)
	}
	return Example{Prompt: p, Completion: c, Reference: row.Reference, Target: row.Target, Row: row}, nil
}

// stageExample makes the example of a row for a stage: the warm-up's SFT
// example, and for the DiT stages the pseudo chain of thought
// (FlowExample) or, with sc.Condition "pipeline", the SFT example — the
// row's prompt and its reference chain and answer, which is what the
// pipeline feeds the DiT when the MLLM writes the right answer. k is the
// row's position in the stage (step + index in the batch): even k are in
// thinking mode, odd k in direct mode. With "mixed", even k take the
// pseudo chain of thought and odd k the pipeline's format, in thinking
// mode when k/2 is even.
func stageExample(stage string, sc config.Stage, tok tokenizer.Tokenizer, row *datasets.Row, imageTokens, k int) (Example, error) {
	switch {
	case stage == StageWarmup || sc.Condition == config.ConditionPipeline:
		return SFTExample(tok, row, imageTokens, k%2 == 0)
	case sc.Condition == config.ConditionMixed && k%2 == 1:
		return SFTExample(tok, row, imageTokens, (k/2)%2 == 0)
	}
	return FlowExample(tok, row, imageTokens)
}
