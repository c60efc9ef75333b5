package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
)

// The special tokens, spelled as Qwen2/Qwen3 spell them. Each is recognised
// as one token wherever it appears literally in the text given to Encode.
const (
	EndOfText   = "<|endoftext|>"    // padding (Qwen's pad token)
	ImStart     = "<|im_start|>"     // opens a chat turn
	ImEnd       = "<|im_end|>"       // closes a chat turn; end of sequence for chat
	Think       = "<think>"          // opens the reasoning block
	EndThink    = "</think>"         // closes the reasoning block
	VisionStart = "<|vision_start|>" // opens an image's placeholder tokens
	ImagePad    = "<|image_pad|>"    // one image token, replaced by a patch embedding
	VisionEnd   = "<|vision_end|>"   // closes an image's placeholder tokens
)

// SpecialTokens lists the special tokens in the order the Words tokenizer
// gives them ids 0, 1, 2, ….
var SpecialTokens = [...]string{EndOfText, ImStart, ImEnd, Think, EndThink, VisionStart, ImagePad, VisionEnd}

// Specials holds the id of each special token. An id of -1 means the
// tokenizer does not have that token (only possible for a loaded
// HuggingFace tokenizer; a Words tokenizer has them all).
type Specials struct {
	Pad         int // <|endoftext|>
	EOS         int // <|im_end|>: generation of a chat turn stops here
	ImStart     int // <|im_start|>
	ImEnd       int // <|im_end|>
	Think       int // <think>
	EndThink    int // </think>
	VisionStart int // <|vision_start|>
	ImagePad    int // <|image_pad|>
	VisionEnd   int // <|vision_end|>
}

// specialsFrom looks every special token up with id, which reports -1 for a
// token the vocabulary lacks.
func specialsFrom(id func(string) int) Specials {
	return Specials{
		Pad:         id(EndOfText),
		EOS:         id(ImEnd),
		ImStart:     id(ImStart),
		ImEnd:       id(ImEnd),
		Think:       id(Think),
		EndThink:    id(EndThink),
		VisionStart: id(VisionStart),
		ImagePad:    id(ImagePad),
		VisionEnd:   id(VisionEnd),
	}
}

// Tokenizer turns text into token ids and back.
//
// Implementations are safe for concurrent use by multiple goroutines.
type Tokenizer interface {
	// Encode returns the token ids of text. Special tokens written
	// literally in text become their single ids. An error names the
	// offset and character that the vocabulary cannot represent; no
	// tokenizer in this package drops or replaces text silently.
	Encode(text string) ([]int, error)
	// Decode returns the text of ids: the concatenation of each token's
	// text, special tokens included. Ids outside [0, VocabSize()) have no
	// text and are skipped, as HuggingFace tokenizers skip them. The result
	// holds the decoded bytes as they are: a sequence cut inside a
	// multi-byte character is not valid UTF-8 until it is completed.
	Decode(ids []int) string
	// VocabSize is one more than the largest token id.
	VocabSize() int
	// Specials returns the ids of the special tokens.
	Specials() Specials
	// MarshalJSON returns the tokenizer's JSON form, which Load reads back
	// into an equal tokenizer.
	MarshalJSON() ([]byte, error)
}

// ErrUnknownFormat is returned by Load for JSON that is neither a Words
// tokenizer nor a HuggingFace tokenizer.json.
var ErrUnknownFormat = errors.New("tokenizer: unknown tokenizer JSON format")

// Load reads a tokenizer from its JSON form: a Words tokenizer (as
// written by its MarshalJSON, or as the HuggingFace tokenizer.json its
// MarshalHF writes) or a HuggingFace byte-level BPE tokenizer.json.
func Load(data []byte) (Tokenizer, error) {
	var head struct {
		Type  string          `json:"type"`
		Model json.RawMessage `json:"model"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("tokenizer: read JSON: %w", err)
	}
	var model struct {
		Type string `json:"type"`
	}
	json.Unmarshal(head.Model, &model) // a bad model section is LoadHF's to report
	switch {
	case head.Type == wordsType:
		return LoadWords(data)
	case head.Type == "" && model.Type == "WordLevel":
		return LoadWordsHF(data)
	case head.Type == "" && len(head.Model) > 0:
		return LoadHF(data)
	}
	return nil, ErrUnknownFormat
}

// LoadFile reads a tokenizer from a JSON file (see Load).
func LoadFile(path string) (Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := Load(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// SaveFile writes t's JSON form to path.
func SaveFile(path string, t Tokenizer) error {
	data, err := t.MarshalJSON()
	if err != nil {
		return fmt.Errorf("tokenizer: encode JSON: %w", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	return nil
}

// literals finds the leftmost-longest occurrence of any of a fixed set of
// strings, the way added tokens are cut out of text before the model sees it.
type literals struct {
	byFirst [256][]literal // candidates by first byte, longest first
}

type literal struct {
	text string
	id   int
}

func newLiterals(lits []literal) *literals {
	l := new(literals)
	for _, lit := range lits {
		if lit.text == "" {
			continue
		}
		b := lit.text[0]
		l.byFirst[b] = append(l.byFirst[b], lit)
	}
	for _, c := range l.byFirst {
		// Longest first, so the first hit at a position is the longest.
		slices.SortStableFunc(c, func(a, b literal) int { return len(b.text) - len(a.text) })
	}
	return l
}

// next returns the start and end offsets and id of the leftmost-longest
// literal in s at or after from, or start == -1 if there is none.
func (l *literals) next(s string, from int) (start, end, id int) {
	for i := from; i < len(s); i++ {
		c := l.byFirst[s[i]]
		if c == nil {
			continue
		}
		for _, lit := range c {
			if len(s)-i >= len(lit.text) && s[i:i+len(lit.text)] == lit.text {
				return i, i + len(lit.text), lit.id
			}
		}
	}
	return -1, -1, -1
}

// segments calls fn for each piece of s in order with its byte offset in s:
// literal pieces with their id, and the text between them with id -1.
// Empty pieces are skipped.
func (l *literals) segments(s string, fn func(piece string, off, id int) error) error {
	pos := 0
	for pos < len(s) {
		start, end, id := l.next(s, pos)
		if start < 0 {
			break
		}
		if start > pos {
			if err := fn(s[pos:start], pos, -1); err != nil {
				return err
			}
		}
		if err := fn(s[start:end], start, id); err != nil {
			return err
		}
		pos = end
	}
	if pos < len(s) {
		return fn(s[pos:], pos, -1)
	}
	return nil
}

// marshalIndent renders v as indented JSON with a final newline, without
// HTML escaping (so "<|im_end|>" stays readable in checkpoints).
func marshalIndent(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
