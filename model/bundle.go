package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// BundleVersion is the format version of a checkpoint's manifest.json.
const BundleVersion = 1

// Bundle is one policy version: the tokenizer, the MLLM, the VGI-refine
// connector and the DiT, with the model section that shaped them. It holds
// weights and architecture only: how a bundle samples or trains (decoding,
// guidance, group sizes) is the caller's to pass, from the configuration
// it resolved.
type Bundle struct {
	// Model is the model section the weights were built for: their shape
	// (which config.Model.ShapeDiff compares), the dtype and
	// connector.states.
	Model     config.Model
	Tok       tokenizer.Tokenizer
	MLLM      *MLLM
	Connector *Connector
	DiT       *DiT
	// VAE is the latent space of model.dit.latent vae (nil for pixel).
	VAE *VAE
}

// Latent returns the space the DiT works in: the VAE, or pixel space.
func (b *Bundle) Latent() Latent {
	if b.VAE != nil {
		return b.VAE
	}
	return PixelSpace{}
}

// LatentSide is the side of the DiT's latents, image_size / vae_scale.
func LatentSide(c config.DiT) int { return c.ImageSize / max(c.VAEScale, 1) }

// RefLatents converts reference images as the MLLM reads them (pixels in
// [−1, 1], EncodeImages with PixelSpace) into the DiT's reference latents:
// the same values in pixel space, the VAE's encoding otherwise. nil stays
// nil; the caller drops the result.
func (b *Bundle) RefLatents(pixels *ts.Tensor) *ts.Tensor {
	if pixels == nil {
		return nil
	}
	if b.VAE == nil {
		return pixels.MustShallowClone()
	}
	img := pixels.MustAddScalar(ts.FloatScalar(1), false).MustMulScalar(ts.FloatScalar(0.5), true)
	defer img.MustDrop()
	return b.VAE.Encode(img)
}

// SpecialIDsOf returns the ids the models need from a tokenizer, or an error
// naming a missing special token.
func SpecialIDsOf(tok tokenizer.Tokenizer) (SpecialIDs, error) {
	s := tok.Specials()
	ids := SpecialIDs{Pad: s.Pad, EOS: s.EOS, ThinkEnd: s.EndThink, ImagePad: s.ImagePad}
	for name, id := range map[string]int{"pad <|endoftext|>": s.Pad, "eos <|im_end|>": s.EOS, "</think>": s.EndThink, "<|image_pad|>": s.ImagePad} {
		if id < 0 {
			return SpecialIDs{}, fmt.Errorf("model: tokenizer has no %s token", name)
		}
	}
	return ids, nil
}

// NewBundle builds freshly initialised models for cfg and tok on dev. The
// three modules get distinct seeds derived from seed.
func NewBundle(cfg *config.Config, tok tokenizer.Tokenizer, dev gotch.Device, seed uint64) (*Bundle, error) {
	special, err := SpecialIDsOf(tok)
	if err != nil {
		return nil, err
	}
	vocab := cfg.Model.MLLM.Vocab
	if vocab == 0 {
		vocab = tok.VocabSize()
	}
	if vocab < tok.VocabSize() {
		return nil, fmt.Errorf("model: model.mllm.vocab %d is smaller than the tokenizer's %d", vocab, tok.VocabSize())
	}
	b := &Bundle{Model: cfg.Model, Tok: tok}
	if b.MLLM, err = NewMLLM(cfg.Model.MLLM, vocab, special, true, dev, seed); err == nil {
		b.MLLM.AllStates = cfg.Model.Connector.States == config.StatesAll
	}
	if err != nil {
		return nil, err
	}
	if b.Connector, err = NewConnector(cfg.Model.MLLM.Hidden, cfg.Model.DiT.Hidden, cfg.Model.Connector.Prepad, cfg.Model.MLLM.RMSNormEps, dev, seed+1); err != nil {
		b.Drop()
		return nil, err
	}
	if b.DiT, err = NewDiT(cfg.Model.DiT, dev, seed+2); err != nil {
		b.Drop()
		return nil, err
	}
	if cfg.Model.DiT.Latent == "vae" {
		if b.VAE, err = NewVAE(VAEConfigFor(cfg.Model), dev, seed+3); err != nil {
			b.Drop()
			return nil, err
		}
	}
	if err := b.AttachLoRA(cfg.LoRA, seed+4); err != nil {
		b.Drop()
		return nil, err
	}
	return b, nil
}

