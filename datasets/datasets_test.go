package datasets

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// genRows is shared by the tests that look at many rows.
func genRows(t testing.TB, split Split, n int) []Row {
	t.Helper()
	rows, err := Generate(Options{Seed: 7, Split: split}, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestGenerateDeterministic(t *testing.T) {
	a := genRows(t, Train, 40)
	b := genRows(t, Train, 40)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two generations with the same seed differ")
	}
	part, err := Generate(Options{Seed: 7, Split: Train}, 25, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(part, a[25:30]) {
		t.Fatal("rows 25..29 generated alone differ from the same rows of a longer run")
	}
	c, err := Generate(Options{Seed: 8, Split: Train}, 0, 40)
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for i := range c {
		if c[i].Prompt == a[i].Prompt && c[i].Answer == a[i].Answer {
			same++
		}
	}
	if same > 10 {
		t.Fatalf("seeds 7 and 8 agree on %d of 40 rows", same)
	}
}

func TestGenerateOptionsErrors(t *testing.T) {
	tests := []struct {
		opts Options
		want string
	}{
		{Options{Split: "test"}, `unknown split "test"`},
		{Options{Size: 8}, "size 8"},
		{Options{Size: 4096}, "size 4096"},
		{Options{Scenarios: []string{"painting"}}, `unknown scenario "painting"`},
	}
	for _, tt := range tests {
		_, err := Generate(tt.opts, 0, 1)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Generate(%+v) error %v, want it to contain %q", tt.opts, err, tt.want)
		}
	}
}

func decodePNG(t testing.TB, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func sameImage(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y++ {
		for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x++ {
			r1, g1, b1, a1 := a.At(x, y).RGBA()
			r2, g2, b2, a2 := b.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
				return false
			}
		}
	}
	return true
}

// TestRowsAreConsistent checks every row's columns against each other: the
// spec validates, the target PNG is the render of the spec's scene, the
// target meets the requirements, reflection's flawed reference does not,
// and only reasoning rows carry a chain.
func TestRowsAreConsistent(t *testing.T) {
	for _, split := range AllSplits {
		for _, r := range genRows(t, split, 600) {
			if err := r.Spec.Validate(); err != nil {
				t.Fatalf("%s: %v", r.ID, err)
			}
			if !sameImage(decodePNG(t, r.Target), MustRender(r.Spec.Scene, DefaultImageSize)) {
				t.Fatalf("%s: target PNG is not the render of the spec", r.ID)
			}
			if !CheckRequirements(r.Spec.Require, r.Spec.Scene.Objects).Strict {
				t.Fatalf("%s: target scene fails its requirements", r.ID)
			}
			if (r.Think != "") != (r.Scenario == Reasoning) {
				t.Fatalf("%s: scenario %s with think %q", r.ID, r.Scenario, r.Think)
			}
			hasRef := r.Scenario == Editing || r.Scenario == Reflection
			if hasRef != (r.RefScene != nil) || hasRef != (len(r.Reference) > 0) {
				t.Fatalf("%s: scenario %s, reference scene %v, %d reference bytes", r.ID, r.Scenario, r.RefScene, len(r.Reference))
			}
			if r.Scenario == Reflection && CheckRequirements(r.Spec.Require, r.RefScene.Objects).Strict {
				t.Fatalf("%s: the flawed image meets the request", r.ID)
			}
			if r.Scenario == Editing && reflect.DeepEqual(*r.RefScene, r.Spec.Scene) {
				t.Fatalf("%s: the edit changes nothing", r.ID)
			}
			if r.Prompt == "" || r.Answer == "" || r.Task == "" {
				t.Fatalf("%s: empty prompt, answer or task: %+v", r.ID, r)
			}
		}
	}
}

func TestSplitsHoldOutCombinations(t *testing.T) {
	facts := Facts()
	subjectSplit := func(prompt string) (Split, bool) {
		for i, f := range facts {
			if strings.Contains(prompt, " "+f.Subject+".") {
				return FactSplit(i), true
			}
		}
		return "", false
	}
	for _, split := range AllSplits {
		rows := genRows(t, split, 1000)
		for _, r := range rows {
			scenes := []Scene{r.Spec.Scene}
			if r.RefScene != nil {
				scenes = append(scenes, *r.RefScene)
			}
			held := reqsHeldOut(r.Spec.Require)
			for _, sc := range scenes {
				held = held || heldOut(sc)
			}
			fs, isFact := subjectSplit(r.Prompt)
			switch {
			case split != Eval && held:
				t.Fatalf("%s shows a held-out pair or string: %s / %s", r.ID, r.Prompt, r.Answer)
			case split != Eval && isFact && fs == Eval:
				t.Fatalf("%s uses a held-out fact: %s", r.ID, r.Prompt)
			case split == Eval && r.Task == "knowledge" && fs != Eval:
				t.Fatalf("%s: eval knowledge row uses a train fact: %s", r.ID, r.Prompt)
			case split == Eval && r.Task != "knowledge" && !heldOut(r.Spec.Scene) && !reqsHeldOut(r.Spec.Require):
				t.Fatalf("%s: eval row shows nothing held out: %s / %s", r.ID, r.Prompt, r.Answer)
			}
		}
	}
	if n := len(facts); n < 60 {
		t.Errorf("fact table has %d facts, want at least 60", n)
	}
	evalFacts := 0
	for i := range facts {
		if FactSplit(i) == Eval {
			evalFacts++
		}
	}
	if evalFacts == 0 || evalFacts == len(facts) {
		t.Errorf("%d of %d facts held out", evalFacts, len(facts))
	}
}

func TestScenarioCoverage(t *testing.T) {
	want := map[string][]string{
		Composition: {"single", "two", "counting", "attributes", "position"},
		Reasoning:   {"knowledge", "arithmetic", "spatial", "negation", "comparison"},
		Text:        {"len1", "len2", "len3", "len4"},
		Editing:     {"add", "remove", "recolour", "move", "change-text"},
		Reflection:  {"missing", "extra", "colour", "position"},
	}
	got := map[string]map[string]bool{}
	for _, r := range genRows(t, Train, 1000) {
		if got[r.Scenario] == nil {
			got[r.Scenario] = map[string]bool{}
		}
		got[r.Scenario][r.Task] = true
	}
	for sc, tasks := range want {
		for _, task := range tasks {
			if !got[sc][task] {
				t.Errorf("no %s/%s row in 1000 rows", sc, task)
			}
		}
	}
}

func TestTokens(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"draw a red circle.", []string{"draw", "a", "red", "circle", "."}},
		{`write "K7Q".`, []string{"write", `"`, "K", "7", "Q", `"`, "."}},
		{"a, b and c", []string{"a", ",", "b", "and", "c"}},
		{"  ", nil},
	}
	for _, tt := range tests {
		if got := Tokens(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("Tokens(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestVocabularyCoverage generates rows of every scenario in both splits
// and checks that every token they contain is in Vocabulary, and that
// every vocabulary token is used by some row.
func TestVocabularyCoverage(t *testing.T) {
	vocab := Vocabulary()
	if !slices.IsSorted(vocab) || len(slices.Compact(slices.Clone(vocab))) != len(vocab) {
		t.Fatal("Vocabulary is not sorted and duplicate-free")
	}
	if !slices.Equal(vocab, Vocabulary()) {
		t.Fatal("Vocabulary is not deterministic")
	}
	in := make(map[string]bool, len(vocab))
	for _, w := range vocab {
		in[w] = true
	}
	// Caption of an empty scene (an editing target after removing the
	// last object) is reachable only through Caption.
	used := map[string]bool{}
	for _, tok := range Tokens(Caption(Scene{})) {
		used[tok] = in[tok]
	}
	var rows []Row
	for _, split := range AllSplits {
		rows = append(rows, genRows(t, split, 2500)...)
		more, err := Generate(Options{Seed: 3, Split: split, Scenarios: []string{Reasoning}}, 0, 1500)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, more...)
	}
	{
		for _, r := range rows {
			for _, text := range []string{r.Prompt, r.Think, r.Answer} {
				for _, tok := range Tokens(text) {
					if !in[tok] {
						t.Fatalf("%s: token %q of %q is not in Vocabulary", r.ID, tok, text)
					}
					used[tok] = true
				}
			}
		}
	}
	var unused []string
	for _, w := range vocab {
		if !used[w] {
			unused = append(unused, w)
		}
	}
	if len(unused) > 0 {
		t.Errorf("%d vocabulary tokens never generated: %q", len(unused), unused)
	}
}

func TestParseSpecErrors(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{"not json", `{`, "decode JSON"},
		{"unknown field", `{"scene":{},"colour":"red"}`, "unknown field"},
		{"trailing", `{"scene":{}} {}`, "trailing data"},
		{"bad shape", `{"scene":{"objects":[{"shape":"star","color":"red","size":"small","row":0,"col":0}]}}`, `objects[0].shape: unknown shape "star"`},
		{"bad colour", `{"scene":{"objects":[{"shape":"circle","color":"pink","size":"small","row":0,"col":0}]}}`, `unknown colour "pink"`},
		{"off grid", `{"scene":{"objects":[{"shape":"circle","color":"red","size":"small","row":3,"col":0}]}}`, "off the 3×3 grid"},
		{"same cell", `{"scene":{"objects":[{"shape":"circle","color":"red","size":"small","row":0,"col":0},{"shape":"square","color":"red","size":"small","row":0,"col":0}]}}`, "cell top left is taken"},
		{"long text", `{"scene":{"text":"ABCDE"}}`, "want 1..4"},
		{"lower text", `{"scene":{"text":"ab"}}`, "not in"},
		{"text and objects", `{"scene":{"text":"A","objects":[{"shape":"circle","color":"red","size":"small","row":0,"col":0}]}}`, "one or the other"},
		{"absurd count", `{"scene":{},"require":[{"count":1000,"shape":"circle"}]}`, "require[0].count: 1000"},
		{"zero count", `{"scene":{},"require":[{"count":0,"shape":"circle"}]}`, "require[0].count: 0"},
		{"self relation", `{"scene":{},"require":[{"count":1,"shape":"circle","relation":{"kind":"above","ref":0}}]}`, "relation.ref: 0"},
		{"bad relation", `{"scene":{},"require":[{"count":1,"shape":"circle","relation":{"kind":"inside","ref":1}},{"count":1,"shape":"square"}]}`, `unknown relation "inside"`},
		{"repeated shape", `{"scene":{},"require":[{"count":1,"shape":"circle"},{"count":2,"shape":"circle"}]}`, "already required"},
		{"too many", `{"scene":{},"require":[{"count":4,"shape":"circle"},{"count":4,"shape":"square"},{"count":4,"shape":"cross"}]}`, "12 objects in all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSpec([]byte(tt.json))
			if err == nil || !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseSpec error %v, want ErrInvalidSpec containing %q", err, tt.want)
			}
		})
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, r := range genRows(f, Train, 10) {
		f.Add(r.Spec.JSON())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSpec(data)
		if err != nil {
			return
		}
		// A spec that parses round-trips and renders.
		again, err := ParseSpec(s.JSON())
		if err != nil || !reflect.DeepEqual(s, again) {
			t.Fatalf("round trip of %s: %v", data, err)
		}
		if _, err := Render(s.Scene, DefaultImageSize); err != nil {
			t.Fatalf("valid spec %s does not render: %v", data, err)
		}
		CheckRequirements(s.Require, s.Scene.Objects)
	})
}

