package reward

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/datasets"
)

func decode(t testing.TB, b []byte) image.Image {
	t.Helper()
	if len(b) == 0 {
		return nil
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// rowItem makes the item that scores a row's own target image.
func rowItem(t testing.TB, r datasets.Row) Item {
	return Item{ID: r.ID, Scenario: r.Scenario, Spec: r.Spec.JSON(), Image: decode(t, r.Target),
		Reference: decode(t, r.Reference), Text: r.Answer, Answer: r.Answer}
}

// generatedItems generates n rows with o and makes the items that score
// their own target images.
func generatedItems(t testing.TB, o datasets.Options, n int) []Item {
	t.Helper()
	rows, err := datasets.Generate(o, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	items := make([]Item, len(rows))
	for i, r := range rows {
		items[i] = rowItem(t, r)
	}
	return items
}

// noisy adds Gaussian noise of standard deviation sigma (in [0, 1] pixel
// units) to every channel, clamping to the valid range.
func noisy(img image.Image, sigma float64, rng *rand.Rand) *image.RGBA {
	m, _ := toRGBA(img, "image")
	out := image.NewRGBA(m.Bounds())
	copy(out.Pix, m.Pix)
	for i := range out.Pix {
		if i%4 == 3 {
			continue
		}
		v := float64(out.Pix[i]) + rng.NormFloat64()*sigma*255
		out.Pix[i] = uint8(math.Round(min(max(v, 0), 255)))
	}
	return out
}

func TestClassInkFollowsColours(t *testing.T) {
	if classInk != len(datasets.AllColors) {
		t.Fatalf("classInk = %d, want len(datasets.AllColors) = %d", classInk, len(datasets.AllColors))
	}
}

// TestGroundTruthAccuracy is the acceptance test: on 1,000
// ground-truth renders per scenario every rule model is strictly right at
// least 99% of the time, and at least 95% with Gaussian noise σ = 0.05.
func TestGroundTruthAccuracy(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 200
	}
	reg := Builtin(nil)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sc := range datasets.AllScenarios {
		t.Run(sc, func(t *testing.T) {
			rows, err := datasets.Generate(datasets.Options{Seed: 11, Split: datasets.Train, Scenarios: []string{sc}}, 0, n/2)
			if err != nil {
				t.Fatal(err)
			}
			more, err := datasets.Generate(datasets.Options{Seed: 11, Split: datasets.Eval, Scenarios: []string{sc}}, 0, n-n/2)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, more...)
			clean := make([]Item, len(rows))
			noise := make([]Item, len(rows))
			for i, r := range rows {
				clean[i] = rowItem(t, r)
				noise[i] = clean[i]
				noise[i].Image = noisy(clean[i].Image, 0.05, rng)
			}
			for _, c := range []struct {
				name  string
				items []Item
				min   float64
			}{{"clean", clean, 0.99}, {"noise σ=0.05", noise, 0.95}} {
				res, err := reg.Score(context.Background(), c.items)
				if err != nil {
					t.Fatal(err)
				}
				hit := 0.0
				for i, r := range res {
					if r.Err != "" {
						t.Fatalf("%s: %s", c.items[i].ID, r.Err)
					}
					hit += r.Strict
				}
				acc := hit / float64(len(res))
				t.Logf("%s %s: strict accuracy %.4f over %d", sc, c.name, acc, len(res))
				if acc < c.min {
					t.Errorf("%s %s: strict accuracy %.4f, want ≥ %.2f", sc, c.name, acc, c.min)
				}
			}
		})
	}
}

func scene(objs ...datasets.Object) datasets.Scene { return datasets.Scene{Objects: objs} }

func obj(s datasets.Shape, c datasets.Color, z datasets.Size, row, col int) datasets.Object {
	return datasets.Object{Shape: s, Color: c, Size: z, Cell: datasets.Cell{Row: row, Col: col}}
}

func specJSON(sc datasets.Scene, reqs ...datasets.Requirement) []byte {
	return (&datasets.Spec{Scene: sc, Require: reqs}).JSON()
}

// TestWrongSpecsDrop renders deliberately wrong images and checks that the
// score drops by the amount the rule prescribes (computed by hand in the
// comments).
func TestWrongSpecsDrop(t *testing.T) {
	twoRed := datasets.Requirement{Count: 2, Shape: datasets.Circle, Color: datasets.Red}
	blueSq := datasets.Requirement{Count: 1, Shape: datasets.Square, Color: datasets.Blue}
	left := twoRed
	left.Relation = &datasets.Relation{Kind: datasets.LeftOf, Ref: 1}
	good := scene(obj("circle", "red", "large", 0, 0), obj("circle", "red", "small", 2, 0), obj("square", "blue", "large", 1, 2))
	editRef := scene(obj("circle", "red", "large", 0, 0), obj("cross", "green", "small", 1, 1), obj("square", "blue", "large", 2, 2))
	editTgt := scene(obj("circle", "yellow", "large", 0, 0), obj("cross", "green", "small", 1, 1), obj("square", "blue", "large", 2, 2))
	tests := []struct {
		name             string
		scenario         string
		spec             []byte
		image, reference datasets.Scene
		partial, strict  float64
	}{
		{"composition exact", datasets.Composition, specJSON(good, twoRed, blueSq), good, datasets.Scene{}, 1, 1},
		// count 1 of 2: count credit 1 − 1/2; colour not checked → (0.5 + 0)/2; square 1 → mean 0.625.
		{"composition object missing", datasets.Composition, specJSON(good, twoRed, blueSq),
			scene(obj("circle", "red", "large", 0, 0), obj("square", "blue", "large", 1, 2)), datasets.Scene{}, 0.625, 0},
		// count right, one of two red: (1 + 0.5)/2 = 0.75; square 1 → 0.875.
		{"composition wrong colour", datasets.Composition, specJSON(good, twoRed, blueSq),
			scene(obj("circle", "red", "large", 0, 0), obj("circle", "green", "small", 2, 0), obj("square", "blue", "large", 1, 2)), datasets.Scene{}, 0.875, 0},
		// relation broken: circles (count 1, colour 1, relation 0) = 2/3; square 1 → 5/6.
		{"composition wrong position", datasets.Composition, specJSON(good, left, blueSq),
			scene(obj("circle", "red", "large", 0, 0), obj("circle", "red", "small", 2, 2), obj("square", "blue", "large", 1, 1)), datasets.Scene{}, 5.0 / 6, 0},
		// three circles for two: count credit 1 − 1/2, colour 0 → 0.25; square 1 → 0.625.
		{"reasoning extra object", datasets.Reasoning, specJSON(good, twoRed, blueSq),
			scene(obj("circle", "red", "large", 0, 0), obj("circle", "red", "small", 2, 0), obj("circle", "red", "small", 0, 1), obj("square", "blue", "large", 1, 2)), datasets.Scene{}, 0.625, 0},
		{"text exact", datasets.Text, specJSON(datasets.Scene{Text: "K7Q"}), datasets.Scene{Text: "K7Q"}, datasets.Scene{}, 1, 1},
		// one wrong character of three: 1 − 1/3.
		{"text one wrong character", datasets.Text, specJSON(datasets.Scene{Text: "K7Q"}), datasets.Scene{Text: "K7R"}, datasets.Scene{}, 2.0 / 3, 0},
		// one character missing: Levenshtein 1 → 1 − 1/4.
		{"text one missing character", datasets.Text, specJSON(datasets.Scene{Text: "AB12"}), datasets.Scene{Text: "AB2"}, datasets.Scene{}, 0.75, 0},
		{"editing exact", datasets.Editing, specJSON(editTgt), editTgt, editRef, 1, 1},
		// recoloured to the wrong colour: 2 of 3 objects match; untouched region intact.
		{"editing wrong colour", datasets.Editing, specJSON(editTgt),
			scene(obj("circle", "purple", "large", 0, 0), obj("cross", "green", "small", 1, 1), obj("square", "blue", "large", 2, 2)), editRef, 2.0 / 3, 0},
		// the edit was not made: 2 of 3 match.
		{"editing unchanged", datasets.Editing, specJSON(editTgt), editRef, editRef, 2.0 / 3, 0},
		{"reflection corrected", datasets.Reflection, specJSON(good, twoRed, blueSq), good, good, 1, 1},
	}
	reg := Builtin(map[string]float64{datasets.Reasoning: 2})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := Item{ID: tt.name, Scenario: tt.scenario, Spec: tt.spec, Image: datasets.MustRender(tt.image, 32)}
			if tt.reference.Objects != nil || tt.reference.Text != "" {
				it.Reference = datasets.MustRender(tt.reference, 32)
			}
			res, err := reg.Score(context.Background(), []Item{it})
			if err != nil {
				t.Fatal(err)
			}
			r := res[0]
			if r.Err != "" {
				t.Fatal(r.Err)
			}
			if math.Abs(r.Partial-tt.partial) > 1e-9 || r.Strict != tt.strict {
				t.Errorf("partial %v strict %v, want %v and %v (aux %v)", r.Partial, r.Strict, tt.partial, tt.strict, r.Aux)
			}
			if math.Abs(r.Score-reg.Weight(tt.scenario)*r.Partial) > 1e-12 {
				t.Errorf("score %v, want weight %v × partial %v", r.Score, reg.Weight(tt.scenario), r.Partial)
			}
		})
	}
}

