package export

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/model"
)

// baseTiny is the shipped base bundle.
var baseTiny = filepath.Join("..", "base", "tiny")

// writeBase exports base/tiny into a fresh directory and returns it.
func writeBase(t *testing.T) (string, *Manifest) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "export")
	m, err := Write(baseTiny, out, Source{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return out, m
}

// wantFiles are the files of an export besides its manifest.
var wantFiles = []string{
	"connector/config.json", "connector/diffusion_pytorch_model.safetensors",
	"mllm/config.json", "mllm/generation_config.json", "mllm/model.safetensors", "mllm/special_tokens_map.json",
	"mllm/tokenizer.json", "mllm/tokenizer_config.json", "mllm/visual.safetensors",
	"model_index.json", "scheduler/scheduler_config.json",
	"transformer/config.json", "transformer/diffusion_pytorch_model.safetensors",
}

func TestWriteLayout(t *testing.T) {
	out, m := writeBase(t)
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, f.Path)
		size, sum, err := sumFile(filepath.Join(out, f.Path))
		if err != nil || size != f.Size || sum != f.SHA256 {
			t.Errorf("%s: size %d sha256 %s on disk (%v), manifest %d %s", f.Path, size, sum, err, f.Size, f.SHA256)
		}
	}
	if !slices.Equal(paths, wantFiles) {
		t.Errorf("files %v\nwant %v", paths, wantFiles)
	}
	bm, _, err := model.ReadBundleManifest(baseTiny)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config != bm.Config || m.Version != bm.Step || m.Run != "" || m.Format != Format || m.FormatVersion != FormatVersion || m.DType != Float32 {
		t.Errorf("manifest: run %q version %d format %s/%d dtype %q; config equal: %v", m.Run, m.Version, m.Format, m.FormatVersion, m.DType, m.Config == bm.Config)
	}
	// Nothing is left beside the export.
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Errorf("the export's parent holds %d entries, want 1 (no temporary directory left)", len(entries))
	}
	var cfg map[string]any
	data, _ := os.ReadFile(filepath.Join(out, "mllm", "config.json"))
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"model_type": "qwen3", "hidden_size": 128.0, "num_hidden_layers": 6.0, "num_key_value_heads": 2.0,
		"head_dim": 32.0, "intermediate_size": 384.0, "vocab_size": 582.0, "tie_word_embeddings": true, "torch_dtype": "float32", "eos_token_id": 2.0} {
		if cfg[k] != want {
			t.Errorf("mllm/config.json %s = %v, want %v", k, cfg[k], want)
		}
	}
}

// tensorBits returns every parameter of a bundle as raw float32 bits, by
// module and name.
func tensorBits(b *model.Bundle) map[string][]uint32 {
	out := map[string][]uint32{}
	for mod, p := range map[string]*model.Params{"mllm": b.MLLM.P, "connector": b.Connector.P, "dit": b.DiT.P} {
		for i, s := range p.Specs() {
			vals := p.Tensors()[i].MustView([]int64{-1}, false)
			f := vals.Float64Values(true)
			bits := make([]uint32, len(f))
			for j, v := range f {
				bits[j] = math.Float32bits(float32(v))
			}
			out[mod+"/"+s.Name] = bits
		}
	}
	return out
}

// sameTensors fails t for each tensor of want that got lacks or holds
// with other bits (saying differs), and when got has more tensors.
func sameTensors(t *testing.T, want, got *model.Bundle, differs string) {
	t.Helper()
	wb, gb := tensorBits(want), tensorBits(got)
	if len(wb) != len(gb) {
		t.Errorf("%d tensors imported, want %d", len(gb), len(wb))
	}
	for name, w := range wb {
		if !slices.Equal(w, gb[name]) {
			t.Errorf("tensor %s %s", name, differs)
		}
	}
}

// withImport loads base/tiny and imports the export in out, inside
// libtorch.Run, and calls check with both; an error ends the test.
func withImport(t *testing.T, out string, check func(want, got *model.Bundle) error) {
	t.Helper()
	withImportOf(t, baseTiny, out, check)
}

