package pretrain

import (
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/model"
)

// TestStageExamples checks what each stage conditions on: the warm-up and a
// "pipeline" DiT stage see the row's prompt and write its chain (thinking
// mode, even positions) or only its answer (direct mode, odd positions); a
// default DiT stage sees the pseudo chain of thought, the answer as the
// user turn and again as the reply.
func TestStageExamples(t *testing.T) {
	tok, err := model.TokenizerFor(config.Default().Model.MLLM)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := datasets.Generate(datasets.Options{Seed: 1, Split: datasets.Train, Size: 32, Scenarios: []string{datasets.Reasoning}}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	row := &rows[0]
	if row.Think == "" {
		t.Fatalf("reasoning row %s has no chain", row.ID)
	}
	pipeline := config.Stage{Condition: config.ConditionPipeline}
	mixed := config.Stage{Condition: config.ConditionMixed}
	for _, c := range []struct {
		name  string
		stage string
		sc    config.Stage
		k     int
		user  string // the user turn holds this
		reply string // the reply, exactly
	}{
		{"warm-up, thinking", StageWarmup, config.Stage{}, 0, row.Prompt, row.Think + "\n</think>\n\n" + row.Answer + "<|im_end|>"},
		{"warm-up, direct", StageWarmup, config.Stage{}, 1, row.Prompt, row.Answer + "<|im_end|>"},
		{"dit, pseudo-cot default", StageDiT, config.Stage{}, 0, row.Answer, row.Answer},
		{"finetune, pseudo-cot", StageFinetune, config.Stage{Condition: config.ConditionPseudoCoT}, 0, row.Answer, row.Answer},
		{"finetune, pipeline, thinking", StageFinetune, pipeline, 2, row.Prompt, row.Think + "\n</think>\n\n" + row.Answer + "<|im_end|>"},
		{"finetune, pipeline, direct", StageFinetune, pipeline, 3, row.Prompt, row.Answer + "<|im_end|>"},
		{"align, pipeline", StageAlign, pipeline, 1, row.Prompt, row.Answer + "<|im_end|>"},
		{"finetune, mixed, pseudo-cot", StageFinetune, mixed, 4, row.Answer, row.Answer},
		{"finetune, mixed, pipeline thinking", StageFinetune, mixed, 5, row.Prompt, row.Think + "\n</think>\n\n" + row.Answer + "<|im_end|>"},
		{"finetune, mixed, pipeline direct", StageFinetune, mixed, 7, row.Prompt, row.Answer + "<|im_end|>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := stageExample(c.stage, c.sc, tok, row, 4, c.k)
			if err != nil {
				t.Fatal(err)
			}
			prompt, reply := tok.Decode(e.Prompt), tok.Decode(e.Completion)
			if !strings.Contains(prompt, c.user) {
				t.Errorf("prompt %q lacks the user turn %q", prompt, c.user)
			}
			if reply != c.reply {
				t.Errorf("reply %q, want %q", reply, c.reply)
			}
			if strings.Contains(prompt, row.Prompt) && c.user != row.Prompt {
				t.Errorf("prompt %q holds the row's request; want the pseudo chain of thought", prompt)
			}
			if string(e.Target) != string(row.Target) {
				t.Error("target is not the row's image")
			}
		})
	}
}