// TestDetectorAgreesWithScenes checks the detector against the scene it
// renders for many generated scenes and their mutations: the objects found
// are the scene's objects.
func TestDetectorAgreesWithScenes(t *testing.T) {
	for _, size := range []int{32, 64} {
		rows, err := datasets.Generate(datasets.Options{Seed: 5, Size: size, Scenarios: []string{datasets.Editing, datasets.Composition}}, 0, 200)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			for _, sc := range []*datasets.Scene{&r.Spec.Scene, r.RefScene} {
				if sc == nil || sc.Text != "" {
					continue
				}
				ds, err := Detect(datasets.MustRender(*sc, size))
				if err != nil {
					t.Fatal(err)
				}
				got := objects(ds)
				if matchScene(sc.Objects, got) != 1 {
					t.Fatalf("%s at %d px: detected %v, rendered %v", r.ID, size, got, sc.Objects)
				}
			}
		}
	}
}

func TestReadText(t *testing.T) {
	for _, size := range []int{32, 64} {
		for _, s := range []string{"A", "K7Q", "OQ0D", "8S", "WMWM", "I1"} {
			got, err := ReadText(datasets.MustRender(datasets.Scene{Text: s}, size))
			if err != nil || got != s {
				t.Errorf("ReadText(%q at %d px) = %q, %v", s, size, got, err)
			}
		}
		got, err := ReadText(datasets.MustRender(datasets.Scene{}, size))
		if err != nil || got != "" {
			t.Errorf("ReadText(blank) = %q, %v", got, err)
		}
	}
}