// Drop frees every tensor of the bundle.
func (b *Bundle) Drop() {
	if b.MLLM != nil {
		b.MLLM.Drop()
	}
	if b.Connector != nil {
		b.Connector.P.Drop()
	}
	if b.DiT != nil {
		b.DiT.Drop()
	}
	if b.VAE != nil {
		b.VAE.Drop()
	}
}

// Manifest describes a saved bundle; it is written last.
type Manifest struct {
	Version int    `json:"version"`
	Step    int    `json:"step"`
	DType   string `json:"dtype"`
	// Config is the run configuration as YAML.
	Config string `json:"config"`
	// Files maps each file of the checkpoint to its size and sha256.
	Files map[string]FileSum `json:"files"`
}

// FileSum is the size and SHA-256 of one file.
type FileSum struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Checkpoint file names inside a bundle directory.
const (
	fileMLLM      = "mllm.safetensors"
	fileConnector = "connector.safetensors"
	fileDiT       = "dit.safetensors"
	fileTokenizer = "tokenizer.json"
	fileManifest  = "manifest.json"
	// The VAE of latent: vae: a diffusers AutoencoderKL's config.json and
	// weights under flat names (a bundle is one flat directory; export
	// writes them as a vae/ folder).
	fileVAEConfig = "vae.json"
	fileVAE       = "vae.safetensors"
	// The LoRA adapters of a run with lora.mllm or lora.dit ranks, under
	// the models' own names (export writes them in PEFT's layout).
	fileMLLMLoRA = "mllm.lora.safetensors"
	fileDiTLoRA  = "dit.lora.safetensors"
)

// bundleFiles lists the files of a bundle saved by a run of cfg.
func bundleFiles(cfg *config.Config) []string {
	files := []string{fileMLLM, fileConnector, fileDiT, fileTokenizer}
	if cfg.Model.DiT.Latent == "vae" {
		files = append(files, fileVAEConfig, fileVAE)
	}
	if cfg.LoRA.MLLM.Rank > 0 {
		files = append(files, fileMLLMLoRA)
	}
	if cfg.LoRA.DiT.Rank > 0 {
		files = append(files, fileDiTLoRA)
	}
	return files
}

// AttachLoRA gives the MLLM and the DiT the adapters lora asks for that
// they do not have yet, drawn from seed (a run of a base saved without
// them starts so); models that have adapters keep them.
func (b *Bundle) AttachLoRA(lora config.LoRA, seed uint64) error {
	var err error
	if b.MLLM.Adapters == nil {
		if b.MLLM.Adapters, err = NewLoRA(b.MLLM.P, lora.MLLM, config.MLLMTargets, seed); err != nil {
			return fmt.Errorf("lora.mllm: %w", err)
		}
	}
	if b.DiT.Adapters == nil {
		if b.DiT.Adapters, err = NewLoRA(b.DiT.P, lora.DiT, config.DiTTargets, seed+1); err != nil {
			return fmt.Errorf("lora.dit: %w", err)
		}
	}
	return nil
}

// adapterFiles maps the bundle's adapter files to their parameters.
func (b *Bundle) adapterFiles() map[string]*Params {
	out := map[string]*Params{}
	if b.MLLM.Adapters != nil {
		out[fileMLLMLoRA] = b.MLLM.Adapters.P
	}
	if b.DiT.Adapters != nil {
		out[fileDiTLoRA] = b.DiT.Adapters.P
	}
	return out
}

