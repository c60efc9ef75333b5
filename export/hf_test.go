package export

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nlpodyssey/safetensors"
	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/testenv"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// hfChat is one apply_chat_template case and the tokenizer.Chat it must
// render like.
type hfChat struct {
	Messages       []map[string]any `json:"messages"`
	EnableThinking *bool            `json:"enable_thinking"`
	chat           tokenizer.Chat
}

type hfResult struct {
	TokenizerClass string              `json:"tokenizer_class"`
	ModelClass     string              `json:"model_class"`
	Loading        map[string][]string `json:"loading"`
	Chats          []struct {
		Text string `json:"text"`
		IDs  []int  `json:"ids"`
	} `json:"chats"`
	Texts []struct {
		IDs     []int  `json:"ids"`
		Decoded string `json:"decoded"`
	} `json:"texts"`
	Generation struct {
		EOS      []int   `json:"eos_token_id"`
		Pad      int     `json:"pad_token_id"`
		Temp     float64 `json:"temperature"`
		TopP     float64 `json:"top_p"`
		DoSample bool    `json:"do_sample"`
	} `json:"generation"`
}

// TestTransformersLoadsExport loads the exported base/tiny MLLM with
// transformers' AutoModelForCausalLM and AutoTokenizer and checks: no
// missing or unexpected weights; the chat template renders what
// tokenizer.Chat renders; AutoTokenizer's ids are the Go tokenizer's; the
// logits on a chat prompt equal the Go model's within 1e-4.
func TestTransformersLoadsExport(t *testing.T) {
	py := testenv.Python(t)
	out, _ := writeBase(t)
	falseV := false
	prompt := "Draw two red circles above a blue square."
	user := func(parts ...map[string]any) []map[string]any {
		return []map[string]any{{"role": "user", "content": parts}}
	}
	imageTokens := model.ImageTokens(32, 4)
	chats := []hfChat{
		{Messages: []map[string]any{{"role": "user", "content": prompt}}, chat: tokenizer.Chat{User: prompt}},
		{Messages: []map[string]any{{"role": "user", "content": prompt}}, EnableThinking: &falseV, chat: tokenizer.Chat{User: prompt, Think: tokenizer.ThinkSkip}},
		{Messages: append([]map[string]any{{"role": "system", "content": "You draw shapes."}}, user(map[string]any{"type": "text", "text": prompt})...),
			chat: tokenizer.Chat{System: "You draw shapes.", User: prompt}},
		{Messages: user(map[string]any{"type": "image"}, map[string]any{"type": "text", "text": "Make the circles green."}),
			chat: tokenizer.Chat{User: "Make the circles green.", Images: []int{imageTokens}}},
	}
	texts := []string{
		"two red circles", "Two red circles", "a sign that reads \"K7Q\"", "  red,blue.  ", "redo xred red2",
		"<think>\nThe sky is blue.\n</think>\n\nDraw a blue star.<|im_end|>", "<<think>>", "{x}\t|~",
	}
	cases := map[string]any{"chats": chats, "texts": texts}
	dir := t.TempDir()
	casesPath := filepath.Join(dir, "cases.json")
	data, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(casesPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "hf_load.py"), out, casesPath, dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hf_load.py: %v\n%s", err, b)
	}
	var res hfResult
	data, err = os.ReadFile(filepath.Join(dir, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("transformers loaded %s and %s", res.ModelClass, res.TokenizerClass)
	if res.ModelClass != "Qwen3ForCausalLM" {
		t.Errorf("AutoModelForCausalLM built %s, want Qwen3ForCausalLM", res.ModelClass)
	}
	for k, v := range res.Loading {
		if len(v) > 0 {
			t.Errorf("transformers loading info %s: %v", k, v)
		}
	}

	var goLogits []float32
	var tok tokenizer.Tokenizer
	err = libtorch.Run(func() error {
		b, _, err := Import(out, gotch.CPU)
		if err != nil {
			return err
		}
		defer b.Drop()
		tok = b.Tok
		ids, err := tok.Encode(mustPrompt(t, chats[0].chat))
		if err != nil {
			return err
		}
		goLogits, err = b.MLLM.Logits(ids)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range chats {
		want := mustPrompt(t, c.chat)
		if got := res.Chats[i].Text; got != want {
			t.Errorf("chat %d: apply_chat_template renders\n%q\nwant (tokenizer.Chat)\n%q", i, got, want)
		}
		ids, err := tok.Encode(want)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Chats[i].IDs, ids) {
			t.Errorf("chat %d: AutoTokenizer ids %v\nwant %v", i, res.Chats[i].IDs, ids)
		}
	}
	for i, text := range texts {
		ids, err := tok.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Texts[i].IDs, ids) {
			t.Errorf("%q: AutoTokenizer ids %v, want %v", text, res.Texts[i].IDs, ids)
		}
		if res.Texts[i].Decoded != text {
			t.Errorf("%q: AutoTokenizer decodes it as %q", text, res.Texts[i].Decoded)
		}
	}
	sp := tok.Specials()
	g := res.Generation
	if !slices.Equal(g.EOS, []int{sp.EOS}) || g.Pad != sp.Pad || !g.DoSample || g.Temp != 0.7 || g.TopP != 0.9 {
		t.Errorf("generation config as transformers reads it: %+v", g)
	}

	buf, err := os.ReadFile(filepath.Join(dir, "logits.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.Deserialize(buf)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := st.Tensor("logits")
	raw := v.Data()
	if len(raw) != 4*len(goLogits) {
		t.Fatalf("transformers gave %d logits, Go %d", len(raw)/4, len(goLogits))
	}
	worst := 0.0
	for i, g := range goLogits {
		w := math.Float32frombits(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24)
		worst = math.Max(worst, math.Abs(float64(w-g)))
	}
	t.Logf("logits of a %d-token chat prompt: max |Go − transformers| = %.3g", len(goLogits)/tok.VocabSize(), worst)
	if worst > 1e-4 || math.IsNaN(worst) {
		t.Errorf("logits differ from transformers by %g (> 1e-4)", worst)
	}
}

func mustPrompt(t *testing.T, c tokenizer.Chat) string {
	t.Helper()
	s, err := c.Prompt()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
