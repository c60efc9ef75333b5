package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// hfWordsUnk is the unknown token the HuggingFace form of a Words tokenizer
// names. It is not in the vocabulary, so text the Words tokenizer cannot
// encode fails in the HuggingFace tokenizers library too (MissingUnkToken)
// instead of turning into some id.
const hfWordsUnk = "<unk>"

// MarshalHF returns t as a HuggingFace tokenizer.json that the tokenizers
// library (and transformers' PreTrainedTokenizerFast) loads and that
// encodes every string exactly as t.Encode does:
//
//   - the special tokens are added tokens (special, not normalized), cut
//     out of the text leftmost-longest first, as Encode does;
//   - a Split pre-tokenizer (behaviour Isolated) cuts the rest into the
//     pieces Encode emits, with one regular expression: a space followed
//     by a word, or a word, longest first, with lookarounds for the word
//     boundaries, else one fallback character (see [Words] for the rules);
//   - a WordLevel model maps each piece to its id; its unknown token is
//     not in the vocabulary, so a character Encode refuses is an error;
//   - the Fuse decoder concatenates the tokens' texts, as Decode does.
//
// Load reads the result back into an equal Words tokenizer.
func (t *Words) MarshalHF() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("{\n \"version\": \"1.0\",\n \"truncation\": null,\n \"padding\": null,\n \"added_tokens\": [")
	for i, s := range SpecialTokens {
		if i > 0 {
			buf.WriteByte(',')
		}
		tok := hfAddedToken{ID: t.ids[s], Content: s, Special: true}
		b, err := marshalCompact(tok)
		if err != nil {
			return nil, err
		}
		buf.WriteString("\n  ")
		buf.Write(b)
	}
	buf.WriteString("\n ],\n \"normalizer\": null,\n \"pre_tokenizer\": ")
	pre, err := marshalCompact(hfWordsPreTokenizer(t))
	if err != nil {
		return nil, err
	}
	buf.Write(pre)
	buf.WriteString(",\n \"post_processor\": null,\n \"decoder\": {\"type\": \"Fuse\"},\n \"model\": {\n  \"type\": \"WordLevel\",\n  \"unk_token\": ")
	unk, _ := marshalCompact(hfWordsUnk)
	buf.Write(unk)
	buf.WriteString(",\n  \"vocab\": {")
	// The vocabulary in id order, for people reading the file (JSON
	// objects have no order; the ids are the values).
	for id, tok := range t.tokens {
		if id > 0 {
			buf.WriteByte(',')
		}
		k, err := marshalCompact(tok)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&buf, "\n   %s: %d", k, id)
	}
	buf.WriteString("\n  }\n }\n}\n")
	return buf.Bytes(), nil
}

// hfSplit is a HuggingFace Split pre-tokenizer.
type hfSplit struct {
	Type     string            `json:"type"`
	Pattern  map[string]string `json:"pattern"`
	Behavior string            `json:"behavior"`
	Invert   bool              `json:"invert"`
}

func hfWordsPreTokenizer(t *Words) hfSplit {
	return hfSplit{Type: "Split", Pattern: map[string]string{"Regex": t.hfPattern()}, Behavior: "Isolated", Invert: false}
}

// hfPattern is the regular expression whose successive matches are the
// pieces Encode emits for a stretch of text without special tokens. At each
// position the ordered alternation tries, in Encode's order, a space and a
// word, a word, then one fallback character; words are listed longest first
// (two words of one length cannot both match at one position), so the
// first that matches is the longest. Every character other than a letter
// or digit is written \xHH, which means the same in Oniguruma (the
// tokenizers library) and in regexp2.
func (t *Words) hfPattern() string {
	words := make([]string, 0, len(t.words))
	for w := range t.words {
		words = append(words, w)
	}
	slices.SortFunc(words, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	var b strings.Builder
	b.WriteString(`\x20?(?:`)
	for i, w := range words {
		if i > 0 {
			b.WriteByte('|')
		}
		if isWordByte(w[0]) {
			b.WriteString(`(?<![A-Za-z0-9])`)
		}
		writeHexEscaped(&b, w)
		if isWordByte(w[len(w)-1]) {
			b.WriteString(`(?![A-Za-z0-9])`)
		}
	}
	b.WriteString(`)|[`)
	writeHexEscaped(&b, string(fallbackChars()[:2]))
	b.WriteString(`\x20-\x7E]`)
	return b.String()
}

func writeHexEscaped(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; isWordByte(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(b, `\x%02X`, c)
		}
	}
}