func TestOCRReward(t *testing.T) {
	tests := []struct {
		got, target string
		want        float64
	}{
		{"K7Q", "K7Q", 1},
		{"XXK7QYY", "K7Q", 1},       // target is a substring
		{"k7q", "K7Q", 1},           // case is ignored
		{"K 7  Q", "K7Q", 1},        // spaces are stripped
		{"K7Q", "k 7 q", 1},         // on both sides
		{"K7R", "K7Q", 1 - 1.0/3},   // one substitution
		{"K7", "K7Q", 1 - 1.0/3},    // one deletion
		{"AK7Q", "AKQ", 1 - 1.0/3},  // not a substring: one insertion
		{"", "K7Q", 0},              // nothing read: d = len
		{"ABCDEFGH", "K7Q", 0},      // distance capped at len(target)
		{"", "", 1},                 // empty target, nothing read
		{"A", "", 0},                // empty target, something read
		{"   ", "", 1},              // spaces only count as nothing
		{"HELLO WORLD", "WORLD", 1}, // substring across words
	}
	for _, tt := range tests {
		if got := OCRReward(tt.got, tt.target); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("OCRReward(%q, %q) = %v, want %v", tt.got, tt.target, got, tt.want)
		}
	}
}

func TestWordAccuracyAndNED(t *testing.T) {
	wa := []struct {
		got, target string
		want        float64
	}{
		{"K7Q", "K7Q", 1}, {"K7R", "K7Q", 0}, {"AB CD", "CD AB", 1}, {"AB", "AB CD", 0.5}, {"AB AB", "AB AB CD", 2.0 / 3}, {"x", "", 1},
	}
	for _, tt := range wa {
		if got := WordAccuracy(tt.got, tt.target); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("WordAccuracy(%q, %q) = %v, want %v", tt.got, tt.target, got, tt.want)
		}
	}
	ned := []struct {
		a, b string
		want float64
	}{{"", "", 0}, {"abc", "abc", 0}, {"abc", "abd", 1.0 / 3}, {"", "ab", 1}, {"kitten", "sitting", 3.0 / 7}}
	for _, tt := range ned {
		if got := NED(tt.a, tt.b); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("NED(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestReflectionLogsNED(t *testing.T) {
	good := scene(obj("circle", "red", "large", 0, 0))
	req := datasets.Requirement{Count: 1, Shape: datasets.Circle, Color: datasets.Red}
	it := Item{ID: "r", Scenario: datasets.Reflection, Spec: specJSON(good, req), Image: datasets.MustRender(good, 32),
		Text: "add a large red circle at top left.", Answer: "add a large red circle at top right."}
	res, err := Builtin(nil).Score(context.Background(), []Item{it})
	if err != nil {
		t.Fatal(err)
	}
	if want := NED(it.Text, it.Answer); res[0].Aux["ned"] != want || want == 0 || res[0].Partial != 1 {
		t.Errorf("result %+v, want partial 1 and ned %v", res[0], want)
	}
}

// TestBadInputs feeds every rule model bad images and specs: each item
// gets a zero score and an error saying what was wrong; nothing panics.
func TestBadInputs(t *testing.T) {
	good := scene(obj("circle", "red", "large", 0, 0))
	spec := specJSON(good, datasets.Requirement{Count: 1, Shape: datasets.Circle})
	textSpec := specJSON(datasets.Scene{Text: "AB"})
	img := datasets.MustRender(good, 32)
	tests := []struct {
		name string
		it   Item
		want string
	}{
		{"nil image", Item{Scenario: datasets.Composition, Spec: spec}, "image is missing"},
		{"empty image", Item{Scenario: datasets.Composition, Spec: spec, Image: image.NewRGBA(image.Rect(0, 0, 0, 0))}, "image is empty"},
		{"not square", Item{Scenario: datasets.Text, Spec: textSpec, Image: image.NewRGBA(image.Rect(0, 0, 32, 16))}, "want a square image"},
		{"too small", Item{Scenario: datasets.Reasoning, Spec: spec, Image: image.NewRGBA(image.Rect(0, 0, 8, 8))}, "want a side of"},
		{"too large", Item{Scenario: datasets.Reasoning, Spec: spec, Image: image.NewRGBA(image.Rect(0, 0, 2048, 2048))}, "want a side of"},
		{"no spec", Item{Scenario: datasets.Composition, Image: img}, "spec is missing"},
		{"garbage spec", Item{Scenario: datasets.Composition, Spec: []byte("draw me a cat"), Image: img}, "decode JSON"},
		{"absurd count", Item{Scenario: datasets.Composition, Spec: []byte(`{"scene":{},"require":[{"count":99999,"shape":"circle"}]}`), Image: img}, "count: 99999"},
		{"composition spec without requirements", Item{Scenario: datasets.Composition, Spec: textSpec, Image: img}, "no requirements"},
		{"text spec without text", Item{Scenario: datasets.Text, Spec: spec, Image: img}, "no text"},
		{"editing without reference", Item{Scenario: datasets.Editing, Spec: spec, Image: img}, "reference is missing"},
		{"editing size mismatch", Item{Scenario: datasets.Editing, Spec: spec, Image: img, Reference: datasets.MustRender(good, 64)}, "same size"},
		{"reflection empty image", Item{Scenario: datasets.Reflection, Spec: spec, Image: &image.RGBA{}}, "image is empty"},
	}
	reg := Builtin(nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.it.ID = tt.name
			res, err := reg.Score(context.Background(), []Item{tt.it})
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Score != 0 || !strings.Contains(res[0].Err, tt.want) || !strings.Contains(res[0].Err, tt.name) {
				t.Errorf("result %+v, want score 0 and an error naming the item and containing %q", res[0], tt.want)
			}
		})
	}
}

