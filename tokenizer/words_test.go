package tokenizer

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"
)

// testWords reads the test word list from testdata/words.txt.
func testWords(t testing.TB) []string {
	t.Helper()
	f, err := os.Open("testdata/words.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var words []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "# ") {
			words = append(words, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return words
}

func newTestWords(t testing.TB) *Words {
	t.Helper()
	w, err := NewWords(testWords(t))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// tokenTexts returns the text of each id.
func tokenTexts(t *testing.T, w *Words, ids []int) []string {
	t.Helper()
	out := make([]string, len(ids))
	for i, id := range ids {
		s, ok := w.Token(id)
		if !ok {
			t.Fatalf("id %d out of range [0,%d)", id, w.VocabSize())
		}
		out[i] = s
	}
	return out
}

func TestNewWordsIDs(t *testing.T) {
	words := testWords(t)
	w := newTestWords(t)
	for i, s := range SpecialTokens {
		if id, ok := w.ID(s); !ok || id != i {
			t.Errorf("ID(%q) = %d, %v; want %d", s, id, ok, i)
		}
	}
	rest := w.tokens[len(SpecialTokens):]
	if !slices.IsSorted(rest) {
		t.Errorf("non-special tokens are not sorted")
	}
	unique := map[string]bool{}
	for _, s := range words {
		unique[s] = true
		unique[" "+s] = true
	}
	for _, c := range fallbackChars() {
		unique[string(c)] = true
	}
	if got, want := w.VocabSize(), len(SpecialTokens)+len(unique); got != want {
		t.Errorf("VocabSize() = %d, want %d", got, want)
	}

	// The ids depend only on the set of words.
	shuffled := slices.Clone(words)
	slices.Reverse(shuffled)
	shuffled = append(shuffled, words[:5]...)
	w2, err := NewWords(shuffled)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.tokens, w2.tokens) {
		t.Errorf("reordered word list with duplicates gives other ids")
	}

	sp := w.Specials()
	want := Specials{Pad: 0, EOS: 2, ImStart: 1, ImEnd: 2, Think: 3, EndThink: 4, VisionStart: 5, ImagePad: 6, VisionEnd: 7}
	if sp != want {
		t.Errorf("Specials() = %+v, want %+v", sp, want)
	}
}

var newWordsErrorTests = []struct {
	word, errPart string
}{
	{"", "empty"},
	{"two words", "not printable ASCII other than space"},
	{"tab\t", "not printable ASCII"},
	{"café", "not printable ASCII"},
	{"<think>", "special token"},
	{"<|im_end|>", "special token"},
}

func TestNewWordsErrors(t *testing.T) {
	for _, tt := range newWordsErrorTests {
		_, err := NewWords([]string{"red", tt.word})
		if err == nil {
			t.Errorf("NewWords(%q): no error", tt.word)
			continue
		}
		if !strings.Contains(err.Error(), tt.errPart) || !strings.Contains(err.Error(), "word 1") {
			t.Errorf("NewWords(%q) error %q; want it to name word 1 and say %q", tt.word, err, tt.errPart)
		}
	}
}

var wordsEncodeTests = []struct {
	text string
	want []string // token texts
}{
	{"", []string{}},
	{"two red circles", []string{"two", " red", " circles"}},
	{"circle", []string{"circle"}}, // longest word wins only when it fits
	{"Two red circles", []string{"T", "w", "o", " red", " circles"}},
	{"RED", []string{"R", "E", "D"}},
	{"redo", []string{"r", "e", "d", "o"}}, // no word inside a longer word
	{"xred", []string{"x", "r", "e", "d"}}, // …nor at its end
	{"red2", []string{"r", "e", "d", "2"}}, // digits count as word characters
	{"red,blue", []string{"red", ",", "blue"}},
	{"red, blue.", []string{"red", ",", " blue", "."}},
	{"a sign that reads \"K7Q\"", []string{"a", " sign", " that", " reads", " \"", "K", "7", "Q", "\""}},
	{"  red", []string{" ", " red"}},
	{"red  ", []string{"red", " ", " "}},
	{"red\nblue", []string{"red", "\n", "blue"}},
	{"red\n blue", []string{"red", "\n", " blue"}},
	{"red\tblue", []string{"red", "\t", "blue"}},
	{"one more than two", []string{"one", " more", " than", " two"}},
	{"{x}", []string{"{", "x", "}"}},
	{"<|im_start|>user\nred<|im_end|>\n", []string{ImStart, "u", "s", "e", "r", "\n", "red", ImEnd, "\n"}},
	{"<think>\n\n</think>\n\n", []string{Think, "\n", "\n", EndThink, "\n", "\n"}},
	{" <think>", []string{" ", Think}},
	{"red<think>blue", []string{"red", Think, "blue"}},
	{"<think", []string{"<", "t", "h", "i", "n", "k"}},
	{"<<think>>", []string{"<", Think, ">"}},
	{ImagePlaceholder(2), []string{VisionStart, ImagePad, ImagePad, VisionEnd}},
	{"<|endoftext|>", []string{EndOfText}},
}

func TestWordsEncode(t *testing.T) {
	w := newTestWords(t)
	for _, tt := range wordsEncodeTests {
		ids, err := w.Encode(tt.text)
		if err != nil {
			t.Errorf("Encode(%q): %v", tt.text, err)
			continue
		}
		if got := tokenTexts(t, w, ids); !slices.Equal(got, tt.want) {
			t.Errorf("Encode(%q) = %q, want %q", tt.text, got, tt.want)
		}
		if got := w.Decode(ids); got != tt.text {
			t.Errorf("Decode(Encode(%q)) = %q", tt.text, got)
		}
	}
}

var wordsEncodeErrorTests = []struct {
	text    string
	errPart string
}{
	{"café", `'é' at byte offset 3`},
	{"red\rblue", `'\r' at byte offset 3`},
	{"<think>\x00", `'\x00' at byte offset 7`},
	{"a\xffb", `'�' at byte offset 1`},
}

func TestWordsEncodeErrors(t *testing.T) {
	w := newTestWords(t)
	for _, tt := range wordsEncodeErrorTests {
		ids, err := w.Encode(tt.text)
		if err == nil {
			t.Errorf("Encode(%q) = %v, want an error", tt.text, ids)
			continue
		}
		if !strings.Contains(err.Error(), tt.errPart) {
			t.Errorf("Encode(%q) error %q, want it to contain %q", tt.text, err, tt.errPart)
		}
	}
}

func TestWordsDecodeSkipsUnknownIDs(t *testing.T) {
	w := newTestWords(t)
	red, _ := w.ID("red")
	if got := w.Decode([]int{-1, red, w.VocabSize(), red}); got != "redred" {
		t.Errorf("Decode = %q, want %q", got, "redred")
	}
}

// reloadWords loads data, which must give a *Words with w's tokens.
func reloadWords(t *testing.T, w *Words, data []byte) *Words {
	t.Helper()
	loaded, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	w2, ok := loaded.(*Words)
	if !ok {
		t.Fatalf("Load returned %T, want *Words", loaded)
	}
	if !slices.Equal(w.tokens, w2.tokens) {
		t.Fatal("tokens differ after the round trip")
	}
	return w2
}

func TestWordsJSONRoundTrip(t *testing.T) {
	w := newTestWords(t)
	data, err := w.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"version": 1`) || !strings.Contains(string(data), `"<|im_end|>"`) {
		t.Errorf("JSON lacks the version or an unescaped special token:\n%.300s", data)
	}
	w2 := reloadWords(t, w, data)
	if w2.Specials() != w.Specials() {
		t.Errorf("Specials differ: %+v vs %+v", w2.Specials(), w.Specials())
	}
	for _, tt := range wordsEncodeTests {
		a, _ := w.Encode(tt.text)
		b, err := w2.Encode(tt.text)
		if err != nil || !slices.Equal(a, b) {
			t.Errorf("Encode(%q) = %v, %v after the round trip, want %v", tt.text, b, err, a)
		}
	}

	path := t.TempDir() + "/tok.json"
	if err := SaveFile(path, w); err != nil {
		t.Fatal(err)
	}
	fromFile, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fromFile.VocabSize() != w.VocabSize() {
		t.Errorf("LoadFile: VocabSize %d, want %d", fromFile.VocabSize(), w.VocabSize())
	}
}

var loadWordsErrorTests = []struct {
	name, json, errPart string
}{
	{"version", `{"type":"thinkgen-words","version":2,"tokens":[]}`, "field version is 2"},
	{"missing special", `{"type":"thinkgen-words","version":1,"tokens":["a"]}`, `special token "<|endoftext|>" is missing`},
	{"duplicate", `{"type":"thinkgen-words","version":1,"tokens":["a","b","a"]}`, `token "a" has two ids, 0 and 2`},
	{"empty token", `{"type":"thinkgen-words","version":1,"tokens":["a",""]}`, "token 1 is empty"},
	{"missing fallback", `{"type":"thinkgen-words","version":1,"tokens":["<|endoftext|>","<|im_start|>","<|im_end|>","<think>","</think>","<|vision_start|>","<|image_pad|>","<|vision_end|>"]}`, `fallback character '\t' has no token`},
	{"not JSON", `{"type":`, "read JSON"},
	{"unknown", `{"type":"other"}`, "unknown tokenizer JSON format"},
}

func TestLoadWordsErrors(t *testing.T) {
	for _, tt := range loadWordsErrorTests {
		_, err := Load([]byte(tt.json))
		if err == nil || !strings.Contains(err.Error(), tt.errPart) {
			t.Errorf("%s: Load error %v, want one containing %q", tt.name, err, tt.errPart)
		}
	}
}

// encodable reports whether Words must accept s: every byte is printable
// ASCII, tab or newline (special tokens are printable ASCII too).
func encodable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '\t' && c != '\n' && (c < ' ' || c > '~') {
			return false
		}
	}
	return true
}

// FuzzWordsRoundTrip checks that Encode accepts exactly the strings of
// printable ASCII, tabs and newlines, and that Decode(Encode(s)) == s for
// them. Seeds: the encode table and testdata/fuzz/FuzzWordsRoundTrip.
func FuzzWordsRoundTrip(f *testing.F) {
	for _, tt := range wordsEncodeTests {
		f.Add(tt.text)
	}
	w := newTestWords(f)
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := w.Encode(s)
		if ok := encodable(s); ok != (err == nil) {
			t.Fatalf("Encode(%q) error %v; want an error: %v", s, err, !ok)
		}
		if err != nil {
			return
		}
		for _, id := range ids {
			if id < 0 || id >= w.VocabSize() {
				t.Fatalf("Encode(%q) gave id %d out of range", s, id)
			}
		}
		if got := w.Decode(ids); got != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
	})
}
