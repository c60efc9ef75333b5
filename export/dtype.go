package export

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// DType is the floating-point type an export stores its weights in.
// Checkpoints are float32; a half-precision export halves the files for
// serving, and Import (thinkgen eval --model, generate) widens it back to
// float32.
type DType string

// The dtypes an export can store, named as torch names them.
const (
	Float32  DType = "float32"
	Float16  DType = "float16"
	BFloat16 DType = "bfloat16"
)

// ParseDType returns the DType named s (float32, float16 or bfloat16).
func ParseDType(s string) (DType, error) {
	switch d := DType(s); d {
	case Float32, Float16, BFloat16:
		return d, nil
	}
	return "", fmt.Errorf("dtype %q: want float32, float16 or bfloat16", s)
}

// orFloat32 maps the zero DType (an Options left empty, a manifest written
// before dtypes existed) to float32.
func (d DType) orFloat32() DType {
	if d == "" {
		return Float32
	}
	return d
}

// safetensors is d's dtype name in a safetensors header.
func (d DType) safetensors() string {
	switch d.orFloat32() {
	case Float16:
		return "F16"
	case BFloat16:
		return "BF16"
	}
	return "F32"
}

// size is the number of bytes of one value of d.
func (d DType) size() int {
	if d.orFloat32() == Float32 {
		return 4
	}
	return 2
}

// narrow converts the little-endian float32 values of src into d, written
// into dst (len(src)/4*d.size() bytes). float16 rounds to nearest even, as
// torch's .half() does, and refuses a finite value beyond its range (it
// would become infinite); bfloat16 has float32's range and rounds to
// nearest even too. The error gives the value's index in its tensor, where
// src starts at value first.
func (d DType) narrow(dst, src []byte, first int) error {
	n := len(src) / 4
	switch d.orFloat32() {
	case Float32:
		copy(dst, src)
	case Float16:
		for i := range n {
			f := math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
			h := float16.Fromfloat32(f)
			if h.IsInf(0) && !math.IsInf(float64(f), 0) {
				return fmt.Errorf("value %d (%g) is beyond float16's range (±65504): export float32 or bfloat16", first+i, f)
			}
			binary.LittleEndian.PutUint16(dst[2*i:], h.Bits())
		}
	case BFloat16:
		for i := range n {
			binary.LittleEndian.PutUint16(dst[2*i:], bfloat16Bits(binary.LittleEndian.Uint32(src[4*i:])))
		}
	}
	return nil
}

// bfloat16Bits rounds the float32 with bits b to bfloat16 (its upper 16
// bits), to nearest with ties to even; a NaN stays a (quiet) NaN.
func bfloat16Bits(b uint32) uint16 {
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x0040
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
