package reward

import (
	"image"
	"image/color"
	"math"

	"github.com/thinkgen/thinkgen/datasets"
)

// Pixel classes: a palette colour index (datasets.AllColors), text ink, or
// background.
const (
	classBackground = -1
	// classInk follows the colours; a test keeps it equal to
	// len(datasets.AllColors).
	classInk = 6
)

// MinInk is the least coverage at which a pixel counts as text ink.
// Glyph strokes are one font pixel wide, so a blur or a smear of a pixel
// spreads them below half coverage everywhere; objects, at least
// datasets.ObjectSide(datasets.Small, ·) wide, count from half.
const MinInk = 0.25

// MinFit is the least IoU with its shape's template a component needs to
// count as an object. A shape cut down to a fraction a of its area fits
// its full template with IoU a, so a shape cut by half or more (a fragment
// of an object hidden or cropped, a stray blot) is no object.
const MinFit = 0.55

// Detection is one object the detector found.
type Detection struct {
	datasets.Object
	// Box is the component's bounding box in pixels.
	Box image.Rectangle
	// Area is its number of pixels.
	Area int
	// Fit is the IoU of the component with the template of its shape.
	Fit float64
}

// classify assigns every pixel to a palette colour, the text ink or the
// background. It models a pixel as a colour blended with the background —
// what anti-aliasing, blur and faded drawing make — p = bg + α(c − bg):
// for each colour c it takes the α in [0, 1] that fits the pixel best,
// keeps the colour whose blend leaves the smallest squared RGB residual,
// and calls the pixel background when that colour covers less than half
// of it (α < ½). On an unblended render this is the nearest colour; on a
// blurred one an object keeps the extent where it covers at least half a
// pixel, and its fringe keeps its colour instead of taking the colour
// nearest to the blend (red half on white is nearer orange than red).
func classify(img *image.RGBA) []int {
	type ref struct {
		class      int
		dr, dg, db float64 // c − bg
		norm       float64 // |c − bg|²
	}
	bg := datasets.Background
	var refs []ref
	add := func(class int, c color.RGBA) {
		dr, dg, db := float64(c.R)-float64(bg.R), float64(c.G)-float64(bg.G), float64(c.B)-float64(bg.B)
		refs = append(refs, ref{class, dr, dg, db, dr*dr + dg*dg + db*db})
	}
	add(classInk, datasets.TextColor)
	for i, c := range datasets.AllColors {
		add(i, c.RGBA())
	}
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	out := make([]int, w*h)
	for i := range out {
		px := img.Pix[4*i : 4*i+3]
		vr, vg, vb := float64(px[0])-float64(bg.R), float64(px[1])-float64(bg.G), float64(px[2])-float64(bg.B)
		best, bestA, bestD := classBackground, 0.0, math.Inf(1)
		for _, r := range refs {
			a := min(max((vr*r.dr+vg*r.dg+vb*r.db)/r.norm, 0), 1)
			er, eg, eb := vr-a*r.dr, vg-a*r.dg, vb-a*r.db
			if d := er*er + eg*eg + eb*eb; d < bestD {
				best, bestA, bestD = r.class, a, d
			}
		}
		if bestA < 0.5 && (best != classInk || bestA < MinInk) {
			best = classBackground
		}
		out[i] = best
	}
	return out
}

// Detect finds the objects of an image: it classifies pixels by colour,
// groups non-background pixels into 4-connected components, drops specks
// smaller than a quarter of a small object's box, and gives each component
// its majority colour, the shape whose template (datasets.ShapeMask, see
// classifyShape) overlaps it best, the size class nearest to its box, and
// the grid cell of its box centre. A component that covers less than
// MinFit of its shape's template is dropped, and text ink is not an
// object.
func Detect(img image.Image) ([]Detection, error) {
	m, err := toRGBA(img, "image")
	if err != nil {
		return nil, err
	}
	return detect(m, classify(m)), nil
}

