package reward

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"text/tabwriter"

	"github.com/thinkgen/thinkgen/datasets"
)

// Artefact is one kind of damage a generated image shows, at one strength:
// a function of a scene that renders it damaged and says what the damaged
// image truly shows. Labels are known by construction, by the rules on
// each artefact (see Artefacts).
type Artefact struct {
	// Name is the artefact and its strength, as the table prints it.
	Name string
	// Objects and Text say which scenes it applies to.
	Objects, Text bool
	// apply renders sc damaged on a size×size canvas and returns the image
	// and the scene it truly shows (an object's Color "" is a colour off
	// the palette; a '?' in Text is a character no longer written). ok is
	// false when the artefact cannot be applied to this scene.
	apply func(sc datasets.Scene, size int, rng *rand.Rand) (img *image.RGBA, truth datasets.Scene, ok bool)
}

// Strengths of the artefacts (image sides are in pixels at any size; the
// fractions are of the image's range or of an object's box).
const (
	mildColourDrift   = 0.3 // of the way to the nearest other palette colour
	strongColourDrift = 0.7
	mildCut           = 0.25 // of an object's box cut away
	strongCut         = 0.6
	keptArea          = 1.0 / 3 // a cut object losing at most this much of its area still counts
	goneArea          = 0.5     // one losing at least this much no longer does
	glyphCut          = 0.6     // of a glyph's cell erased
)

// Artefacts returns the artefacts of the robustness set, each with its
// label rule:
//
//   - clean: the render itself; shows its scene;
//   - blur σ (Gaussian, σ = 0.5, 1, 1.5 px at 32 px, scaled with the
//     side): shows its scene — blur moves no object and changes no
//     colour's hue;
//   - noise σ=0.1 (Gaussian per channel, in [0, 1] units): shows its scene;
//   - brightness ±0.12 (added to every channel): shows its scene;
//   - smear 2 px (horizontal motion blur over 2 px, scaled): shows its
//     scene;
//   - colour drift f (objects' colours moved the fraction f of the way to
//     the nearest other palette colour in RGB): f = 0.3 keeps every
//     colour; f = 0.7 is past the palette boundary (halfway), so every
//     object's colour is unknown;
//   - blobby (each object's mask blurred with σ = 0.6 px at 32 px, plus
//     smooth random wobble of amplitude 0.15, re-thresholded at 0.5:
//     rounded corners and wavy edges): every object keeps its shape;
//   - partial c (a band of c of one object's box, from a random side,
//     erased to background): the object still counts when it lost at most
//     a third of its area, and no longer exists when it lost half or more
//     (cases in between are not drawn); c = 0.25 and 0.6;
//   - glyph cut (60% of one glyph's cell erased from a random side): that
//     character is no longer written.
func Artefacts() []Artefact {
	both := func(name string, f func(*image.RGBA, *rand.Rand)) Artefact {
		return Artefact{Name: name, Objects: true, Text: true, apply: func(sc datasets.Scene, size int, rng *rand.Rand) (*image.RGBA, datasets.Scene, bool) {
			img := datasets.MustRender(sc, size)
			f(img, rng)
			return img, sc, true
		}}
	}
	scale := func(size int) float64 { return float64(size) / datasets.DefaultImageSize }
	blur := func(sigma float64) Artefact {
		return both(fmt.Sprintf("blur σ=%g", sigma), func(m *image.RGBA, _ *rand.Rand) {
			gaussianBlur(m, sigma*scale(m.Bounds().Dx()))
		})
	}
	as := []Artefact{
		both("clean", func(*image.RGBA, *rand.Rand) {}),
		blur(0.5), blur(1), blur(1.5),
		both("noise σ=0.1", func(m *image.RGBA, rng *rand.Rand) { addNoise(m, 0.1, rng) }),
		both("brightness −0.12", func(m *image.RGBA, _ *rand.Rand) { shiftBrightness(m, -0.12) }),
		both("brightness +0.12", func(m *image.RGBA, _ *rand.Rand) { shiftBrightness(m, 0.12) }),
		both("smear 2 px", func(m *image.RGBA, _ *rand.Rand) {
			smear(m, max(2, int(math.Round(2*scale(m.Bounds().Dx())))))
		}),
		colourDrift(mildColourDrift), colourDrift(strongColourDrift),
		{Name: "blobby", Objects: true, apply: blobby},
		partial(mildCut), partial(strongCut),
		{Name: "glyph cut", Text: true, apply: cutGlyph},
	}
	return as
}

