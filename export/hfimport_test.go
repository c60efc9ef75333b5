package export

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"
	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/testenv"
	"github.com/thinkgen/thinkgen/model"
)

// importHF runs ImportHF inside libtorch.Run.
func importHF(cfg *config.Config, src HFSources, out string) (*Imported, error) {
	var rep *Imported
	err := libtorch.Run(func() error {
		var err error
		rep, err = ImportHF(cfg, src, out)
		return err
	})
	return rep, err
}

// exportConfig returns the configuration an export records.
func exportConfig(t *testing.T, dir string) *config.Config {
	t.Helper()
	_, cfg, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestImportHFRoundTrip exports base/tiny (float32, and bfloat16) and
// imports the export's folders back: the bundle's tensors equal those
// Import reads from the export, bit for bit, and nothing is initialised.
func TestImportHFRoundTrip(t *testing.T) {
	for _, d := range []DType{Float32, BFloat16} {
		t.Run(string(d), func(t *testing.T) {
			exp := filepath.Join(t.TempDir(), "export")
			if _, err := Write(baseTiny, exp, Source{}, Options{DType: d}); err != nil {
				t.Fatal(err)
			}
			mllm := filepath.Join(exp, "mllm")
			if d == BFloat16 {
				mllm = copyDir(t, mllm)
				shardMLLM(t, mllm, 3)
			}
			cfg := exportConfig(t, exp)
			out := filepath.Join(t.TempDir(), "bundle")
			rep, err := importHF(cfg, HFSources{MLLM: mllm, DiT: exp}, out)
			if err != nil {
				t.Fatal(err)
			}
			wantShards := map[DType]int{Float32: 1, BFloat16: 3}[d]
			if rep.Shards != wantShards || len(rep.Initialised) != 0 {
				t.Errorf("imported from %d files, initialised %v; want %d files, nothing initialised", rep.Shards, rep.Initialised, wantShards)
			}
			err = libtorch.Run(func() error {
				want, _, err := Import(exp, gotch.CPU)
				if err != nil {
					return err
				}
				defer want.Drop()
				got, m, err := model.LoadBundle(out, gotch.CPU)
				if err != nil {
					return err
				}
				defer got.Drop()
				wb, gb := tensorBits(want), tensorBits(got)
				if len(wb) != len(gb) {
					t.Errorf("%d tensors imported, the export has %d", len(gb), len(wb))
				}
				for name, w := range wb {
					if !slices.Equal(w, gb[name]) {
						t.Errorf("tensor %s differs from the export's", name)
					}
				}
				if got.Tok.VocabSize() != want.Tok.VocabSize() || got.Tok.Specials() != want.Tok.Specials() {
					t.Errorf("tokenizer: %d tokens %+v, want %d %+v", got.Tok.VocabSize(), got.Tok.Specials(), want.Tok.VocabSize(), want.Tok.Specials())
				}
				if y, _ := cfg.YAML(); m.Config != string(y) || m.Step != 0 {
					t.Errorf("manifest: step %d, config equal %v; want step 0 and the export's config", m.Step, m.Config == string(y))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// shardMLLM splits dir's model.safetensors into n shards listed by
// model.safetensors.index.json, as transformers' save_pretrained with a
// max_shard_size writes them.
func shardMLLM(t *testing.T, dir string, n int) {
	t.Helper()
	st, err := model.OpenSafetensors(filepath.Join(dir, hfWeights))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	names := make([]string, 0, len(st.Tensors))
	for name := range st.Tensors {
		names = append(names, name)
	}
	slices.Sort(names)
	weightMap := map[string]string{}
	for i := 0; i < n; i++ {
		file := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, n)
		views := map[string]safetensors.TensorView{}
		for j := i; j < len(names); j += n {
			e := st.Tensors[names[j]]
			raw := make([]byte, e.Offsets[1]-e.Offsets[0])
			if _, err := io.ReadFull(st.Section(e), raw); err != nil {
				t.Fatal(err)
			}
			shape := make([]uint64, len(e.Shape))
			for k, s := range e.Shape {
				shape[k] = uint64(s)
			}
			v, err := safetensors.NewTensorView(map[string]safetensors.DType{"F32": safetensors.F32, "BF16": safetensors.BF16}[e.DType], shape, raw)
			if err != nil {
				t.Fatal(err)
			}
			views[names[j]] = v
			weightMap[names[j]] = file
		}
		f, err := os.Create(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := safetensors.SerializeToWriter(views, map[string]string{"format": "pt"}, f); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	writeTestJSON(t, filepath.Join(dir, hfIndex), map[string]any{"metadata": map[string]any{}, "weight_map": weightMap})
	if err := os.Remove(filepath.Join(dir, hfWeights)); err != nil {
		t.Fatal(err)
	}
}

func writeTestJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// editJSON rewrites the JSON object in path.
func editJSON(t *testing.T, path string, edit func(m map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	writeTestJSON(t, path, m)
}

// TestImportHFRejects: a folder whose config does not match the
// configuration or its weights, a missing shard, a dtype the config does
// not allow are refused before anything is written, naming the file and
// the key or tensor.
func TestImportHFRejects(t *testing.T) {
	exp := filepath.Join(t.TempDir(), "export")
	if _, err := Write(baseTiny, exp, Source{}, Options{DType: BFloat16}); err != nil {
		t.Fatal(err)
	}
	cfg := exportConfig(t, exp)
	shardMLLM(t, filepath.Join(exp, "mllm"), 2)
	index := func(edit func(wm map[string]any)) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "mllm", hfIndex), func(m map[string]any) { edit(m["weight_map"].(map[string]any)) })
		}
	}
	for _, tc := range []struct {
		name  string
		edit  func(t *testing.T, dir string)
		wants []string
	}{
		{"config does not match", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "mllm", hfConfig), func(m map[string]any) { m["num_hidden_layers"] = 5 })
		}, []string{filepath.Join("mllm", hfConfig), "num_hidden_layers is 5", "model.mllm.layers is 6"}},
		{"not qwen3", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "mllm", hfConfig), func(m map[string]any) { m["model_type"] = "llama" })
		}, []string{filepath.Join("mllm", hfConfig), `model_type "llama"`}},
		{"dtype the config does not allow", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "mllm", hfConfig), func(m map[string]any) { m["torch_dtype"] = "float16" })
		}, []string{"model-00001-of-00002.safetensors: tensor model.embed_tokens.weight has dtype BF16", "allows F16"}},
		{"missing shard", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "mllm", "model-00002-of-00002.safetensors"))
		}, []string{hfIndex, "model-00002-of-00002.safetensors is missing", "it holds tensor model.layers."}},
		{"tensor not in the index", index(func(wm map[string]any) { delete(wm, "model.norm.weight") }), []string{hfIndex, "tensor model.norm.weight is missing"}},
		{"tensor not in its shard", index(func(wm map[string]any) {
			other := map[any]string{"model-00001-of-00002.safetensors": "model-00002-of-00002.safetensors", "model-00002-of-00002.safetensors": "model-00001-of-00002.safetensors"}
			wm["model.norm.weight"] = other[wm["model.norm.weight"]]
		}), []string{"of-00002.safetensors: tensor model.norm.weight is missing"}},
		{"unexpected tensor", index(func(wm map[string]any) { wm["model.layers.6.mlp.up_proj.weight"] = "model-00001-of-00002.safetensors" }),
			[]string{hfIndex, "unexpected tensors model.layers.6.mlp.up_proj.weight"}},
		{"shard outside the folder", index(func(wm map[string]any) { wm["model.norm.weight"] = "../model-00001-of-00002.safetensors" }),
			[]string{hfIndex, "tensor model.norm.weight is in \"../model-00001-of-00002.safetensors\""}},
		{"no tokenizer", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "mllm", hfTok)) }, []string{filepath.Join("mllm", hfTok)}},
		{"DiT config does not match", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "transformer", "config.json"), func(m map[string]any) { m["num_layers"] = 3 })
		}, []string{filepath.Join("transformer", "config.json"), "num_layers is 3"}},
		{"connector weights do not match", func(t *testing.T, dir string) {
			data, err := os.ReadFile(filepath.Join(dir, "transformer", "diffusion_pytorch_model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "connector", "diffusion_pytorch_model.safetensors"), data, 0o644)
		}, []string{filepath.Join("connector", "diffusion_pytorch_model.safetensors"), "unexpected tensors"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, exp)
			tc.edit(t, dir)
			out := filepath.Join(t.TempDir(), "bundle")
			_, err := importHF(cfg, HFSources{MLLM: filepath.Join(dir, "mllm"), DiT: dir}, out)
			if err == nil {
				t.Fatal("imported; want an error")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
				t.Errorf("%d entries written beside the bundle; want none (refused before any work)", len(entries))
			}
		})
	}
}

