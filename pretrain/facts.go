package pretrain

import (
	"fmt"
	"io"
	"strings"

	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// FactScore is how many of the text-only fact questions
// (datasets.FactQuestions) of one split of the fact table (train: facts
// the image rows show; eval: held back from them) an MLLM answers right in
// one mode, greedily.
type FactScore struct {
	Split     datasets.Split `json:"split"`
	Mode      string         `json:"mode"` // "direct" or "think"
	Questions int            `json:"questions"`
	Right     int            `json:"right"`
}

// factSplits are the splits of the fact table (datasets.FactSplit).
var factSplits = []datasets.Split{datasets.Train, datasets.Eval}

// Share is the fraction answered right.
func (s FactScore) Share() float64 {
	if s.Questions == 0 {
		return 0
	}
	return float64(s.Right) / float64(s.Questions)
}

// FactAnswer is the answer in a written reply: the text after </think>
// (the whole reply in direct mode) without the end token, trimmed.
func FactAnswer(written string) string {
	if k := strings.Index(written, tokenizer.EndThink); k >= 0 {
		written = written[k+len(tokenizer.EndThink):]
	}
	return strings.TrimSpace(strings.ReplaceAll(written, tokenizer.ImEnd, ""))
}

// ScoreFacts asks m every fact question in direct and in thinking mode,
// decoding greedily (at most maxNew tokens), and counts the replies whose
// answer is the question's (FactAnswer(reply) == row.Answer), by the
// fact's split and mode. It must run inside libtorch.Run.
func ScoreFacts(m *model.MLLM, tok tokenizer.Tokenizer, maxNew int) ([]FactScore, error) {
	qs := datasets.FactQuestions()
	var out []FactScore
	for _, mode := range []string{"direct", "think"} {
		think := tokenizer.ThinkSkip
		if mode == "think" {
			think = tokenizer.ThinkOpen
		}
		by := map[datasets.Split]*FactScore{}
		for _, sp := range factSplits {
			by[sp] = &FactScore{Split: sp, Mode: mode}
		}
		const chunk = 64
		for i := 0; i < len(qs); i += chunk {
			part := qs[i:min(i+chunk, len(qs))]
			prompts := make([][]int, len(part))
			seeds := make([]uint64, len(part))
			for j, q := range part {
				p, err := model.ChatPrompt(tok, q.Prompt, false, 0, think)
				if err != nil {
					return nil, fmt.Errorf("fact question %s: %w", q.ID, err)
				}
				prompts[j], seeds[j] = p, uint64(i+j)
			}
			g, err := m.Generate(prompts, model.GenerateOptions{MaxNewTokens: maxNew, Seeds: seeds})
			if err != nil {
				return nil, fmt.Errorf("fact questions: %w", err)
			}
			for j, q := range part {
				s := by[q.Split]
				s.Questions++
				if FactAnswer(tok.Decode(g.Tokens[j])) == q.Answer {
					s.Right++
				}
			}
		}
		for _, sp := range factSplits {
			out = append(out, *by[sp])
		}
	}
	return out, nil
}

// WriteFactScores prints fact scores, one line per split of the fact table
// and mode.
func WriteFactScores(w io.Writer, scores []FactScore) {
	name := map[datasets.Split]string{datasets.Train: "facts in image rows", datasets.Eval: "held-back facts"}
	for _, s := range scores {
		fmt.Fprintf(w, "%-20s %-6s %3d/%3d right (%.3f)\n", name[s.Split], s.Mode, s.Right, s.Questions, s.Share())
	}
}
