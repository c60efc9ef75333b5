package model

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// TokenLogProbs are teacher-forced per-token quantities of completions,
// laid out [B, C] with C the longest completion; the caller drops them.
type TokenLogProbs struct {
	LogProbs *ts.Tensor // log π(token | prefix) at the given temperature; differentiable
	Entropy  *ts.Tensor // entropy of π at each position; differentiable
	Mask     *ts.Tensor // 1 for real completion tokens, 0 for padding (float32)
}

// Drop frees the tensors.
func (t *TokenLogProbs) Drop() {
	t.LogProbs.MustDrop()
	t.Entropy.MustDrop()
	t.Mask.MustDrop()
}

// layout lays prompts right-aligned and completions left-aligned after them:
// [B, P+C], with P the longest prompt and C the longest completion.
func (m *MLLM) layout(prompts, completions [][]int) (in *forwardInput, p, c int, err error) {
	if len(prompts) != len(completions) {
		return nil, 0, 0, fmt.Errorf("model: %d prompts for %d completions", len(prompts), len(completions))
	}
	for i := range completions {
		c = max(c, len(completions[i]))
		if len(prompts[i]) == 0 {
			return nil, 0, 0, fmt.Errorf("model: prompt %d is empty", i)
		}
	}
	ids, positions, valid, p := m.leftPad(prompts)
	if p+c > m.Cfg.MaxSeqLen {
		return nil, 0, 0, fmt.Errorf("model: sequence of %d tokens exceeds max_seq_len %d", p+c, m.Cfg.MaxSeqLen)
	}
	b, t := len(prompts), p+c
	in = &forwardInput{ids: make([]int64, b*t), batch: b, t: t, positions: make([]int64, b*t), keyValid: make([][]bool, b)}
	for i := 0; i < b; i++ {
		copy(in.ids[i*t:], ids[i*p:(i+1)*p])
		copy(in.positions[i*t:], positions[i*p:(i+1)*p])
		in.keyValid[i] = append(valid[i], make([]bool, c)...)
		for j := 0; j < c; j++ {
			in.positions[i*t+p+j] = int64(len(prompts[i]) + j)
			if j < len(completions[i]) {
				in.ids[i*t+p+j] = int64(completions[i][j])
				in.keyValid[i][p+j] = true
			} else {
				in.ids[i*t+p+j] = int64(m.Special.Pad)
			}
		}
	}
	return in, p, c, nil
}

// LogProbs computes teacher-forced log-probabilities and entropies of the
// completions given their prompts, at temperature (1 if 0), with gradients
// when grad mode is on — the learner's side of GRPO's ratio.
func (m *MLLM) LogProbs(prompts, completions [][]int, temperature float64, images *ts.Tensor) (*TokenLogProbs, error) {
	in, p, c, err := m.layout(prompts, completions)
	if err != nil {
		return nil, err
	}
	if c == 0 {
		return nil, fmt.Errorf("model: every completion is empty")
	}
	in.images = images
	out, err := m.forward(in)
	if err != nil {
		return nil, err
	}
	defer out.drop()
	var s libtorch.Scope
	defer s.Close()
	logits := s.Add(out.logits.MustNarrow(1, int64(p-1), int64(c), false)) // predicts tokens p..p+c-1
	if temperature > 0 && temperature != 1 {
		logits = s.Add(logits.MustDivScalar(ts.FloatScalar(temperature), false))
	}
	logp := s.Add(logits.MustLogSoftmax(-1, gotch.Float, false)) // [B, C, V]
	b := len(prompts)
	tgt := make([]int64, b*c)
	mask := make([]float32, b*c)
	for i := range completions {
		for j := 0; j < c; j++ {
			if j < len(completions[i]) {
				tgt[i*c+j] = int64(completions[i][j])
				mask[i*c+j] = 1
			} else {
				tgt[i*c+j] = int64(m.Special.Pad)
			}
		}
	}
	idx := s.Add(int64Tensor(tgt, []int64{int64(b), int64(c), 1}, m.dev))
	chosen := logp.MustGather(-1, idx, false, false).MustSqueezeDim(-1, true)
	probs := s.Add(logp.MustExp(false))
	ent := s.Add(probs.MustMul(logp, false)).MustSumDimIntlist([]int64{-1}, false, gotch.Float, false).MustNeg(true)
	return &TokenLogProbs{LogProbs: chosen, Entropy: ent, Mask: float32Tensor(mask, []int64{int64(b), int64(c)}, m.dev)}, nil
}

// InstructionStates returns, for each (prompt, completion), the VGI-refine
// input: the hidden states of the last two layers concatenated on the
// hidden axis ([L, 2H], detached) for the tokens after the first </think>
// of prompt+completion, without padding and EOS. A sequence with no
// </think> keeps its whole completion and is reported in missing. With
// m.AllStates (the ALL ablation) every token of prompt+completion is kept.
func (m *MLLM) InstructionStates(prompts, completions [][]int, images *ts.Tensor) (states []*ts.Tensor, missing []bool, err error) {
	in, p, _, err := m.layout(prompts, completions)
	if err != nil {
		return nil, nil, err
	}
	in.images = images
	in.hidden = true
	libtorch.NoGrad(func() {
		var out *forwardOutput
		out, err = m.forward(in)
		if err != nil {
			return
		}
		defer out.drop()
		var s libtorch.Scope
		defer s.Close()
		both := s.Add(ts.MustCat([]*ts.Tensor{out.prev, out.last}, -1)) // [B, T, 2H]
		missing = make([]bool, len(prompts))
		for i := range prompts {
			off := p - len(prompts[i])
			seq := append(append([]int(nil), prompts[i]...), completions[i]...)
			start := -1
			for j, id := range seq {
				if id == m.Special.ThinkEnd {
					start = j + 1
					break
				}
			}
			if start < 0 {
				missing[i] = true
				start = len(prompts[i])
			}
			if m.AllStates {
				start = 0
			}
			end := len(seq)
			for end > start && (seq[end-1] == m.Special.EOS || seq[end-1] == m.Special.Pad) {
				end--
			}
			row := s.Add(both.MustSelect(0, int64(i), false))
			states = append(states, row.MustNarrow(0, int64(off+start), int64(end-start), false).MustContiguous(true))
		}
	})
	if err != nil {
		for _, t := range states {
			t.MustDrop()
		}
		return nil, nil, err
	}
	return states, missing, nil
}
