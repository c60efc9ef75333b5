package datasets

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"sync"

	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// DefaultImageSize is the side of rendered images unless told otherwise,
// and MinImageSize the smallest side the renderer and the rule models take.
const (
	DefaultImageSize = 32
	MinImageSize     = 32
	MaxImageSize     = 1024
)

// Object boxes are these fractions of the image side.
const (
	largeFrac = 0.28
	smallFrac = 0.19
)

// Glyph metrics of the font (basicfont.Face7x13) in font pixels.
const (
	GlyphWidth   = 6
	GlyphHeight  = 13
	GlyphAdvance = 7
)

// Render draws the scene on a size×size canvas. It is deterministic: the
// same scene and size give the same pixels.
func Render(sc Scene, size int) (*image.RGBA, error) {
	if size < MinImageSize || size > MaxImageSize {
		return nil, fmt.Errorf("render: image size %d, want %d..%d", size, MinImageSize, MaxImageSize)
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	fillRect(img, img.Bounds(), Background)
	for _, o := range sc.Objects {
		box := ObjectBox(o.Cell, o.Size, size)
		m := ShapeMask(o.Shape, box.Dx(), box.Dy())
		c := o.Color.RGBA()
		for y := 0; y < box.Dy(); y++ {
			for x := 0; x < box.Dx(); x++ {
				if m[y*box.Dx()+x] {
					img.SetRGBA(box.Min.X+x, box.Min.Y+y, c)
				}
			}
		}
	}
	if sc.Text != "" {
		DrawText(img, sc.Text, TextColor)
	}
	return img, nil
}

// MustRender is Render for scenes and sizes known to be valid (tests,
// generators); it panics on an error.
func MustRender(sc Scene, size int) *image.RGBA {
	img, err := Render(sc, size)
	if err != nil {
		panic(err)
	}
	return img
}

func fillRect(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// CellCenter is the pixel centre of a grid cell on a size×size canvas.
func CellCenter(c Cell, size int) (x, y float64) {
	w := float64(size) / GridSize
	return (float64(c.Col) + 0.5) * w, (float64(c.Row) + 0.5) * w
}

// ObjectSide is the side in pixels of an object box of the given size class.
func ObjectSide(s Size, size int) int {
	f := smallFrac
	if s == Large {
		f = largeFrac
	}
	return int(math.Round(f * float64(size)))
}

// ObjectBox is the pixel box an object of size class s occupies in cell c.
func ObjectBox(c Cell, s Size, size int) image.Rectangle {
	d := ObjectSide(s, size)
	cx, cy := CellCenter(c, size)
	x0 := int(math.Round(cx - float64(d)/2))
	y0 := int(math.Round(cy - float64(d)/2))
	return image.Rect(x0, y0, x0+d, y0+d)
}

// ShapeMask rasterises a shape into a w×h box, row-major: true where the
// shape covers the pixel. Every shape touches all four sides of its box.
func ShapeMask(s Shape, w, h int) []bool {
	m := make([]bool, w*h)
	const eps = 1e-9
	for y := range h {
		v := (float64(y) + 0.5) / float64(h)
		for x := range w {
			u := (float64(x) + 0.5) / float64(w)
			du, dv := math.Abs(u-0.5), math.Abs(v-0.5)
			var in bool
			switch s {
			case Circle:
				in = du*du+dv*dv <= 0.25+eps
			case Square:
				in = true
			case Triangle: // apex at the top; the pixel's lower edge decides
				in = du <= (float64(y)+1)/float64(h)/2+eps
			case Diamond:
				in = du+dv <= 0.5+eps
			case Cross:
				in = du <= 1.0/6+eps || dv <= 1.0/6+eps
			}
			m[y*w+x] = in
		}
	}
	return m
}

// TextScale is the integer factor glyphs are scaled by on a size×size canvas.
func TextScale(size int) int { return max(1, size/DefaultImageSize) }

// TextOrigin is the top-left pixel of the first glyph cell of an n-character
// string centred on a size×size canvas.
func TextOrigin(n, size int) (x, y int) {
	k := TextScale(size)
	w := (GlyphAdvance*n - (GlyphAdvance - GlyphWidth)) * k
	return (size - w) / 2, (size - GlyphHeight*k) / 2
}

// DrawText draws s centred on img in colour c, glyphs scaled by
// TextScale. Characters outside TextAlphabet are skipped.
func DrawText(img *image.RGBA, s string, c color.RGBA) {
	size := img.Bounds().Dx()
	k := TextScale(size)
	x0, y0 := TextOrigin(len(s), size)
	g := Glyphs()
	for i, r := range s {
		bm, ok := g[r]
		if !ok {
			continue
		}
		gx := x0 + i*GlyphAdvance*k
		for y := range GlyphHeight * k {
			for x := range GlyphWidth * k {
				if bm[(y/k)*GlyphWidth+x/k] {
					img.SetRGBA(gx+x, y0+y, c)
				}
			}
		}
	}
}

// Glyph is a GlyphWidth×GlyphHeight bitmap, row-major.
type Glyph [GlyphWidth * GlyphHeight]bool

// Glyphs returns the bitmaps of TextAlphabet in basicfont.Face7x13. The
// map is shared: do not modify it.
var Glyphs = sync.OnceValue(func() map[rune]Glyph {
	f := basicfont.Face7x13
	out := make(map[rune]Glyph, len(TextAlphabet))
	for _, r := range TextAlphabet {
		dr, mask, mp, _, ok := f.Glyph(fixed.P(0, f.Ascent), r)
		if !ok || dr.Dx() != GlyphWidth || dr.Dy() != GlyphHeight {
			continue
		}
		var g Glyph
		for y := range GlyphHeight {
			for x := range GlyphWidth {
				_, _, _, a := mask.At(mp.X+x, mp.Y+y).RGBA()
				g[y*GlyphWidth+x] = a >= 0x8000
			}
		}
		out[r] = g
	}
	return out
})