func TestRender(t *testing.T) {
	sc := Scene{Objects: []Object{
		{Shape: Circle, Color: Red, Size: Large, Cell: Cell{0, 0}},
		{Shape: Triangle, Color: Blue, Size: Small, Cell: Cell{2, 2}},
	}}
	for _, size := range []int{32, 64, 96} {
		img := MustRender(sc, size)
		count := map[[4]uint8]int{}
		for i := 0; i < len(img.Pix); i += 4 {
			count[[4]uint8(img.Pix[i:i+4])]++
		}
		red, blue := Red.RGBA(), Blue.RGBA()
		nr, nb := count[[4]uint8{red.R, red.G, red.B, 255}], count[[4]uint8{blue.R, blue.G, blue.B, 255}]
		dl, ds := ObjectSide(Large, size), ObjectSide(Small, size)
		if len(count) != 3 || nr == 0 || nb == 0 || nr > dl*dl || nb > ds*ds {
			t.Errorf("size %d: %d colours, %d red (box %d²), %d blue (box %d²)", size, len(count), nr, dl, nb, ds)
		}
		// Boxes of neighbouring cells never touch, so objects stay apart.
		a, b := ObjectBox(Cell{0, 0}, Large, size), ObjectBox(Cell{0, 1}, Large, size)
		if a.Max.X >= b.Min.X || a.Min.X < 0 || ObjectBox(Cell{2, 2}, Large, size).Max.X > size {
			t.Errorf("size %d: boxes %v and %v touch or leave the canvas", size, a, b)
		}
	}
	if _, err := Render(sc, 16); err == nil {
		t.Error("Render at 16 px: no error")
	}
	if _, err := Render(Scene{Text: "a"}, 32); err == nil {
		t.Error("Render of lower-case text: no error")
	}
}

