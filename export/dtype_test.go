package export

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/model"
)

func TestBFloat16Bits(t *testing.T) {
	tests := []struct {
		name string
		in   uint32
		want uint16
	}{
		{"one", math.Float32bits(1), 0x3f80},
		{"minus two", math.Float32bits(-2), 0xc000},
		{"rounds down", 0x3f808000 - 1, 0x3f80},
		{"tie to even (down)", 0x3f808000, 0x3f80},
		{"tie to even (up)", 0x3f818000, 0x3f82},
		{"rounds up", 0x3f808001, 0x3f81},
		{"largest float32 rounds to infinity", math.Float32bits(math.MaxFloat32), 0x7f80},
		{"infinity", math.Float32bits(float32(math.Inf(-1))), 0xff80},
		{"NaN stays NaN", 0x7f800001, 0x7fc0},
		{"zero", 0, 0},
	}
	for _, tt := range tests {
		if got := bfloat16Bits(tt.in); got != tt.want {
			t.Errorf("%s: bfloat16Bits(%#08x) = %#04x, want %#04x", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestNarrowRefusesFloat16Overflow(t *testing.T) {
	src := make([]byte, 12)
	for i, f := range []float32{1, -65504, 70000} {
		binary.LittleEndian.PutUint32(src[4*i:], math.Float32bits(f))
	}
	dst := make([]byte, 6)
	err := Float16.narrow(dst, src, 10)
	if err == nil || !strings.Contains(err.Error(), "value 12 (70000)") {
		t.Fatalf("narrow: %v, want an error naming value 12 (70000)", err)
	}
	if err := BFloat16.narrow(dst, src, 0); err != nil {
		t.Fatalf("bfloat16 has float32's range: %v", err)
	}
	if _, err := ParseDType("fp8"); err == nil || !strings.Contains(err.Error(), `"fp8"`) {
		t.Errorf("ParseDType(fp8): %v", err)
	}
}

// TestHalfPrecisionExport exports base/tiny in float16 and bfloat16: the
// weight files halve, their headers and mllm/config.json name the dtype,
// the manifest records it, and the import widens every weight back to
// within the dtype's rounding of the checkpoint's.
func TestHalfPrecisionExport(t *testing.T) {
	full, _ := writeBase(t)
	tests := []struct {
		d       DType
		st      string
		relTol  float64 // half a unit in the last place, relative
		absTol  float64 // below the normal range
		maxSize float64 // of the float32 export's weight bytes
	}{
		{Float16, "F16", 1.0 / 2048, 6e-8, 0.51},
		{BFloat16, "BF16", 1.0 / 256, 0, 0.51},
	}
	for _, tt := range tests {
		t.Run(string(tt.d), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "export")
			m, err := Write(baseTiny, out, Source{}, Options{DType: tt.d})
			if err != nil {
				t.Fatal(err)
			}
			if m.DType != tt.d {
				t.Errorf("manifest dtype %q, want %q", m.DType, tt.d)
			}
			for _, f := range []string{fileMLLMWeights, fileMLLMVision, fileConnWeights, fileDiTWeights} {
				st, err := model.OpenSafetensors(filepath.Join(out, f))
				if err != nil {
					t.Fatal(err)
				}
				for name, e := range st.Tensors {
					if e.DType != tt.st {
						t.Errorf("%s: tensor %s is %s, want %s", f, name, e.DType, tt.st)
					}
				}
				st.Close()
				a, _ := os.Stat(filepath.Join(full, f))
				b, _ := os.Stat(filepath.Join(out, f))
				if ratio := float64(b.Size()) / float64(a.Size()); ratio > tt.maxSize {
					t.Errorf("%s: %d bytes, %.2f of the float32 export's", f, b.Size(), ratio)
				}
			}
			cfg, _ := os.ReadFile(filepath.Join(out, "mllm", "config.json"))
			if !strings.Contains(string(cfg), `"torch_dtype": "`+string(tt.d)+`"`) {
				t.Errorf("mllm/config.json does not say torch_dtype %s", tt.d)
			}
			// Errors, not t.Fatalf: the check runs on libtorch.Run's goroutine.
			withImport(t, out, func(want, got *model.Bundle) error {
				wb, gb := tensorBits(want), tensorBits(got)
				for name, w := range wb {
					g := gb[name]
					if len(g) != len(w) {
						return fmt.Errorf("tensor %s: %d values imported, want %d", name, len(g), len(w))
					}
					for i := range w {
						a, b := float64(math.Float32frombits(w[i])), float64(math.Float32frombits(g[i]))
						if math.Abs(a-b) > tt.relTol*math.Abs(a)+tt.absTol {
							return fmt.Errorf("tensor %s value %d: %g imported, %g exported (tolerance %g)", name, i, b, a, tt.relTol*math.Abs(a)+tt.absTol)
						}
					}
				}
				return nil
			})
		})
	}
}
