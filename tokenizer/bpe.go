package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/dlclark/regexp2/v2"
	"golang.org/x/text/unicode/norm"
)

// BPE is a byte-level BPE tokenizer read from a HuggingFace tokenizer.json,
// as Qwen2 and Qwen3 (and GPT-2) ship it. It encodes as the HuggingFace
// tokenizers library does:
//
//  1. added tokens (added_tokens, special or not) are cut out of the raw
//     text, leftmost and longest first; tokens marked "normalized" are cut
//     out after normalization instead;
//  2. the rest is normalized (NFC, NFD, NFKC or NFKD, or a sequence of them);
//  3. pre-tokenized: Split steps with a regex (Qwen's pattern included; its
//     `(?!\S)` lookahead runs on github.com/dlclark/regexp2) in the
//     "Isolated" behaviour, then the ByteLevel step (optionally with GPT-2's
//     own regex and a prefix space);
//  4. each piece's bytes are mapped to GPT-2's byte runes and merged by the
//     BPE merges, lowest rank first, leftmost first among equals.
//
// Encode never truncates or pads: the file's truncation and padding
// settings are ignored. Decode maps every token through the ByteLevel
// decoder, as HuggingFace's decode(ids, skip_special_tokens=False) does.
//
// What the loader does not support it rejects with an error naming the
// field: other models (WordPiece, Unigram), BPE dropout, byte fallback,
// subword prefixes and suffixes, other normalizers and pre-tokenizers,
// template post-processors (which would add BOS/EOS ids), and added tokens
// with single_word, lstrip or rstrip set.
type BPE struct {
	raw []byte // the tokenizer.json as loaded, for MarshalJSON

	added    *literals // added tokens matched on the raw text
	addedNrm *literals // added tokens matched on the normalized text
	normal   func(string) string
	pre      []preStep // pre-tokenizer steps, in order, ByteLevel last
	bl       *byteLevel

	byteID       [256]int32         // id of each single-byte token, -1 if none
	merges       map[[2]int32]merge // pair → rank and merged id
	vocab        map[string]int     // model vocabulary (byte runes) → id
	ignoreMerges bool               // a piece that is a whole vocabulary entry is not merged
	unk          int32              // unknown-token id, -1 if none
	fuseUnk      bool               // consecutive unknowns become one unk
	decoded      [][]byte           // id → decoded bytes, nil for no token
	ids          map[string]int     // token text (added tokens and vocabulary) → id
	specials     Specials

	mu    sync.Mutex
	cache map[string][]int32 // piece → ids
}

type merge struct {
	rank int32
	id   int32
}

// preStep cuts one piece into smaller ones.
type preStep func(s string, emit func(string) error) error

// cacheLimit bounds the piece cache, which is emptied when full, and
// cacheWordLimit the length of a piece it keeps.
const (
	cacheLimit     = 1 << 16
	cacheWordLimit = 256
)

type hfFile struct {
	AddedTokens   []hfAddedToken  `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

type hfAddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	Lstrip     bool   `json:"lstrip"`
	Rstrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type hfComponent struct {
	Type string `json:"type"`
	// Sequence
	Normalizers   []json.RawMessage `json:"normalizers"`
	Pretokenizers []json.RawMessage `json:"pretokenizers"`
	// Split
	Pattern  *struct{ Regex, String *string } `json:"pattern"`
	Behavior string                           `json:"behavior"`
	Invert   bool                             `json:"invert"`
	// ByteLevel
	AddPrefixSpace bool  `json:"add_prefix_space"`
	UseRegex       *bool `json:"use_regex"`
}

type hfBPE struct {
	Type                    string          `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

// LoadHF reads a HuggingFace tokenizer.json holding a byte-level BPE model.
func LoadHF(data []byte) (*BPE, error) {
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer: read tokenizer.json: %w", err)
	}
	t := &BPE{raw: bytes.Clone(data), bl: newByteLevel(), cache: make(map[string][]int32)}
	if err := t.loadModel(f.Model); err != nil {
		return nil, fmt.Errorf("tokenizer: model: %w", err)
	}
	var err error
	if t.normal, err = loadNormalizer(f.Normalizer); err != nil {
		return nil, fmt.Errorf("tokenizer: normalizer: %w", err)
	}
	if err := t.loadAdded(f.AddedTokens); err != nil {
		return nil, fmt.Errorf("tokenizer: added_tokens: %w", err)
	}
	if err := t.loadPreTokenizer(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("tokenizer: pre_tokenizer: %w", err)
	}
	if err := checkTypes(f.PostProcessor, "ByteLevel"); err != nil {
		return nil, fmt.Errorf("tokenizer: post_processor: %w", err)
	}
	if err := checkTypes(f.Decoder, "ByteLevel"); err != nil {
		return nil, fmt.Errorf("tokenizer: decoder: %w", err)
	}
	if isNull(f.Decoder) {
		return nil, fmt.Errorf("tokenizer: decoder: missing; a byte-level BPE needs the ByteLevel decoder")
	}
	t.specials = specialsFrom(func(s string) int {
		if id, ok := t.ids[s]; ok {
			return id
		}
		return -1
	})
	return t, nil
}

