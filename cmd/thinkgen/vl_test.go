package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestQwen3VLTowerEndToEnd runs a configuration whose MLLM sees images
// through Qwen3-VL's ViT (testdata/vl.yaml: vision: qwen3vl) through
// every command, on the scenarios whose prompts carry a reference image
// (editing and reflection): pretrain (shortened), train (both SepGRPO
// phases, one step each), a run stopped after its first step and resumed
// (equal to the uninterrupted one), eval, and export (the MLLM in
// Qwen3VLForConditionalGeneration's layout). That the reference images
// reach the policy's loss through the ViT is learner's TestGRPOTrainsTheViT.
func TestQwen3VLTowerEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("trains")
	}
	cfgPath := filepath.Join("testdata", "vl.yaml")
	dir := t.TempDir()
	base, _ := pretrainInto(t, cfgPath, dir)
	baseNames := tensorNames(t, filepath.Join(base, "mllm.safetensors"))
	for _, name := range []string{"model.visual.patch_embed.proj.weight", "model.visual.pos_embed.weight",
		"model.visual.blocks.1.attn.qkv.weight", "model.visual.merger.linear_fc2.weight", "model.visual.deepstack_merger_list.0.linear_fc2.weight"} {
		if !baseNames[name] {
			t.Errorf("the pre-trained MLLM has no %s: not Qwen3-VL's vision tower", name)
		}
	}

	common := []string{"--config", cfgPath, "--set", "run.base=" + base, "--run-dir", dir}
	checkResumedEqualsUninterrupted(t, dir, common, "2", "bundle/mllm.safetensors", "bundle/dit.safetensors", "optim-dit.safetensors")
	out := filepath.Join(t.TempDir(), "export")
	if code, o, errs := runCLI(t, "export", "--run", "a", "--run-dir", dir, "--out", out); code != 0 {
		t.Fatalf("export: exit %d\n%s\n%s", code, o, errs)
	}
	var hf struct {
		Architectures []string       `json:"architectures"`
		Vision        map[string]any `json:"vision_config"`
	}
	readJSON(t, filepath.Join(out, "mllm", "config.json"), &hf)
	if fmt.Sprint(hf.Architectures) != "[Qwen3VLForConditionalGeneration]" || hf.Vision["depth"] != 2.0 {
		t.Errorf("exported mllm/config.json: architectures %v, vision depth %v; want Qwen3VLForConditionalGeneration, 2", hf.Architectures, hf.Vision["depth"])
	}
	code, o, errs := runCLI(t, "eval", "--model", out, "--rows", "2", "--scenarios", "editing,reflection")
	if code != 0 {
		t.Fatalf("eval of the export: exit %d\n%s\n%s", code, o, errs)
	}
	if !strings.Contains(o, "editing") || !strings.Contains(o, "reflection") {
		t.Errorf("eval of the export scored no editing or reflection rows:\n%s", o)
	}
}

// tensorNames returns the names of a safetensors file's tensors.
func tensorNames(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var header map[string]json.RawMessage
	if n := binary.LittleEndian.Uint64(data); n > uint64(len(data)-8) {
		t.Fatalf("%s: a header of %d bytes", path, n)
	} else if err := json.Unmarshal(data[8:8+n], &header); err != nil {
		t.Fatalf("%s: header: %v", path, err)
	}
	names := map[string]bool{}
	for name := range header {
		names[name] = true
	}
	return names
}