// withImportOf is withImport with the bundle in dir in place of base/tiny.
func withImportOf(t *testing.T, dir, out string, check func(want, got *model.Bundle) error) {
	t.Helper()
	err := libtorch.Run(func() error {
		want, _, err := model.LoadBundle(dir, gotch.CPU)
		if err != nil {
			return err
		}
		defer want.Drop()
		got, _, err := Import(out, gotch.CPU)
		if err != nil {
			return err
		}
		defer got.Drop()
		return check(want, got)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestImportIsBitIdentical(t *testing.T) {
	out, m := writeBase(t)
	resaved := t.TempDir()
	withImport(t, out, func(want, got *model.Bundle) error {
		sameTensors(t, want, got, "differs after export and import")
		if got.Tok.VocabSize() != want.Tok.VocabSize() || got.Tok.Specials() != want.Tok.Specials() {
			t.Errorf("tokenizer: %d tokens %+v, want %d %+v", got.Tok.VocabSize(), got.Tok.Specials(), want.Tok.VocabSize(), want.Tok.Specials())
		}
		_, cfg, err := ReadManifest(out)
		if err != nil {
			return err
		}
		return got.Save(resaved, m.Version, cfg)
	})
	// Saved again, the imported bundle's tensors and tokenizer are the
	// shipped ones, byte for byte.
	testutil.SameFiles(t, baseTiny, resaved, []string{"mllm.safetensors", "connector.safetensors", "dit.safetensors", "tokenizer.json"}, "the imported bundle saves differently from the exported one")
}

func TestWriteRefusesOut(t *testing.T) {
	parent := t.TempDir()
	full := filepath.Join(parent, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "keep.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(parent, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{full, file} {
		if _, err := Write(baseTiny, out, Source{}, Options{}); !errors.Is(err, ErrOutNotEmpty) {
			t.Errorf("Write to %s: %v, want ErrOutNotEmpty", out, err)
		}
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 2 {
		t.Errorf("the refused exports left %d entries in the parent, want the 2 there were", len(entries))
	}
	if b, _ := os.ReadFile(filepath.Join(full, "keep.txt")); string(b) != "mine" {
		t.Error("the non-empty output directory was changed")
	}
	// An existing empty directory is fine.
	empty := filepath.Join(parent, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(baseTiny, empty, Source{}, Options{}); err != nil {
		t.Errorf("Write to an empty directory: %v", err)
	}
}

// copyDir copies an export so that a test can damage the copy.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestImportRejects(t *testing.T) {
	out, _ := writeBase(t)
	editManifest := func(edit func(m *Manifest)) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
			if err != nil {
				t.Fatal(err)
			}
			var m Manifest
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			edit(&m)
			if err := writeJSON(filepath.Join(dir, ManifestFile), &m); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string
	}{
		{"flipped byte", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "transformer", "diffusion_pytorch_model.safetensors")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-3] ^= 1
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"transformer/diffusion_pytorch_model.safetensors has size", "the manifest says"}},
		{"truncated tokenizer", func(t *testing.T, dir string) {
			if err := os.Truncate(filepath.Join(dir, "mllm", "tokenizer.json"), 10); err != nil {
				t.Fatal(err)
			}
		}, []string{"mllm/tokenizer.json has size 10"}},
		{"missing file", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "mllm", "visual.safetensors")); err != nil {
				t.Fatal(err)
			}
		}, []string{"mllm/visual.safetensors is missing"}},
		{"no manifest", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, ManifestFile)); err != nil {
				t.Fatal(err)
			}
		}, []string{ManifestFile, "no such file"}},
		{"path outside", editManifest(func(m *Manifest) { m.Files[0].Path = "../../etc/passwd" }), []string{`path "../../etc/passwd"`}},
		{"unlisted weights", editManifest(func(m *Manifest) {
			m.Files = slices.DeleteFunc(m.Files, func(f File) bool { return f.Path == "mllm/model.safetensors" })
		}), []string{"lists no mllm/model.safetensors"}},
		{"format version", editManifest(func(m *Manifest) { m.FormatVersion = 9 }), []string{"version 9", "reads"}},
		{"bad config", editManifest(func(m *Manifest) { m.Config = "model:\n  mllm:\n    nosuch: 1\n" }), []string{"nosuch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, out)
			tt.damage(t, dir)
			err := libtorch.Run(func() error {
				b, _, err := Import(dir, gotch.CPU)
				if err == nil {
					b.Drop()
				}
				return err
			})
			if err == nil {
				t.Fatal("Import accepted the damaged export")
			}
			testutil.Mentions(t, "error", err.Error(), tt.want)
		})
	}
}