func TestUnknownScenario(t *testing.T) {
	_, err := Builtin(nil).Score(context.Background(), []Item{{ID: "a", Scenario: datasets.Text}, {ID: "b", Scenario: "painting"}})
	if !errors.Is(err, ErrUnknownScenario) || !strings.Contains(err.Error(), `"painting"`) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("error %v, want ErrUnknownScenario naming the scenario and the item", err)
	}
}

func TestRegistryKeepsOrderAndWeights(t *testing.T) {
	items := generatedItems(t, datasets.Options{Seed: 3}, 20)
	w := map[string]float64{datasets.Text: 0.5, datasets.Editing: 3}
	res, err := Builtin(w).Score(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		want := 1.0
		if x, ok := w[items[i].Scenario]; ok {
			want = x
		}
		if r.ID != items[i].ID || r.Scenario != items[i].Scenario || r.Weight != want || r.Score != want*r.Partial {
			t.Errorf("result %d = %+v for item %s (%s), want weight %v", i, r, items[i].ID, items[i].Scenario, want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Builtin(nil).Score(ctx, items); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: error %v", err)
	}
}

func TestImageFromFloats(t *testing.T) {
	data := make([]float32, 3*32*32)
	for i := range data {
		data[i] = 1
	}
	data[2*32*32+5*32+7] = 0 // blue channel of (row 5, col 7)
	data[0] = 2              // clamped
	img, err := ImageFromFloats(data, 3, 32, 32)
	if err != nil {
		t.Fatal(err)
	}
	if c := img.RGBAAt(7, 5); c.R != 255 || c.B != 0 {
		t.Errorf("pixel (7,5) = %v", c)
	}
	data[1*32*32+3*32+4] = float32(math.NaN())
	if _, err := ImageFromFloats(data, 3, 32, 32); err == nil || !strings.Contains(err.Error(), "channel 1, row 3, column 4") {
		t.Errorf("NaN: error %v", err)
	}
	for _, bad := range []struct{ c, h, w, n int }{{2, 32, 32, 2048}, {3, 0, 32, 0}, {3, 32, 32, 5}} {
		if _, err := ImageFromFloats(make([]float32, bad.n), bad.c, bad.h, bad.w); err == nil {
			t.Errorf("ImageFromFloats(%d values, %d×%d×%d): no error", bad.n, bad.c, bad.h, bad.w)
		}
	}
}
