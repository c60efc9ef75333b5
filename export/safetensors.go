package export

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/thinkgen/thinkgen/model"
)

// part names the tensors of one exported safetensors file: the specs it
// holds (their names in the checkpoint and in the export are the same) and
// the header metadata it carries.
type part struct {
	specs []model.Spec
	meta  map[string]string
	// prefix goes before every tensor's name in the written file (PEFT's
	// "base_model.model." for adapters).
	prefix string
}

// repack writes the tensors of p from src into a new safetensors file at
// path, in dtype d, after checking each against its spec: present, float32
// (F32), of the spec's shape, with its byte count. In float32 the bytes are
// copied as they are, so the exported tensors are bit-identical to the
// checkpoint's; a half-precision dtype converts them (DType.narrow).
func repack(path string, src *model.SafetensorsFile, p part, d DType) error {
	type item struct {
		name string
		e    model.SafetensorsEntry
	}
	items := make([]item, 0, len(p.specs))
	for _, s := range p.specs {
		e, ok := src.Tensors[s.Name]
		if !ok {
			return fmt.Errorf("%s: tensor %s is missing (want shape %v)", src.Path, s.Name, s.Shape)
		}
		if e.DType != "F32" {
			return fmt.Errorf("%s: tensor %s has dtype %s, want F32", src.Path, s.Name, e.DType)
		}
		if !slices.Equal(e.Shape, s.Shape) {
			return fmt.Errorf("%s: tensor %s has shape %v, want %v", src.Path, s.Name, e.Shape, s.Shape)
		}
		if n := e.Offsets[1] - e.Offsets[0]; n != uint64(4*s.Numel()) {
			return fmt.Errorf("%s: tensor %s holds %d bytes, want %d", src.Path, s.Name, n, 4*s.Numel())
		}
		items = append(items, item{s.Name, e})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].name < items[j].name })
	out := make([]stOut, len(items))
	for i, it := range items {
		out[i] = stOut{
			name:  p.prefix + it.name,
			dtype: d.safetensors(),
			shape: it.e.Shape,
			size:  (it.e.Offsets[1] - it.e.Offsets[0]) / 4 * uint64(d.size()),
			write: func(w io.Writer) error {
				r := src.Section(it.e)
				if d.orFloat32() == Float32 {
					_, err := io.Copy(w, r)
					return err
				}
				if err := copyNarrowed(w, r, d); err != nil {
					return fmt.Errorf("tensor %s: %w", it.name, err)
				}
				return nil
			},
		}
	}
	return writeSafetensors(path, p.meta, out)
}

// stOut is one tensor of a safetensors file being written: its header
// entry (name, dtype, shape, byte count) and what writes its bytes.
type stOut struct {
	name  string
	dtype string
	shape []int64
	size  uint64
	write func(w io.Writer) error
}

// writeSafetensors writes a new safetensors file at path: meta as its
// __metadata__ (none when empty), then tensors in the order given, their
// data 8-byte aligned as the reference writer pads them. Each tensor's
// write must write exactly its size bytes.
func writeSafetensors(path string, meta map[string]string, tensors []stOut) error {
	var h bytes.Buffer
	h.WriteByte('{')
	if len(meta) > 0 {
		m, err := json.Marshal(meta)
		if err != nil {
			return err
		}
		h.WriteString(`"__metadata__":`)
		h.Write(m)
	}
	var off uint64
	for i, t := range tensors {
		if i > 0 || len(meta) > 0 {
			h.WriteByte(',')
		}
		name, _ := json.Marshal(t.name)
		body, err := json.Marshal(model.SafetensorsEntry{DType: t.dtype, Shape: t.shape, Offsets: [2]uint64{off, off + t.size}})
		if err != nil {
			return err
		}
		h.Write(name)
		h.WriteByte(':')
		h.Write(body)
		off += t.size
	}
	h.WriteByte('}')
	if pad := (8 - h.Len()%8) % 8; pad > 0 {
		h.WriteString(strings.Repeat(" ", pad))
	}

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	err = binary.Write(w, binary.LittleEndian, uint64(h.Len()))
	if err == nil {
		_, err = w.Write(h.Bytes())
	}
	for _, t := range tensors {
		if err != nil {
			break
		}
		err = t.write(w)
	}
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// copyNarrowed copies the float32 values of r to w converted to d, a chunk
// at a time, so memory does not grow with the tensor.
func copyNarrowed(w io.Writer, r io.Reader, d DType) error {
	const chunk = 1 << 18 // values
	src := make([]byte, 4*chunk)
	dst := make([]byte, d.size()*chunk)
	for base := 0; ; base += chunk {
		n, err := io.ReadFull(r, src)
		if n%4 != 0 {
			return fmt.Errorf("%d bytes is not a whole number of float32 values", base*4+n)
		}
		if n > 0 {
			if nerr := d.narrow(dst, src[:n], base); nerr != nil {
				return nerr
			}
			if _, werr := w.Write(dst[:n/4*d.size()]); werr != nil {
				return werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
