package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// benchText is ~16 KB of ShapeWorld-style chat text: prompts, reasoning and
// answers with a few sign strings, all in the test word list's language.
func benchText() string {
	rng := rand.New(rand.NewPCG(1, 2))
	colours := []string{"red", "green", "blue", "yellow", "purple"}
	shapes := []string{"circle", "square", "triangle", "star"}
	var b strings.Builder
	for b.Len() < 16<<10 {
		c, s := colours[rng.IntN(len(colours))], shapes[rng.IntN(len(shapes))]
		n := 1 + rng.IntN(4)
		fmt.Fprintf(&b, "%suser\ndraw %d %s %ss left of a %s %s, and a sign that reads \"%c%d%c\".%s\n",
			ImStart, n, c, s, colours[rng.IntN(len(colours))], shapes[rng.IntN(len(shapes))],
			'A'+rune(rng.IntN(26)), rng.IntN(10), 'A'+rune(rng.IntN(26)), ImEnd)
		fmt.Fprintf(&b, "%sassistant\n%s\nthe user wants %d %s %ss; one more than two is three.\n%s\n\nTwo %s %ss above the sign.%s\n",
			ImStart, Think, n, c, s, EndThink, c, s, ImEnd)
	}
	return b.String()
}

// BenchmarkEncode measures Encode throughput on the same text for each
// tokenizer. The BPE tokenizer caches the ids of pre-tokenized pieces, so
// "bpe-qwen" is its steady state and "bpe-qwen-uncached" empties the cache
// before every call.
func BenchmarkEncode(b *testing.B) {
	text := benchText()
	words := newTestWords(b)
	qwen := loadTestBPE(b, "qwen")
	cases := []struct {
		name  string
		tok   Tokenizer
		reset func()
	}{
		{"words", words, nil},
		{"bpe-qwen", qwen, nil},
		{"bpe-qwen-uncached", qwen, func() { qwen.mu.Lock(); clear(qwen.cache); qwen.mu.Unlock() }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			ids, err := c.tok.Encode(text)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if c.reset != nil {
					c.reset()
				}
				if _, err := c.tok.Encode(text); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(text))/float64(len(ids)), "bytes/token")
		})
	}
}

// BenchmarkQwenSplit measures the regexp2 pre-tokenizer split alone.
func BenchmarkQwenSplit(b *testing.B) {
	text := benchText()
	qwen := loadTestBPE(b, "qwen")
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if err := qwen.pretokenize(0, text, func(string) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
