package tokenizer

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2/v2"
)

// byteLevel is GPT-2's reversible map between bytes and printable runes,
// which byte-level BPE vocabularies are written in: printable Latin-1
// bytes stand for themselves and the other 68 bytes for runes from U+0100.
type byteLevel struct {
	char [256]rune     // byte → rune
	byte map[rune]byte // rune → byte
	str  [256]string   // byte → string(char[b])
}

func newByteLevel() *byteLevel {
	bl := &byteLevel{byte: make(map[rune]byte, 256)}
	n := 0
	for b := 0; b < 256; b++ {
		printable := b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF
		r := rune(b)
		if !printable {
			r = rune(256 + n)
			n++
		}
		bl.char[b] = r
		bl.byte[r] = byte(b)
		bl.str[b] = string(r)
	}
	return bl
}

// decode maps a vocabulary token back to bytes as HuggingFace's ByteLevel
// decoder does: rune by rune, or, if any rune is not in the map (an added
// token such as "<|im_end|>" may hold any text), the token's own bytes.
func (bl *byteLevel) decode(tok string) []byte {
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := bl.byte[r]
		if !ok {
			return []byte(tok)
		}
		out = append(out, b)
	}
	return out
}

// encode maps bytes to the vocabulary's runes.
func (bl *byteLevel) encode(s string) string {
	out := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		out = utf8.AppendRune(out, bl.char[s[i]])
	}
	return string(out)
}

// gpt2Pattern is the split regex of the ByteLevel pre-tokenizer when its
// use_regex option is on.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// splitter cuts text into the matches of a regular expression and the
// text between them, each its own piece (HuggingFace's "Isolated"
// behaviour). regexp2 is used because the patterns need lookahead, such as
// Qwen's `\s+(?!\S)`, which Go's regexp lacks.
type splitter struct {
	re *regexp2.Regexp
}

// SplitMatchTimeout bounds the time of one match of a Split
// pre-tokenizer's pattern; a match past it fails the encoding.
const SplitMatchTimeout = time.Second

func newSplitter(pattern string) (*splitter, error) {
	re, err := regexp2.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("compile split pattern %q: %w", pattern, err)
	}
	// regexp2 backtracks (the patterns need lookahead, which Go's
	// linear-time regexp lacks), so a pattern from a file could take
	// exponential time on some text; each match is bounded instead.
	re.MatchTimeout = SplitMatchTimeout
	return &splitter{re: re}, nil
}

// split calls emit for each piece of s in order; empty pieces are skipped.
func (sp *splitter) split(s string, emit func(string) error) error {
	runes := make([]rune, 0, len(s))
	offs := make([]int, 0, len(s)+1) // byte offset of each rune, then len(s)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		runes = append(runes, r)
		offs = append(offs, i)
		i += n
	}
	offs = append(offs, len(s))
	last := 0 // rune index after the previous match
	var emitErr error
	err := sp.re.FindRunesMatches(runes, 0, func(m regexp2.MatchView) bool {
		start, n, ok := m.GroupRange(0)
		if !ok || n == 0 {
			return true
		}
		if start > last {
			if emitErr = emit(s[offs[last]:offs[start]]); emitErr != nil {
				return false
			}
		}
		if emitErr = emit(s[offs[start]:offs[start+n]]); emitErr != nil {
			return false
		}
		last = start + n
		return true
	})
	if err != nil {
		return fmt.Errorf("split %q: %w", s, err)
	}
	if emitErr != nil {
		return emitErr
	}
	if last < len(runes) {
		return emit(s[offs[last]:])
	}
	return nil
}
