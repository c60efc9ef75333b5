package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/x448/float16"

	"github.com/thinkgen/thinkgen/config"
)

// The files of a transformers checkpoint folder.
const (
	HFConfigFile  = "config.json"
	HFWeightsFile = "model.safetensors"
	HFIndexFile   = "model.safetensors.index.json"
)

// maxSafetensorsHeader bounds a safetensors header (the format's own
// limit is 100 MB).
const maxSafetensorsHeader = 100 << 20

// SafetensorsEntry is one tensor of a safetensors header.
type SafetensorsEntry struct {
	DType   string    `json:"dtype"`
	Shape   []int64   `json:"shape"`
	Offsets [2]uint64 `json:"data_offsets"`
}

// Bytes is the number of data bytes the entry spans.
func (e SafetensorsEntry) Bytes() uint64 { return e.Offsets[1] - e.Offsets[0] }

// SafetensorsFile is an open safetensors file: its header, with the data
// left on disk (a tensor is read by byte range, so memory does not grow
// with the checkpoint).
type SafetensorsFile struct {
	Path    string
	Tensors map[string]SafetensorsEntry
	f       *os.File
	data    int64 // offset of the data section
}

// OpenSafetensors reads the header of the safetensors file at path.
func OpenSafetensors(path string) (*SafetensorsFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st := &SafetensorsFile{Path: path, f: f}
	if err := st.readHeader(); err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return st, nil
}

func (st *SafetensorsFile) readHeader() error {
	var n uint64
	if err := binary.Read(st.f, binary.LittleEndian, &n); err != nil {
		return fmt.Errorf("header length: %w", err)
	}
	if n > maxSafetensorsHeader {
		return fmt.Errorf("header of %d bytes (limit %d)", n, maxSafetensorsHeader)
	}
	info, err := st.f.Stat()
	if err != nil {
		return err
	}
	if n > uint64(info.Size())-8 {
		return fmt.Errorf("header of %d bytes in a file of %d", n, info.Size())
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(st.f, buf); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(buf, &raw); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	st.data = 8 + int64(n)
	size := uint64(info.Size() - st.data)
	st.Tensors = make(map[string]SafetensorsEntry, len(raw))
	for name, v := range raw {
		if name == "__metadata__" {
			continue
		}
		var e SafetensorsEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("tensor %s: %w", name, err)
		}
		if e.Offsets[0] > e.Offsets[1] || e.Offsets[1] > size {
			return fmt.Errorf("tensor %s: data offsets %v outside the %d data bytes", name, e.Offsets, size)
		}
		st.Tensors[name] = e
	}
	return nil
}

// Section returns a reader of entry e's data bytes.
func (st *SafetensorsFile) Section(e SafetensorsEntry) *io.SectionReader {
	return io.NewSectionReader(st.f, st.data+int64(e.Offsets[0]), int64(e.Bytes()))
}

// Close closes the file.
func (st *SafetensorsFile) Close() error { return st.f.Close() }

