package export

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// Format and FormatVersion identify an export's manifest.
const (
	Format        = "thinkgen-export"
	FormatVersion = 1
	// Layout is the only layout there is: HuggingFace transformers for
	// the MLLM, diffusers-style folders for the rest (--format hf).
	Layout = "hf"
)

// ManifestFile is the manifest's name inside an export directory.
const ManifestFile = "thinkgen-export.json"

// The files of an export, relative to its directory (slash-separated).
const (
	fileMLLMConfig      = "mllm/config.json"
	fileMLLMWeights     = "mllm/model.safetensors"
	fileVision          = "visual.safetensors" // inside mllm/
	fileMLLMVision      = "mllm/" + fileVision
	fileTokenizer       = "mllm/tokenizer.json"
	fileTokenizerConfig = "mllm/tokenizer_config.json"
	fileSpecialTokens   = "mllm/special_tokens_map.json"
	fileGeneration      = "mllm/generation_config.json"
	fileModelIndex      = "model_index.json"
	fileDiTConfig       = "transformer/config.json"
	fileDiTWeights      = "transformer/diffusion_pytorch_model.safetensors"
	fileConnConfig      = "connector/config.json"
	fileConnWeights     = "connector/diffusion_pytorch_model.safetensors"
	fileScheduler       = "scheduler/scheduler_config.json"
	// The VAE of latent: vae, a diffusers AutoencoderKL folder as the
	// bundle holds it.
	dirVAE         = "vae"
	fileVAEConfig  = dirVAE + "/" + model.VAEConfigFile
	fileVAEWeights = dirVAE + "/" + model.VAEWeightsFile
	// The LoRA adapters of a run with lora ranks, as PEFT saves them
	// (PeftModel.from_pretrained(base, "DIR/mllm/adapter")).
	fileMLLMAdapter       = "mllm/adapter/adapter_model.safetensors"
	fileMLLMAdapterConfig = "mllm/adapter/adapter_config.json"
	fileDiTAdapter        = "transformer/adapter/adapter_model.safetensors"
	fileDiTAdapterConfig  = "transformer/adapter/adapter_config.json"
)

// Errors of bad input, which the CLI reports as usage errors (exit 2).
var (
	// ErrNoCheckpoint: the run does not exist, or has committed no step
	// (its only checkpoint is the base it started from).
	ErrNoCheckpoint = errors.New("export: no committed checkpoint")
	// ErrUnknownVersion: the version asked for is not one the run keeps.
	ErrUnknownVersion = errors.New("export: unknown checkpoint version")
	// ErrOutNotEmpty: the output directory exists and is not empty.
	ErrOutNotEmpty = errors.New("export: output directory is not empty")
)

// Manifest is an export's thinkgen-export.json, written last.
type Manifest struct {
	Format        string `json:"format"`
	FormatVersion int    `json:"format_version"`
	Layout        string `json:"layout"`
	// Run and Version name the exported checkpoint (version 0 is the
	// run's base); Run is empty when a bundle directory was exported, and
	// Version is then the bundle's step.
	Run     string `json:"run,omitempty"`
	Version int    `json:"version"`
	// Source is the store URI, or the bundle directory, exported from.
	Source string `json:"source"`
	// DType is the dtype of the exported weights; empty (an export made
	// before it was recorded) is float32.
	DType DType `json:"dtype,omitempty"`
	// Config is the run's full configuration (YAML), as the checkpoint
	// records it.
	Config  string    `json:"config"`
	Created time.Time `json:"created"`
	// Files lists every other file of the export, sorted by path.
	Files []File `json:"files"`
}

// File is one exported file: its path relative to the export directory
// (slash-separated), size and SHA-256.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Source says where an exported bundle came from; it is recorded in the
// manifest.
type Source struct {
	Run     string
	Version int
	// Where is the store URI or the bundle directory.
	Where string
}

// Options are the choices of an export.
type Options struct {
	// DType is the dtype the weights are written in; empty is the
	// checkpoint's model.dtype, the dtype it computed in (bit-identical:
	// a half-precision run's checkpoint holds values of that dtype).
	DType DType
}

