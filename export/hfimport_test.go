package export

import (
	"encoding/binary"
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
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/testenv"
	"github.com/thinkgen/thinkgen/internal/vlref"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/tokenizer"
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
				sameTensors(t, want, got, "differs from the export's")
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
		{"DiT timestep scale", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "transformer", "config.json"), func(m map[string]any) { m["timestep_scale"] = 10 })
		}, []string{filepath.Join("transformer", "config.json"), "timestep_scale is 10", "gives 1"}},
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
			checkRefused(t, cfg, HFSources{MLLM: filepath.Join(dir, "mllm"), DiT: dir}, tc.wants)
		})
	}
	t.Run("earlier exports' timestep scale", func(t *testing.T) {
		// Exports before ditConfig's fix wrote timestep_scale 1000 for
		// the same transformer: still imported.
		dir := copyDir(t, exp)
		editJSON(t, filepath.Join(dir, "transformer", "config.json"), func(m map[string]any) { m["timestep_scale"] = 1000 })
		if _, err := importHF(cfg, HFSources{MLLM: filepath.Join(dir, "mllm"), DiT: dir}, filepath.Join(t.TempDir(), "bundle")); err != nil {
			t.Fatal(err)
		}
	})
}

// checkRefused checks that ImportHF refuses src with an error saying each
// of wants, before writing anything.
func checkRefused(t *testing.T, cfg *config.Config, src HFSources, wants []string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bundle")
	_, err := importHF(cfg, src, out)
	if err == nil {
		t.Fatal("imported; want an error")
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
		t.Errorf("%d entries written beside the bundle; want none (refused before any work)", len(entries))
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
	got := bundleLogits(t, out, ids)
	if len(got) != len(want) {
		t.Fatalf("%d logits, transformers gives %d", len(got), len(want))
	}
	worst := maxDiff(got, want)
	t.Logf("logits: max |thinkgen − transformers| = %.3g over %d values", worst, len(got))
	if worst > 1e-4 {
		t.Errorf("logits differ from transformers' by %g (bound 1e-4)", worst)
	}
}

// bundleLogits loads the bundle in dir and returns its MLLM's logits of ids.
func bundleLogits(t *testing.T, dir string, ids []int) []float32 {
	t.Helper()
	var got []float32
	err := libtorch.Run(func() error {
		b, _, err := model.LoadBundle(dir, gotch.CPU)
		if err != nil {
			return err
		}
		defer b.Drop()
		got, err = b.MLLM.Logits(ids)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// writeBaseOnce exports base/tiny (for its configuration).
func writeBaseOnce(t *testing.T) string {
	t.Helper()
	out, _ := writeBase(t)
	return out
}

// qwen3VLCase is a random Qwen3VLForConditionalGeneration that
// transformers saved as a sharded bfloat16 checkpoint (with the ShapeWorld
// tokenizer), and the configuration it fits.
type qwen3VLCase struct {
	cfg       *config.Config
	dir       string // the transformers folder
	expected  string // the reference's expected.safetensors
	visionEnd int    // <|vision_end|>, which closes the image's tokens
}

// newQwen3VLCase has transformers save a small random Qwen3-VL model of
// base/tiny's configuration with vlref.Tiny's MLLM.
func newQwen3VLCase(t *testing.T, py string) qwen3VLCase {
	t.Helper()
	cfg := exportConfig(t, writeBaseOnce(t))
	m := vlref.Tiny()
	m.Tokenizer, m.MaxSeqLen = "shapeworld", cfg.Model.MLLM.MaxSeqLen
	cfg.Model.MLLM = m
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tok, err := model.TokenizerFor(cfg.Model.MLLM)
	if err != nil {
		t.Fatal(err)
	}
	sp := tok.Specials()
	// The ShapeWorld vocabulary has no <|video_pad|>: the reference's is
	// its last token, which no prompt holds.
	tokens := vlref.Tokens{Vocab: tok.VocabSize(), ImagePad: sp.ImagePad, VideoPad: tok.VocabSize() - 1, VisionStart: sp.VisionStart, VisionEnd: sp.VisionEnd}
	ref := t.TempDir()
	vlref.Write(t, py, filepath.Join("..", "model", "testdata", "qwen3vl_reference.py"), ref, cfg.Model.MLLM, tokens,
		cfg.Model.DiT.ImageSize, vlref.Save{DType: "bfloat16", MaxShardSize: "40KB"})
	dir := filepath.Join(ref, "model")
	if err := tokenizer.SaveFile(filepath.Join(dir, hfTok), tok); err != nil {
		t.Fatal(err)
	}
	return qwen3VLCase{cfg: cfg, dir: dir, expected: filepath.Join(ref, "expected.safetensors"), visionEnd: sp.VisionEnd}
}

// int64sOf reads the int64 tensor name of the safetensors file at path.
func int64sOf(t *testing.T, path, name string) []int64 {
	t.Helper()
	st, err := model.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, ok := st.Tensors[name]
	if !ok || e.DType != "I64" {
		t.Fatalf("%s: no int64 tensor %s", path, name)
	}
	raw := make([]byte, e.Bytes())
	if _, err := io.ReadFull(st.Section(e), raw); err != nil {
		t.Fatal(err)
	}
	out := make([]int64, len(raw)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	return out
}

// checkQwen3VLLogits compares the MLLM of the bundle in dir with the
// reference's logits: the text row through Logits, the row with an image
// through LogProbs of the tokens after the image (log-softmax of the
// reference's logits at the previous position).
func checkQwen3VLLogits(t *testing.T, c qwen3VLCase, dir string) {
	t.Helper()
	ids := int64sOf(t, c.expected, "ids")
	ref := tensorsOf(t, c.expected, "logits_image", "logits_text", "image")
	n := len(ids) / 2
	vocab := len(ref[1]) / n
	row := func(r int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = int(ids[r*n+i])
		}
		return out
	}
	image, text := row(0), row(1)
	end := slices.Index(image, c.visionEnd) + 1
	if end == 0 {
		t.Fatal("the reference's image row has no <|vision_end|>")
	}
	got := bundleLogits(t, dir, text)
	if len(got) != len(ref[1]) {
		t.Fatalf("text row: %d logits, transformers gives %d", len(got), len(ref[1]))
	}
	d := maxDiff(got, ref[1])
	t.Logf("text row: max |thinkgen − transformers| = %.3g over %d logits", d, len(got))
	if d > 1e-4 {
		t.Errorf("text row: logits differ from transformers' by %g (bound 1e-4)", d)
	}
	err := libtorch.Run(func() error {
		b, _, err := model.LoadBundle(dir, gotch.CPU)
		if err != nil {
			return err
		}
		defer b.Drop()
		side := int64(c.cfg.Model.DiT.ImageSize)
		img := ts.MustOfSlice(ref[2]).MustView([]int64{1, 3, side, side}, true)
		defer img.MustDrop()
		var lp *model.TokenLogProbs
		libtorch.NoGrad(func() { lp, err = b.MLLM.LogProbs([][]int{image[:end]}, [][]int{image[end:]}, 1, img) })
		if err != nil {
			return err
		}
		gotLP := lp.LogProbs.Float64Values()
		lp.Drop()
		if len(gotLP) != n-end {
			return fmt.Errorf("image row: %d log-probs for %d tokens", len(gotLP), n-end)
		}
		var worst float64
		for j, tok := range image[end:] {
			logits := ref[0][(end-1+j)*vocab : (end+j)*vocab]
			var sum float64
			hi := slices.Max(logits)
			for _, v := range logits {
				sum += math.Exp(float64(v - hi))
			}
			want := float64(logits[tok]-hi) - math.Log(sum)
			worst = max(worst, math.Abs(gotLP[j]-want))
		}
		t.Logf("image row: max |log-prob thinkgen − transformers| = %.3g over %d tokens", worst, n-end)
		if worst > 1e-4 {
			t.Errorf("image row: log-probs differ from transformers' by %g (bound 1e-4)", worst)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestImportExportQwen3VL has transformers save a random
// Qwen3VLForConditionalGeneration (sharded, bfloat16), round-trips it
// through import and export (qwen3VLRoundTrip) and checks the refusals of
// bad folders (qwen3VLRefusals).
func TestImportExportQwen3VL(t *testing.T) {
	py := testenv.VLPython(t)
	c := newQwen3VLCase(t, py)
	t.Run("round trip", func(t *testing.T) { qwen3VLRoundTrip(t, py, c) })
	t.Run("refusals", func(t *testing.T) { qwen3VLRefusals(t, c) })
}

// qwen3VLRoundTrip imports the case's folder and checks the imported
// MLLM's logits against transformers'; exports the bundle and has
// transformers load the export (no missing or unexpected weight) and give
// the same logits; and Import reads the export back (as run.base does) to
// the imported bundle's tensors, bit for bit.
func qwen3VLRoundTrip(t *testing.T, py string, c qwen3VLCase) {
	out := filepath.Join(t.TempDir(), "bundle")
	rep, err := importHF(c.cfg, HFSources{MLLM: c.dir, Seed: 1}, out)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Shards < 2 || !slices.Equal(rep.Initialised, []string{"connector", "dit"}) {
		t.Errorf("imported from %d files, initialised %v; want ≥ 2 shards and connector, dit initialised", rep.Shards, rep.Initialised)
	}
	checkQwen3VLLogits(t, c, out)

	exp := filepath.Join(t.TempDir(), "export")
	if _, err := Write(out, exp, Source{}, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(exp, filepath.FromSlash(fileMLLMVision))); err == nil {
		t.Errorf("the export has %s; a Qwen3-VL export keeps its ViT in %s", fileMLLMVision, fileMLLMWeights)
	}
	loaded := filepath.Join(t.TempDir(), "loaded.safetensors")
	if o, err := exec.Command(py, filepath.Join("testdata", "qwen3vl_load.py"), filepath.Join(exp, "mllm"), c.expected, loaded).CombinedOutput(); err != nil {
		t.Fatalf("transformers on the export: %v\n%s", err, o)
	}
	got := tensorsOf(t, loaded, "logits_image", "logits_text")
	want := tensorsOf(t, c.expected, "logits_image", "logits_text")
	for i, name := range []string{"image", "text"} {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("export, %s row: %d logits, the reference has %d", name, len(got[i]), len(want[i]))
		}
		d := maxDiff(got[i], want[i])
		t.Logf("export, %s row: max |transformers on the export − reference| = %.3g", name, d)
		if d > 1e-4 {
			t.Errorf("export, %s row: logits differ from the reference's by %g (bound 1e-4)", name, d)
		}
	}

	withImportOf(t, out, exp, func(want, got *model.Bundle) error {
		sameTensors(t, want, got, "differs in Import of the export")
		return nil
	})
}

// qwen3VLRefusals: a Qwen3-VL folder with a missing shard, a config.json
// that disagrees with the configuration, weights that disagree with
// config.json, or a dtype config.json does not allow is refused before
// anything is written, naming the file and the key or tensor.
func qwen3VLRefusals(t *testing.T, c qwen3VLCase) {
	shards, err := filepath.Glob(filepath.Join(c.dir, "model-*.safetensors"))
	if err != nil || len(shards) < 2 {
		t.Fatalf("the reference has shards %v (%v); want ≥ 2", shards, err)
	}
	first := filepath.Base(shards[0])
	deeper := *c.cfg
	deeper.Model.MLLM.ViT.Depth = 5
	editConfig := func(edit func(m map[string]any)) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) { editJSON(t, filepath.Join(dir, hfConfig), edit) }
	}
	depth5 := editConfig(func(m map[string]any) { m["vision_config"].(map[string]any)["depth"] = 5 })
	for _, tc := range []struct {
		name  string
		cfg   *config.Config
		edit  func(t *testing.T, dir string)
		wants []string
	}{
		{"missing shard", c.cfg, func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, first)) },
			[]string{hfIndex, first + " is missing", "it holds tensor "}},
		{"config does not match", c.cfg, depth5, []string{hfConfig, "vision_config.depth is 5, but model.mllm.vit.depth is 4"}},
		{"weights do not match config", &deeper, depth5, []string{hfIndex, "tensor model.visual.blocks.4.", "is missing"}},
		{"dtype config.json does not allow", c.cfg, editConfig(func(m map[string]any) { m["dtype"] = "float16" }),
			[]string{"model-0", ".safetensors: tensor ", "has dtype BF16, but config.json's dtype allows F16"}},
		{"text shape does not match", c.cfg, editConfig(func(m map[string]any) { m["text_config"].(map[string]any)["intermediate_size"] = 96 }),
			[]string{hfConfig, "text_config.intermediate_size is 96, but model.mllm.ffn is 64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, c.dir)
			tc.edit(t, dir)
			checkRefused(t, tc.cfg, HFSources{MLLM: dir}, tc.wants)
		})
	}
}