// Save writes the bundle into dir: the three safetensors files and the
// tokenizer first, then manifest.json with their sizes and checksums (the
// only file readers trust). The manifest records cfg, the configuration
// of the run that made the weights, and its dtype; cfg's model section
// must have the bundle's shape.
func (b *Bundle) Save(dir string, step int, cfg *config.Config) error {
	if diff := cfg.Model.ShapeDiff(b.Model); len(diff) > 0 {
		return fmt.Errorf("save checkpoint %s: the configuration's model section does not fit the weights (%s)", dir, strings.Join(diff, ", "))
	}
	if (cfg.LoRA.MLLM.Rank > 0) != (b.MLLM.Adapters != nil) || (cfg.LoRA.DiT.Rank > 0) != (b.DiT.Adapters != nil) {
		return fmt.Errorf("save checkpoint %s: the configuration's lora section does not fit the bundle's adapters", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save checkpoint %s: %w", dir, err)
	}
	if _, err := cfg.YAML(); err != nil {
		return err
	}
	meta := map[string]string{"format": "thinkgen", "step": strconv.Itoa(step)}
	files := map[string]*Params{fileMLLM: b.MLLM.P, fileConnector: b.Connector.P, fileDiT: b.DiT.P}
	maps.Copy(files, b.adapterFiles())
	for file, p := range files {
		if err := SaveSafetensors(filepath.Join(dir, file), p, meta); err != nil {
			return fmt.Errorf("save checkpoint %s: %w", dir, err)
		}
	}
	if err := tokenizer.SaveFile(filepath.Join(dir, fileTokenizer), b.Tok); err != nil {
		return fmt.Errorf("save checkpoint %s: %w", dir, err)
	}
	if b.VAE != nil {
		if err := b.VAE.save(filepath.Join(dir, fileVAEConfig), filepath.Join(dir, fileVAE)); err != nil {
			return fmt.Errorf("save checkpoint %s: %w", dir, err)
		}
	}
	if err := WriteBundleManifest(dir, step, cfg); err != nil {
		return fmt.Errorf("save checkpoint %s: %w", dir, err)
	}
	return nil
}

// WriteBundleManifest writes dir's manifest.json, the file written last:
// the size and sha256 of every file a bundle of cfg has (which must all be
// in dir), step, and cfg, the configuration of the run that made the
// weights. Save calls it; so does a writer that produces the files by
// other means (thinkgen import).
func WriteBundleManifest(dir string, step int, cfg *config.Config) error {
	cfgYAML, err := cfg.YAML()
	if err != nil {
		return err
	}
	m := Manifest{Version: BundleVersion, Step: step, DType: cfg.Model.DType, Config: string(cfgYAML), Files: map[string]FileSum{}}
	for _, f := range bundleFiles(cfg) {
		sum, err := sumFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		m.Files[f] = sum
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+fileManifest+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, fileManifest))
}