func TestShapeMasksDiffer(t *testing.T) {
	for _, size := range []int{32, 64} {
		for _, s := range AllSizes {
			d := ObjectSide(s, size)
			masks := map[string]Shape{}
			for _, sh := range AllShapes {
				m := ShapeMask(sh, d, d)
				key := ""
				for _, b := range m {
					key += map[bool]string{true: "#", false: "."}[b]
				}
				if other, ok := masks[key]; ok {
					t.Errorf("%s and %s rasterise alike at %d px", sh, other, d)
				}
				masks[key] = sh
			}
		}
	}
}

func TestGlyphs(t *testing.T) {
	g := Glyphs()
	if len(g) != len(TextAlphabet) {
		t.Fatalf("%d glyphs, want %d", len(g), len(TextAlphabet))
	}
	for _, r := range TextAlphabet {
		ink := 0
		for _, b := range g[r] {
			if b {
				ink++
			}
		}
		if ink < 5 {
			t.Errorf("glyph %q has %d ink pixels", r, ink)
		}
	}
	img := MustRender(Scene{Text: "W4"}, 32)
	x0, y0 := TextOrigin(2, 32)
	for y := range GlyphHeight {
		for x := range GlyphWidth {
			want := g['4'][y*GlyphWidth+x]
			got := img.RGBAAt(x0+GlyphAdvance+x, y0+y) == TextColor
			if got != want {
				t.Fatalf("glyph '4' pixel (%d,%d) drawn %v, want %v", x, y, got, want)
			}
		}
	}
}

