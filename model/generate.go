package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// GenerateOptions control sampling. Zero Temperature means greedy decoding.
type GenerateOptions struct {
	MaxNewTokens int
	Temperature  float64
	// TopP keeps the smallest set of tokens whose probability reaches TopP;
	// 0 or 1 disables it.
	TopP float64
	// Seeds gives each sequence its own sampling seed (len = len(prompts)),
	// so that a sequence's tokens do not depend on the batch it ran in.
	Seeds []uint64
	// NoCache recomputes the whole prefix at every step instead of using the
	// KV cache (slow; for tests and benchmarks).
	NoCache bool
	// Images holds, per prompt, the images whose patches fill its
	// <|image_pad|> tokens ([n, 3, H, W] in [-1, 1]); nil for text-only.
	Images *ts.Tensor
	// States also returns each sequence's VGI-refine input (see
	// InstructionStates) in Generation.States.
	States bool
	// Threads, if positive, is libtorch's intra-op thread count while
	// decoding; the previous count is restored when Generate returns.
	Threads int
}

// Generation is the result of Generate.
type Generation struct {
	// Tokens holds each sequence's completion, ending with EOS when one was
	// produced.
	Tokens [][]int
	// LogProbs[i][j] is log π(Tokens[i][j] | prefix) under the sampling
	// temperature (before top-p truncation) — the π_old of GRPO, which
	// LogProbs recomputes teacher-forced.
	LogProbs [][]float32
	// Stopped[i] reports whether sequence i ended with EOS.
	Stopped []bool
	// States (with GenerateOptions.States) holds, per sequence, the hidden
	// states [L, 2H] of the last two layers for the tokens after the first
	// </think>; NoThinkEnd marks sequences without one. The caller drops
	// the states.
	States     []*ts.Tensor
	NoThinkEnd []bool
}

// leftPad lays prompts out right-aligned in a [B, P] grid.
func (m *MLLM) leftPad(prompts [][]int) (ids, positions []int64, valid [][]bool, p int) {
	for _, q := range prompts {
		p = max(p, len(q))
	}
	b := len(prompts)
	ids = make([]int64, b*p)
	positions = make([]int64, b*p)
	valid = make([][]bool, b)
	for i, q := range prompts {
		off := p - len(q)
		valid[i] = make([]bool, p)
		for j := 0; j < p; j++ {
			if j < off {
				ids[i*p+j] = int64(m.Special.Pad)
				continue
			}
			ids[i*p+j] = int64(q[j-off])
			positions[i*p+j] = int64(j - off)
			valid[i][j] = true
		}
	}
	return ids, positions, valid, p
}

