package export

import (
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
	"sort"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/x448/float16"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// The files of a transformers checkpoint folder that ImportHF reads.
const (
	hfConfig  = "config.json"
	hfWeights = "model.safetensors"
	hfIndex   = "model.safetensors.index.json"
	hfTok     = "tokenizer.json"
)

// HFSources names the folders thinkgen import reads.
type HFSources struct {
	// MLLM is a transformers Qwen3ForCausalLM folder: config.json, the
	// weights as model.safetensors or shards listed by
	// model.safetensors.index.json, tokenizer.json, and optionally
	// visual.safetensors (the vision patch embedder an export writes).
	MLLM string
	// VAE is a diffusers AutoencoderKL folder (latent: vae only); empty
	// initialises one.
	VAE string
	// DiT is a folder holding transformer/ and connector/ as an export
	// writes them; empty initialises both.
	DiT string
	// Seed initialises what no folder gives.
	Seed uint64
}

// Imported says where each part of an imported bundle came from.
type Imported struct {
	// Shards is the number of safetensors files the MLLM's weights were
	// read from.
	Shards int
	// Initialised lists the parts no folder gave (vision, connector, dit,
	// vae), initialised from the seed.
	Initialised []string
}

// source is one tensor to be written: its name and shape in the bundle,
// and where its values are (a tensor of an open safetensors file).
type source struct {
	name  string
	shape []int64
	st    *stFile
	e     stEntry
}

// bundleFile is one safetensors file of the bundle and its tensors.
type bundleFile struct {
	name    string
	tensors []source
}

// ImportHF writes a bundle (model.Bundle.Save's layout) into out from a
// transformers Qwen3 folder and optionally a diffusers VAE and a DiT
// folder, for the architecture cfg's model section describes. Every
// folder is checked before anything is written: each config.json against
// cfg (an error names the file and key), every shard of the index
// present, every tensor present with the shape cfg gives and the dtype
// config.json's torch_dtype allows (an error names the file and tensor),
// no tensor cfg does not have. The weights are then copied a tensor at a
// time, a chunk at a time, widened to float32 as bundles hold them, so
// memory does not grow with the checkpoint. Parts no folder gives are
// initialised from src.Seed (which needs libtorch: call it inside
// libtorch.Run). out must not exist or be empty; the bundle is written
// beside it and renamed into place at the end.
func ImportHF(cfg *config.Config, src HFSources, out string) (*Imported, error) {
	if err := CheckOut(out); err != nil {
		return nil, err
	}
	if src.MLLM == "" {
		return nil, errors.New("import: no MLLM folder")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if cfg.Model.MLLM.IsQwen3VL() {
		return nil, errors.New("import: model.mllm.vision is qwen3vl, but import reads Qwen3ForCausalLM folders (a Qwen3VLForConditionalGeneration folder loads through model.(*MLLM).LoadQwen3VL)")
	}
	if src.VAE != "" && cfg.Model.DiT.Latent != "vae" {
		return nil, fmt.Errorf("import: a VAE folder (%s) for model.dit.latent %q (want vae)", src.VAE, cfg.Model.DiT.Latent)
	}
	tok, err := tokenizer.LoadFile(filepath.Join(src.MLLM, hfTok))
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", src.MLLM, err)
	}
	if _, err := model.SpecialIDsOf(tok); err != nil {
		return nil, fmt.Errorf("import %s: %s: %w", src.MLLM, hfTok, err)
	}
	vocab := cfg.Model.MLLM.Vocab
	if vocab == 0 {
		vocab = tok.VocabSize()
	}
	if vocab < tok.VocabSize() {
		return nil, fmt.Errorf("import %s: model.mllm.vocab %d is smaller than %s's %d", src.MLLM, vocab, hfTok, tok.VocabSize())
	}
	var open []*stFile
	defer func() {
		for _, st := range open {
			st.Close()
		}
	}()
	openST := func(path string) (*stFile, error) {
		st, err := openSafetensors(path)
		if err != nil {
			return nil, err
		}
		open = append(open, st)
		return st, nil
	}

	// Check everything before writing anything.
	text, vision := splitVision(model.MLLMSpecs(cfg.Model.MLLM, vocab, 3))
	dt, err := checkQwen3Config(filepath.Join(src.MLLM, hfConfig), cfg.Model.MLLM, vocab)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	rep := &Imported{}
	mllm, shards, err := planShards(src.MLLM, text, dt, openST)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	rep.Shards = shards
	files := []bundleFile{{"mllm.safetensors", mllm}}
	var toInit []string
	if vp := filepath.Join(src.MLLM, fileVision); fileExists(vp) {
		vs, err := planFile(vp, vision, "", openST)
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		files[0].tensors = append(files[0].tensors, vs...)
	} else {
		toInit = append(toInit, "vision")
	}
	connSpecs := model.ConnectorSpecs(cfg.Model.MLLM.Hidden, cfg.Model.DiT.Hidden, cfg.Model.Connector.Prepad)
	ditSpecs := model.DiTSpecs(cfg.Model.DiT)
	if src.DiT != "" {
		for _, p := range []struct {
			file, dir string
			want      map[string]any
			specs     []model.Spec
		}{
			{"dit.safetensors", "transformer", ditConfig(cfg), ditSpecs},
			{"connector.safetensors", "connector", connectorConfig(cfg), connSpecs},
		} {
			dir := filepath.Join(src.DiT, p.dir)
			if err := checkDiffusersConfig(filepath.Join(dir, "config.json"), p.want); err != nil {
				return nil, fmt.Errorf("import: %w", err)
			}
			ts, err := planFile(filepath.Join(dir, model.VAEWeightsFile), p.specs, "", openST)
			if err != nil {
				return nil, fmt.Errorf("import: %w", err)
			}
			files = append(files, bundleFile{p.file, ts})
		}
	} else {
		toInit = append(toInit, "connector", "dit")
	}
	var vaeConfig []byte
	if cfg.Model.DiT.Latent == "vae" {
		if src.VAE != "" {
			cp := filepath.Join(src.VAE, model.VAEConfigFile)
			if err := model.CheckBundleVAE(src.VAE, cfg.Model); err != nil {
				return nil, fmt.Errorf("import: %w", err)
			}
			if vaeConfig, err = os.ReadFile(cp); err != nil {
				return nil, fmt.Errorf("import: %w", err)
			}
			c, err := model.ParseVAEConfig(cp, vaeConfig)
			if err != nil {
				return nil, fmt.Errorf("import: %w", err)
			}
			ts, err := planFile(filepath.Join(src.VAE, model.VAEWeightsFile), model.VAESpecs(c), "", openST)
			if err != nil {
				return nil, fmt.Errorf("import: %w", err)
			}
			files = append(files, bundleFile{"vae.safetensors", ts})
		} else {
			toInit = append(toInit, "vae")
		}
	}

	// Write into a temporary directory beside out, renamed at the end.
	tmp, err := tempBeside(out, "import")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if len(toInit) > 0 {
		inits, err := initParts(tmp, cfg, vocab, tok, toInit, src.Seed, openST)
		if err != nil {
			return nil, fmt.Errorf("import: initialising %s: %w", strings.Join(toInit, ", "), err)
		}
		for _, f := range inits {
			i := slices.IndexFunc(files, func(g bundleFile) bool { return g.name == f.name })
			if i < 0 {
				files = append(files, f)
			} else {
				files[i].tensors = append(files[i].tensors, f.tensors...)
			}
		}
		if slices.Contains(toInit, "vae") {
			if vaeConfig, err = os.ReadFile(filepath.Join(tmp, "init", "vae", model.VAEConfigFile)); err != nil {
				return nil, fmt.Errorf("import: %w", err)
			}
		}
		rep.Initialised = toInit
	}
	meta := map[string]string{"format": "thinkgen", "step": "0"}
	for _, f := range files {
		if err := writeFloat32(filepath.Join(tmp, f.name), f.tensors, meta); err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
	}
	if vaeConfig != nil {
		if err := os.WriteFile(filepath.Join(tmp, "vae.json"), vaeConfig, 0o644); err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
	}
	if err := tokenizer.SaveFile(filepath.Join(tmp, hfTok), tok); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(tmp, "init")); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if err := model.WriteBundleManifest(tmp, 0, cfg); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if err := moveInto(tmp, out, "import"); err != nil {
		return nil, err
	}
	return rep, nil
}