// drawObjects renders sc's objects as datasets.Render does, letting edit
// change each object's mask (box-sized, row-major) and colour first, then
// draws the text. edit may be nil.
func drawObjects(sc datasets.Scene, size int, edit func(i int, box image.Rectangle, mask []bool) ([]bool, image.Rectangle, color.RGBA)) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = datasets.Background.R, datasets.Background.G, datasets.Background.B, 255
	}
	for i, o := range sc.Objects {
		box := datasets.ObjectBox(o.Cell, o.Size, size)
		mask := datasets.ShapeMask(o.Shape, box.Dx(), box.Dy())
		c := o.Color.RGBA()
		if edit != nil {
			mask, box, c = edit(i, box, mask)
		}
		for y := range box.Dy() {
			for x := range box.Dx() {
				px, py := box.Min.X+x, box.Min.Y+y
				if mask[y*box.Dx()+x] && image.Pt(px, py).In(img.Bounds()) {
					img.SetRGBA(px, py, c)
				}
			}
		}
	}
	if sc.Text != "" {
		datasets.DrawText(img, sc.Text, datasets.TextColor)
	}
	return img
}

// nearestOtherColour is the palette colour nearest to c in RGB, c excluded.
func nearestOtherColour(c datasets.Color) datasets.Color {
	p := c.RGBA()
	best, bestD := c, math.Inf(1)
	for _, o := range datasets.AllColors {
		if o == c {
			continue
		}
		q := o.RGBA()
		dr, dg, db := float64(p.R)-float64(q.R), float64(p.G)-float64(q.G), float64(p.B)-float64(q.B)
		if d := dr*dr + dg*dg + db*db; d < bestD {
			best, bestD = o, d
		}
	}
	return best
}

func colourDrift(f float64) Artefact {
	return Artefact{Name: fmt.Sprintf("colour drift %g", f), Objects: true, apply: func(sc datasets.Scene, size int, _ *rand.Rand) (*image.RGBA, datasets.Scene, bool) {
		if len(sc.Objects) == 0 {
			return nil, sc, false
		}
		truth := datasets.Scene{Objects: slices.Clone(sc.Objects)}
		img := drawObjects(sc, size, func(i int, box image.Rectangle, mask []bool) ([]bool, image.Rectangle, color.RGBA) {
			a, b := sc.Objects[i].Color.RGBA(), nearestOtherColour(sc.Objects[i].Color).RGBA()
			mix := func(x, y uint8) uint8 { return uint8(math.Round((1-f)*float64(x) + f*float64(y))) }
			if f > 0.5 {
				truth.Objects[i].Color = ""
			}
			return mask, box, color.RGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 255}
		})
		return img, truth, true
	}}
}

// blobby rounds and warps every object's outline.
func blobby(sc datasets.Scene, size int, rng *rand.Rand) (*image.RGBA, datasets.Scene, bool) {
	if len(sc.Objects) == 0 {
		return nil, sc, false
	}
	s := float64(size) / datasets.DefaultImageSize
	img := drawObjects(sc, size, func(i int, box image.Rectangle, mask []bool) ([]bool, image.Rectangle, color.RGBA) {
		pad := int(math.Ceil(2 * s))
		w, h := box.Dx()+2*pad, box.Dy()+2*pad
		field := make([]float64, w*h)
		for y := range box.Dy() {
			for x := range box.Dx() {
				if mask[y*box.Dx()+x] {
					field[(y+pad)*w+x+pad] = 1
				}
			}
		}
		blurPlane(field, w, h, 0.6*s)
		wobble := make([]float64, w*h)
		for j := range wobble {
			wobble[j] = rng.NormFloat64()
		}
		blurPlane(wobble, w, h, 1.5*s)
		sd := 0.0
		for _, v := range wobble {
			sd += v * v
		}
		sd = math.Sqrt(sd / float64(len(wobble)))
		out := make([]bool, w*h)
		for j := range out {
			out[j] = field[j]+0.15*wobble[j]/max(sd, 1e-9) >= 0.5
		}
		return out, box.Inset(-pad), sc.Objects[i].Color.RGBA()
	})
	return img, sc, true
}