// Generate samples a completion for every prompt (callers repeat a prompt G
// times for a GRPO group, with G seeds). It runs under no-grad.
func (m *MLLM) Generate(prompts [][]int, o GenerateOptions) (*Generation, error) {
	b := len(prompts)
	if b == 0 {
		return &Generation{}, nil
	}
	if len(o.Seeds) != b {
		return nil, fmt.Errorf("model: generate: %d seeds for %d prompts", len(o.Seeds), b)
	}
	if o.MaxNewTokens <= 0 {
		return nil, fmt.Errorf("model: generate: max new tokens must be positive, got %d", o.MaxNewTokens)
	}
	for i, q := range prompts {
		if len(q) == 0 {
			return nil, fmt.Errorf("model: generate: prompt %d is empty", i)
		}
	}
	ids, positions, valid, p := m.leftPad(prompts)
	if p+o.MaxNewTokens > m.Cfg.MaxSeqLen {
		return nil, fmt.Errorf("model: generate: prompt length %d + %d new tokens exceeds max_seq_len %d", p, o.MaxNewTokens, m.Cfg.MaxSeqLen)
	}
	g := &Generation{Tokens: make([][]int, b), LogProbs: make([][]float32, b), Stopped: make([]bool, b)}
	rngs := make([]*rand.Rand, b)
	for i := range rngs {
		rngs[i] = rand.New(rand.NewPCG(o.Seeds[i], 0x67656e))
	}
	if o.Threads > 0 {
		if prev := libtorch.Threads(); prev != o.Threads {
			if err := libtorch.SetThreads(o.Threads); err != nil {
				return nil, fmt.Errorf("model: generate: %w", err)
			}
			defer libtorch.SetThreads(prev)
		}
	}
	var err error
	libtorch.NoGrad(func() {
		var cache *KVCache
		if !o.NoCache {
			cache = m.NewKVCache(b, p+o.MaxNewTokens)
			defer cache.Drop()
		}
		in := &forwardInput{ids: ids, batch: b, t: p, positions: positions, keyValid: valid, images: o.Images, cache: cache}
		next := make([]int64, b)
		nextPos := make([]int64, b)
		for i := range prompts {
			nextPos[i] = int64(len(prompts[i]))
		}
		for step := 0; step < o.MaxNewTokens; step++ {
			var out *forwardOutput
			out, err = m.forward(in)
			if err != nil {
				return
			}
			lp := m.lastLogProbs(out.logits, o.Temperature)
			out.drop()
			done := true
			fed := make([]bool, b)
			for i := 0; i < b; i++ {
				if g.Stopped[i] {
					next[i] = int64(m.Special.Pad)
					continue
				}
				fed[i] = true
				row := lp[i*m.Vocab : (i+1)*m.Vocab]
				tok := sampleToken(row, o.Temperature, o.TopP, rngs[i], m.Special.Pad, m.Special.ImagePad)
				g.Tokens[i] = append(g.Tokens[i], tok)
				g.LogProbs[i] = append(g.LogProbs[i], row[tok])
				next[i] = int64(tok)
				if tok == m.Special.EOS {
					g.Stopped[i] = true
				} else {
					done = false
				}
			}
			if done || step == o.MaxNewTokens-1 {
				break
			}
			// Feed the sampled tokens. Finished sequences feed padding that no
			// later query may attend to.
			for i := 0; i < b; i++ {
				valid[i] = append(valid[i], fed[i])
			}
			if cache != nil {
				in = &forwardInput{ids: append([]int64(nil), next...), batch: b, t: 1, positions: append([]int64(nil), nextPos...), keyValid: valid, cache: cache}
			} else {
				t := in.t + 1
				nids := make([]int64, b*t)
				npos := make([]int64, b*t)
				for i := 0; i < b; i++ {
					copy(nids[i*t:], in.ids[i*in.t:(i+1)*in.t])
					copy(npos[i*t:], in.positions[i*in.t:(i+1)*in.t])
					nids[i*t+t-1] = next[i]
					npos[i*t+t-1] = nextPos[i]
				}
				in = &forwardInput{ids: nids, batch: b, t: t, positions: npos, keyValid: valid, images: o.Images}
			}
			for i := range nextPos {
				nextPos[i]++
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if o.States {
		if g.States, g.NoThinkEnd, err = m.InstructionStates(prompts, g.Tokens, o.Images); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// lastLogProbs returns log softmax(logits[:, -1] / T) as a [B·V] slice
// (T = 1 when greedy).
func (m *MLLM) lastLogProbs(logits *ts.Tensor, temperature float64) []float32 {
	var s libtorch.Scope
	defer s.Close()
	sz := logits.MustSize()
	last := s.Add(logits.MustNarrow(1, sz[1]-1, 1, false))
	if temperature > 0 && temperature != 1 {
		last = s.Add(last.MustDivScalar(ts.FloatScalar(temperature), false))
	}
	return float32s(s.Add(last.MustLogSoftmax(-1, gotch.Float, false)))
}

// sampleToken draws from a log-probability row: argmax when temperature is
// 0, else from the top-p nucleus with r. Banned tokens (padding, image
// placeholders) are never drawn; the log-probabilities of the others are
// left as the full softmax gives them, so they match teacher forcing.
func sampleToken(logp []float32, temperature, topP float64, r *rand.Rand, banned ...int) int {
	isBanned := func(i int) bool {
		for _, b := range banned {
			if i == b {
				return true
			}
		}
		return false
	}
	if temperature == 0 {
		best := -1
		for i, v := range logp {
			if !isBanned(i) && (best < 0 || v > logp[best]) {
				best = i
			}
		}
		return best
	}
	idx := make([]int, 0, len(logp))
	for i := range logp {
		if !isBanned(i) {
			idx = append(idx, i)
		}
	}
	keep := len(idx)
	if topP > 0 && topP < 1 {
		// Only the nucleus needs the tokens in order of probability.
		sort.SliceStable(idx, func(a, b int) bool { return logp[idx[a]] > logp[idx[b]] })
		cum := 0.0
		for k, i := range idx {
			cum += math.Exp(float64(logp[i]))
			if cum >= topP {
				keep = k + 1
				break
			}
		}
	}
	total := 0.0
	for _, i := range idx[:keep] {
		total += math.Exp(float64(logp[i]))
	}
	u := r.Float64() * total
	for _, i := range idx[:keep] {
		u -= math.Exp(float64(logp[i]))
		if u <= 0 {
			return i
		}
	}
	return idx[keep-1]
}