func detect(img *image.RGBA, classes []int) []Detection {
	size := img.Bounds().Dx()
	small, large := datasets.ObjectSide(datasets.Small, size), datasets.ObjectSide(datasets.Large, size)
	minArea := max(2, small*small/4)
	seen := make([]bool, len(classes))
	var out []Detection
	var stack, comp []int
	for start, c := range classes {
		if c == classBackground || seen[start] {
			continue
		}
		// Flood fill one component.
		comp = comp[:0]
		stack = append(stack[:0], start)
		seen[start] = true
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			comp = append(comp, p)
			x, y := p%size, p/size
			for _, q := range [4][2]int{{x - 1, y}, {x + 1, y}, {x, y - 1}, {x, y + 1}} {
				if q[0] < 0 || q[0] >= size || q[1] < 0 || q[1] >= size {
					continue
				}
				j := q[1]*size + q[0]
				if !seen[j] && classes[j] != classBackground {
					seen[j] = true
					stack = append(stack, j)
				}
			}
		}
		if len(comp) < minArea {
			continue
		}
		var votes [classInk + 1]int
		box := image.Rectangle{Min: image.Pt(size, size)}
		for _, p := range comp {
			votes[classes[p]]++
			x, y := p%size, p/size
			box.Min.X, box.Min.Y = min(box.Min.X, x), min(box.Min.Y, y)
			box.Max.X, box.Max.Y = max(box.Max.X, x+1), max(box.Max.Y, y+1)
		}
		colour := 0
		for i, v := range votes {
			if v > votes[colour] {
				colour = i
			}
		}
		if colour == classInk {
			continue
		}
		w, h := box.Dx(), box.Dy()
		mask := make([]bool, w*h)
		for _, p := range comp {
			mask[(p/size-box.Min.Y)*w+p%size-box.Min.X] = true
		}
		shape, fit := classifyShape(mask, w, h)
		if fit < MinFit {
			continue
		}
		side := max(w, h)
		sz := datasets.Small
		if math.Abs(float64(side-large)) < math.Abs(float64(side-small)) {
			sz = datasets.Large
		}
		cx, cy := float64(box.Min.X+box.Max.X)/2, float64(box.Min.Y+box.Max.Y)/2
		cell := datasets.Cell{
			Row: min(datasets.GridSize-1, int(cy*datasets.GridSize/float64(size))),
			Col: min(datasets.GridSize-1, int(cx*datasets.GridSize/float64(size))),
		}
		out = append(out, Detection{
			Object: datasets.Object{Shape: shape, Color: datasets.AllColors[colour], Size: sz, Cell: cell},
			Box:    box, Area: len(comp), Fit: fit,
		})
	}
	return out
}

// classifyShape returns the shape whose template best overlaps mask (a
// w×h component box) and how much of that template the mask covers.
// ShapeWorld draws every shape in a square box, so a box that is not
// square is a shape cut off on one side: the template is the square of
// side max(w, h), slid along the short side to every placement that
// covers the box. The shape is the one with the highest IoU inside the
// box (what the cut hid is unknown; ties go to the earlier shape, then
// the earlier placement); fit is its IoU over the whole template, so the
// hidden part counts as missing.
func classifyShape(mask []bool, w, h int) (shape datasets.Shape, fit float64) {
	side := max(w, h)
	bestIoU := -1.0
	for _, s := range datasets.AllShapes {
		t := datasets.ShapeMask(s, side, side)
		for off := 0; off <= side-min(w, h); off++ {
			ox, oy := 0, off
			if h == side {
				ox, oy = off, 0
			}
			inter, union, hidden := 0, 0, 0
			for y := range side {
				for x := range side {
					tv := t[y*side+x]
					if x < ox || x >= ox+w || y < oy || y >= oy+h {
						if tv {
							hidden++
						}
						continue
					}
					mv := mask[(y-oy)*w+x-ox]
					if mv && tv {
						inter++
					}
					if mv || tv {
						union++
					}
				}
			}
			iou := float64(inter) / float64(max(union, 1))
			if iou > bestIoU {
				shape, bestIoU = s, iou
				fit = float64(inter) / float64(max(union+hidden, 1))
			}
		}
	}
	return shape, fit
}

// objects strips detections to the objects they describe.
func objects(ds []Detection) []datasets.Object {
	out := make([]datasets.Object, len(ds))
	for i, d := range ds {
		out[i] = d.Object
	}
	return out
}
