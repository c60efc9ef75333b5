package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/internal/alloccap"
)

// FuzzLoadHF feeds arbitrary tokenizer.json bytes to LoadHF and encodes a
// short text with whatever loads. Neither may panic, and loading may
// allocate at most 32 MiB plus 256 bytes per input byte (a vocab id of
// 2^40 once allocated a table of that many entries).
func FuzzLoadHF(f *testing.F) {
	for _, name := range []string{"qwen", "gpt2"} {
		data, err := os.ReadFile(filepath.Join("testdata", name, "tokenizer.json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var (
			tok *BPE
			err error
		)
		alloccap.Check(t, 32<<20+256*uint64(len(data)), func() { tok, err = LoadHF(data) })
		if err != nil {
			return
		}
		ids, err := tok.Encode("ab aab <|endoftext|> héllo\n\t12")
		if err != nil {
			return
		}
		_ = tok.Decode(ids)
	})
}

// TestLoadHFBoundsIDs: ids far past the vocabulary's size are refused
// before any table of that size is allocated.
func TestLoadHFBoundsIDs(t *testing.T) {
	tests := []struct {
		name, json, errPart string
	}{
		{"vocab id 2^40", `{"model":{"type":"BPE","vocab":{"a":0,"b":1099511627776},"merges":[]},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"}}`,
			`vocab: token "b" has id 1099511627776`},
		{"added id 2^40", `{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"},"added_tokens":[{"id":1099511627776,"content":"<x>"}]}`,
			`token "<x>" has id 1099511627776`},
		{"vocab id 10^7", `{"model":{"type":"BPE","vocab":{"a":0,"b":10000000},"merges":[]},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"}}`,
			`has id 10000000`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			alloccap.Check(t, 1<<20, func() { _, err = LoadHF([]byte(tc.json)) })
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Fatalf("LoadHF: %v, want an error containing %q", err, tc.errPart)
			}
		})
	}
}

// TestSplitPatternTimesOut: a Split pattern that backtracks exponentially
// fails the encoding after SplitMatchTimeout instead of running for
// hours.
func TestSplitPatternTimesOut(t *testing.T) {
	tok, err := LoadHF([]byte(`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(a*)*b"},"behavior":"Isolated"},{"type":"ByteLevel","use_regex":false}]},"decoder":{"type":"ByteLevel"}}`))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = tok.Encode(strings.Repeat("a", 40) + "c")
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("Encode: %v, want a match timeout", err)
	}
	if d := time.Since(start); d > SplitMatchTimeout+3*time.Second {
		t.Fatalf("Encode took %v; the match timeout is %v", d, SplitMatchTimeout)
	}
}