// checkQwen3Config checks a transformers Qwen3 config.json against model
// section c (of vocabulary vocab) and returns the safetensors dtype its
// torch_dtype (or dtype, as newer transformers spell it) allows, "" when
// it names none.
func checkQwen3Config(path string, c config.MLLM, vocab int) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var q qwen3Config
	if err := json.Unmarshal(data, &q); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	var d struct {
		DType string `json:"dtype"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if q.ModelType != "qwen3" {
		return "", fmt.Errorf("%s: model_type %q, want qwen3 (Qwen3ForCausalLM)", path, q.ModelType)
	}
	for _, f := range []struct {
		key       string
		got, want any
		cfgKey    string
	}{
		{"vocab_size", q.VocabSize, vocab, "model.mllm.vocab (or the tokenizer's size)"},
		{"hidden_size", q.HiddenSize, c.Hidden, "model.mllm.hidden"},
		{"intermediate_size", q.IntermediateSize, c.FFN, "model.mllm.ffn"},
		{"num_hidden_layers", q.NumHiddenLayers, c.Layers, "model.mllm.layers"},
		{"num_attention_heads", q.NumAttentionHeads, c.Heads, "model.mllm.heads"},
		{"num_key_value_heads", q.NumKeyValueHeads, c.KVHeads, "model.mllm.kv_heads"},
		{"head_dim", q.HeadDim, c.HeadDim, "model.mllm.head_dim"},
		{"tie_word_embeddings", q.TieWordEmbeddings, c.TieEmbeddings, "model.mllm.tie_embeddings"},
		{"rope_theta", q.RopeTheta, c.RopeTheta, "model.mllm.rope_theta"},
		{"rms_norm_eps", q.RMSNormEps, c.RMSNormEps, "model.mllm.rms_norm_eps"},
		{"attention_bias", q.AttentionBias, false, "thinkgen's Qwen3 (no attention bias)"},
		{"use_sliding_window", q.UseSlidingWindow, false, "thinkgen's Qwen3 (full attention)"},
		{"hidden_act", q.HiddenAct, "silu", "thinkgen's Qwen3 (SwiGLU)"},
		{"rope_scaling", q.RopeScaling != nil, false, "thinkgen's Qwen3 (plain RoPE, rope_scaling null)"},
	} {
		if f.got != f.want {
			return "", fmt.Errorf("%s: %s is %v, %s is %v", path, f.key, f.got, f.cfgKey, f.want)
		}
	}
	name := q.TorchDType
	if name == "" {
		name = d.DType
	}
	if name == "" {
		return "", nil
	}
	dt, err := ParseDType(name)
	if err != nil {
		return "", fmt.Errorf("%s: torch_dtype: %w", path, err)
	}
	return dt.safetensors(), nil
}

// checkDiffusersConfig checks that the config.json at path has every key
// of want (an export's config of the same part) with the same value,
// _diffusers_version aside.
func checkDiffusersConfig(path string, want map[string]any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	// Compare as JSON reads them (numbers are float64).
	raw, err := json.Marshal(want)
	if err != nil {
		return err
	}
	var w map[string]any
	if err := json.Unmarshal(raw, &w); err != nil {
		return err
	}
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "_diffusers_version" {
			continue
		}
		if !reflect.DeepEqual(got[k], w[k]) {
			return fmt.Errorf("%s: %s is %v, the configuration's model section gives %v", path, k, got[k], w[k])
		}
	}
	return nil
}

// planShards checks the weights of a transformers folder — the shards
// model.safetensors.index.json lists, or model.safetensors — against
// specs and dtype dt ("" allows any float dtype), and returns where each
// tensor is and the number of files.
func planShards(dir string, specs []model.Spec, dt string, openST func(string) (*stFile, error)) ([]source, int, error) {
	indexPath := filepath.Join(dir, hfIndex)
	data, err := os.ReadFile(indexPath)
	if errors.Is(err, fs.ErrNotExist) {
		ts, err := planFile(filepath.Join(dir, hfWeights), specs, dt, openST)
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
	sort.Strings(shards)
	open := make(map[string]*stFile, len(shards))
	for _, s := range shards {
		names := byShard[s]
		slices.Sort(names)
		p := filepath.Join(dir, s)
		if !fileExists(p) {
			return nil, 0, fmt.Errorf("%s: shard %s is missing (it holds tensor %s and %d more)", indexPath, p, names[0], len(names)-1)
		}
		if open[s], err = openST(p); err != nil {
			return nil, 0, err
		}
	}
	out := make([]source, 0, len(specs))
	for _, s := range specs {
		shard, ok := index.WeightMap[s.Name]
		if !ok {
			return nil, 0, fmt.Errorf("%s: tensor %s is missing (want shape %v)", indexPath, s.Name, s.Shape)
		}
		src, err := checkTensor(open[shard], s, dt)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, src)
	}
	return out, len(shards), nil
}

// planFile checks one safetensors file against specs (exactly those
// tensors) and dtype dt ("" allows F32, BF16 and F16).
func planFile(path string, specs []model.Spec, dt string, openST func(string) (*stFile, error)) ([]source, error) {
	st, err := openST(path)
	if err != nil {
		return nil, err
	}
	if extra := extraTensors(st, specs); len(extra) > 0 {
		return nil, fmt.Errorf("%s: unexpected tensors %s (the configuration has no such parameters)", path, strings.Join(extra, ", "))
	}
	out := make([]source, 0, len(specs))
	for _, s := range specs {
		src, err := checkTensor(st, s, dt)
		if err != nil {
			return nil, err
		}
		out = append(out, src)
	}
	return out, nil
}

// checkTensor checks spec s's tensor in st: present, of s's shape, of
// dtype dt (or, when dt is "", of a float dtype the copy widens), holding
// the bytes its shape and dtype take.
func checkTensor(st *stFile, s model.Spec, dt string) (source, error) {
	e, ok := st.tensors[s.Name]
	if !ok {
		return source{}, fmt.Errorf("%s: tensor %s is missing (want shape %v)", st.path, s.Name, s.Shape)
	}
	size := map[string]uint64{"F32": 4, "BF16": 2, "F16": 2}[e.DType]
	switch {
	case size == 0:
		return source{}, fmt.Errorf("%s: tensor %s has dtype %s, want F32, BF16 or F16", st.path, s.Name, e.DType)
	case dt != "" && e.DType != dt:
		return source{}, fmt.Errorf("%s: tensor %s has dtype %s, but config.json's torch_dtype allows %s", st.path, s.Name, e.DType, dt)
	case !slices.Equal(e.Shape, s.Shape):
		return source{}, fmt.Errorf("%s: tensor %s has shape %v, want %v", st.path, s.Name, e.Shape, s.Shape)
	case e.Offsets[1]-e.Offsets[0] != size*uint64(s.Numel()):
		return source{}, fmt.Errorf("%s: tensor %s holds %d bytes, want %d", st.path, s.Name, e.Offsets[1]-e.Offsets[0], size*uint64(s.Numel()))
	}
	return source{name: s.Name, shape: s.Shape, st: st, e: e}, nil
}

// initParts initialises the parts no folder gives (as model.NewBundle
// does, from seed) into tmp/init and returns their tensors.
func initParts(tmp string, cfg *config.Config, vocab int, tok tokenizer.Tokenizer, parts []string, seed uint64, openST func(string) (*stFile, error)) ([]bundleFile, error) {
	dir := filepath.Join(tmp, "init")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []bundleFile
	save := func(file string, specs []model.Spec, seed uint64) error {
		p, err := model.NewParams(specs, gotch.CPU, seed)
		if err != nil {
			return err
		}
		defer p.Drop()
		path := filepath.Join(dir, file)
		if err := model.SaveSafetensors(path, p, nil); err != nil {
			return err
		}
		ts, err := planFile(path, specs, "F32", openST)
		if err != nil {
			return err
		}
		out = append(out, bundleFile{file, ts})
		return nil
	}
	for _, part := range parts {
		var err error
		switch part {
		case "vision":
			_, vision := splitVision(model.MLLMSpecs(cfg.Model.MLLM, vocab, 3))
			err = save("mllm.safetensors", vision, seed)
		case "connector":
			err = save("connector.safetensors", model.ConnectorSpecs(cfg.Model.MLLM.Hidden, cfg.Model.DiT.Hidden, cfg.Model.Connector.Prepad), seed+1)
		case "dit":
			err = save("dit.safetensors", model.DiTSpecs(cfg.Model.DiT), seed+2)
		case "vae":
			var v *model.VAE
			if v, err = model.NewVAE(model.VAEConfigFor(cfg.Model), gotch.CPU, seed+3); err != nil {
				return nil, err
			}
			vdir := filepath.Join(dir, "vae")
			err = v.Save(vdir)
			v.Drop()
			if err == nil {
				var ts []source
				if ts, err = planFile(filepath.Join(vdir, model.VAEWeightsFile), model.VAESpecs(model.VAEConfigFor(cfg.Model)), "F32", openST); err == nil {
					out = append(out, bundleFile{"vae.safetensors", ts})
				}
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writeFloat32 writes the tensors into a new safetensors file at path in
// float32 (F32), as bundles hold them, sorted by name: each is read from
// its file a chunk at a time and widened, so memory does not grow with
// the tensors.
func writeFloat32(path string, tensors []source, meta map[string]string) error {
	items := slices.Clone(tensors)
	sort.Slice(items, func(i, j int) bool { return items[i].name < items[j].name })
	out := make([]stOut, len(items))
	for i, it := range items {
		out[i] = stOut{
			name:  it.name,
			dtype: "F32",
			shape: it.shape,
			size:  4 * uint64(model.Spec{Shape: it.shape}.Numel()),
			write: func(w io.Writer) error {
				r := io.NewSectionReader(it.st.f, it.st.data+int64(it.e.Offsets[0]), int64(it.e.Offsets[1]-it.e.Offsets[0]))
				if err := copyWidened(w, r, it.e.DType); err != nil {
					return fmt.Errorf("tensor %s of %s: %w", it.name, it.st.path, err)
				}
				return nil
			},
		}
	}
	return writeSafetensors(path, meta, out)
}

// copyWidened copies the values of r, of safetensors dtype dt (F32, BF16
// or F16), to w as float32, a chunk at a time. Widening is exact.
func copyWidened(w io.Writer, r io.Reader, dt string) error {
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

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
