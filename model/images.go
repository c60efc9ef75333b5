package model

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// ImagesToTensor decodes PNGs into a [N, 3, size, size] float32 tensor in
// [0, 1]. Every image must be size×size; the error names the index of one
// that is not, or that does not decode.
func ImagesToTensor(pngs [][]byte, size int, dev gotch.Device) (*ts.Tensor, error) {
	data := make([]float32, len(pngs)*3*size*size)
	plane := size * size
	for i, b := range pngs {
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		r := img.Bounds()
		if r.Dx() != size || r.Dy() != size {
			return nil, fmt.Errorf("image %d is %dx%d, want %dx%d", i, r.Dx(), r.Dy(), size, size)
		}
		base := i * 3 * plane
		for y := 0; y < size; y++ {
			for x := 0; x < size; x++ {
				c := color.NRGBAModel.Convert(img.At(r.Min.X+x, r.Min.Y+y)).(color.NRGBA)
				data[base+y*size+x] = float32(c.R) / 255
				data[base+plane+y*size+x] = float32(c.G) / 255
				data[base+2*plane+y*size+x] = float32(c.B) / 255
			}
		}
	}
	return float32Tensor(data, []int64{int64(len(pngs)), 3, int64(size), int64(size)}, dev), nil
}

// EncodeImages decodes PNGs (each size×size, as ImagesToTensor) and
// encodes them into lat: the [N, C, h, w] tensor the models read
// reference and target images as. It returns nil for no PNGs; the caller
// drops the result.
func EncodeImages(lat Latent, pngs [][]byte, size int, dev gotch.Device) (*ts.Tensor, error) {
	if len(pngs) == 0 {
		return nil, nil
	}
	x, err := ImagesToTensor(pngs, size, dev)
	if err != nil {
		return nil, err
	}
	defer x.MustDrop()
	return lat.Encode(x), nil
}

// TensorToImages converts a [N, 3, H, W] tensor in [0, 1] (values outside
// are clamped) to RGBA images.
func TensorToImages(t *ts.Tensor) ([]*image.RGBA, error) {
	sz := t.MustSize()
	if len(sz) != 4 || sz[1] != 3 {
		return nil, fmt.Errorf("want a [N 3 H W] tensor, got %v", sz)
	}
	n, h, w := int(sz[0]), int(sz[2]), int(sz[3])
	vals := float32s(t)
	out := make([]*image.RGBA, n)
	plane := h * w
	for i := range out {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		base := i * 3 * plane
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				px := func(c int) uint8 {
					v := float64(vals[base+c*plane+y*w+x])
					if math.IsNaN(v) {
						v = 0
					}
					return uint8(math.Round(math.Max(0, math.Min(1, v)) * 255))
				}
				img.SetRGBA(x, y, color.RGBA{px(0), px(1), px(2), 255})
			}
		}
		out[i] = img
	}
	return out, nil
}
