package model

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/thinkgen/thinkgen/internal/alloccap"
)

// fuzzSpecs are the tensors FuzzSafetensors asks a file for.
var fuzzSpecs = []Spec{{Name: "a", Shape: []int64{2, 3}}, {Name: "b", Shape: []int64{4}}}

// FuzzSafetensors reads arbitrary bytes as a checkpoint's safetensors file,
// both as the loader does (decodeSafetensors: the whole file) and as the
// header check does (CheckSafetensorsHeader: the header only, before
// anything is allocated): an error or every spec's values, never a panic,
// at most 1 MiB plus 64 bytes per input byte allocated by either; a file
// the loader accepts passes the header check. The seed corpus
// (testdata/fuzz/FuzzSafetensors) holds valid F32, F16 and BF16 files and
// hostile ones: a header length past the file, overlapping and
// out-of-range data offsets, a shape whose size overflows.
func FuzzSafetensors(f *testing.F) {
	path := filepath.Join(f.TempDir(), "x.safetensors")
	f.Fuzz(func(t *testing.T, data []byte) {
		limit := 1<<20 + 64*uint64(len(data))
		var (
			vals [][]float32
			err  error
		)
		alloccap.Check(t, limit, func() { vals, _, err = decodeSafetensors(data, fuzzSpecs) })
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var herr error
		alloccap.Check(t, limit, func() { herr = CheckSafetensorsHeader(path, fuzzSpecs) })
		if err != nil {
			return
		}
		if herr != nil {
			t.Fatalf("the loader accepts a file the header check refuses: %v", herr)
		}
		for i, s := range fuzzSpecs {
			n := int64(1)
			for _, d := range s.Shape {
				n *= d
			}
			if int64(len(vals[i])) != n {
				t.Fatalf("tensor %s: %d values, want %d", s.Name, len(vals[i]), n)
			}
		}
	})
}
