package tokenizer

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// wordsType and wordsVersion identify the JSON form of a Words tokenizer.
const (
	wordsType    = "thinkgen-words"
	wordsVersion = 1
)

// Words is a word-level tokenizer for ShapeWorld text. Its vocabulary is,
// in id order:
//
//  1. the special tokens, ids 0–7 in the order of [SpecialTokens];
//  2. then, sorted byte-wise and without duplicates: every word w of the
//     word list, its space-prefixed form " "+w, and one token per fallback
//     character — printable ASCII (space to '~'), tab and newline.
//
// # Encoding
//
// Encode first cuts out special tokens written literally in the text
// (leftmost, longest first); each becomes its id. Each stretch of text in
// between is then read from left to right, and at each position the first
// of these rules that applies emits one token:
//
//  1. a space followed by a vocabulary word emits " "+word (one token for
//     both);
//  2. a vocabulary word emits the word;
//  3. any fallback character emits that character.
//
// A word is looked up exactly, case and punctuation included, and the
// longest word that fits wins, but a word only counts at a word boundary:
// a word that begins (ends) with a letter or digit must not be preceded
// (followed) by a letter or digit inside the stretch. So "circles" is the
// word "circles" if the list has it and otherwise the characters
// c,i,r,c,l,e,s (never "circle" + "s"); "Red" is R,e,d unless "Red" itself
// is a word; "K7Q" is K,7,Q; two spaces before a word are " " then " word".
// A character outside the fallback set (any non-ASCII rune or control
// character other than tab and newline) makes Encode fail with an error
// naming it and its byte offset.
//
// Every emitted token's text is exactly the text it consumed, so
// Decode(Encode(s)) == s for every s that Encode accepts — all strings of
// printable ASCII, tabs and newlines, whatever their spacing.
type Words struct {
	tokens   []string           // by id
	ids      map[string]int     // token text → id
	words    map[string]wordIDs // vocabulary word → its ids
	maxWord  int                // length of the longest word
	char     [128]int           // fallback character → id, -1 if none
	specials *literals
}

// NewWords builds a Words tokenizer from a word list, such as
// datasets.Vocabulary(). Order and duplicates in words do not matter: the
// ids depend only on the set of words. A word must be non-empty printable
// ASCII without spaces and must not be a special token.
func NewWords(words []string) (*Words, error) {
	set := make(map[string]bool)
	for i, w := range words {
		if err := checkWord(w); err != nil {
			return nil, fmt.Errorf("tokenizer: word %d %q: %w", i, w, err)
		}
		set[w] = true
		set[" "+w] = true
	}
	for _, c := range fallbackChars() {
		set[string(c)] = true
	}
	rest := make([]string, 0, len(set))
	for t := range set {
		rest = append(rest, t)
	}
	slices.Sort(rest)
	tokens := append(SpecialTokens[:len(SpecialTokens):len(SpecialTokens)], rest...)
	return newWords(tokens)
}

// checkWord reports why w cannot be a vocabulary word.
func checkWord(w string) error {
	if w == "" {
		return fmt.Errorf("empty")
	}
	for i := 0; i < len(w); i++ {
		if c := w[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("byte %#02x at offset %d is not printable ASCII other than space", c, i)
		}
	}
	if slices.Contains(SpecialTokens[:], w) {
		return fmt.Errorf("is a special token")
	}
	return nil
}

// fallbackChars lists the characters that always have a token of their own.
func fallbackChars() []byte {
	cs := []byte{'\t', '\n'}
	for c := byte(' '); c <= '~'; c++ {
		cs = append(cs, c)
	}
	return cs
}

// newWords indexes a token list. The words are the tokens w that are not
// special tokens, pass checkWord and have a space-prefixed twin " "+w.
func newWords(tokens []string) (*Words, error) {
	t := &Words{tokens: tokens, ids: make(map[string]int, len(tokens)), words: make(map[string]wordIDs)}
	for id, tok := range tokens {
		if tok == "" {
			return nil, fmt.Errorf("tokenizer: token %d is empty", id)
		}
		if prev, dup := t.ids[tok]; dup {
			return nil, fmt.Errorf("tokenizer: token %q has two ids, %d and %d", tok, prev, id)
		}
		t.ids[tok] = id
	}
	var lits []literal
	for _, s := range SpecialTokens {
		id, ok := t.ids[s]
		if !ok {
			return nil, fmt.Errorf("tokenizer: special token %q is missing", s)
		}
		lits = append(lits, literal{s, id})
	}
	t.specials = newLiterals(lits)
	for c := range t.char {
		t.char[c] = -1
	}
	for _, c := range fallbackChars() {
		id, ok := t.ids[string(c)]
		if !ok {
			return nil, fmt.Errorf("tokenizer: fallback character %q has no token", c)
		}
		t.char[c] = id
	}
	for id, tok := range tokens {
		twin, ok := t.ids[" "+tok]
		if !ok || checkWord(tok) != nil {
			continue
		}
		t.words[tok] = wordIDs{plain: id, spaced: twin}
		t.maxWord = max(t.maxWord, len(tok))
	}
	return t, nil
}

