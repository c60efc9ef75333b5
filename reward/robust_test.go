package reward

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/datasets"
)

// TestRobustness scores the robustness set (seed 1, 24 rows a scenario,
// 32 px: the table of docs/results.md "Reward robustness") and holds each
// scenario and artefact to the accuracy today's rule models reach, rounded
// down; an artefact without a floor here must be read right every time.
func TestRobustness(t *testing.T) {
	cases, err := RobustnessSet(1, 24, 32)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ScoreRobustness(context.Background(), Builtin(nil), cases)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteRobustTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + b.String())
	objects := map[string]float64{
		"blur σ=1": 0.65, "blur σ=1.5": 0.45, "colour drift 0.7": 0.95,
		"partial 0.25": 0.9, "partial 0.6": 0.9, "all": 0.9,
	}
	floors := map[string]map[string]float64{
		datasets.Composition: objects, datasets.Reasoning: objects, datasets.Reflection: objects,
		datasets.Editing: {"blur σ=1": 0.7, "blur σ=1.5": 0.55, "brightness −0.12": 0.5, "all": 0.9},
		datasets.Text:    {"blur σ=1": 0.9, "blur σ=1.5": 0.55, "glyph cut": 0.95, "all": 0.9},
	}
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.Scenario] = true
		floor, ok := floors[r.Scenario][r.Artefact]
		if !ok {
			floor = 1
		}
		if r.Positives+r.Negatives == 0 {
			t.Errorf("%s %s: no images", r.Scenario, r.Artefact)
		}
		if acc := r.Accuracy(); acc < floor {
			t.Errorf("%s %s: accuracy %.3f (%d false accepts of %d, %d false rejects of %d), want ≥ %.2f",
				r.Scenario, r.Artefact, acc, r.FalseAccepts, r.Negatives, r.FalseRejects, r.Positives, floor)
		}
	}
	for _, sc := range datasets.AllScenarios {
		if !seen[sc] {
			t.Errorf("no rows for %s", sc)
		}
	}
}

// TestRobustnessSetIsDeterministic builds the set twice: the same images,
// labels and items; and the negatives are a real share of it.
func TestRobustnessSetIsDeterministic(t *testing.T) {
	a, err := RobustnessSet(7, 3, 32)
	if err != nil {
		t.Fatal(err)
	}
	b, err := RobustnessSet(7, 3, 32)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("%d and %d cases", len(a), len(b))
	}
	neg := 0
	for i := range a {
		x, y := a[i], b[i]
		if x.ID != y.ID || x.Want != y.Want || !bytes.Equal(x.Spec, y.Spec) ||
			!bytes.Equal(x.Image.(*image.RGBA).Pix, y.Image.(*image.RGBA).Pix) {
			t.Fatalf("case %d differs: %s and %s", i, x.ID, y.ID)
		}
		if !x.Want {
			neg++
		}
	}
	if neg < len(a)/4 || neg > 3*len(a)/4 {
		t.Errorf("%d negatives of %d cases: want between a quarter and three quarters", neg, len(a))
	}
	if _, err := RobustnessSet(7, 3, 8); err == nil || !strings.Contains(err.Error(), "size 8") {
		t.Errorf("size 8: error %v, want one naming the size", err)
	}
}

// TestDrawObjectsMatchesRender checks that the artefacts start from the
// renderer's pixels: drawObjects without an edit is datasets.Render.
func TestDrawObjectsMatchesRender(t *testing.T) {
	rows, err := datasets.Generate(datasets.Options{Seed: 2}, 0, 40)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		for _, size := range []int{32, 64} {
			want := datasets.MustRender(r.Spec.Scene, size)
			if got := drawObjects(r.Spec.Scene, size, nil); !bytes.Equal(got.Pix, want.Pix) {
				t.Fatalf("%s at %d px: drawObjects differs from datasets.Render", r.ID, size)
			}
		}
	}
}

// TestClassifyBlends checks the pixel classifier on a palette colour (and
// the ink) blended with the background: the colour from half coverage up
// (the ink from MinInk), the background below.
func TestClassifyBlends(t *testing.T) {
	bg := datasets.Background
	blend := func(c color.RGBA, a float64) color.RGBA {
		m := func(x, y uint8) uint8 { return uint8(math.Round(a*float64(x) + (1-a)*float64(y))) }
		return color.RGBA{m(c.R, bg.R), m(c.G, bg.G), m(c.B, bg.B), 255}
	}
	refs := append([]color.RGBA{}, datasets.TextColor)
	classes := []int{classInk}
	for i, c := range datasets.AllColors {
		refs = append(refs, c.RGBA())
		classes = append(classes, i)
	}
	for i, c := range refs {
		faint := classBackground // below half coverage
		if classes[i] == classInk {
			faint = classInk // ink counts from MinInk
		}
		for _, tt := range []struct {
			a    float64
			want int
		}{{1, classes[i]}, {0.8, classes[i]}, {0.55, classes[i]}, {0.4, faint}, {0.2, classBackground}, {0, classBackground}} {
			img := image.NewRGBA(image.Rect(0, 0, 1, 1))
			img.SetRGBA(0, 0, blend(c, tt.a))
			if got := classify(img)[0]; got != tt.want {
				t.Errorf("class %d blended at %.2f (%v): got class %d, want %d", classes[i], tt.a, img.RGBAAt(0, 0), got, tt.want)
			}
		}
	}
}

