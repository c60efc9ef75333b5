package model

import (
	"fmt"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// Logits returns the next-token logits of one text-only sequence (no
// padding, positions 0 … len(ids)−1), row-major [len(ids), Vocab]: what
// transformers' Qwen3ForCausalLM(input_ids).logits[0] is for the same
// weights. It runs without gradients; call it inside libtorch.Run.
func (m *MLLM) Logits(ids []int) ([]float32, error) {
	n := len(ids)
	if n == 0 || n > m.Cfg.MaxSeqLen {
		return nil, fmt.Errorf("model: logits of %d tokens: want 1 … max_seq_len %d", n, m.Cfg.MaxSeqLen)
	}
	in := &forwardInput{ids: make([]int64, n), batch: 1, t: n, positions: make([]int64, n), keyValid: [][]bool{make([]bool, n)}}
	for i, id := range ids {
		if id < 0 || id >= m.Vocab {
			return nil, fmt.Errorf("model: token %d at %d is outside the vocabulary [0, %d)", id, i, m.Vocab)
		}
		in.ids[i], in.positions[i], in.keyValid[0][i] = int64(id), int64(i), true
	}
	var out *forwardOutput
	var err error
	libtorch.NoGrad(func() { out, err = m.forward(in) })
	if err != nil {
		return nil, err
	}
	defer out.drop()
	return float32s(out.logits), nil
}
