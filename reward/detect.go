package reward

import (
	"image"
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

// classify assigns every pixel to its nearest palette colour, the text ink
// or the background (squared RGB distance).
func classify(img *image.RGBA) []int {
	type ref struct {
		class   int
		r, g, b float64
	}
	refs := []ref{{classBackground, float64(datasets.Background.R), float64(datasets.Background.G), float64(datasets.Background.B)},
		{classInk, float64(datasets.TextColor.R), float64(datasets.TextColor.G), float64(datasets.TextColor.B)}}
	for i, c := range datasets.AllColors {
		p := c.RGBA()
		refs = append(refs, ref{i, float64(p.R), float64(p.G), float64(p.B)})
	}
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	out := make([]int, w*h)
	for i := range out {
		px := img.Pix[4*i : 4*i+3]
		best, bestD := classBackground, math.Inf(1)
		for _, r := range refs {
			dr, dg, db := float64(px[0])-r.r, float64(px[1])-r.g, float64(px[2])-r.b
			if d := dr*dr + dg*dg + db*db; d < bestD {
				best, bestD = r.class, d
			}
		}
		out[i] = best
	}
	return out
}

// Detect finds the objects of an image: it classifies pixels by colour,
// groups non-background pixels into 4-connected components, drops specks
// smaller than a quarter of a small object's box, and gives each component
// its majority colour, the shape whose template (datasets.ShapeMask fitted
// to the component's box) overlaps it best, the size class nearest to its
// box, and the grid cell of its box centre. Text ink is not an object.
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

// classifyShape returns the shape whose mask, fitted to the w×h box,
// has the highest IoU with mask (ties go to the earlier shape).
func classifyShape(mask []bool, w, h int) (datasets.Shape, float64) {
	best, bestIoU := datasets.AllShapes[0], -1.0
	for _, s := range datasets.AllShapes {
		t := datasets.ShapeMask(s, w, h)
		inter, union := 0, 0
		for i := range mask {
			if mask[i] && t[i] {
				inter++
			}
			if mask[i] || t[i] {
				union++
			}
		}
		iou := float64(inter) / float64(max(union, 1))
		if iou > bestIoU {
			best, bestIoU = s, iou
		}
	}
	return best, bestIoU
}

// objects strips detections to the objects they describe.
func objects(ds []Detection) []datasets.Object {
	out := make([]datasets.Object, len(ds))
	for i, d := range ds {
		out[i] = d.Object
	}
	return out
}
