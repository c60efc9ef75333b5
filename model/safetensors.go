package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nlpodyssey/safetensors"
	"github.com/sugarme/gotch/ts"
	"github.com/x448/float16"
)

// SaveSafetensors writes every parameter of p to path in the safetensors
// format (float32, little-endian), with meta as the header's __metadata__.
// The file is written to a temporary name and renamed, so a reader never sees
// a partial checkpoint.
func SaveSafetensors(path string, p *Params, meta map[string]string) error {
	names := make([]string, len(p.specs))
	for i, s := range p.specs {
		names[i] = s.Name
	}
	return SaveTensors(path, names, p.list, meta)
}

// SaveTensors writes named float32 tensors to a safetensors file at path
// (atomically, like SaveSafetensors).
func SaveTensors(path string, names []string, tensors []*ts.Tensor, meta map[string]string) error {
	views := make(map[string]safetensors.TensorView, len(names))
	for i, name := range names {
		vals := float32s(tensors[i])
		raw := make([]byte, 4*len(vals))
		for j, v := range vals {
			binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(v))
		}
		size := tensors[i].MustSize()
		shape := make([]uint64, len(size))
		for j, d := range size {
			shape[j] = uint64(d)
		}
		v, err := safetensors.NewTensorView(safetensors.F32, shape, raw)
		if err != nil {
			return fmt.Errorf("save %s: tensor %s: %w", path, name, err)
		}
		views[name] = v
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := safetensors.SerializeToWriter(views, meta, tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}

// ReadSafetensorsMeta returns the __metadata__ of a safetensors file.
func ReadSafetensorsMeta(path string) (map[string]string, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	_, md, err := safetensors.ReadMetadata(buf)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return md.Metadata(), nil
}

// LoadTensors copies the named tensors of a safetensors file into the given
// tensors (same shapes), as LoadSafetensors does for a module's parameters.
func LoadTensors(path string, names []string, tensors []*ts.Tensor) (map[string]string, error) {
	specs := make([]Spec, len(names))
	byName := make(map[string]*ts.Tensor, len(names))
	for i, n := range names {
		specs[i] = Spec{Name: n, Shape: tensors[i].MustSize()}
		byName[n] = tensors[i]
	}
	return LoadSafetensors(path, &Params{specs: specs, byName: byName, list: tensors})
}

// LoadSafetensors copies the tensors of the safetensors file at path into
// p. Every parameter of p must be present with its exact shape; the error
// names the first tensor that is missing, mis-shaped or of an unsupported
// dtype, and names unexpected extra tensors. F32, F16, BF16 and F64 files
// are converted to float32. It returns the file's metadata.
func LoadSafetensors(path string, p *Params) (map[string]string, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	vals, meta, err := decodeSafetensors(buf, p.specs)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	for i, s := range p.specs {
		setFloat32s(p.list[i], vals[i], s.Shape)
	}
	return meta, nil
}

// decodeSafetensors decodes buf, the bytes of a safetensors file, into the
// float32 values of each spec's tensor (in specs' order) and the file's
// metadata: every spec present with its exact shape and a float dtype, no
// other tensor. buf is untrusted: it allocates no more than the values it
// returns and the header it parses.
func decodeSafetensors(buf []byte, specs []Spec) ([][]float32, map[string]string, error) {
	st, err := safetensors.Deserialize(buf)
	if err != nil {
		return nil, nil, err
	}
	_, md, err := safetensors.ReadMetadata(buf)
	if err != nil {
		return nil, nil, err
	}
	want := make(map[string]bool, len(specs))
	for _, s := range specs {
		want[s.Name] = true
	}
	var extra []string
	for _, name := range st.Names() {
		if !want[name] {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return nil, nil, fmt.Errorf("unexpected tensors %s (the model has no such parameters)", strings.Join(extra, ", "))
	}
	out := make([][]float32, len(specs))
	for i, s := range specs {
		v, ok := st.Tensor(s.Name)
		if !ok {
			return nil, nil, fmt.Errorf("tensor %s is missing (want shape %v)", s.Name, s.Shape)
		}
		if !sameShape(v.Shape(), s.Shape) {
			return nil, nil, fmt.Errorf("tensor %s has shape %v, want %v", s.Name, v.Shape(), s.Shape)
		}
		if out[i], err = decodeFloats(v); err != nil {
			return nil, nil, fmt.Errorf("tensor %s: %w", s.Name, err)
		}
	}
	return out, md.Metadata(), nil
}

func sameShape(got []uint64, want []int64) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if int64(got[i]) != want[i] {
			return false
		}
	}
	return true
}

func decodeFloats(v safetensors.TensorView) ([]float32, error) {
	raw := v.Data()
	switch v.DType() {
	case safetensors.F32:
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out, nil
	case safetensors.F64:
		out := make([]float32, len(raw)/8)
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
		return out, nil
	case safetensors.BF16:
		out := make([]float32, len(raw)/2)
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
		return out, nil
	case safetensors.F16:
		out := make([]float32, len(raw)/2)
		for i := range out {
			out[i] = float16.Frombits(binary.LittleEndian.Uint16(raw[2*i:])).Float32()
		}
		return out, nil
	default:
		return nil, fmt.Errorf("dtype %s is not a float type this loader reads (F32, F64, F16, BF16)", v.DType())
	}
}

// CheckSafetensorsHeader reads only the header of the safetensors file at
// path and checks it against specs: every spec present with its exact
// shape and a float dtype this package reads, and no tensor the specs do
// not name. It lets a loader refuse a file before allocating anything; the
// error names the file and the first offending tensor.
func CheckSafetensorsHeader(path string, specs []Spec) error {
	st, err := OpenSafetensors(path)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, s := range specs {
		h, ok := st.Tensors[s.Name]
		if !ok {
			return fmt.Errorf("%s: tensor %s is missing (want shape %v)", path, s.Name, s.Shape)
		}
		if !slices.Equal(h.Shape, s.Shape) {
			return fmt.Errorf("%s: tensor %s has shape %v, want %v", path, s.Name, h.Shape, s.Shape)
		}
		switch h.DType {
		case "F32", "F64", "F16", "BF16":
		default:
			return fmt.Errorf("%s: tensor %s has dtype %s, want F32, F64, F16 or BF16", path, s.Name, h.DType)
		}
	}
	if extra := st.ExtraTensors(specs); len(extra) > 0 {
		return fmt.Errorf("%s: unexpected tensors %s (the model has no such parameters)", path, strings.Join(extra, ", "))
	}
	return nil
}