// CheckOut reports whether out can receive an export: it must not exist,
// or be an empty directory. The error wraps ErrOutNotEmpty.
func CheckOut(out string) error {
	entries, err := os.ReadDir(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		if info, serr := os.Stat(out); serr == nil && !info.IsDir() {
			return fmt.Errorf("%s is a file: %w", out, ErrOutNotEmpty)
		}
		return err
	case len(entries) > 0:
		return fmt.Errorf("%s holds %d entries (want a new or empty directory): %w", out, len(entries), ErrOutNotEmpty)
	}
	return nil
}

// Write exports the saved bundle in bundleDir (model.Bundle.Save's layout:
// a fetched checkpoint's bundle/, base/tiny, a pretrain result) into out.
// It checks the bundle against its manifest and every tensor's name,
// dtype and shape against its configuration, writes everything into a
// temporary directory beside out and renames it to out at the end, so out
// is either absent or complete. Tensors are copied byte for byte (no
// libtorch), or converted a chunk at a time to opt.DType, so exporting uses
// little memory whatever the model's size.
func Write(bundleDir, out string, src Source, opt Options) (*Manifest, error) {
	if err := CheckOut(out); err != nil {
		return nil, err
	}
	bm, cfg, err := model.ReadBundleManifest(bundleDir)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", bundleDir, err)
	}
	d := opt.DType
	if d == "" {
		d = DType(cfg.Model.DType).orFloat32()
	}
	if _, err := ParseDType(string(d)); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if src.Run == "" {
		src.Version = bm.Step
	}
	if src.Where == "" {
		src.Where = bundleDir
	}
	tok, err := tokenizer.LoadFile(filepath.Join(bundleDir, "tokenizer.json"))
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", bundleDir, err)
	}
	tmp, err := tempBeside(out, "export")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := writeParts(tmp, bundleDir, cfg, tok, d); err != nil {
		return nil, fmt.Errorf("export %s: %w", bundleDir, err)
	}
	m := &Manifest{Format: Format, FormatVersion: FormatVersion, Layout: Layout, Run: src.Run, Version: src.Version,
		Source: src.Where, DType: d, Config: bm.Config, Created: time.Now().UTC()}
	if m.Files, err = listFiles(tmp); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := writeJSON(filepath.Join(tmp, ManifestFile), m); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := moveInto(tmp, out, "export"); err != nil {
		return nil, err
	}
	return m, nil
}