func TestWriteRejectsMismatchedBundle(t *testing.T) {
	// A bundle whose configuration says another shape than its tensors
	// have is refused before anything is written.
	bundle := filepath.Join(t.TempDir(), "bundle")
	if err := os.CopyFS(bundle, os.DirFS(baseTiny)); err != nil {
		t.Fatal(err)
	}
	bm, _, err := model.ReadBundleManifest(bundle)
	if err != nil {
		t.Fatal(err)
	}
	bm.Config = strings.Replace(bm.Config, "    ffn: 384\n", "    ffn: 256\n", 1)
	if err := writeJSON(filepath.Join(bundle, "manifest.json"), bm); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	_, err = Write(bundle, out, Source{}, Options{})
	if err == nil || !strings.Contains(err.Error(), "mlp.gate_proj.weight has shape [384 128], want [256 128]") {
		t.Errorf("Write: %v, want a shape error naming the tensor", err)
	}
	if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("the refused export left %s behind", out)
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
		t.Errorf("the refused export left %d entries beside it", len(entries))
	}
}

// TestImportFreesTensors: importing, running and dropping a bundle leaves
// no live tensor behind.
func TestImportFreesTensors(t *testing.T) {
	out, _ := writeBase(t)
	err := libtorch.Run(func() error {
		before := libtorch.LiveTensors()
		for range 3 {
			b, _, err := Import(out, gotch.CPU)
			if err != nil {
				return err
			}
			_, err = b.MLLM.Logits([]int{1, 20, 30, 2})
			b.Drop()
			if err != nil {
				return err
			}
		}
		if after := libtorch.LiveTensors(); after != before {
			t.Errorf("live tensors: %d before three imports, %d after", before, after)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A bundle saved in bfloat16 (a mixed-precision run's checkpoint) exports
// in bfloat16 unless --dtype says otherwise, and the import holds the same
// values bit for bit.
func TestWriteDefaultsToTheCheckpointDType(t *testing.T) {
	bf16 := t.TempDir()
	err := libtorch.Run(func() error {
		b, _, err := model.LoadBundle(baseTiny, gotch.CPU)
		if err != nil {
			return err
		}
		defer b.Drop()
		bm, cfg, err := model.ReadBundleManifest(baseTiny)
		if err != nil {
			return err
		}
		cfg.Model.DType = "bfloat16"
		b.ToDType(gotch.BFloat16)
		return b.Save(bf16, bm.Step, cfg)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		opt  Options
		want DType
	}{
		{Options{}, BFloat16},
		{Options{DType: Float32}, Float32},
	} {
		out := filepath.Join(t.TempDir(), "export")
		m, err := Write(bf16, out, Source{}, tt.opt)
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			TorchDType string `json:"torch_dtype"`
		}
		testutil.ReadJSON(t, filepath.Join(out, "mllm", "config.json"), &cfg)
		if m.DType != tt.want || cfg.TorchDType != string(tt.want) {
			t.Errorf("--dtype %q: manifest dtype %q, torch_dtype %q, want %q", tt.opt.DType, m.DType, cfg.TorchDType, tt.want)
		}
		withImportOf(t, bf16, out, func(want, got *model.Bundle) error {
			wb, gb := tensorBits(want), tensorBits(got)
			for name, w := range wb {
				if !slices.Equal(w, gb[name]) {
					t.Errorf("--dtype %q: tensor %s differs from the bfloat16 checkpoint's", tt.opt.DType, name)
				}
			}
			return nil
		})
	}
}