// TestImportHFRefusesQwen3VL: import reads Qwen3ForCausalLM folders, so a
// configuration with the Qwen3-VL tower is refused before anything is read.
func TestImportHFRefusesQwen3VL(t *testing.T) {
	cfg := config.Default()
	m := &cfg.Model.MLLM
	m.Vision, m.MRopeSection = config.VisionQwen3VL, []int{m.HeadDim / 2, 0, 0}
	m.ViT = config.ViT{Depth: 2, Hidden: 32, Heads: 2, FFN: 64, TemporalPatch: 2, SpatialMerge: 2, PositionEmbeddings: 16, DeepStack: []int{1}}
	cfg.Model.DiT.ImageSize = 32
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "bundle")
	_, err := importHF(cfg, HFSources{MLLM: t.TempDir()}, out)
	if err == nil || !strings.Contains(err.Error(), "model.mllm.vision is qwen3vl") {
		t.Fatalf("error %v, want a refusal naming model.mllm.vision", err)
	}
}

// TestImportHFTransformersSharded imports a random Qwen3ForCausalLM that
// transformers saved as a sharded bfloat16 checkpoint (with the Qwen
// tokenizer of tokenizer/testdata) and compares the MLLM's logits with
// transformers' for the same (widened) weights.
func TestImportHFTransformersSharded(t *testing.T) {
	py := testenv.Python(t)
	tok := filepath.Join("..", "tokenizer", "testdata", "qwen", "tokenizer.json")
	c := config.MLLM{Tokenizer: tok, Hidden: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, FFN: 128, MaxSeqLen: 64,
		RopeTheta: 10000, RMSNormEps: 1e-6, VisionPatch: 4, Vocab: 1040}
	ids := []int{3, 17, 250, 999, 1025, 1039, 42, 7}
	dir := t.TempDir()
	args := []string{filepath.Join("testdata", "hf_sharded.py"), dir}
	for _, v := range []int{c.Vocab, c.Hidden, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.FFN} {
		args = append(args, strconv.Itoa(v))
	}
	strIDs := make([]string, len(ids))
	for i, id := range ids {
		strIDs[i] = strconv.Itoa(id)
	}
	args = append(args, "100KB", tok, strings.Join(strIDs, ","))
	if out, err := exec.Command(py, args...).CombinedOutput(); err != nil {
		t.Fatalf("reference script: %v\n%s", err, out)
	}
	cfg := exportConfig(t, writeBaseOnce(t))
	cfg.Model.MLLM = c
	out := filepath.Join(t.TempDir(), "bundle")
	rep, err := importHF(cfg, HFSources{MLLM: filepath.Join(dir, "model"), Seed: 1}, out)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Shards < 2 || !slices.Equal(rep.Initialised, []string{"vision", "connector", "dit"}) {
		t.Errorf("imported from %d files, initialised %v; want ≥ 2 shards and vision, connector, dit initialised", rep.Shards, rep.Initialised)
	}
	want := tensorsOf(t, filepath.Join(dir, "expected.safetensors"), "logits")[0]
	err = libtorch.Run(func() error {
		b, _, err := model.LoadBundle(out, gotch.CPU)
		if err != nil {
			return err
		}
		defer b.Drop()
		got, err := b.MLLM.Logits(ids)
		if err != nil {
			return err
		}
		if len(got) != len(want) {
			return fmt.Errorf("%d logits, transformers gives %d", len(got), len(want))
		}
		var worst float64
		for i := range got {
			worst = max(worst, math.Abs(float64(got[i]-want[i])))
		}
		t.Logf("logits: max |thinkgen − transformers| = %.3g over %d values", worst, len(got))
		if worst > 1e-4 {
			t.Errorf("logits differ from transformers' by %g (bound 1e-4)", worst)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// writeBaseOnce exports base/tiny (for its configuration).
func writeBaseOnce(t *testing.T) string {
	t.Helper()
	out, _ := writeBase(t)
	return out
}