// writeParts writes every file of the export but the manifest into dir.
func writeParts(dir, bundleDir string, cfg *config.Config, tok tokenizer.Tokenizer, d DType) error {
	vocab := cfg.Model.MLLM.Vocab
	if vocab == 0 {
		vocab = tok.VocabSize()
	}
	sp := tok.Specials()
	if _, err := model.SpecialIDsOf(tok); err != nil {
		return err
	}
	text, vision := splitVision(model.MLLMSpecs(cfg.Model.MLLM, vocab, 3))
	mllmParts := map[string]part{fileMLLMWeights: {specs: text, meta: map[string]string{"format": "pt"}}}
	if len(vision) > 0 {
		// The patch embedder, which Qwen3ForCausalLM does not have (a
		// Qwen3-VL tower's names are Qwen3VLForConditionalGeneration's,
		// all in model.safetensors).
		mllmParts[fileMLLMVision] = part{specs: vision, meta: map[string]string{"format": "pt"}}
	}
	files := []struct {
		src   string
		parts map[string]part
	}{
		{"mllm.safetensors", mllmParts},
		{"connector.safetensors", map[string]part{
			fileConnWeights: {specs: model.ConnectorSpecs(cfg.Model.MLLM.Hidden, cfg.Model.DiT.Hidden, cfg.Model.Connector.Prepad), meta: map[string]string{"format": "pt"}},
		}},
		{"dit.safetensors", map[string]part{
			fileDiTWeights: {specs: model.DiTSpecs(cfg.Model.DiT), meta: map[string]string{"format": "pt"}},
		}},
	}
	subs := []string{"mllm", "connector", "transformer", "scheduler"}
	jsons := map[string]any{}
	// PEFT names an adapter tensor after the module path below the
	// wrapped model: "base_model.model." + the model's own name.
	const peftPrefix = "base_model.model."
	if a := cfg.LoRA.MLLM; a.Rank > 0 {
		files = append(files, struct {
			src   string
			parts map[string]part
		}{"mllm.lora.safetensors", map[string]part{
			fileMLLMAdapter: {specs: model.LoRASpecs(model.MLLMSpecs(cfg.Model.MLLM, vocab, 3), a, config.MLLMTargets), meta: map[string]string{"format": "pt"}, prefix: peftPrefix},
		}})
		subs = append(subs, "mllm/adapter")
		jsons[fileMLLMAdapterConfig] = adapterConfig(a, config.MLLMTargets, "CAUSAL_LM", "..")
	}
	if a := cfg.LoRA.DiT; a.Rank > 0 {
		files = append(files, struct {
			src   string
			parts map[string]part
		}{"dit.lora.safetensors", map[string]part{
			fileDiTAdapter: {specs: model.LoRASpecs(model.DiTSpecs(cfg.Model.DiT), a, config.DiTTargets), meta: map[string]string{"format": "pt"}, prefix: peftPrefix},
		}})
		subs = append(subs, "transformer/adapter")
		jsons[fileDiTAdapterConfig] = adapterConfig(a, config.DiTTargets, "", "..")
	}
	for _, sub := range subs {
		if _, err := ensureDir(dir, sub); err != nil {
			return err
		}
	}
	if cfg.Model.DiT.Latent == "vae" {
		if err := writeVAE(dir, bundleDir, d); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := repackFile(dir, filepath.Join(bundleDir, f.src), f.parts, d); err != nil {
			return err
		}
	}
	tj, err := tokenizerJSON(tok)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, fileTokenizer), tj, 0o644); err != nil {
		return err
	}
	imageTokens := model.ImageTokens(cfg.Model.MLLM, cfg.Model.DiT.ImageSize)
	tc := tokenizerConfig(cfg, imageTokens)
	for path, v := range map[string]any{
		fileMLLMAdapterConfig: jsons[fileMLLMAdapterConfig],
		fileDiTAdapterConfig:  jsons[fileDiTAdapterConfig],
		fileMLLMConfig:        mllmConfigFor(cfg, vocab, tok, d),
		fileGeneration:        generationConfig(cfg, sp),
		fileTokenizerConfig:   tc,
		fileSpecialTokens:     specialTokensMap(tc),
		fileModelIndex:        modelIndex(cfg),
		fileDiTConfig:         ditConfig(cfg),
		fileConnConfig:        connectorConfig(cfg),
		fileScheduler:         schedulerConfig(cfg),
	} {
		if v == nil {
			continue // no such adapter
		}
		if err := writeJSON(filepath.Join(dir, filepath.FromSlash(path)), v); err != nil {
			return err
		}
	}
	return nil
}

// writeVAE writes the bundle's VAE (vae.json, vae.safetensors) as the
// diffusers folder vae/: config.json as it is, the weights repacked in
// dtype d.
func writeVAE(dir, bundleDir string, d DType) error {
	data, err := os.ReadFile(filepath.Join(bundleDir, "vae.json"))
	if err != nil {
		return err
	}
	c, err := model.ParseVAEConfig(filepath.Join(bundleDir, "vae.json"), data)
	if err != nil {
		return err
	}
	if _, err := ensureDir(dir, dirVAE); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(fileVAEConfig)), data, 0o644); err != nil {
		return err
	}
	return repackFile(dir, filepath.Join(bundleDir, "vae.safetensors"),
		map[string]part{fileVAEWeights: {specs: model.VAESpecs(c), meta: map[string]string{"format": "pt"}}}, d)
}

// splitVision separates the vision patch embedder's specs (visual.*) from
// the text model's, which are exactly Qwen3ForCausalLM's. A Qwen3-VL
// tower's specs (model.visual.*, model.language_model.*, lm_head) all
// land in text: they are Qwen3VLForConditionalGeneration's names.
func splitVision(specs []model.Spec) (text, vision []model.Spec) {
	for _, s := range specs {
		if strings.HasPrefix(s.Name, "visual.") {
			vision = append(vision, s)
		} else {
			text = append(text, s)
		}
	}
	return text, vision
}

