package reward

import (
	"context"
	"image"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/datasets"
)

// fuzzImage turns fuzz bytes into a 32×32 image: each byte picks one
// pixel's palette entry (background, ink or a colour), so inputs reach
// text-like and shape-like pixels alike.
func fuzzImage(data []byte) *image.RGBA {
	img := datasets.MustRender(datasets.Scene{}, 32)
	pal := append([]datasets.Color{}, datasets.AllColors...)
	for i, b := range data {
		if i >= 32*32 {
			break
		}
		switch k := int(b) % (len(pal) + 2); {
		case k == 0:
		case k == 1:
			img.SetRGBA(i%32, i/32, datasets.TextColor)
		default:
			img.SetRGBA(i%32, i/32, pal[k-2].RGBA())
		}
	}
	return img
}

func FuzzReadText(f *testing.F) {
	for _, s := range []string{"A", "K7Q", "WXYZ"} {
		img := datasets.MustRender(datasets.Scene{Text: s}, 32)
		data := make([]byte, 32*32)
		for i := range data {
			if img.RGBAAt(i%32, i/32) == datasets.TextColor {
				data[i] = 1
			}
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ReadText(fuzzImage(data))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > datasets.MaxTextLen || strings.Trim(got, datasets.TextAlphabet) != "" {
			t.Fatalf("ReadText = %q: not 0..%d characters of the alphabet", got, datasets.MaxTextLen)
		}
		if r := OCRReward(got, "K7Q"); r < 0 || r > 1 {
			t.Fatalf("OCRReward = %v", r)
		}
	})
}

// FuzzScore fuzzes the spec parser through every rule model: any spec
// bytes and any image give a result or an item error, in [0, 1], never a
// panic.
func FuzzScore(f *testing.F) {
	rows, err := datasets.Generate(datasets.Options{Seed: 1}, 0, 5)
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range rows {
		f.Add(string(r.Spec.JSON()), []byte{1, 2, 3, 4, 5, 6, 7})
	}
	f.Add(`{"scene":{},"require":[{"count":4,"shape":"cross","relation":{"kind":"below","ref":0}}]}`, []byte{})
	reg := Builtin(nil)
	f.Fuzz(func(t *testing.T, spec string, pix []byte) {
		img := fuzzImage(pix)
		var items []Item
		for _, sc := range datasets.AllScenarios {
			items = append(items, Item{ID: sc, Scenario: sc, Spec: []byte(spec), Image: img, Reference: img, Text: spec, Answer: "x"})
		}
		res, err := reg.Score(context.Background(), items)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Partial < 0 || r.Partial > 1 || (r.Err != "" && r.Score != 0) {
				t.Fatalf("result %+v out of range", r)
			}
		}
	})
}
