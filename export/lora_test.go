package export

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/testenv"
	"github.com/thinkgen/thinkgen/model"
)

// loraBundle saves base/tiny with LoRA adapters on both models (rank 4;
// every adapter tensor drawn at random, as if trained) into a bundle
// directory and exports it; it returns the export and the Go logits of
// ids through the adapted MLLM.
func loraBundle(t *testing.T, ids []int) (out string, logits []float32) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	out = filepath.Join(t.TempDir(), "export")
	err := libtorch.Run(func() error {
		b, _, err := model.LoadBundle(baseTiny, gotch.CPU)
		if err != nil {
			return err
		}
		defer b.Drop()
		_, cfg, err := model.ReadBundleManifest(baseTiny)
		if err != nil {
			return err
		}
		cfg.LoRA = config.LoRA{MLLM: config.Adapter{Rank: 4, Alpha: 8}, DiT: config.Adapter{Rank: 4, Alpha: 4, Targets: []string{"to_q", "to_v"}}}
		if err := b.AttachLoRA(cfg.LoRA, 7); err != nil {
			return err
		}
		libtorch.NoGrad(func() {
			for _, a := range []*model.LoRA{b.MLLM.Adapters, b.DiT.Adapters} {
				for _, p := range a.P.Tensors() {
					r := p.MustRandnLike(false).MustMulScalar(ts.FloatScalar(0.05), true)
					p.Copy_(r)
					r.MustDrop()
				}
			}
		})
		if err := b.Save(dir, 1, cfg); err != nil {
			return err
		}
		logits, err = b.MLLM.Logits(ids)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(dir, out, Source{}, Options{}); err != nil {
		t.Fatal(err)
	}
	return out, logits
}

func float32sOf(t *testing.T, st safetensors.SafeTensors, name string) []float32 {
	t.Helper()
	v, ok := st.Tensor(name)
	if !ok {
		t.Fatalf("no tensor %s", name)
	}
	raw := v.Data()
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24)
	}
	return out
}

func maxDiff(a, b []float32) float64 {
	worst := 0.0
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i]-b[i])))
	}
	return worst
}

// TestPEFTLoadsExportedAdapters: an export of a LoRA checkpoint holds
// PEFT's adapter folders; PEFT (PeftModel.from_pretrained on the exported
// Qwen3ForCausalLM) loads the MLLM's adapter onto every targeted module
// and computes the Go model's logits within 1e-4 (and the base's with the
// adapter disabled); Import reads the adapters back.
func TestPEFTLoadsExportedAdapters(t *testing.T) {
	py := testenv.Python(t)
	ids := []int{5, 17, 33, 8, 2, 40, 41, 9, 12}
	out, goLogits := loraBundle(t, ids)
	for _, f := range []string{fileMLLMAdapter, fileMLLMAdapterConfig, fileDiTAdapter, fileDiTAdapterConfig} {
		if _, err := os.Stat(filepath.Join(out, filepath.FromSlash(f))); err != nil {
			t.Errorf("export lacks %s: %v", f, err)
		}
	}
	var ac map[string]any
	if b, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(fileDiTAdapterConfig))); err != nil || json.Unmarshal(b, &ac) != nil {
		t.Fatalf("DiT adapter config: %v", err)
	}
	if ac["peft_type"] != "LORA" || ac["r"] != 4.0 || !slices.Equal(toStrings(ac["target_modules"]), []string{"to_q", "to_v"}) {
		t.Errorf("DiT adapter config %v", ac)
	}

	dir := t.TempDir()
	data, _ := json.Marshal(ids)
	idsPath := filepath.Join(dir, "ids.json")
	if err := os.WriteFile(idsPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(py, filepath.Join("testdata", "peft_load.py"), out, idsPath, dir).CombinedOutput(); err != nil {
		t.Fatalf("peft_load.py: %v\n%s", err, b)
	}
	var res struct {
		ModelClass  string   `json:"model_class"`
		LoRAModules []string `json:"lora_modules"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "result.json")); err != nil || json.Unmarshal(b, &res) != nil {
		t.Fatalf("result.json: %v", err)
	}
	if want := 6 * 7; len(res.LoRAModules) != want || !strings.Contains(res.ModelClass, "Peft") {
		t.Errorf("PEFT built %s with %d LoRA modules, want %d", res.ModelClass, len(res.LoRAModules), want)
	}
	buf, err := os.ReadFile(filepath.Join(dir, "logits.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.Deserialize(buf)
	if err != nil {
		t.Fatal(err)
	}
	adapted, base := float32sOf(t, st, "adapted"), float32sOf(t, st, "base")
	d := maxDiff(adapted, goLogits)
	t.Logf("logits of %d tokens: max |Go − PEFT| = %.3g; the adapter moves PEFT's logits by up to %.3g", len(ids), d, maxDiff(adapted, base))
	if d > 1e-4 || math.IsNaN(d) {
		t.Errorf("Go logits with adapters differ from PEFT's by %g (> 1e-4)", d)
	}
	if maxDiff(adapted, base) < 1e-3 {
		t.Error("the adapter does not change PEFT's logits: the test cannot tell")
	}

	err = libtorch.Run(func() error {
		b, _, err := Import(out, gotch.CPU)
		if err != nil {
			return err
		}
		defer b.Drop()
		if b.MLLM.Adapters == nil || b.DiT.Adapters == nil {
			t.Fatal("Import left out the adapters")
		}
		got, err := b.MLLM.Logits(ids)
		if err != nil {
			return err
		}
		if d := maxDiff(got, goLogits); d != 0 {
			t.Errorf("the imported export's logits differ by %g", d)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
