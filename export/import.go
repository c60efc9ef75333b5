package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// IsExport reports whether dir holds an export (its manifest file exists),
// as opposed to a saved bundle.
func IsExport(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ManifestFile))
	return err == nil
}

// ReadModelConfig reads the configuration of a model directory — an
// export or a saved bundle — verifying its files, without loading any
// tensor. A directory that is neither says so.
func ReadModelConfig(dir string) (*config.Config, error) {
	if IsExport(dir) {
		_, cfg, err := ReadManifest(dir)
		return cfg, err
	}
	_, cfg, err := model.ReadBundleManifest(dir)
	if err != nil {
		if _, serr := os.Stat(dir); serr == nil {
			err = fmt.Errorf("%w (%s is neither a bundle nor an export: it has no %s)", err, dir, ManifestFile)
		}
		return nil, err
	}
	return cfg, nil
}

// ReadManifest reads an export's manifest, checks the size and SHA-256 of
// every file it lists (an error names the first file that is missing or
// differs) and that the files Import reads are listed, and parses the
// run configuration it records — without loading any tensor.
func ReadManifest(dir string) (*Manifest, *config.Config, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, nil, fmt.Errorf("import %s: %w", dir, err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, nil, fmt.Errorf("import %s: %s: %w", dir, ManifestFile, err)
	}
	if m.Format != Format || m.FormatVersion != FormatVersion {
		return nil, nil, fmt.Errorf("import %s: %s: format %q version %d, this build reads %q version %d", dir, ManifestFile, m.Format, m.FormatVersion, Format, FormatVersion)
	}
	if m.DType != "" {
		if _, err := ParseDType(string(m.DType)); err != nil {
			return nil, nil, fmt.Errorf("import %s: %s: %w", dir, ManifestFile, err)
		}
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		if !filepath.IsLocal(filepath.FromSlash(f.Path)) || path.Clean(f.Path) != f.Path || f.Path == ManifestFile {
			return nil, nil, fmt.Errorf("import %s: %s lists the path %q, which is not a file of the export", dir, ManifestFile, f.Path)
		}
		size, sum, err := sumFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("import %s: %s is missing (the manifest lists it)", dir, f.Path)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("import %s: %w", dir, err)
		}
		if size != f.Size || sum != f.SHA256 {
			return nil, nil, fmt.Errorf("import %s: %s has size %d sha256 %s, the manifest says %d %s", dir, f.Path, size, sum, f.Size, f.SHA256)
		}
		listed[f.Path] = true
	}
	cfg, err := config.Parse(filepath.Join(dir, ManifestFile)+" config", []byte(m.Config))
	if err != nil {
		return nil, nil, fmt.Errorf("import %s: %w", dir, err)
	}
	need := []string{fileMLLMWeights, fileMLLMVision, fileTokenizer, fileConnWeights, fileDiTWeights}
	if cfg.Model.MLLM.IsQwen3VL() {
		need = slices.DeleteFunc(need, func(f string) bool { return f == fileMLLMVision }) // the ViT is in model.safetensors
	}
	for _, f := range need {
		if !listed[f] {
			return nil, nil, fmt.Errorf("import %s: %s lists no %s", dir, ManifestFile, f)
		}
	}
	return &m, cfg, nil
}

// Import reads an export written by Write (or thinkgen export) back into a
// model.Bundle on dev: it verifies every file against the manifest
// (ReadManifest), rebuilds the configuration and the tokenizer (an export
// of a ShapeWorld word tokenizer loads back as an equal tokenizer.Words),
// and loads every tensor, checking names and shapes against the
// configuration. The tensors of a float32 export are bit-identical to the
// exported checkpoint's; a half-precision export's are widened to float32.
// Call it inside libtorch.Run; the caller drops the bundle.
func Import(dir string, dev gotch.Device) (*model.Bundle, *Manifest, error) {
	m, cfg, err := ReadManifest(dir)
	if err != nil {
		return nil, nil, err
	}
	tok, err := tokenizer.LoadFile(filepath.Join(dir, filepath.FromSlash(fileTokenizer)))
	if err != nil {
		return nil, nil, fmt.Errorf("import %s: %w", dir, err)
	}
	b, err := model.NewBundle(cfg, tok, dev, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("import %s: %w", dir, err)
	}
	text, vision := splitVision(b.MLLM.P.Specs())
	type file struct {
		path   string
		specs  []model.Spec
		p      *model.Params
		prefix string // of the names in the file
	}
	files := []file{
		{fileMLLMWeights, text, b.MLLM.P, ""},
		{fileConnWeights, b.Connector.P.Specs(), b.Connector.P, ""},
		{fileDiTWeights, b.DiT.P.Specs(), b.DiT.P, ""},
	}
	if len(vision) > 0 { // none for a Qwen3-VL tower
		files = append(files, file{fileMLLMVision, vision, b.MLLM.P, ""})
	}
	// The adapters of a LoRA run, in PEFT's layout.
	if a := b.MLLM.Adapters; a != nil {
		files = append(files, file{fileMLLMAdapter, a.P.Specs(), a.P, "base_model.model."})
	}
	if a := b.DiT.Adapters; a != nil {
		files = append(files, file{fileDiTAdapter, a.P.Specs(), a.P, "base_model.model."})
	}
	for _, f := range files {
		names := make([]string, len(f.specs))
		tensors := make([]*ts.Tensor, len(f.specs))
		for i, s := range f.specs {
			names[i], tensors[i] = f.prefix+s.Name, f.p.Get(s.Name)
		}
		if _, err := model.LoadTensors(filepath.Join(dir, filepath.FromSlash(f.path)), names, tensors); err != nil {
			b.Drop()
			return nil, nil, fmt.Errorf("import %s: %w", dir, err)
		}
	}
	if b.VAE != nil {
		b.VAE.Drop()
		if b.VAE, err = model.LoadBundleVAE(filepath.Join(dir, dirVAE), cfg.Model, dev); err != nil {
			b.Drop()
			return nil, nil, fmt.Errorf("import %s: %w", dir, err)
		}
	}
	return b, m, nil
}