// ExtraTensors lists, sorted, the tensors of st that no spec names.
func (st *SafetensorsFile) ExtraTensors(specs []Spec) []string {
	known := make(map[string]bool, len(specs))
	for _, s := range specs {
		known[s.Name] = true
	}
	var extra []string
	for name := range st.Tensors {
		if !known[name] {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	return extra
}

// HFTensor is one parameter found in a checkpoint folder: its name and
// shape, and the file and header entry holding its values.
type HFTensor struct {
	Name  string
	Shape []int64
	File  *SafetensorsFile
	Entry SafetensorsEntry
}

// Reader returns a reader of the tensor's bytes, of dtype t.Entry.DType.
func (t HFTensor) Reader() *io.SectionReader { return t.File.Section(t.Entry) }

// Float32s reads the tensor's values widened to float32.
func (t HFTensor) Float32s() ([]float32, error) {
	n := Spec{Shape: t.Shape}.Numel()
	var buf bytes.Buffer
	buf.Grow(int(4 * n))
	if err := CopyWidened(&buf, t.Reader(), t.Entry.DType); err != nil {
		return nil, fmt.Errorf("tensor %s of %s: %w", t.Name, t.File.Path, err)
	}
	raw := buf.Bytes()
	if int64(len(raw)) != 4*n {
		return nil, fmt.Errorf("tensor %s of %s: %d bytes widened, want %d", t.Name, t.File.Path, len(raw), 4*n)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out, nil
}

// CopyWidened copies the values of r, of safetensors dtype dt (F32, BF16
// or F16), to w as little-endian float32, a chunk at a time. Widening is
// exact.
func CopyWidened(w io.Writer, r io.Reader, dt string) error {
	if dt == "F32" {
		_, err := io.Copy(w, r)
		return err
	}
	const chunk = 1 << 18 // values
	src := make([]byte, 2*chunk)
	dst := make([]byte, 4*chunk)
	for {
		n, err := io.ReadFull(r, src)
		if n%2 != 0 {
			return fmt.Errorf("an odd number of bytes of %s", dt)
		}
		for i := 0; i < n/2; i++ {
			b := binary.LittleEndian.Uint16(src[2*i:])
			var v uint32
			if dt == "BF16" {
				v = uint32(b) << 16
			} else {
				v = math.Float32bits(float16.Frombits(b).Float32())
			}
			binary.LittleEndian.PutUint32(dst[4*i:], v)
		}
		if _, werr := w.Write(dst[:2*n]); werr != nil {
			return werr
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// WeightDType is the dtype a checkpoint's config.json allows its weights:
// the safetensors name (F32, BF16, F16; "" allows any of them) and the
// config key that gave it, for errors.
type WeightDType struct {
	ST  string
	Key string
}

// ConfigDType returns the weights' dtype a config.json names: dtype
// (transformers ≥ 4.56) or torch_dtype (earlier versions), the first
// given.
func ConfigDType(path, dtype, torchDType string) (WeightDType, error) {
	d := WeightDType{Key: "dtype"}
	name := dtype
	if name == "" {
		d.Key, name = "torch_dtype", torchDType
	}
	if name == "" {
		return WeightDType{}, nil
	}
	st := map[string]string{"float32": "F32", "bfloat16": "BF16", "float16": "F16"}[name]
	if st == "" {
		return WeightDType{}, fmt.Errorf("%s: %s %q, want float32, bfloat16 or float16", path, d.Key, name)
	}
	d.ST = st
	return d, nil
}

// HFFiles opens the safetensors files of checkpoint folders and closes
// them together.
type HFFiles struct {
	open []*SafetensorsFile
}

// Open opens the safetensors file at path, to be closed by Close.
func (h *HFFiles) Open(path string) (*SafetensorsFile, error) {
	st, err := OpenSafetensors(path)
	if err != nil {
		return nil, err
	}
	h.open = append(h.open, st)
	return st, nil
}

// Close closes every file Open opened.
func (h *HFFiles) Close() {
	for _, st := range h.open {
		st.Close()
	}
	h.open = nil
}

// Weights checks the weights of a transformers folder — the shards
// model.safetensors.index.json lists, or model.safetensors — against
// specs (exactly those tensors) and dtype dt, and returns where each
// tensor is (in specs' order) and the number of files. An error names
// the file and the tensor.
func (h *HFFiles) Weights(dir string, specs []Spec, dt WeightDType) ([]HFTensor, int, error) {
	indexPath := filepath.Join(dir, HFIndexFile)
	data, err := os.ReadFile(indexPath)
	if errors.Is(err, fs.ErrNotExist) {
		ts, err := h.File(filepath.Join(dir, HFWeightsFile), specs, dt)
		return ts, 1, err
	}
	if err != nil {
		return nil, 0, err
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", indexPath, err)
	}
	known := make(map[string]bool, len(specs))
	for _, s := range specs {
		known[s.Name] = true
	}
	var extra []string
	byShard := map[string][]string{}
	for name, shard := range index.WeightMap {
		if !known[name] {
			extra = append(extra, name)
		}
		if !filepath.IsLocal(shard) || filepath.Base(shard) != shard {
			return nil, 0, fmt.Errorf("%s: tensor %s is in %q, which is not a file of %s", indexPath, name, shard, dir)
		}
		byShard[shard] = append(byShard[shard], name)
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return nil, 0, fmt.Errorf("%s: unexpected tensors %s (the configuration has no such parameters)", indexPath, strings.Join(extra, ", "))
	}
	shards := make([]string, 0, len(byShard))
	for s := range byShard {
		shards = append(shards, s)
	}
	slices.Sort(shards)
	open := make(map[string]*SafetensorsFile, len(shards))
	for _, s := range shards {
		names := byShard[s]
		slices.Sort(names)
		p := filepath.Join(dir, s)
		if _, err := os.Stat(p); err != nil {
			return nil, 0, fmt.Errorf("%s: shard %s is missing (it holds tensor %s and %d more)", indexPath, p, names[0], len(names)-1)
		}
		if open[s], err = h.Open(p); err != nil {
			return nil, 0, err
		}
	}
	out := make([]HFTensor, 0, len(specs))
	for _, s := range specs {
		shard, ok := index.WeightMap[s.Name]
		if !ok {
			return nil, 0, fmt.Errorf("%s: tensor %s is missing (want shape %v)", indexPath, s.Name, s.Shape)
		}
		t, err := CheckHFTensor(open[shard], s, dt)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, t)
	}
	return out, len(shards), nil
}

// File checks one safetensors file against specs (exactly those tensors)
// and dtype dt, and returns where each tensor is, in specs' order.
func (h *HFFiles) File(path string, specs []Spec, dt WeightDType) ([]HFTensor, error) {
	st, err := h.Open(path)
	if err != nil {
		return nil, err
	}
	if extra := st.ExtraTensors(specs); len(extra) > 0 {
		return nil, fmt.Errorf("%s: unexpected tensors %s (the configuration has no such parameters)", path, strings.Join(extra, ", "))
	}
	out := make([]HFTensor, 0, len(specs))
	for _, s := range specs {
		t, err := CheckHFTensor(st, s, dt)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// CheckHFTensor checks spec s's tensor in st: present, of s's shape, of
// dtype dt.ST (or, when that is "", of a float dtype CopyWidened reads),
// holding the bytes its shape and dtype take.
func CheckHFTensor(st *SafetensorsFile, s Spec, dt WeightDType) (HFTensor, error) {
	e, ok := st.Tensors[s.Name]
	if !ok {
		return HFTensor{}, fmt.Errorf("%s: tensor %s is missing (want shape %v)", st.Path, s.Name, s.Shape)
	}
	size := map[string]uint64{"F32": 4, "BF16": 2, "F16": 2}[e.DType]
	switch {
	case size == 0:
		return HFTensor{}, fmt.Errorf("%s: tensor %s has dtype %s, want F32, BF16 or F16", st.Path, s.Name, e.DType)
	case dt.ST != "" && e.DType != dt.ST:
		return HFTensor{}, fmt.Errorf("%s: tensor %s has dtype %s, but config.json's %s allows %s", st.Path, s.Name, e.DType, dt.Key, dt.ST)
	case !slices.Equal(e.Shape, s.Shape):
		return HFTensor{}, fmt.Errorf("%s: tensor %s has shape %v, want %v", st.Path, s.Name, e.Shape, s.Shape)
	case e.Bytes() != size*uint64(s.Numel()):
		return HFTensor{}, fmt.Errorf("%s: tensor %s holds %d bytes, want %d", st.Path, s.Name, e.Bytes(), size*uint64(s.Numel()))
	}
	return HFTensor{Name: s.Name, Shape: s.Shape, File: st, Entry: e}, nil
}

// HFText is the part of a transformers Qwen3 text config that fixes the
// shapes of its weights, as Qwen3ForCausalLM's config.json and
// Qwen3VLForConditionalGeneration's text_config both spell it.
type HFText struct {
	VocabSize         int     `json:"vocab_size"`
	HiddenSize        int     `json:"hidden_size"`
	IntermediateSize  int     `json:"intermediate_size"`
	NumHiddenLayers   int     `json:"num_hidden_layers"`
	NumAttentionHeads int     `json:"num_attention_heads"`
	NumKeyValueHeads  int     `json:"num_key_value_heads"`
	HeadDim           int     `json:"head_dim"`
	RMSNormEps        float64 `json:"rms_norm_eps"`
	RopeTheta         float64 `json:"rope_theta"`
}

// HFTextOf is the text config of model section c with vocabulary vocab.
func HFTextOf(c config.MLLM, vocab int) HFText {
	return HFText{VocabSize: vocab, HiddenSize: c.Hidden, IntermediateSize: c.FFN, NumHiddenLayers: c.Layers,
		NumAttentionHeads: c.Heads, NumKeyValueHeads: c.KVHeads, HeadDim: c.HeadDim, RMSNormEps: c.RMSNormEps, RopeTheta: c.RopeTheta}
}

// ConfigField is one key of a checkpoint's config.json, its value, the
// value the configuration gives it and the configuration key that does.
type ConfigField struct {
	Key       string
	Got, Want any
	Ours      string
}

// Fields lists h's keys (under prefix, "" or "text_config.") against
// model section c with vocabulary vocab.
func (h HFText) Fields(prefix string, c config.MLLM, vocab int) []ConfigField {
	w := HFTextOf(c, vocab)
	return []ConfigField{
		{prefix + "vocab_size", h.VocabSize, w.VocabSize, "model.mllm.vocab (or the tokenizer's size)"},
		{prefix + "hidden_size", h.HiddenSize, w.HiddenSize, "model.mllm.hidden"},
		{prefix + "intermediate_size", h.IntermediateSize, w.IntermediateSize, "model.mllm.ffn"},
		{prefix + "num_hidden_layers", h.NumHiddenLayers, w.NumHiddenLayers, "model.mllm.layers"},
		{prefix + "num_attention_heads", h.NumAttentionHeads, w.NumAttentionHeads, "model.mllm.heads"},
		{prefix + "num_key_value_heads", h.NumKeyValueHeads, w.NumKeyValueHeads, "model.mllm.kv_heads"},
		{prefix + "head_dim", h.HeadDim, w.HeadDim, "model.mllm.head_dim"},
		{prefix + "rope_theta", h.RopeTheta, w.RopeTheta, "model.mllm.rope_theta"},
		{prefix + "rms_norm_eps", h.RMSNormEps, w.RMSNormEps, "model.mllm.rms_norm_eps"},
	}
}

// Mismatch returns the first field whose value differs from the
// configuration's, and whether there is one.
func Mismatch(fields []ConfigField) (ConfigField, bool) {
	for _, f := range fields {
		if !reflect.DeepEqual(f.Got, f.Want) {
			return f, true
		}
	}
	return ConfigField{}, false
}
