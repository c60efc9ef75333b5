package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// The files of a transformers checkpoint folder that ImportHF reads.
const (
	hfConfig  = model.HFConfigFile
	hfWeights = model.HFWeightsFile
	hfIndex   = model.HFIndexFile
	hfTok     = "tokenizer.json"
)

// HFSources names the folders thinkgen import reads.
type HFSources struct {
	// MLLM is a transformers folder: config.json, the weights as
	// model.safetensors or shards listed by model.safetensors.index.json,
	// and tokenizer.json. With model.mllm.vision qwen3vl it is a
	// Qwen3VLForConditionalGeneration folder (the ViT's weights among the
	// others); otherwise a Qwen3ForCausalLM folder, with optionally
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

// bundleFile is one safetensors file of the bundle and its tensors.
type bundleFile struct {
	name    string
	tensors []model.HFTensor
}

// ImportHF writes a bundle (model.Bundle.Save's layout) into out from a
// transformers Qwen3 folder (a Qwen3-VL one for model.mllm.vision
// qwen3vl) and optionally a diffusers VAE and a DiT folder, for the
// architecture cfg's model section describes. Every folder is checked
// first, as CheckHF does, before anything is written. The weights are
// then copied a tensor at a time, a chunk at a time, widened to float32
// as bundles hold them, so memory does not grow with the checkpoint.
// Parts no folder gives are initialised from src.Seed (which needs
// libtorch: call it inside libtorch.Run). out must not exist or be empty;
// the bundle is written beside it and renamed into place at the end.
func ImportHF(cfg *config.Config, src HFSources, out string) (*Imported, error) {
	if err := CheckOut(out); err != nil {
		return nil, err
	}
	p, err := checkHF(cfg, src)
	if err != nil {
		return nil, err
	}
	defer p.open.Close()
	return p.write(cfg, src, out)
}

// IsHFModel reports whether dir is a transformers model folder — a
// config.json and its weights (model.safetensors or the index of its
// shards), and no thinkgen manifest — as thinkgen import --mllm and
// run.base take.
func IsHFModel(dir string) bool {
	if IsExport(dir) || !fileExists(filepath.Join(dir, hfConfig)) {
		return false
	}
	return fileExists(filepath.Join(dir, hfWeights)) || fileExists(filepath.Join(dir, hfIndex))
}

// CheckHF checks the folders of src against cfg's model section as
// ImportHF does, reading headers only and writing nothing: each
// config.json against cfg (an error names the file and key), every shard
// of the index present, every tensor present with the shape cfg gives and
// the dtype config.json's dtype allows (an error names the file and
// tensor), no tensor cfg does not have.
func CheckHF(cfg *config.Config, src HFSources) error {
	p, err := checkHF(cfg, src)
	if err != nil {
		return err
	}
	p.open.Close()
	return nil
}

// hfImport is what checkHF found: the files to write and their tensors'
// sources, and the parts to initialise.
type hfImport struct {
	open      model.HFFiles
	tok       tokenizer.Tokenizer
	vocab     int
	files     []bundleFile
	toInit    []string
	vaeConfig []byte
	rep       Imported
}

// checkHF checks src against cfg (see CheckHF). The caller closes the
// files of a result.
func checkHF(cfg *config.Config, src HFSources) (_ *hfImport, err error) {
	p := &hfImport{}
	defer func() {
		if err != nil {
			p.open.Close()
		}
	}()
	if src.MLLM == "" {
		return nil, errors.New("import: no MLLM folder")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if src.VAE != "" && cfg.Model.DiT.Latent != "vae" {
		return nil, fmt.Errorf("import: a VAE folder (%s) for model.dit.latent %q (want vae)", src.VAE, cfg.Model.DiT.Latent)
	}
	tok, err := tokenizer.LoadFile(filepath.Join(src.MLLM, hfTok))
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", src.MLLM, err)
	}
	ids, err := model.SpecialIDsOf(tok)
	if err != nil {
		return nil, fmt.Errorf("import %s: %s: %w", src.MLLM, hfTok, err)
	}
	vocab := cfg.Model.MLLM.Vocab
	if vocab == 0 {
		vocab = tok.VocabSize()
	}
	if vocab < tok.VocabSize() {
		return nil, fmt.Errorf("import %s: model.mllm.vocab %d is smaller than %s's %d", src.MLLM, vocab, hfTok, tok.VocabSize())
	}
	// Check everything before writing anything. A Qwen3-VL folder holds
	// the ViT with the text model; a Qwen3 one holds the text model, and
	// the patch embedder in visual.safetensors if at all.
	vl := cfg.Model.MLLM.IsQwen3VL()
	text, vision := model.MLLMSpecs(cfg.Model.MLLM, vocab, 3), []model.Spec(nil)
	var dt model.WeightDType
	if vl {
		dt, err = model.CheckQwen3VLConfig(filepath.Join(src.MLLM, hfConfig), cfg.Model.MLLM, vocab, ids.ImagePad)
	} else {
		text, vision = splitVision(text)
		dt, err = checkQwen3Config(filepath.Join(src.MLLM, hfConfig), cfg.Model.MLLM, vocab)
	}
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	mllm, shards, err := p.open.Weights(src.MLLM, text, dt)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	p.rep.Shards = shards
	files := []bundleFile{{"mllm.safetensors", mllm}}
	var toInit []string
	if vp := filepath.Join(src.MLLM, fileVision); !vl && fileExists(vp) {
		vs, err := p.open.File(vp, vision, model.WeightDType{})
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		files[0].tensors = append(files[0].tensors, vs...)
	} else if !vl {
		toInit = append(toInit, "vision")
	}
	connSpecs := model.ConnectorSpecs(cfg.Model.MLLM.Hidden, cfg.Model.DiT.Hidden, cfg.Model.Connector.Prepad)
	ditSpecs := model.DiTSpecs(cfg.Model.DiT)
	if src.DiT != "" {
		for _, part := range []struct {
			file, dir string
			want      map[string]any
			specs     []model.Spec
		}{
			{"dit.safetensors", "transformer", ditConfig(cfg), ditSpecs},
			{"connector.safetensors", "connector", connectorConfig(cfg), connSpecs},
		} {
			dir := filepath.Join(src.DiT, part.dir)
			if err := checkDiffusersConfig(filepath.Join(dir, "config.json"), part.want); err != nil {
				return nil, fmt.Errorf("import: %w", err)
			}
			ts, err := p.open.File(filepath.Join(dir, model.VAEWeightsFile), part.specs, model.WeightDType{})
			if err != nil {
				return nil, fmt.Errorf("import: %w", err)
			}
			files = append(files, bundleFile{part.file, ts})
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
			ts, err := p.open.File(filepath.Join(src.VAE, model.VAEWeightsFile), model.VAESpecs(c), model.WeightDType{})
			if err != nil {
				return nil, fmt.Errorf("import: %w", err)
			}
			files = append(files, bundleFile{"vae.safetensors", ts})
		} else {
			toInit = append(toInit, "vae")
		}
	}

	p.tok, p.vocab, p.files, p.toInit, p.vaeConfig = tok, vocab, files, toInit, vaeConfig
	return p, nil
}

// write writes the checked import into out.
func (p *hfImport) write(cfg *config.Config, src HFSources, out string) (*Imported, error) {
	tok, vocab, files, toInit, vaeConfig, rep := p.tok, p.vocab, p.files, p.toInit, p.vaeConfig, &p.rep
	// Write into a temporary directory beside out, renamed at the end.
	tmp, err := tempBeside(out, "import")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if len(toInit) > 0 {
		inits, err := initParts(tmp, cfg, vocab, tok, toInit, src.Seed, &p.open)
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
// section c (of vocabulary vocab) and returns the dtype its dtype (or
// torch_dtype, as transformers before 4.56 spells it) allows.
func checkQwen3Config(path string, c config.MLLM, vocab int) (model.WeightDType, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return model.WeightDType{}, err
	}
	var q qwen3Config
	if err := json.Unmarshal(data, &q); err != nil {
		return model.WeightDType{}, fmt.Errorf("%s: %w", path, err)
	}
	var d struct {
		DType string `json:"dtype"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return model.WeightDType{}, fmt.Errorf("%s: %w", path, err)
	}
	if q.ModelType != "qwen3" {
		return model.WeightDType{}, fmt.Errorf("%s: model_type %q, want qwen3 (Qwen3ForCausalLM)", path, q.ModelType)
	}
	fields := append(q.HFText.Fields("", c, vocab), []model.ConfigField{
		{Key: "tie_word_embeddings", Got: q.TieWordEmbeddings, Want: c.TieEmbeddings, Ours: "model.mllm.tie_embeddings"},
		{Key: "attention_bias", Got: q.AttentionBias, Want: false, Ours: "thinkgen's Qwen3 (no attention bias)"},
		{Key: "use_sliding_window", Got: q.UseSlidingWindow, Want: false, Ours: "thinkgen's Qwen3 (full attention)"},
		{Key: "hidden_act", Got: q.HiddenAct, Want: "silu", Ours: "thinkgen's Qwen3 (SwiGLU)"},
		{Key: "rope_scaling", Got: q.RopeScaling != nil, Want: false, Ours: "thinkgen's Qwen3 (plain RoPE, rope_scaling null)"},
	}...)
	if f, bad := model.Mismatch(fields); bad {
		return model.WeightDType{}, fmt.Errorf("%s: %s is %v, %s is %v", path, f.Key, f.Got, f.Ours, f.Want)
	}
	return model.ConfigDType(path, d.DType, q.TorchDType)
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
		if k == "timestep_scale" && got[k] == 1000.0 {
			continue // an export from before ditConfig's fix: the same transformer
		}
		if !reflect.DeepEqual(got[k], w[k]) {
			return fmt.Errorf("%s: %s is %v, the configuration's model section gives %v", path, k, got[k], w[k])
		}
	}
	return nil
}

// initParts initialises the parts no folder gives (as model.NewBundle
// does, from seed) into tmp/init and returns their tensors.
func initParts(tmp string, cfg *config.Config, vocab int, tok tokenizer.Tokenizer, parts []string, seed uint64, open *model.HFFiles) ([]bundleFile, error) {
	dir := filepath.Join(tmp, "init")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []bundleFile
	f32 := model.WeightDType{ST: "F32", Key: "dtype"}
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
		ts, err := open.File(path, specs, f32)
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
				var ts []model.HFTensor
				if ts, err = open.File(filepath.Join(vdir, model.VAEWeightsFile), model.VAESpecs(model.VAEConfigFor(cfg.Model)), f32); err == nil {
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
func writeFloat32(path string, tensors []model.HFTensor, meta map[string]string) error {
	items := slices.Clone(tensors)
	sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
	out := make([]stOut, len(items))
	for i, it := range items {
		out[i] = stOut{
			name:  it.Name,
			dtype: "F32",
			shape: it.Shape,
			size:  4 * uint64(model.Spec{Shape: it.Shape}.Numel()),
			write: func(w io.Writer) error {
				if err := model.CopyWidened(w, it.Reader(), it.Entry.DType); err != nil {
					return fmt.Errorf("tensor %s of %s: %w", it.Name, it.File.Path, err)
				}
				return nil
			},
		}
	}
	return writeSafetensors(path, meta, out)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
