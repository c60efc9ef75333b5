package tokenizer

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// hfEncode encodes text the way the HuggingFace tokenizers library runs
// the tokenizer.json that MarshalHF writes: added tokens cut out
// leftmost-longest, the Split pre-tokenizer (Isolated) on the rest, each
// piece looked up in the WordLevel vocabulary. It reads the file, not the
// Words tokenizer, so it checks what the file says.
func hfEncode(t *testing.T, data []byte, text string) ([]int, error) {
	t.Helper()
	var f struct {
		AddedTokens  []hfAddedToken `json:"added_tokens"`
		PreTokenizer hfSplit        `json:"pre_tokenizer"`
		Model        hfWordLevel    `json:"model"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	var lits []literal
	for _, a := range f.AddedTokens {
		lits = append(lits, literal{a.Content, a.ID})
	}
	sp, err := newSplitter(f.PreTokenizer.Pattern["Regex"])
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	err = newLiterals(lits).segments(text, func(piece string, _, id int) error {
		if id >= 0 {
			ids = append(ids, id)
			return nil
		}
		return sp.split(piece, func(p string) error {
			id, ok := f.Model.Vocab[p]
			if !ok {
				return fmt.Errorf("piece %q is not in the vocabulary", p)
			}
			ids = append(ids, id)
			return nil
		})
	})
	return ids, err
}

// randomText draws strings from the vocabulary's words, special tokens and
// fallback characters, glued with and without spaces, so that word edges,
// double spaces and words inside words occur often.
func randomText(r *rand.Rand, w *Words) string {
	var b strings.Builder
	for n := r.IntN(12); n > 0; n-- {
		switch r.IntN(6) {
		case 0, 1, 2:
			b.WriteString(w.tokens[len(SpecialTokens)+r.IntN(len(w.tokens)-len(SpecialTokens))])
		case 3:
			b.WriteString(SpecialTokens[r.IntN(len(SpecialTokens))])
		case 4:
			b.WriteByte(fallbackChars()[r.IntN(len(fallbackChars()))])
		default:
			b.WriteString(" ")
		}
	}
	return b.String()
}

func TestWordsHFEncodesLikeWords(t *testing.T) {
	w := newTestWords(t)
	data, err := w.MarshalHF()
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{}
	for _, tt := range wordsEncodeTests {
		texts = append(texts, tt.text)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		texts = append(texts, randomText(r, w))
	}
	for _, text := range texts {
		want, err := w.Encode(text)
		if err != nil {
			t.Fatalf("Encode(%q): %v", text, err)
		}
		got, err := hfEncode(t, data, text)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("tokenizer.json encodes %q as %v (%v), Words as %v", text, got, err, want)
		}
	}
	// What Words refuses, the file refuses too (no unknown token).
	for _, tt := range wordsEncodeErrorTests {
		if ids, err := hfEncode(t, data, tt.text); err == nil {
			t.Errorf("tokenizer.json encodes %q as %v, want an error", tt.text, ids)
		}
	}
}

func TestWordsHFRoundTrip(t *testing.T) {
	w := newTestWords(t)
	data, err := w.MarshalHF()
	if err != nil {
		t.Fatal(err)
	}
	w2 := reloadWords(t, w, data)
	again, err := w2.MarshalHF()
	if err != nil || string(again) != string(data) {
		t.Errorf("MarshalHF after the round trip differs (%v)", err)
	}
}

func TestLoadWordsHFErrors(t *testing.T) {
	w := newTestWords(t)
	data, err := w.MarshalHF()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, errPart string
		mutate        func(f map[string]any)
	}{
		{"pattern", "pre_tokenizer differs", func(f map[string]any) {
			f["pre_tokenizer"].(map[string]any)["pattern"] = map[string]any{"Regex": `\w+`}
		}},
		{"decoder", "decoder differs", func(f map[string]any) { f["decoder"] = nil }},
		{"normalizer", "normalizer differs", func(f map[string]any) { f["normalizer"] = map[string]any{"type": "NFC"} }},
		{"post processor", "post_processor differs", func(f map[string]any) {
			f["post_processor"] = map[string]any{"type": "TemplateProcessing"}
		}},
		{"added tokens", "added_tokens differ", func(f map[string]any) {
			f["added_tokens"] = f["added_tokens"].([]any)[1:]
		}},
		{"unk", `unk_token "red"`, func(f map[string]any) { f["model"].(map[string]any)["unk_token"] = "red" }},
		{"id gap", "want each of the ids", func(f map[string]any) {
			f["model"].(map[string]any)["vocab"].(map[string]any)["red"] = 100000
		}},
	}
	for _, tt := range tests {
		var f map[string]any
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatal(err)
		}
		tt.mutate(f)
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Load(b); err == nil || !strings.Contains(err.Error(), tt.errPart) {
			t.Errorf("%s: Load error %v, want one containing %q", tt.name, err, tt.errPart)
		}
	}
}
