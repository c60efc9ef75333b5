package tokenizer

import (
	"slices"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/internal/testutil"
)

// TestChatGolden compares Chat.Prompt with transformers' apply_chat_template
// on Qwen3's template (testdata/chat_golden.json, from gen_bpe.py), and the
// prompt's ids under the Qwen-style tokenizer.
func TestChatGolden(t *testing.T) {
	var golden []struct {
		System string `json:"system"`
		User   string `json:"user"`
		Mode   string `json:"mode"`
		Text   string `json:"text"`
		IDs    []int  `json:"ids"`
	}
	testutil.ReadJSON(t, "testdata/chat_golden.json", &golden)
	modes := map[string]ThinkMode{"open": ThinkOpen, "skip": ThinkSkip, "free": ThinkFree}
	tok := loadTestBPE(t, "qwen")
	seen := map[ThinkMode]int{}
	for _, g := range golden {
		mode, ok := modes[g.Mode]
		if !ok {
			t.Fatalf("unknown mode %q in golden", g.Mode)
		}
		if mode.String() != g.Mode {
			t.Errorf("ThinkMode %d String() = %q, want %q", mode, mode, g.Mode)
		}
		seen[mode]++
		got, err := Chat{System: g.System, User: g.User, Think: mode}.Prompt()
		if err != nil {
			t.Errorf("Prompt(%q, %q, %v): %v", g.System, g.User, mode, err)
			continue
		}
		if got != g.Text {
			t.Errorf("Prompt(%q, %q, %v)\n got  %q\n want %q", g.System, g.User, mode, got, g.Text)
		}
		ids, err := tok.Encode(got)
		if err != nil || !slices.Equal(ids, g.IDs) {
			t.Errorf("Encode(prompt %q) = %v, %v; want %v", got, ids, err, g.IDs)
		}
	}
	if len(seen) != 3 {
		t.Errorf("golden covers modes %v, want all three", seen)
	}
}

var chatTests = []struct {
	chat Chat
	want string
}{
	{Chat{User: "draw a red circle"},
		"<|im_start|>user\ndraw a red circle<|im_end|>\n<|im_start|>assistant\n<think>\n"},
	{Chat{System: "sys", User: "u", Think: ThinkSkip},
		"<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"},
	{Chat{User: "u", Think: ThinkFree},
		"<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\n"},
	{Chat{User: "remove the blue square", Images: []int{3}},
		"<|im_start|>user\n<|vision_start|><|image_pad|><|image_pad|><|image_pad|><|vision_end|>remove the blue square<|im_end|>\n<|im_start|>assistant\n<think>\n"},
	{Chat{System: "sys", History: []Message{{"user", "u1"}, {"assistant", "a1"}}, User: "u2", Think: ThinkSkip},
		"<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nu1<|im_end|>\n<|im_start|>assistant\na1<|im_end|>\n<|im_start|>user\nu2<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"},
	{Chat{User: "fix it", Images: []int{1, 2}, Think: ThinkFree},
		"<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|image_pad|><|image_pad|><|vision_end|>fix it<|im_end|>\n<|im_start|>assistant\n"},
}

func TestChatPrompt(t *testing.T) {
	for _, tt := range chatTests {
		got, err := tt.chat.Prompt()
		if err != nil {
			t.Errorf("%+v: %v", tt.chat, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%+v.Prompt()\n got  %q\n want %q", tt.chat, got, tt.want)
		}
	}
}

// TestChatImageTokens checks that N image tokens encode as one
// <|vision_start|>, N <|image_pad|> ids and one <|vision_end|>, for both
// tokenizers.
func TestChatImageTokens(t *testing.T) {
	toks := map[string]Tokenizer{"words": newTestWords(t), "qwen": loadTestBPE(t, "qwen")}
	for name, tok := range toks {
		sp := tok.Specials()
		for _, n := range []int{1, 4, 64} {
			prompt, err := Chat{User: "make the circle green", Images: []int{n}}.Prompt()
			if err != nil {
				t.Fatal(err)
			}
			ids, err := tok.Encode(prompt)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			start := slices.Index(ids, sp.VisionStart)
			if start < 0 || start+n+1 >= len(ids) || ids[start+n+1] != sp.VisionEnd {
				t.Fatalf("%s, %d image tokens: no <|vision_start|> … <|vision_end|> run of the right length in %v", name, n, ids)
			}
			for _, id := range ids[start+1 : start+n+1] {
				if id != sp.ImagePad {
					t.Fatalf("%s, %d image tokens: id %d inside the image run, want <|image_pad|> %d", name, n, id, sp.ImagePad)
				}
			}
			if got := tok.Decode(ids); got != prompt {
				t.Errorf("%s: Decode(Encode(prompt)) = %q, want %q", name, got, prompt)
			}
			if ids[len(ids)-2] != sp.Think {
				t.Errorf("%s: prompt does not end in <think> and a newline: %v", name, ids[len(ids)-3:])
			}
		}
	}
}

func TestChatErrors(t *testing.T) {
	tests := []struct {
		chat    Chat
		errPart string
	}{
		{Chat{User: "u", Images: []int{2, 0}}, "image 1 has 0 image tokens"},
		{Chat{User: "u", Images: []int{-3}}, "image 0 has -3 image tokens"},
		{Chat{User: "u", Think: ThinkMode(7)}, "unknown think mode 7"},
		{Chat{User: "u", History: []Message{{"user", "a"}, {"system", "b"}}}, `history turn 1 has role "system"`},
	}
	for _, tt := range tests {
		_, err := tt.chat.Prompt()
		if err == nil || !strings.Contains(err.Error(), tt.errPart) {
			t.Errorf("%+v: error %v, want one containing %q", tt.chat, err, tt.errPart)
		}
	}
}

func TestReply(t *testing.T) {
	for _, c := range []struct {
		mode          ThinkMode
		think, answer string
		want          string
	}{
		{ThinkOpen, "two plus one is three.", "three dots.", "two plus one is three.\n</think>\n\nthree dots.<|im_end|>"},
		{ThinkOpen, "", "a red circle.", "\n</think>\n\na red circle.<|im_end|>"},
		{ThinkSkip, "ignored.", "a red circle.", "a red circle.<|im_end|>"},
	} {
		if got := Reply(c.mode, c.think, c.answer); got != c.want {
			t.Errorf("Reply(%v, %q, %q) = %q, want %q", c.mode, c.think, c.answer, got, c.want)
		}
	}
}

func TestSplitReply(t *testing.T) {
	for _, tt := range []struct{ in, thought, instr string }{
		{"two plus one is three.\n</think>\n\na small red circle.<|im_end|>", "two plus one is three.", "a small red circle."},
		{"\n</think>\n\nthe text \"AB\".", "", "the text \"AB\"."},
		{"no end of thinking", "", "no end of thinking"},
		{"<think>\nred first\n</think>\n\na red square.<|im_end|>", "red first", "a red square."},
		{"a blue circle.<|im_end|>", "", "a blue circle."},
		{"a </think> b </think> c", "a", "b </think> c"},
	} {
		thought, instr := SplitReply(tt.in)
		if thought != tt.thought || instr != tt.instr {
			t.Errorf("SplitReply(%q) = %q, %q; want %q, %q", tt.in, thought, instr, tt.thought, tt.instr)
		}
	}
}