// partial erases a band of the fraction c of one object's box.
func partial(c float64) Artefact {
	return Artefact{Name: fmt.Sprintf("partial %g", c), Objects: true, apply: func(sc datasets.Scene, size int, rng *rand.Rand) (*image.RGBA, datasets.Scene, bool) {
		for _, i := range rng.Perm(len(sc.Objects)) {
			o := sc.Objects[i]
			box := datasets.ObjectBox(o.Cell, o.Size, size)
			w, h := box.Dx(), box.Dy()
			full := datasets.ShapeMask(o.Shape, w, h)
			for _, side := range rng.Perm(4) {
				cut := cutBand(full, w, h, side, c)
				lost := 1 - float64(count(cut))/float64(count(full))
				var truth datasets.Scene
				switch {
				case lost <= keptArea:
					truth = sc
				case lost >= goneArea:
					truth = datasets.Scene{Objects: slices.Delete(slices.Clone(sc.Objects), i, i+1)}
				default:
					continue
				}
				img := drawObjects(sc, size, func(j int, b image.Rectangle, m []bool) ([]bool, image.Rectangle, color.RGBA) {
					if j == i {
						m = cut
					}
					return m, b, sc.Objects[j].Color.RGBA()
				})
				return img, truth, true
			}
		}
		return nil, sc, false
	}}
}

// cutBand returns mask (w×h) with a band of the fraction c of its box
// cleared from one side (0 left, 1 right, 2 top, 3 bottom).
func cutBand(mask []bool, w, h, side int, c float64) []bool {
	out := slices.Clone(mask)
	bw, bh := int(math.Round(c*float64(w))), int(math.Round(c*float64(h)))
	for y := range h {
		for x := range w {
			var in bool
			switch side {
			case 0:
				in = x < bw
			case 1:
				in = x >= w-bw
			case 2:
				in = y < bh
			default:
				in = y >= h-bh
			}
			if in {
				out[y*w+x] = false
			}
		}
	}
	return out
}