// marshalCompact renders v as one-line JSON without HTML escaping.
func marshalCompact(v any) ([]byte, error) {
	b, err := marshalIndent(v)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// hfWordLevel is the model section of a WordLevel tokenizer.json.
type hfWordLevel struct {
	Type     string         `json:"type"`
	Vocab    map[string]int `json:"vocab"`
	UnkToken string         `json:"unk_token"`
}

// LoadWordsHF reads a Words tokenizer from the HuggingFace tokenizer.json
// that MarshalHF writes. The tokens come from the WordLevel vocabulary (ids
// 0 … n−1, each once); the encoding rules follow from them, so the file's
// pre-tokenizer, decoder, normalizer, post-processor and added tokens must
// be exactly those MarshalHF writes for that vocabulary — otherwise the
// tokenizers library would encode differently from the Words tokenizer,
// and the error names the section that differs.
func LoadWordsHF(data []byte) (*Words, error) {
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer: read tokenizer.json: %w", err)
	}
	var m hfWordLevel
	if err := json.Unmarshal(f.Model, &m); err != nil {
		return nil, fmt.Errorf("tokenizer: model: %w", err)
	}
	if m.Type != "WordLevel" {
		return nil, fmt.Errorf("tokenizer: model: type %q, want WordLevel", m.Type)
	}
	tokens := make([]string, len(m.Vocab))
	for tok, id := range m.Vocab {
		if id < 0 || id >= len(tokens) || tokens[id] != "" {
			return nil, fmt.Errorf("tokenizer: model: vocab: token %q has id %d; want each of the ids 0 … %d once", tok, id, len(tokens)-1)
		}
		tokens[id] = tok
	}
	t, err := newWords(tokens)
	if err != nil {
		return nil, err
	}
	want, err := t.MarshalHF()
	if err != nil {
		return nil, err
	}
	var w hfFile
	if err := json.Unmarshal(want, &w); err != nil {
		return nil, err
	}
	if m.UnkToken != hfWordsUnk {
		return nil, fmt.Errorf("tokenizer: model: unk_token %q, want %q (not in the vocabulary)", m.UnkToken, hfWordsUnk)
	}
	if !slices.Equal(f.AddedTokens, w.AddedTokens) {
		return nil, fmt.Errorf("tokenizer: added_tokens differ from the special tokens of the vocabulary")
	}
	for _, sec := range []struct {
		name      string
		got, want json.RawMessage
	}{
		{"normalizer", f.Normalizer, w.Normalizer},
		{"pre_tokenizer", f.PreTokenizer, w.PreTokenizer},
		{"post_processor", f.PostProcessor, w.PostProcessor},
		{"decoder", f.Decoder, w.Decoder},
	} {
		if !sameJSON(sec.got, sec.want) {
			return nil, fmt.Errorf("tokenizer: %s differs from the one this vocabulary's Words tokenizer encodes with", sec.name)
		}
	}
	return t, nil
}

// sameJSON reports whether a and b are the same JSON value (a missing
// value counts as null).
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if len(a) > 0 {
		if json.Unmarshal(a, &x) != nil {
			return false
		}
	}
	if len(b) > 0 {
		if json.Unmarshal(b, &y) != nil {
			return false
		}
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