// Encode returns the token ids of text by the rules in the type's doc.
func (t *Words) Encode(text string) ([]int, error) {
	ids := make([]int, 0, len(text)/4+1)
	err := t.specials.segments(text, func(piece string, off, id int) error {
		if id >= 0 {
			ids = append(ids, id)
			return nil
		}
		var err error
		ids, err = t.encodePlain(ids, piece, off)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// encodePlain appends the ids of s, a stretch of text without special
// tokens that starts at byte offset off of the whole text.
func (t *Words) encodePlain(ids []int, s string, off int) ([]int, error) {
	for i := 0; i < len(s); {
		if s[i] == ' ' {
			if n, w := t.wordAt(s, i+1); n > 0 {
				ids = append(ids, w.spaced)
				i += 1 + n
				continue
			}
		}
		if n, w := t.wordAt(s, i); n > 0 {
			ids = append(ids, w.plain)
			i += n
			continue
		}
		if c := s[i]; c < utf8.RuneSelf && t.char[c] >= 0 {
			ids = append(ids, t.char[c])
			i++
			continue
		}
		r, _ := utf8.DecodeRuneInString(s[i:])
		return nil, fmt.Errorf("tokenizer: cannot encode %q at byte offset %d: only printable ASCII, tab and newline have tokens", r, off+i)
	}
	return ids, nil
}

// wordAt returns the length and ids of the longest vocabulary word that
// starts at s[i] on a word boundary, or length 0.
func (t *Words) wordAt(s string, i int) (int, wordIDs) {
	if i >= len(s) {
		return 0, wordIDs{}
	}
	// A word starting with a letter or digit must start a run of them…
	if isWordByte(s[i]) && i > 0 && isWordByte(s[i-1]) {
		return 0, wordIDs{}
	}
	// …and, since the run's inner letters are followed by letters, can
	// only end at the run's end or beyond it.
	run := i
	for run < len(s) && isWordByte(s[run]) {
		run++
	}
	// Words hold no whitespace or control characters.
	end := i
	for end < len(s) && end-i < t.maxWord && s[end] > ' ' && s[end] <= '~' {
		end++
	}
	for n := end - i; n > 0 && n >= run-i; n-- {
		w, ok := t.words[s[i:i+n]]
		if !ok {
			continue
		}
		if isWordByte(s[i+n-1]) && i+n < len(s) && isWordByte(s[i+n]) {
			continue
		}
		return n, w
	}
	return 0, wordIDs{}
}

// wordIDs are a word's ids: its own and that of its space-prefixed twin.
type wordIDs struct {
	plain, spaced int
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// Decode returns the concatenated text of ids; ids out of range are skipped.
func (t *Words) Decode(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		if id >= 0 && id < len(t.tokens) {
			b.WriteString(t.tokens[id])
		}
	}
	return b.String()
}

// VocabSize returns the number of tokens.
func (t *Words) VocabSize() int { return len(t.tokens) }

// Specials returns the ids of the special tokens.
func (t *Words) Specials() Specials {
	return specialsFrom(func(s string) int { return t.ids[s] })
}

// Token returns the text of token id, and false if there is no such token.
func (t *Words) Token(id int) (string, bool) {
	if id < 0 || id >= len(t.tokens) {
		return "", false
	}
	return t.tokens[id], true
}

// ID returns the id of the token whose text is tok, and false if there is
// none.
func (t *Words) ID(tok string) (int, bool) {
	id, ok := t.ids[tok]
	return id, ok
}

// wordsJSON is the JSON form of a Words tokenizer. Tokens are listed by id
// so that a saved tokenizer keeps its ids even if NewWords changes.
type wordsJSON struct {
	Type    string   `json:"type"`
	Version int      `json:"version"`
	Tokens  []string `json:"tokens"`
}

// MarshalJSON returns {"type":"thinkgen-words","version":1,"tokens":[…]}
// with the tokens listed by id.
func (t *Words) MarshalJSON() ([]byte, error) {
	return marshalIndent(wordsJSON{Type: wordsType, Version: wordsVersion, Tokens: t.tokens})
}

// LoadWords reads a Words tokenizer from its JSON form. It checks the type
// and version fields, that no token is listed twice, and that every special
// token, fallback character and space-prefixed word form is present.
func LoadWords(data []byte) (*Words, error) {
	var j wordsJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("tokenizer: read words JSON: %w", err)
	}
	if j.Type != wordsType {
		return nil, fmt.Errorf("tokenizer: field type is %q, want %q", j.Type, wordsType)
	}
	if j.Version != wordsVersion {
		return nil, fmt.Errorf("tokenizer: field version is %d; this build reads version %d", j.Version, wordsVersion)
	}
	return newWords(j.Tokens)
}

var _ Tokenizer = (*Words)(nil)