func count(m []bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

// cutGlyph erases glyphCut of one glyph's cell from a random side; that
// character becomes '?' in the truth.
func cutGlyph(sc datasets.Scene, size int, rng *rand.Rand) (*image.RGBA, datasets.Scene, bool) {
	if sc.Text == "" {
		return nil, sc, false
	}
	img := datasets.MustRender(sc, size)
	k := datasets.TextScale(size)
	i := rng.IntN(len(sc.Text))
	ox, oy := datasets.TextOrigin(len(sc.Text), size)
	cell := image.Rect(0, 0, datasets.GlyphWidth*k, datasets.GlyphHeight*k).Add(image.Pt(ox+i*datasets.GlyphAdvance*k, oy))
	w, h := cell.Dx(), cell.Dy()
	full := make([]bool, w*h)
	for j := range full {
		full[j] = true
	}
	band := cutBand(full, w, h, rng.IntN(4), glyphCut)
	for y := range h {
		for x := range w {
			if !band[y*w+x] {
				img.SetRGBA(cell.Min.X+x, cell.Min.Y+y, datasets.Background)
			}
		}
	}
	truth := []byte(sc.Text)
	truth[i] = '?'
	return img, datasets.Scene{Text: string(truth)}, true
}

// gaussianBlur blurs img's RGB channels with a Gaussian of standard
// deviation sigma pixels, the edges clamped.
func gaussianBlur(img *image.RGBA, sigma float64) {
	size := img.Bounds().Dx()
	plane := make([]float64, size*size)
	for c := range 3 {
		for i := range plane {
			plane[i] = float64(img.Pix[4*i+c])
		}
		blurPlane(plane, size, size, sigma)
		for i, v := range plane {
			img.Pix[4*i+c] = uint8(math.Round(min(max(v, 0), 255)))
		}
	}
}

// blurPlane blurs a w×h plane in place with a separable Gaussian of
// standard deviation sigma, the edges clamped.
func blurPlane(p []float64, w, h int, sigma float64) {
	if sigma <= 0 {
		return
	}
	r := int(math.Ceil(3 * sigma))
	k := make([]float64, 2*r+1)
	sum := 0.0
	for i := range k {
		d := float64(i - r)
		k[i] = math.Exp(-d * d / (2 * sigma * sigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	tmp := make([]float64, len(p))
	for y := range h {
		for x := range w {
			v := 0.0
			for i, kv := range k {
				v += kv * p[y*w+min(max(x+i-r, 0), w-1)]
			}
			tmp[y*w+x] = v
		}
	}
	for y := range h {
		for x := range w {
			v := 0.0
			for i, kv := range k {
				v += kv * tmp[min(max(y+i-r, 0), h-1)*w+x]
			}
			p[y*w+x] = v
		}
	}
}

// smear averages each pixel with the n−1 pixels to its left (edges
// clamped): horizontal motion blur.
func smear(img *image.RGBA, n int) {
	size := img.Bounds().Dx()
	src := slices.Clone(img.Pix)
	for y := range size {
		for x := range size {
			for c := range 3 {
				v := 0
				for d := range n {
					v += int(src[4*(y*size+max(x-d, 0))+c])
				}
				img.Pix[4*(y*size+x)+c] = uint8((v + n/2) / n)
			}
		}
	}
}

// addNoise adds Gaussian noise of standard deviation sigma (in [0, 1]
// units) to every channel, clamped.
func addNoise(img *image.RGBA, sigma float64, rng *rand.Rand) {
	for i := range img.Pix {
		if i%4 == 3 {
			continue
		}
		v := float64(img.Pix[i]) + rng.NormFloat64()*sigma*255
		img.Pix[i] = uint8(math.Round(min(max(v, 0), 255)))
	}
}

// shiftBrightness adds d (in [0, 1] units) to every channel, clamped.
func shiftBrightness(img *image.RGBA, d float64) {
	for i := range img.Pix {
		if i%4 == 3 {
			continue
		}
		img.Pix[i] = uint8(math.Round(min(max(float64(img.Pix[i])+d*255, 0), 255)))
	}
}

// RobustCase is one image of the robustness set: an item to score and the
// strict verdict it deserves.
type RobustCase struct {
	Item
	// Artefact names the damage (Artefact.Name).
	Artefact string
	// Truth is what the image shows, by construction.
	Truth datasets.Scene
	// Want is the strict verdict a right rule model gives: whether Truth
	// meets the row's target.
	Want bool
}

// RobustnessSet builds the labelled robustness set: for each scenario,
// perScenario eval rows of seed at size px; for each row and each
// artefact that applies to its scene, the row's target scene and a
// mutated one (one object recoloured, reshaped or removed, or one
// character replaced; the first such change that makes the scene fail its
// target, in a random order), both damaged. Editing items carry the clean
// render of the row's reference scene. Want is the verdict of Truth
// against the row's target: CheckRequirements strict for composition,
// reasoning and reflection, the same text for text, the same scene for
// editing. The set depends only on its arguments.
func RobustnessSet(seed uint64, perScenario, size int) ([]RobustCase, error) {
	var out []RobustCase
	arts := Artefacts()
	for si, sc := range datasets.AllScenarios {
		rows, err := datasets.Generate(datasets.Options{Seed: seed, Split: datasets.Eval, Size: size, Scenarios: []string{sc}}, 0, perScenario)
		if err != nil {
			return nil, fmt.Errorf("robustness set: %w", err)
		}
		for ri, r := range rows {
			rng := rand.New(rand.NewPCG(seed, uint64(si)<<32|uint64(ri)))
			var ref image.Image
			if r.RefScene != nil {
				ref = datasets.MustRender(*r.RefScene, size)
			}
			for vi, scene := range []datasets.Scene{r.Spec.Scene, mutate(r, rng)} {
				for _, a := range arts {
					if (scene.Text == "" && !a.Objects) || (scene.Text != "" && !a.Text) {
						continue
					}
					img, truth, ok := a.apply(scene, size, rng)
					if !ok {
						continue
					}
					out = append(out, RobustCase{
						Item: Item{ID: fmt.Sprintf("%s/%d/%s", r.ID, vi, a.Name), Scenario: sc, Spec: r.Spec.JSON(),
							Image: img, Reference: ref, Text: r.Answer, Answer: r.Answer},
						Artefact: a.Name, Truth: truth, Want: meets(r, truth),
					})
				}
			}
		}
	}
	return out, nil
}

// meets reports whether a scene meets the row's target.
func meets(r datasets.Row, sc datasets.Scene) bool {
	switch {
	case r.Scenario == datasets.Text:
		return sc.Text == r.Spec.Scene.Text
	case r.Scenario == datasets.Editing:
		return sc.Text == r.Spec.Scene.Text && matchScene(r.Spec.Scene.Objects, sc.Objects) == 1
	default:
		return datasets.CheckRequirements(r.Spec.Require, sc.Objects).Strict
	}
}

// mutate changes the row's target scene once so that it fails the target
// when it can: it tries each change in a random order and returns the
// first that fails, or the first change when none does.
func mutate(r datasets.Row, rng *rand.Rand) datasets.Scene {
	sc := r.Spec.Scene
	var cands []datasets.Scene
	if sc.Text != "" {
		for _, i := range rng.Perm(len(sc.Text)) {
			b := []byte(sc.Text)
			for b[i] == sc.Text[i] {
				b[i] = datasets.TextAlphabet[rng.IntN(len(datasets.TextAlphabet))]
			}
			cands = append(cands, datasets.Scene{Text: string(b)})
		}
	}
	for _, i := range rng.Perm(len(sc.Objects)) {
		for _, kind := range rng.Perm(3) {
			objs := slices.Clone(sc.Objects)
			switch kind {
			case 0:
				objs[i].Color = other(datasets.AllColors, objs[i].Color, rng)
			case 1:
				objs[i].Shape = other(datasets.AllShapes, objs[i].Shape, rng)
			default:
				objs = slices.Delete(objs, i, i+1)
			}
			cands = append(cands, datasets.Scene{Objects: objs})
		}
	}
	if len(cands) == 0 {
		return sc
	}
	for _, c := range cands {
		if !meets(r, c) {
			return c
		}
	}
	return cands[0]
}

func other[T comparable](xs []T, x T, rng *rand.Rand) T {
	for {
		if y := xs[rng.IntN(len(xs))]; y != x {
			return y
		}
	}
}

// RobustRow is the accuracy of a rule model on one scenario's images with
// one artefact.
type RobustRow struct {
	Scenario, Artefact string
	// Positives and Negatives count the images that deserve a strict pass
	// and a fail; FalseAccepts the negatives passed, FalseRejects the
	// positives failed.
	Positives, Negatives       int
	FalseAccepts, FalseRejects int
}

// Accuracy is the fraction of images given the verdict they deserve.
func (r RobustRow) Accuracy() float64 {
	n := r.Positives + r.Negatives
	if n == 0 {
		return 0
	}
	return 1 - float64(r.FalseAccepts+r.FalseRejects)/float64(n)
}

// ScoreRobustness scores the cases with s and counts, per scenario and
// artefact (in the set's order), the verdicts against the labels; each
// scenario ends with a row of all its artefacts ("all"). A case that
// cannot be scored fails the call.
func ScoreRobustness(ctx context.Context, s Scorer, cases []RobustCase) ([]RobustRow, error) {
	items := make([]Item, len(cases))
	for i, c := range cases {
		items[i] = c.Item
	}
	res, err := s.Score(ctx, items)
	if err != nil {
		return nil, fmt.Errorf("score the robustness set: %w", err)
	}
	var out []RobustRow
	index := map[[2]string]int{}
	add := func(sc, art string, c RobustCase, pass bool) {
		k := [2]string{sc, art}
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			out = append(out, RobustRow{Scenario: sc, Artefact: art})
		}
		r := &out[i]
		switch {
		case c.Want:
			r.Positives++
			if !pass {
				r.FalseRejects++
			}
		default:
			r.Negatives++
			if pass {
				r.FalseAccepts++
			}
		}
	}
	for i, c := range cases {
		if res[i].Err != "" {
			return nil, fmt.Errorf("score the robustness set: %s", res[i].Err)
		}
		pass := res[i].Strict == 1
		add(c.Scenario, c.Artefact, c, pass)
	}
	// One "all" row after each scenario's rows.
	var sorted []RobustRow
	for _, sc := range datasets.AllScenarios {
		all := RobustRow{Scenario: sc, Artefact: "all"}
		for _, r := range out {
			if r.Scenario != sc {
				continue
			}
			sorted = append(sorted, r)
			all.Positives += r.Positives
			all.Negatives += r.Negatives
			all.FalseAccepts += r.FalseAccepts
			all.FalseRejects += r.FalseRejects
		}
		if all.Positives+all.Negatives > 0 {
			sorted = append(sorted, all)
		}
	}
	return sorted, nil
}

// WriteRobustTable prints the rows as a Markdown table: accuracy, and
// false accepts and rejects as counts of the negatives and positives.
func WriteRobustTable(w io.Writer, rows []RobustRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "| scenario\t| artefact\t| images\t| accuracy\t| false accepts\t| false rejects\t|")
	fmt.Fprintln(tw, "|---\t|---\t|--:\t|--:\t|--:\t|--:\t|")
	for _, r := range rows {
		fmt.Fprintf(tw, "| %s\t| %s\t| %d\t| %.3f\t| %d/%d\t| %d/%d\t|\n", r.Scenario, r.Artefact, r.Positives+r.Negatives,
			r.Accuracy(), r.FalseAccepts, r.Negatives, r.FalseRejects, r.Positives)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write the robustness table: %w", err)
	}
	return nil
}
