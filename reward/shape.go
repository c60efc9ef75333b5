package reward

import (
	"fmt"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
)

// Shape is the reward item it trains on, given its image's result res:
// res.Score; or, in the MLLM's phase with reward.instruction λ > 0, for a
// composition or reasoning item scored without error, weight × ((1 − λ) ×
// image + λ × instruction), where instruction is the score of the
// instruction it.Text read as a caption (InstructionScore). ok reports
// whether the instruction was scored, and instr is its score.
func Shape(lambda float64, phase config.Phase, it Item, res Result) (score, instr float64, ok bool, err error) {
	if lambda == 0 || phase != config.PhaseMLLMGRPO || res.Err != "" {
		return res.Score, 0, false, nil
	}
	if instr, ok, err = InstructionScore(it.Scenario, it.Spec, it.Text); err != nil || !ok {
		return res.Score, 0, false, err
	}
	return res.Weight * ((1-lambda)*res.Partial + lambda*instr), instr, true, nil
}

// InstructionScore scores the instruction the MLLM wrote for a composition
// or reasoning row, read as a caption, against the row's spec (JSON,
// datasets.Spec) before any image is drawn: datasets.ScoreCaption, 0 when
// the instruction is not a caption. ok is false for the other scenarios.
func InstructionScore(scenario string, spec []byte, instruction string) (v float64, ok bool, err error) {
	if !datasets.AnswersWithCaption(scenario) {
		return 0, false, nil
	}
	s, err := datasets.ParseSpec(spec)
	if err != nil {
		return 0, false, fmt.Errorf("spec: %w", err)
	}
	v, _ = datasets.ScoreCaption(s.Require, instruction)
	return v, true, nil
}