// TestRobustnessHandMade scores hand-made damaged images whose verdicts
// follow from the label rules of Artefacts.
func TestRobustnessHandMade(t *testing.T) {
	redCircle := scene(obj(datasets.Circle, datasets.Red, datasets.Large, 1, 1))
	square := scene(obj(datasets.Square, datasets.Blue, datasets.Large, 0, 2))
	reqCircle := specJSON(redCircle, datasets.Requirement{Count: 1, Shape: datasets.Circle, Color: datasets.Red, Size: datasets.Large})
	reqSquare := specJSON(square, datasets.Requirement{Count: 1, Shape: datasets.Square, Size: datasets.Large})
	blurred := func(sc datasets.Scene, sigma float64) *image.RGBA {
		m := datasets.MustRender(sc, 32)
		gaussianBlur(m, sigma)
		return m
	}
	drift := func(sc datasets.Scene, f float64) image.Image {
		img, _, _ := colourDrift(f).apply(sc, 32, nil)
		return img
	}
	cut := func(sc datasets.Scene, side int, c float64) image.Image {
		return drawObjects(sc, 32, func(_ int, box image.Rectangle, m []bool) ([]bool, image.Rectangle, color.RGBA) {
			return cutBand(m, box.Dx(), box.Dy(), side, c), box, sc.Objects[0].Color.RGBA()
		})
	}
	smearedText := func(s string, n int) image.Image {
		m := datasets.MustRender(datasets.Scene{Text: s}, 32)
		smear(m, n)
		return m
	}
	glyphCutText := func(s string) image.Image {
		m, _, _ := cutGlyph(datasets.Scene{Text: s}, 32, rand.New(rand.NewPCG(3, 3)))
		return m
	}
	smeared := datasets.MustRender(datasets.Scene{Text: "K7Q"}, 32)
	gaussianBlur(smeared, 0.5)
	tests := []struct {
		name     string
		scenario string
		spec     []byte
		img      image.Image
		strict   float64
	}{
		{"red circle blurred σ=1 is still a large red circle", datasets.Composition, reqCircle, blurred(redCircle, 1), 1},
		{"red circle drifted 0.3 towards orange is still red", datasets.Composition, reqCircle, drift(redCircle, 0.3), 1},
		{"red circle drifted 0.7 towards orange is not red", datasets.Composition, reqCircle, drift(redCircle, 0.7), 0},
		{"square with a quarter cut off is still a large square", datasets.Composition, reqSquare, cut(square, 1, 0.25), 1},
		{"square with 60% cut off is no square", datasets.Composition, reqSquare, cut(square, 3, 0.6), 0},
		{"text blurred σ=0.5 reads right", datasets.Text, specJSON(datasets.Scene{Text: "K7Q"}), smeared, 1},
		{"text smeared 2 px reads right", datasets.Text, specJSON(datasets.Scene{Text: "WM8"}), smearedText("WM8", 2), 1},
		{"text with a glyph cut is wrong", datasets.Text, specJSON(datasets.Scene{Text: "K7Q"}), glyphCutText("K7Q"), 0},
	}
	reg := Builtin(nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := reg.Score(context.Background(), []Item{{ID: tt.name, Scenario: tt.scenario, Spec: tt.spec, Image: tt.img}})
			if err != nil || res[0].Err != "" {
				t.Fatal(err, res[0].Err)
			}
			if res[0].Strict != tt.strict {
				ds, _ := Detect(tt.img)
				t.Errorf("strict %v, want %v (partial %v, detected %v)", res[0].Strict, tt.strict, res[0].Partial, objects(ds)[0].Shape)
			}
		})
	}
}

// TestArtefactLabels checks the label rules on the generator's own cases:
// a cut object is kept or gone by the area it lost, a strong colour drift
// makes colours unknown, a cut glyph becomes '?'.
func TestArtefactLabels(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	sc := scene(obj(datasets.Diamond, datasets.Green, datasets.Large, 1, 1), obj(datasets.Cross, datasets.Red, datasets.Small, 0, 0))
	for _, a := range Artefacts() {
		if !a.Objects {
			continue
		}
		_, truth, ok := a.apply(sc, 32, rng)
		if !ok {
			t.Fatalf("%s: not applied to %v", a.Name, sc)
		}
		switch a.Name {
		case "partial 0.6":
			if len(truth.Objects) != 1 {
				t.Errorf("%s: truth %v, want one object gone", a.Name, truth.Objects)
			}
		case "colour drift 0.7":
			for _, o := range truth.Objects {
				if o.Color != "" {
					t.Errorf("%s: truth colour %q, want unknown", a.Name, o.Color)
				}
			}
		default:
			if !slices.Equal(truth.Objects, sc.Objects) {
				t.Errorf("%s: truth %v, want the scene", a.Name, truth.Objects)
			}
		}
	}
	_, truth, ok := cutGlyph(datasets.Scene{Text: "AB"}, 32, rng)
	if !ok || strings.Count(truth.Text, "?") != 1 || len(truth.Text) != 2 {
		t.Errorf("glyph cut: truth %q, want one character of two replaced by '?'", truth.Text)
	}
}
