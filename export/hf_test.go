package export

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
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
	imageTokens := model.ImageTokens(config.MLLM{VisionPatch: 4}, 32)
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

	raw := tensorsOf(t, filepath.Join(dir, "logits.safetensors"), "logits")[0]
	if len(raw) != len(goLogits) {
		t.Fatalf("transformers gave %d logits, Go %d", len(raw), len(goLogits))
	}
	worst := maxDiff(raw, goLogits)
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

// loraBundle saves base/tiny with LoRA adapters on both models (rank 4;
// every adapter tensor drawn at random, as if trained) into a bundle
// directory and exports it; it returns the export and the Go logits of
// ids through the adapted MLLM.
func loraBundle(t *testing.T, ids []int) (out string, logits []float32) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	out = filepath.Join(t.TempDir(), "export")
	err := libtorch.Run(func() error {
		b, _, err := model.LoadBundle(baseTiny, gotch.CPU)
		if err != nil {
			return err
		}
		defer b.Drop()
		_, cfg, err := model.ReadBundleManifest(baseTiny)
		if err != nil {
			return err
		}
		cfg.LoRA = config.LoRA{MLLM: config.Adapter{Rank: 4, Alpha: 8}, DiT: config.Adapter{Rank: 4, Alpha: 4, Targets: []string{"to_q", "to_v"}}}
		if err := b.AttachLoRA(cfg.LoRA, 7); err != nil {
			return err
		}
		libtorch.NoGrad(func() {
			for _, a := range []*model.LoRA{b.MLLM.Adapters, b.DiT.Adapters} {
				for _, p := range a.P.Tensors() {
					r := p.MustRandnLike(false).MustMulScalar(ts.FloatScalar(0.05), true)
					p.Copy_(r)
					r.MustDrop()
				}
			}
		})
		if err := b.Save(dir, 1, cfg); err != nil {
			return err
		}
		logits, err = b.MLLM.Logits(ids)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(dir, out, Source{}, Options{}); err != nil {
		t.Fatal(err)
	}
	return out, logits
}

// tensorsOf reads the named float32 tensors of the safetensors file at
// path (as the Python references save them).
func tensorsOf(t *testing.T, path string, names ...string) [][]float32 {
	t.Helper()
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.Deserialize(buf)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]float32, len(names))
	for k, name := range names {
		v, ok := st.Tensor(name)
		if !ok {
			t.Fatalf("%s: no tensor %s", path, name)
		}
		raw := v.Data()
		out[k] = make([]float32, len(raw)/4)
		for i := range out[k] {
			out[k][i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	}
	return out
}

func maxDiff(a, b []float32) float64 {
	worst := 0.0
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i]-b[i])))
	}
	return worst
}

// TestPEFTLoadsExportedAdapters: an export of a LoRA checkpoint holds
// PEFT's adapter folders; PEFT (PeftModel.from_pretrained on the exported
// Qwen3ForCausalLM) loads the MLLM's adapter onto every targeted module
// and computes the Go model's logits within 1e-4 (and the base's with the
// adapter disabled); Import reads the adapters back.
func TestPEFTLoadsExportedAdapters(t *testing.T) {
	py := testenv.Python(t)
	ids := []int{5, 17, 33, 8, 2, 40, 41, 9, 12}
	out, goLogits := loraBundle(t, ids)
	for _, f := range []string{fileMLLMAdapter, fileMLLMAdapterConfig, fileDiTAdapter, fileDiTAdapterConfig} {
		if _, err := os.Stat(filepath.Join(out, filepath.FromSlash(f))); err != nil {
			t.Errorf("export lacks %s: %v", f, err)
		}
	}
	var ac map[string]any
	if b, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(fileDiTAdapterConfig))); err != nil || json.Unmarshal(b, &ac) != nil {
		t.Fatalf("DiT adapter config: %v", err)
	}
	if ac["peft_type"] != "LORA" || ac["r"] != 4.0 || !slices.Equal(toStrings(ac["target_modules"]), []string{"to_q", "to_v"}) {
		t.Errorf("DiT adapter config %v", ac)
	}

	dir := t.TempDir()
	data, _ := json.Marshal(ids)
	idsPath := filepath.Join(dir, "ids.json")
	if err := os.WriteFile(idsPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(py, filepath.Join("testdata", "peft_load.py"), out, idsPath, dir).CombinedOutput(); err != nil {
		t.Fatalf("peft_load.py: %v\n%s", err, b)
	}
	var res struct {
		ModelClass  string   `json:"model_class"`
		LoRAModules []string `json:"lora_modules"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "result.json")); err != nil || json.Unmarshal(b, &res) != nil {
		t.Fatalf("result.json: %v", err)
	}
	if want := 6 * 7; len(res.LoRAModules) != want || !strings.Contains(res.ModelClass, "Peft") {
		t.Errorf("PEFT built %s with %d LoRA modules, want %d", res.ModelClass, len(res.LoRAModules), want)
	}
	logits := tensorsOf(t, filepath.Join(dir, "logits.safetensors"), "adapted", "base")
	adapted, base := logits[0], logits[1]
	d := maxDiff(adapted, goLogits)
	t.Logf("logits of %d tokens: max |Go − PEFT| = %.3g; the adapter moves PEFT's logits by up to %.3g", len(ids), d, maxDiff(adapted, base))
	if d > 1e-4 || math.IsNaN(d) {
		t.Errorf("Go logits with adapters differ from PEFT's by %g (> 1e-4)", d)
	}
	if maxDiff(adapted, base) < 1e-3 {
		t.Error("the adapter does not change PEFT's logits: the test cannot tell")
	}

	err := libtorch.Run(func() error {
		b, _, err := Import(out, gotch.CPU)
		if err != nil {
			return err
		}
		defer b.Drop()
		if b.MLLM.Adapters == nil || b.DiT.Adapters == nil {
			t.Fatal("Import left out the adapters")
		}
		got, err := b.MLLM.Logits(ids)
		if err != nil {
			return err
		}
		if d := maxDiff(got, goLogits); d != 0 {
			t.Errorf("the imported export's logits differ by %g", d)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