func TestArrowRoundTrip(t *testing.T) {
	rows := genRows(t, Eval, 1100) // more than one record batch
	path := filepath.Join(t.TempDir(), "part-00000.arrow")
	if err := WriteFile(path, rows, DefaultImageSize); err != nil {
		t.Fatal(err)
	}
	got, info, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if info != (Info{SchemaVersion: SchemaVersion, ImageSize: DefaultImageSize}) {
		t.Errorf("info %+v", info)
	}
	if !reflect.DeepEqual(got, rows) {
		t.Fatal("rows read back differ from the rows written")
	}
}

func TestReadRejectsOtherFiles(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.arrow")
	if err := os.WriteFile(junk, []byte("not arrow at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadFile(junk); err == nil || !strings.Contains(err.Error(), "junk.arrow") {
		t.Errorf("ReadFile(junk) error %v, want one naming the file", err)
	}
	if _, _, err := ReadFile(filepath.Join(dir, "missing.arrow")); err == nil {
		t.Error("ReadFile(missing): no error")
	}
}

func TestWritePNG(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 3, 2))
	img.Pix[0] = 200
	path := filepath.Join(t.TempDir(), "x.png")
	if err := WritePNG(path, img); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := decodePNG(t, b); got.Bounds() != img.Bounds() {
		t.Errorf("read back %v, want %v", got.Bounds(), img.Bounds())
	}
	missing := filepath.Join(t.TempDir(), "no", "x.png")
	if err := WritePNG(missing, img); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("WritePNG into a missing directory: %v, want an error naming %s", err, missing)
	}
}
