package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/nlpodyssey/safetensors"
	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/testenv"
)

// TestQwen3ParityWithTransformers builds a random Qwen3ForCausalLM in
// transformers, loads its safetensors into the Go MLLM, and compares logits
// and the last two hidden states on the same ids.
func TestQwen3ParityWithTransformers(t *testing.T) {
	py := testenv.Python(t)
	for _, tied := range []bool{true, false} {
		t.Run(fmt.Sprintf("tied=%v", tied), func(t *testing.T) {
			c := tinyMLLMConfig()
			c.TieEmbeddings = tied
			vocab := 64
			dir := t.TempDir()
			args := []string{filepath.Join("testdata", "qwen3_reference.py"), dir}
			for _, v := range []int{vocab, c.Hidden, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.FFN} {
				args = append(args, strconv.Itoa(v))
			}
			args = append(args, strconv.FormatBool(tied))
			cmd := exec.Command(py, args...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("reference script: %v\n%s", err, out)
			}
			exp := readReference(t, filepath.Join(dir, "expected.safetensors"))
			inTorch(t, func() error {
				m, err := NewMLLM(c, vocab, testSpecial, false, gotch.CPU, 99)
				if err != nil {
					return err
				}
				defer m.Drop()
				if _, err := LoadSafetensors(filepath.Join(dir, "model", "model.safetensors"), m.P); err != nil {
					return err
				}
				idv, _ := exp.Tensor("ids")
				shape := idv.Shape()
				b, n := int(shape[0]), int(shape[1])
				ids := make([]int64, b*n)
				for i := range ids {
					ids[i] = int64(binary.LittleEndian.Uint64(idv.Data()[8*i:]))
				}
				in := &forwardInput{ids: ids, batch: b, t: n, positions: make([]int64, b*n), keyValid: make([][]bool, b), hidden: true}
				for i := 0; i < b; i++ {
					in.keyValid[i] = make([]bool, n)
					for j := 0; j < n; j++ {
						in.positions[i*n+j] = int64(j)
						in.keyValid[i][j] = true
					}
				}
				var out *forwardOutput
				libtorch.NoGrad(func() { out, err = m.forward(in) })
				if err != nil {
					return err
				}
				defer out.drop()
				for name, got := range map[string][]float32{"logits": float32s(out.logits), "hidden_prev": float32s(out.prev), "hidden_last": float32s(out.last)} {
					checkReference(t, exp, name, got, "transformers", 1e-4)
				}
				return nil
			})
		})
	}
}

// readReference reads the expected.safetensors a reference script wrote.
func readReference(t *testing.T, path string) safetensors.SafeTensors {
	t.Helper()
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := safetensors.Deserialize(buf)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return exp
}

// referenceFloats returns tensor name of a reference file as float32s.
func referenceFloats(t *testing.T, exp safetensors.SafeTensors, name string) []float32 {
	t.Helper()
	v, ok := exp.Tensor(name)
	if !ok {
		t.Fatalf("the reference has no tensor %s", name)
	}
	vals, err := decodeFloats(v)
	if err != nil {
		t.Fatalf("reference %s: %v", name, err)
	}
	return vals
}

// checkReference fails t when got differs from the reference tensor name
// (written by lib) by more than tol anywhere, and logs the largest gap.
func checkReference(t *testing.T, exp safetensors.SafeTensors, name string, got []float32, lib string, tol float64) {
	t.Helper()
	want := referenceFloats(t, exp, name)
	if len(want) != len(got) {
		t.Fatalf("%s: %d values from Go, %d from %s", name, len(got), len(want), lib)
	}
	worst := 0.0
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(want[i]-got[i])))
	}
	t.Logf("%s: max |Go − %s| = %.3g", name, lib, worst)
	if worst > tol {
		t.Errorf("%s differs from %s by %g (> %g)", name, lib, worst, tol)
	}
}
