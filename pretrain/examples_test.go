package pretrain

import (
	"slices"
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

// TestWarmupBatchesTeachFactsAsText checks what each stage's batches hold:
// the warm-up gives the configured share of its batch to text-only fact
// questions (no image), covering every fact over its steps, held-back ones
// included; the image rows of every stage are train rows that never show a
// held-back fact; the DiT stages take no fact question; and with share 0
// the warm-up reads exactly the image rows it read before.
func TestWarmupBatchesTeachFactsAsText(t *testing.T) {
	cfg := config.Default()
	cfg.Run.Seed = 3
	cfg.Pretrain.Warmup = config.Stage{Steps: 100, Batch: 16, Facts: 0.25}
	cfg.Pretrain.DiT = config.Stage{Steps: 10, Batch: 8}
	o := &Options{Config: cfg}
	tok, err := model.TokenizerFor(cfg.Model.MLLM)
	if err != nil {
		t.Fatal(err)
	}
	var held []string
	for i, f := range datasets.Facts() {
		if datasets.FactSplit(i) == datasets.Eval {
			held = append(held, f.Subject, f.Because)
		}
	}
	asked := map[int]bool{}
	for step := range 100 {
		rows, err := o.stepRows(StageWarmup, cfg.Pretrain.Warmup, step)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 16 {
			t.Fatalf("step %d: %d rows, want 16", step, len(rows))
		}
		for i, r := range rows {
			fact := datasets.FactIndex(r)
			if (fact >= 0) != (i >= 12) {
				t.Fatalf("step %d row %d (%s): want 12 image rows, then 4 fact questions", step, i, r.ID)
			}
			if fact >= 0 {
				asked[fact] = true
				e, err := stageExample(StageWarmup, cfg.Pretrain.Warmup, tok, &rows[i], 4, step+i)
				if err != nil {
					t.Fatal(err)
				}
				if p := tok.Decode(e.Prompt); strings.Contains(p, "<|image_pad|>") || !strings.Contains(p, r.Prompt) {
					t.Fatalf("fact question %s: prompt %q", r.ID, p)
				}
				continue
			}
			if r.Split != datasets.Train || len(r.Target) == 0 {
				t.Fatalf("step %d: image row %s of split %s", step, r.ID, r.Split)
			}
			checkNoHeldBackFact(t, r, held)
		}
	}
	for i, f := range datasets.Facts() {
		if !asked[i] {
			t.Errorf("fact %d (%s, split %s) never asked in 100 warm-up steps", i, f.Subject, datasets.FactSplit(i))
		}
	}
	for step := range 10 {
		rows, err := o.stepRows(StageDiT, cfg.Pretrain.DiT, step)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if datasets.FactIndex(r) >= 0 || len(r.Target) == 0 {
				t.Fatalf("DiT step %d: row %s is not an image row", step, r.ID)
			}
			checkNoHeldBackFact(t, r, held)
		}
	}
	plain := config.Stage{Steps: 10, Batch: 16}
	for step := range 3 {
		got, err := o.stepRows(StageWarmup, plain, step)
		if err != nil {
			t.Fatal(err)
		}
		want, err := o.rowsFor(StageWarmup, step, 16)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got, want, func(a, b datasets.Row) bool { return a.ID == b.ID }) {
			t.Errorf("step %d with facts 0: rows differ from the image rows alone", step)
		}
	}
}

func checkNoHeldBackFact(t *testing.T, r datasets.Row, held []string) {
	t.Helper()
	for _, text := range []string{r.Prompt, r.Think, r.Answer} {
		for _, h := range held {
			if strings.Contains(text, h) {
				t.Fatalf("%s shows the held-back %q: %q", r.ID, h, text)
			}
		}
	}
}

func TestFactAnswer(t *testing.T) {
	for _, c := range []struct{ written, want string }{
		{"red.<|im_end|>", "red."},
		{"a carrot is orange.\n</think>\n\norange.<|im_end|>", "orange."},
		{"a carrot is orange.\n</think>\n\n", ""},
		{"two. ", "two."},
	} {
		if got := FactAnswer(c.written); got != c.want {
			t.Errorf("FactAnswer(%q) = %q, want %q", c.written, got, c.want)
		}
	}
}