// ReadBundleManifest reads a saved bundle's manifest, checks every file's
// size and sha256 against it and parses the configuration it records (the
// one Save was given), without loading any tensor.
func ReadBundleManifest(dir string) (*Manifest, *config.Config, error) {
	data, err := os.ReadFile(filepath.Join(dir, fileManifest))
	if err != nil {
		return nil, nil, fmt.Errorf("load checkpoint %s: %w", dir, err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, nil, fmt.Errorf("load checkpoint %s: manifest: %w", dir, err)
	}
	if m.Version != BundleVersion {
		return nil, nil, fmt.Errorf("load checkpoint %s: manifest version %d, this build reads %d", dir, m.Version, BundleVersion)
	}
	cfg, err := config.Parse(filepath.Join(dir, fileManifest)+" config", []byte(m.Config))
	if err != nil {
		return nil, nil, fmt.Errorf("load checkpoint %s: %w", dir, err)
	}
	for _, f := range bundleFiles(cfg) {
		want, ok := m.Files[f]
		if !ok {
			return nil, nil, fmt.Errorf("load checkpoint %s: manifest lists no %s", dir, f)
		}
		got, err := sumFile(filepath.Join(dir, f))
		if err != nil {
			return nil, nil, fmt.Errorf("load checkpoint %s: %w", dir, err)
		}
		if got != want {
			return nil, nil, fmt.Errorf("load checkpoint %s: %s has size %d sha256 %s, manifest says %d %s", dir, f, got.Size, got.SHA256, want.Size, want.SHA256)
		}
	}
	return &m, cfg, nil
}

// LoadBundle reads a bundle saved by Save, verifying every file against the
// manifest (an error names a file whose size or checksum differs) and every
// tensor's name and shape against the configuration.
func LoadBundle(dir string, dev gotch.Device) (*Bundle, *Manifest, error) {
	m, cfg, err := ReadBundleManifest(dir)
	if err != nil {
		return nil, nil, err
	}
	tok, err := tokenizer.LoadFile(filepath.Join(dir, fileTokenizer))
	if err != nil {
		return nil, nil, fmt.Errorf("load checkpoint %s: %w", dir, err)
	}
	b, err := NewBundle(cfg, tok, dev, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("load checkpoint %s: %w", dir, err)
	}
	files := map[string]*Params{fileMLLM: b.MLLM.P, fileConnector: b.Connector.P, fileDiT: b.DiT.P}
	maps.Copy(files, b.adapterFiles())
	for file, p := range files {
		if _, err := LoadSafetensors(filepath.Join(dir, file), p); err != nil {
			b.Drop()
			return nil, nil, fmt.Errorf("load checkpoint %s: %w", dir, err)
		}
	}
	if b.VAE != nil {
		b.VAE.Drop()
		if b.VAE, err = loadBundleVAE(filepath.Join(dir, fileVAEConfig), filepath.Join(dir, fileVAE), cfg.Model, dev); err != nil {
			b.Drop()
			return nil, nil, fmt.Errorf("load checkpoint %s: %w", dir, err)
		}
	}
	return b, m, nil
}

// LoadBundleMLLM copies the MLLM weights of the saved bundle in dir into
// p (the parameters of an MLLM of the same shape), leaving the rest of the
// bundle unread.
func LoadBundleMLLM(dir string, p *Params) error {
	if _, err := LoadSafetensors(filepath.Join(dir, fileMLLM), p); err != nil {
		return fmt.Errorf("load the MLLM of %s: %w", dir, err)
	}
	return nil
}

// LoadBundleVAE loads the diffusers AutoencoderKL folder dir as the VAE of
// model section m, refusing one whose architecture is not the one m asks
// for (its scaling and shift factors are its own).
func LoadBundleVAE(dir string, m config.Model, dev gotch.Device) (*VAE, error) {
	return loadBundleVAE(filepath.Join(dir, VAEConfigFile), filepath.Join(dir, VAEWeightsFile), m, dev)
}

// CheckBundleVAE checks, reading no tensor, that dir is a diffusers
// AutoencoderKL folder of the architecture model section m asks for,
// whose weights' header matches its config.json.
func CheckBundleVAE(dir string, m config.Model) error {
	_, err := checkBundleVAE(filepath.Join(dir, VAEConfigFile), filepath.Join(dir, VAEWeightsFile), m)
	return err
}

func checkBundleVAE(configPath, weights string, m config.Model) (VAEConfig, error) {
	c, err := readVAEConfig(configPath, weights)
	if err != nil {
		return c, err
	}
	if diff := c.fits(m); len(diff) > 0 {
		return c, fmt.Errorf("VAE %s: %s", configPath, strings.Join(diff, "; "))
	}
	return c, nil
}

func loadBundleVAE(configPath, weights string, m config.Model, dev gotch.Device) (*VAE, error) {
	if _, err := checkBundleVAE(configPath, weights, m); err != nil {
		return nil, err
	}
	return loadVAE(configPath, weights, dev)
}

func sumFile(path string) (FileSum, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileSum{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return FileSum{}, fmt.Errorf("read %s: %w", path, err)
	}
	return FileSum{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// TokenizerFor returns the tokenizer model.mllm.tokenizer names: the
// word-level ShapeWorld tokenizer built from datasets.Vocabulary() for
// "shapeworld", else the HuggingFace tokenizer.json (or saved thinkgen
// tokenizer) at that path.
func TokenizerFor(c config.MLLM) (tokenizer.Tokenizer, error) {
	if c.Tokenizer == "shapeworld" {
		return tokenizer.NewWords(datasets.Vocabulary())
	}
	tok, err := tokenizer.LoadFile(c.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("model.mllm.tokenizer: %w", err)
	}
	return tok, nil
}