// repackFile writes the parts of one checkpoint file, after checking that
// the file holds no tensor the parts leave out.
func repackFile(dir, src string, parts map[string]part, d DType) error {
	st, err := model.OpenSafetensors(src)
	if err != nil {
		return err
	}
	defer st.Close()
	var all []model.Spec
	for _, p := range parts {
		all = append(all, p.specs...)
	}
	if extra := st.ExtraTensors(all); len(extra) > 0 {
		return fmt.Errorf("%s: unexpected tensors %s (the configuration has no such parameters)", src, strings.Join(extra, ", "))
	}
	for path, p := range parts {
		if err := repack(filepath.Join(dir, filepath.FromSlash(path)), st, p, d); err != nil {
			return err
		}
	}
	return nil
}

// listFiles sums every file under dir, sorted by path.
func listFiles(dir string) ([]File, error) {
	var files []File
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		f := File{Path: filepath.ToSlash(rel)}
		if f.Size, f.SHA256, err = sumFile(path); err != nil {
			return err
		}
		files = append(files, f)
		return nil
	})
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return files, err
}

func sumFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// RunVersion returns the checkpoint version of run to export (or load):
// want itself when want ≥ 0, else the run's last committed version. The
// version must be one run.json lists as kept and must be committed in the
// store. Errors wrap ErrNoCheckpoint (no run.json, or no committed step
// and no version asked for) or ErrUnknownVersion.
func RunVersion(ctx context.Context, st storage.Store, run string, want int) (int, error) {
	rs, err := runs.ReadState(ctx, st, run)
	if errors.Is(err, storage.ErrNotExist) {
		return 0, fmt.Errorf("run %s: no run.json in %s: %w", run, st, ErrNoCheckpoint)
	}
	if err != nil {
		return 0, fmt.Errorf("run %s: %w", run, err)
	}
	v := want
	if want < 0 {
		if rs.Committed == 0 {
			return 0, fmt.Errorf("run %s has committed no step yet; its only checkpoint is the base it started from (pass --version 0 to export that): %w", run, ErrNoCheckpoint)
		}
		v = -1
		for _, k := range rs.Kept {
			if k <= rs.Committed && k > v {
				v = k
			}
		}
	}
	if !slices.Contains(rs.Kept, v) || v > rs.Committed {
		return 0, fmt.Errorf("run %s has no checkpoint version %d (kept: %s): %w", run, v, joinInts(rs.Kept), ErrUnknownVersion)
	}
	if _, err := storage.ReadManifest(ctx, st, storage.CheckpointManifestKey(run, v)); err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return 0, fmt.Errorf("run %s: checkpoint version %d is not committed in %s: %w", run, v, st, ErrUnknownVersion)
		}
		return 0, fmt.Errorf("run %s: checkpoint %d: %w", run, v, err)
	}
	return v, nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

// FromRun exports checkpoint version v of run in st (v < 0: the last
// committed version; see RunVersion) into out, fetching the version
// (checked against its storage manifest) into a temporary directory
// beside out first.
func FromRun(ctx context.Context, st storage.Store, run string, v int, out string, opt Options) (*Manifest, error) {
	if err := CheckOut(out); err != nil {
		return nil, err
	}
	v, err := RunVersion(ctx, st, run, v)
	if err != nil {
		return nil, err
	}
	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	cache, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".fetch-")
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer os.RemoveAll(cache)
	dir, err := checkpoint.Fetch(ctx, st, run, v, cache)
	if err != nil {
		return nil, err
	}
	return Write(filepath.Join(dir, "bundle"), out, Source{Run: run, Version: v, Where: st.String()}, opt)
}

// tempBeside makes out's parent directory and, in it, the temporary
// directory that is filled and then renamed to out (moveInto); a failure
// is reported as op's.
func tempBeside(out, op string) (string, error) {
	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	return tmp, nil
}

// moveInto renames the finished directory tmp to out, which CheckOut
// accepted before the work began and must still accept (nobody wrote into
// it meanwhile); a failed rename is reported as op's.
func moveInto(tmp, out, op string) error {
	if err := CheckOut(out); err != nil {
		return err
	}
	os.Remove(out) // an empty directory: rename does not replace directories
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}
