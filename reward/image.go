package reward

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"

	"github.com/thinkgen/thinkgen/datasets"
)

// toRGBA checks that img is a square image of a size the rule models read
// and returns it as *image.RGBA with its origin at (0, 0). what names the
// image in errors ("image", "reference").
func toRGBA(img image.Image, what string) (*image.RGBA, error) {
	if img == nil {
		return nil, fmt.Errorf("%s is missing", what)
	}
	b := img.Bounds()
	if b.Empty() {
		return nil, fmt.Errorf("%s is empty (%d×%d)", what, b.Dx(), b.Dy())
	}
	if b.Dx() != b.Dy() {
		return nil, fmt.Errorf("%s is %d×%d: want a square image", what, b.Dx(), b.Dy())
	}
	if b.Dx() < datasets.MinImageSize || b.Dx() > datasets.MaxImageSize {
		return nil, fmt.Errorf("%s is %d×%d: want a side of %d..%d px", what, b.Dx(), b.Dy(), datasets.MinImageSize, datasets.MaxImageSize)
	}
	if m, ok := img.(*image.RGBA); ok && b.Min == (image.Point{}) {
		return m, nil
	}
	m := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(m, m.Bounds(), img, b.Min, draw.Src)
	return m, nil
}

// ImageFromFloats turns a channels×height×width float image with values in
// [0, 1] (a model's output, row-major per channel) into an RGBA image.
// channels is 1 (grey) or 3 (RGB). Values outside [0, 1] are clamped; NaN
// or infinite values are an error naming the first one's position.
func ImageFromFloats(data []float32, channels, height, width int) (*image.RGBA, error) {
	if channels != 1 && channels != 3 {
		return nil, fmt.Errorf("float image: %d channels, want 1 or 3", channels)
	}
	if height <= 0 || width <= 0 {
		return nil, fmt.Errorf("float image: size %d×%d is empty", height, width)
	}
	if len(data) != channels*height*width {
		return nil, fmt.Errorf("float image: %d values, want %d×%d×%d = %d", len(data), channels, height, width, channels*height*width)
	}
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	plane := height * width
	for i, v := range data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			c, p := i/plane, i%plane
			return nil, fmt.Errorf("float image: value %v at channel %d, row %d, column %d", v, c, p/width, p%width)
		}
	}
	for p := range plane {
		var px [3]uint8
		for c := range 3 {
			v := data[min(c, channels-1)*plane+p]
			px[c] = uint8(math.Round(float64(min(max(v, 0), 1)) * 255))
		}
		img.SetRGBA(p%width, p/width, color.RGBA{px[0], px[1], px[2], 255})
	}
	return img, nil
}