// MaxVocab bounds the token ids a tokenizer.json may use.
const MaxVocab = 1 << 22

// idLimit bounds the ids of n tokens: vocabularies are dense (ids 0..n-1
// plus a few reserved), so an id far past n is an error, not a reason to
// allocate a table of that size.
func idLimit(n int) int { return min(MaxVocab, 2*n+1024) }

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// decodeRequired decodes the component raw into v, or fails with missing
// when there is none.
func decodeRequired(raw json.RawMessage, v any, missing string) error {
	if isNull(raw) {
		return errors.New(missing)
	}
	return json.Unmarshal(raw, v)
}

// checkTypes accepts a missing component or one of the given types, or a
// Sequence (in the field "processors" or "decoders") of them.
func checkTypes(raw json.RawMessage, types ...string) error {
	if isNull(raw) {
		return nil
	}
	var c struct {
		Type       string            `json:"type"`
		Processors []json.RawMessage `json:"processors"`
		Decoders   []json.RawMessage `json:"decoders"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	if c.Type == "Sequence" {
		for i, sub := range append(c.Processors, c.Decoders...) {
			if err := checkTypes(sub, types...); err != nil {
				return fmt.Errorf("step %d: %w", i, err)
			}
		}
		return nil
	}
	for _, ty := range types {
		if c.Type == ty {
			return nil
		}
	}
	return fmt.Errorf("type %q is not supported (supported: %s)", c.Type, strings.Join(types, ", "))
}

func (t *BPE) loadModel(raw json.RawMessage) error {
	var m hfBPE
	if err := decodeRequired(raw, &m, "missing"); err != nil {
		return err
	}
	switch {
	case m.Type != "BPE":
		return fmt.Errorf("type %q is not supported (only BPE)", m.Type)
	case m.Dropout != nil && *m.Dropout != 0:
		return fmt.Errorf("dropout %v is not supported", *m.Dropout)
	case m.ByteFallback:
		return fmt.Errorf("byte_fallback is not supported (a byte-level BPE does not need it)")
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return fmt.Errorf("continuing_subword_prefix %q is not supported", *m.ContinuingSubwordPrefix)
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return fmt.Errorf("end_of_word_suffix %q is not supported", *m.EndOfWordSuffix)
	case len(m.Vocab) == 0:
		return fmt.Errorf("vocab is empty")
	}
	t.vocab = m.Vocab
	t.ids = make(map[string]int, len(m.Vocab))
	size := 0
	limit := idLimit(len(m.Vocab))
	for tok, id := range m.Vocab {
		if id < 0 {
			return fmt.Errorf("vocab: token %q has negative id %d", tok, id)
		}
		if id >= limit {
			return fmt.Errorf("vocab: token %q has id %d; %d tokens take ids below %d", tok, id, len(m.Vocab), limit)
		}
		t.ids[tok] = id
		size = max(size, id+1)
	}
	t.decoded = make([][]byte, size)
	for tok, id := range m.Vocab {
		if t.decoded[id] != nil {
			return fmt.Errorf("vocab: id %d is given to two tokens", id)
		}
		t.decoded[id] = t.bl.decode(tok)
	}
	for b := range t.byteID {
		t.byteID[b] = -1
		if id, ok := m.Vocab[t.bl.str[b]]; ok {
			t.byteID[b] = int32(id)
		}
	}
	t.unk = -1
	if m.UnkToken != nil {
		id, ok := m.Vocab[*m.UnkToken]
		if !ok {
			return fmt.Errorf("unk_token %q is not in vocab", *m.UnkToken)
		}
		t.unk = int32(id)
	}
	t.fuseUnk = m.FuseUnk
	t.ignoreMerges = m.IgnoreMerges
	pairs, err := parseMerges(m.Merges)
	if err != nil {
		return err
	}
	t.merges = make(map[[2]int32]merge, len(pairs))
	for rank, p := range pairs {
		a, okA := m.Vocab[p[0]]
		b, okB := m.Vocab[p[1]]
		c, okC := m.Vocab[p[0]+p[1]]
		if !okA || !okB || !okC {
			return fmt.Errorf("merges[%d] %q + %q: a part or the merged token is not in vocab", rank, p[0], p[1])
		}
		key := [2]int32{int32(a), int32(b)}
		if _, dup := t.merges[key]; !dup { // the first (lowest) rank counts
			t.merges[key] = merge{rank: int32(rank), id: int32(c)}
		}
	}
	return nil
}

// parseMerges reads merges written either as "a b" strings (older files) or
// as ["a", "b"] pairs (tokenizers ≥ 0.20).
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		pairs := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok || a == "" || b == "" || strings.Contains(b, " ") {
				return nil, fmt.Errorf("merges[%d] %q: want two tokens separated by one space", i, s)
			}
			pairs[i] = [2]string{a, b}
		}
		return pairs, nil
	}
	var lists [][]string
	if err := json.Unmarshal(raw, &lists); err != nil {
		return nil, fmt.Errorf("merges: want strings or pairs of strings: %w", err)
	}
	pairs := make([][2]string, len(lists))
	for i, l := range lists {
		if len(l) != 2 {
			return nil, fmt.Errorf("merges[%d]: want a pair, have %d strings", i, len(l))
		}
		pairs[i] = [2]string{l[0], l[1]}
	}
	return pairs, nil
}

func (t *BPE) loadAdded(added []hfAddedToken) error {
	var raw, nrm []literal
	for i, a := range added {
		switch {
		case a.Content == "":
			return fmt.Errorf("token %d (id %d) has empty content", i, a.ID)
		case a.ID < 0:
			return fmt.Errorf("token %q has negative id %d", a.Content, a.ID)
		case a.SingleWord || a.Lstrip || a.Rstrip:
			return fmt.Errorf("token %q: single_word, lstrip and rstrip are not supported", a.Content)
		}
		if limit := idLimit(len(t.decoded) + len(added)); a.ID >= limit {
			return fmt.Errorf("token %q has id %d; the vocab and %d added tokens take ids below %d", a.Content, a.ID, len(added), limit)
		}
		prev, known := t.ids[a.Content]
		if known && prev != a.ID {
			return fmt.Errorf("token %q has id %d but the vocab gives it %d", a.Content, a.ID, prev)
		}
		for a.ID >= len(t.decoded) {
			t.decoded = append(t.decoded, nil)
		}
		if !known && t.decoded[a.ID] != nil {
			return fmt.Errorf("token %q has id %d, which another token has", a.Content, a.ID)
		}
		t.ids[a.Content] = a.ID
		t.decoded[a.ID] = t.bl.decode(a.Content)
		lit := literal{text: a.Content, id: a.ID}
		if a.Normalized {
			// Matched in normalized text, so by its normalized form.
			if t.normal != nil {
				lit.text = t.normal(lit.text)
			}
			nrm = append(nrm, lit)
		} else {
			raw = append(raw, lit)
		}
	}
	t.added = newLiterals(raw)
	t.addedNrm = newLiterals(nrm)
	return nil
}

func loadNormalizer(raw json.RawMessage) (func(string) string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c hfComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	forms := map[string]norm.Form{"NFC": norm.NFC, "NFD": norm.NFD, "NFKC": norm.NFKC, "NFKD": norm.NFKD}
	if f, ok := forms[c.Type]; ok {
		return f.String, nil
	}
	if c.Type != "Sequence" {
		return nil, fmt.Errorf("type %q is not supported (supported: NFC, NFD, NFKC, NFKD, Sequence)", c.Type)
	}
	var steps []func(string) string
	for i, sub := range c.Normalizers {
		fn, err := loadNormalizer(sub)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", i, err)
		}
		if fn != nil {
			steps = append(steps, fn)
		}
	}
	return func(s string) string {
		for _, fn := range steps {
			s = fn(s)
		}
		return s
	}, nil
}

func (t *BPE) loadPreTokenizer(raw json.RawMessage) error {
	var c hfComponent
	if err := decodeRequired(raw, &c, "missing; a byte-level BPE needs the ByteLevel pre-tokenizer"); err != nil {
		return err
	}
	steps := []json.RawMessage{raw}
	if c.Type == "Sequence" {
		steps = c.Pretokenizers
	}
	for i, sub := range steps {
		var c hfComponent
		if err := json.Unmarshal(sub, &c); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
		last := i == len(steps)-1
		switch c.Type {
		case "Split":
			if c.Behavior != "Isolated" || c.Invert {
				return fmt.Errorf("step %d: Split with behavior %q and invert %v is not supported (only Isolated, not inverted)", i, c.Behavior, c.Invert)
			}
			var pattern string
			switch {
			case c.Pattern != nil && c.Pattern.Regex != nil:
				pattern = *c.Pattern.Regex
			case c.Pattern != nil && c.Pattern.String != nil:
				pattern = regexp2.Escape(*c.Pattern.String)
			default:
				return fmt.Errorf("step %d: Split has no pattern", i)
			}
			sp, err := newSplitter(pattern)
			if err != nil {
				return fmt.Errorf("step %d: %w", i, err)
			}
			t.pre = append(t.pre, sp.split)
		case "ByteLevel":
			if !last {
				return fmt.Errorf("step %d: ByteLevel must be the last pre-tokenizer", i)
			}
			step, err := byteLevelStep(c.AddPrefixSpace, c.UseRegex == nil || *c.UseRegex)
			if err != nil {
				return fmt.Errorf("step %d: %w", i, err)
			}
			t.pre = append(t.pre, step)
			return nil
		default:
			return fmt.Errorf("step %d: type %q is not supported (supported: Split, ByteLevel, Sequence)", i, c.Type)
		}
	}
	return fmt.Errorf("no ByteLevel step; only byte-level BPE is supported")
}

// byteLevelStep is the ByteLevel pre-tokenizer: it gives each piece a
// leading space if prefix is set and the piece has none, then splits it by
// GPT-2's regex if useRegex is set. (The mapping to byte runes happens in
// merge.)
func byteLevelStep(prefix, useRegex bool) (preStep, error) {
	var sp *splitter
	if useRegex {
		var err error
		if sp, err = newSplitter(gpt2Pattern); err != nil {
			return nil, err
		}
	}
	return func(s string, emit func(string) error) error {
		if prefix && !strings.HasPrefix(s, " ") {
			s = " " + s
		}
		if sp == nil {
			return emit(s)
		}
		return sp.split(s, emit)
	}, nil
}

// Encode returns the token ids of text (see the type's doc).
func (t *BPE) Encode(text string) ([]int, error) {
	ids := make([]int, 0, len(text)/3+1)
	err := t.added.segments(text, func(piece string, off, id int) error {
		if id >= 0 {
			ids = append(ids, id)
			return nil
		}
		if t.normal != nil {
			piece = t.normal(piece)
		}
		return t.addedNrm.segments(piece, func(piece string, _, id int) error {
			if id >= 0 {
				ids = append(ids, id)
				return nil
			}
			return t.pretokenize(0, piece, func(word string) error {
				var err error
				ids, err = t.appendWord(ids, word)
				if err != nil {
					return fmt.Errorf("tokenizer: encode text at byte offset %d: %w", off, err)
				}
				return nil
			})
		})
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// pretokenize runs the pre-tokenizer steps from step k on s.
func (t *BPE) pretokenize(k int, s string, emit func(string) error) error {
	if k == len(t.pre) {
		return emit(s)
	}
	return t.pre[k](s, func(piece string) error { return t.pretokenize(k+1, piece, emit) })
}

// appendWord appends the BPE ids of one pre-tokenized piece.
func (t *BPE) appendWord(ids []int, word string) ([]int, error) {
	t.mu.Lock()
	cached, ok := t.cache[word]
	t.mu.Unlock()
	if !ok {
		var err error
		cached, err = t.merge(word)
		if err != nil {
			return nil, err
		}
		if len(word) <= cacheWordLimit {
			t.mu.Lock()
			if len(t.cache) >= cacheLimit {
				clear(t.cache)
			}
			t.cache[word] = cached
			t.mu.Unlock()
		}
	}
	for _, id := range cached {
		ids = append(ids, int(id))
	}
	return ids, nil
}

// merge runs BPE on the bytes of word: start from one symbol per byte,
// then repeatedly merge the adjacent pair of lowest rank (the leftmost of
// equal ones) until no pair has a merge. As in HuggingFace tokenizers, the
// candidate pairs sit in a heap, so a long piece (a run of 10 000 spaces)
// costs O(n log n), not O(n²).
func (t *BPE) merge(word string) ([]int32, error) {
	if t.ignoreMerges {
		if id, ok := t.vocab[t.bl.encode(word)]; ok {
			return []int32{int32(id)}, nil
		}
	}
	syms := make([]int32, 0, len(word))
	for i := 0; i < len(word); i++ {
		id := t.byteID[word[i]]
		if id < 0 {
			if t.unk < 0 {
				return nil, fmt.Errorf("byte %#02x has no token and the model has no unk_token", word[i])
			}
			if t.fuseUnk && len(syms) > 0 && syms[len(syms)-1] == t.unk {
				continue
			}
			id = t.unk
		}
		syms = append(syms, id)
	}
	if len(syms) < 2 {
		return syms, nil
	}
	// A doubly linked list over syms; removed symbols get id -1.
	next := make([]int32, len(syms))
	prev := make([]int32, len(syms))
	var h pairHeap
	for i := range syms {
		next[i], prev[i] = int32(i+1), int32(i-1)
		if i+1 < len(syms) {
			if m, ok := t.merges[[2]int32{syms[i], syms[i+1]}]; ok {
				h = append(h, candidate{rank: m.rank, pos: int32(i)})
			}
		}
	}
	next[len(syms)-1] = -1
	h.init()
	for len(h) > 0 {
		c := h.pop()
		r := next[c.pos]
		if syms[c.pos] < 0 || r < 0 {
			continue // the left symbol was merged away, or is now last
		}
		m, ok := t.merges[[2]int32{syms[c.pos], syms[r]}]
		if !ok || m.rank != c.rank {
			continue // stale: the pair at pos has changed since
		}
		syms[c.pos], syms[r] = m.id, -1
		next[c.pos] = next[r]
		if n := next[r]; n >= 0 {
			prev[n] = c.pos
			if m, ok := t.merges[[2]int32{syms[c.pos], syms[n]}]; ok {
				h.push(candidate{rank: m.rank, pos: c.pos})
			}
		}
		if p := prev[c.pos]; p >= 0 {
			if m, ok := t.merges[[2]int32{syms[p], syms[c.pos]}]; ok {
				h.push(candidate{rank: m.rank, pos: p})
			}
		}
	}
	out := syms[:0]
	for _, id := range syms {
		if id >= 0 {
			out = append(out, id)
		}
	}
	return out, nil
}

// candidate is a pair of adjacent symbols that a merge of the given rank
// applies to; pos is the left symbol's index.
type candidate struct {
	rank, pos int32
}

// pairHeap is a min-heap of candidates by rank, then position.
type pairHeap []candidate

func (h pairHeap) less(i, j int) bool {
	return h[i].rank < h[j].rank || h[i].rank == h[j].rank && h[i].pos < h[j].pos
}

func (h pairHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *pairHeap) push(c candidate) {
	*h = append(*h, c)
	for i := len(*h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		(*h)[i], (*h)[p] = (*h)[p], (*h)[i]
		i = p
	}
}

func (h *pairHeap) pop() candidate {
	old := *h
	c := old[0]
	old[0] = old[len(old)-1]
	*h = old[:len(old)-1]
	h.down(0)
	return c
}

func (h pairHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// Decode returns the decoded bytes of ids; ids without a token are skipped.
func (t *BPE) Decode(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		if id >= 0 && id < len(t.decoded) {
			b.Write(t.decoded[id])
		}
	}
	return b.String()
}

// VocabSize is one more than the largest id of the vocabulary and the
// added tokens.
func (t *BPE) VocabSize() int { return len(t.decoded) }

// Specials returns the ids of the special tokens; -1 for those the file
// does not have.
func (t *BPE) Specials() Specials { return t.specials }

// ID returns the id of the token whose text (as written in the file's
// vocab or added_tokens) is tok, and false if there is none.
func (t *BPE) ID(tok string) (int, bool) {
	id, ok := t.ids[tok]
	return id, ok
}

// MarshalJSON returns the tokenizer.json it was loaded from, unchanged.
func (t *BPE) MarshalJSON() ([]byte, error) { return bytes.Clone(t.raw), nil }

var _ Tokenizer = (*BPE)(nil)
