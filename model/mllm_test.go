package model

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// testSpecial is the special-token layout of the test vocabularies.
var testSpecial = SpecialIDs{Pad: 0, EOS: 1, ThinkEnd: 2, ImagePad: 3}

func tinyMLLMConfig() config.MLLM {
	c := config.Default().Model.MLLM
	c.Hidden, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.FFN, c.MaxSeqLen = 32, 2, 4, 2, 8, 64, 64
	c.VisionPatch = 4
	return c
}

// inTorch runs fn on a locked thread and fails the test on error.
func inTorch(t *testing.T, fn func() error) {
	t.Helper()
	if err := libtorch.Run(fn); err != nil {
		t.Fatal(err)
	}
}

func newTestMLLM(t *testing.T, c config.MLLM, vocab int, seed uint64) *MLLM {
	t.Helper()
	m, err := NewMLLM(c, vocab, testSpecial, true, gotch.CPU, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func seeds(n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = uint64(100 + i)
	}
	return s
}

var testPrompts = [][]int{{5, 6, 7, 8, 9}, {10, 11}, {12, 13, 14}, {5, 20, 21, 22, 23, 24, 25}}

func TestKVCacheMatchesNoCacheGreedy(t *testing.T) {
	inTorch(t, func() error {
		m := newTestMLLM(t, tinyMLLMConfig(), 40, 1)
		defer m.Drop()
		o := GenerateOptions{MaxNewTokens: 12, Seeds: seeds(len(testPrompts))}
		a, err := m.Generate(testPrompts, o)
		if err != nil {
			return err
		}
		o.NoCache = true
		b, err := m.Generate(testPrompts, o)
		if err != nil {
			return err
		}
		for i := range testPrompts {
			if len(a.Tokens[i]) != len(b.Tokens[i]) {
				t.Fatalf("seq %d: cache %v, no cache %v", i, a.Tokens[i], b.Tokens[i])
			}
			for j := range a.Tokens[i] {
				if a.Tokens[i][j] != b.Tokens[i][j] {
					t.Fatalf("seq %d token %d: cache %v, no cache %v", i, j, a.Tokens[i], b.Tokens[i])
				}
				if d := math.Abs(float64(a.LogProbs[i][j] - b.LogProbs[i][j])); d > 1e-5 {
					t.Errorf("seq %d token %d: log-prob differs by %g", i, j, d)
				}
			}
		}
		return nil
	})
}

func TestGenerationLogProbsMatchTeacherForced(t *testing.T) {
	for _, temp := range []float64{1.0, 0.7} {
		inTorch(t, func() error {
			m := newTestMLLM(t, tinyMLLMConfig(), 40, 2)
			defer m.Drop()
			worst, err := teacherForcedGap(t, m, temp)
			if err != nil {
				return err
			}
			if worst > 1e-5 {
				t.Errorf("temperature %g: generation and teacher-forced log-probs differ by %g (> 1e-5)", temp, worst)
			}
			return nil
		})
	}
}

// teacherForcedGap generates from testPrompts at temperature temp and
// returns the largest difference between a generated token's log-prob and
// the teacher-forced one; it also checks the mask.
func teacherForcedGap(t *testing.T, m *MLLM, temp float64) (float64, error) {
	g, err := m.Generate(testPrompts, GenerateOptions{MaxNewTokens: 10, Temperature: temp, TopP: 0.95, Seeds: seeds(len(testPrompts))})
	if err != nil {
		return 0, err
	}
	tf, err := m.LogProbs(testPrompts, g.Tokens, temp, nil)
	if err != nil {
		return 0, err
	}
	defer tf.Drop()
	lp, mask := float32s(tf.LogProbs), float32s(tf.Mask)
	c := int(tf.LogProbs.MustSize()[1])
	worst := 0.0
	for i := range g.Tokens {
		for j := 0; j < c; j++ {
			if j >= len(g.Tokens[i]) {
				if mask[i*c+j] != 0 {
					t.Errorf("mask[%d][%d] = 1 past the completion", i, j)
				}
				continue
			}
			worst = max(worst, math.Abs(float64(lp[i*c+j]-g.LogProbs[i][j])))
		}
	}
	return worst, nil
}

func TestSeedsMakeSequencesIndependentOfBatch(t *testing.T) {
	inTorch(t, func() error {
		m := newTestMLLM(t, tinyMLLMConfig(), 40, 3)
		defer m.Drop()
		o := GenerateOptions{MaxNewTokens: 8, Temperature: 1, Seeds: []uint64{7, 8, 9, 10}}
		all, err := m.Generate(testPrompts, o)
		if err != nil {
			return err
		}
		one, err := m.Generate(testPrompts[2:3], GenerateOptions{MaxNewTokens: 8, Temperature: 1, Seeds: []uint64{9}})
		if err != nil {
			return err
		}
		if got, want := one.Tokens[0], all.Tokens[2]; len(got) != len(want) || !equalInts(got, want) {
			t.Errorf("sequence alone %v, in a batch %v", got, want)
		}
		return nil
	})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestGenerateReturnsStates(t *testing.T) {
	inTorch(t, func() error {
		m := newTestMLLM(t, tinyMLLMConfig(), 40, 31)
		defer m.Drop()
		g, err := m.Generate(testPrompts, GenerateOptions{MaxNewTokens: 5, Temperature: 1, Seeds: seeds(len(testPrompts)), States: true})
		if err != nil {
			return err
		}
		if len(g.States) != len(testPrompts) || len(g.NoThinkEnd) != len(testPrompts) {
			t.Fatalf("%d states, %d flags for %d prompts", len(g.States), len(g.NoThinkEnd), len(testPrompts))
		}
		for i, st := range g.States {
			if st.MustSize()[1] != int64(2*m.Cfg.Hidden) {
				t.Errorf("states %d: shape %v", i, st.MustSize())
			}
			st.MustDrop()
		}
		return nil
	})
}

func TestInstructionStates(t *testing.T) {
	inTorch(t, func() error {
		m := newTestMLLM(t, tinyMLLMConfig(), 40, 4)
		defer m.Drop()
		prompts := [][]int{{5, 6, 7}, {8, 9}, {10}}
		completions := [][]int{{11, 2, 12, 13, 1}, {14, 15, 16}, {2, 17}}
		// (ids 2 and 1 play </think> and EOS in the test tokenizer.)
		for _, tt := range []struct {
			all     bool
			wantLen []int64
		}{
			{false, []int64{2, 3, 1}}, // cut: after the first </think>, EOS dropped
			{true, []int64{7, 5, 3}},  // all: the whole sequence, EOS dropped
		} {
			m.AllStates = tt.all
			states, missing, err := m.InstructionStates(prompts, completions, nil)
			if err != nil {
				return err
			}
			checkStates(t, m, states, missing, tt.wantLen)
		}
		return nil
	})
}

func checkStates(t *testing.T, m *MLLM, states []*ts.Tensor, missing []bool, wantLen []int64) {
	t.Helper()
	{
		wantMissing := []bool{false, true, false}
		for i, s := range states {
			sz := s.MustSize()
			if sz[0] != wantLen[i] || sz[1] != int64(2*m.Cfg.Hidden) {
				t.Errorf("sequence %d: states %v, want [%d %d]", i, sz, wantLen[i], 2*m.Cfg.Hidden)
			}
			if missing[i] != wantMissing[i] {
				t.Errorf("sequence %d: missing = %v, want %v", i, missing[i], wantMissing[i])
			}
			s.MustDrop()
		}
	}
}

func TestSafetensorsRoundTripAndErrors(t *testing.T) {
	dir := t.TempDir()
	inTorch(t, func() error {
		c := tinyMLLMConfig()
		m := newTestMLLM(t, c, 40, 5)
		defer m.Drop()
		path := filepath.Join(dir, "mllm.safetensors")
		if err := SaveSafetensors(path, m.P, map[string]string{"step": "3"}); err != nil {
			return err
		}
		m2 := newTestMLLM(t, c, 40, 6)
		defer m2.Drop()
		meta, err := LoadSafetensors(path, m2.P)
		if err != nil {
			return err
		}
		if meta["step"] != "3" {
			t.Errorf("metadata = %v", meta)
		}
		for i, p := range m.P.Tensors() {
			if d := maxAbsDiff(p, m2.P.Tensors()[i]); d != 0 {
				t.Errorf("%s differs by %g after reload", m.P.Specs()[i].Name, d)
			}
		}
		// A model with one more layer misses tensors; a wider one mismatches.
		deeper := c
		deeper.Layers = 3
		m3 := newTestMLLM(t, deeper, 40, 7)
		defer m3.Drop()
		if _, err := LoadSafetensors(path, m3.P); err == nil || !strings.Contains(err.Error(), "model.layers.2.") || !strings.Contains(err.Error(), "missing") {
			t.Errorf("load into a deeper model: %v", err)
		}
		m4 := newTestMLLM(t, c, 41, 8)
		defer m4.Drop()
		if _, err := LoadSafetensors(path, m4.P); err == nil || !strings.Contains(err.Error(), "model.embed_tokens.weight has shape [40 32], want [41 32]") {
			t.Errorf("load into a bigger vocabulary: %v", err)
		}
		shallower := c
		shallower.Layers = 1
		shallower.Layers = 2
		shallower.TieEmbeddings = false
		m5 := newTestMLLM(t, shallower, 40, 9)
		defer m5.Drop()
		if _, err := LoadSafetensors(path, m5.P); err == nil || !strings.Contains(err.Error(), "lm_head.weight is missing") {
			t.Errorf("load into an untied model: %v", err)
		}
		if _, err := LoadSafetensors(filepath.Join(dir, "nope.safetensors"), m2.P); err == nil || !os.IsNotExist(unwrapAll(err)) {
			t.Errorf("missing file: %v", err)
		}
		return nil
	})
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestImagePatchesReplaceImagePads(t *testing.T) {
	inTorch(t, func() error {
		m := newTestMLLM(t, tinyMLLMConfig(), 40, 21)
		defer m.Drop()
		// 8×8 images with patch 4: 4 patches each.
		prompt := []int{5, testSpecial.ImagePad, testSpecial.ImagePad, testSpecial.ImagePad, testSpecial.ImagePad, 6}
		completion := [][]int{{7, 8}}
		a := randn([]int64{1, 3, 8, 8}, 1)
		defer a.MustDrop()
		b := randn([]int64{1, 3, 8, 8}, 2)
		defer b.MustDrop()
		la, err := m.LogProbs([][]int{prompt}, completion, 1, a)
		if err != nil {
			return err
		}
		defer la.Drop()
		lb, err := m.LogProbs([][]int{prompt}, completion, 1, b)
		if err != nil {
			return err
		}
		defer lb.Drop()
		if d := maxAbsDiff(la.LogProbs, lb.LogProbs); d == 0 {
			t.Error("log-probs do not depend on the image")
		}
		two := randn([]int64{2, 3, 8, 8}, 3)
		defer two.MustDrop()
		if _, err := m.LogProbs([][]int{prompt}, completion, 1, two); err == nil || !strings.Contains(err.Error(), "4 <|image_pad|> tokens for 8 image patches") {
			t.Errorf("mismatched images: %v", err)
		}
		if _, err := m.LogProbs([][]int{prompt}, completion, 1, nil); err == nil {
			t.Error("image pads without images accepted")
		}
		return nil
	})
}

// randomizeB gives every lora_B random values (a new adapter's are zero,
// which would hide a wrong term).
func randomizeB(l *LoRA) {
	libtorch.NoGrad(func() {
		for i, sp := range l.P.Specs() {
			if strings.HasSuffix(sp.Name, ".lora_B.weight") {
				r := randn(sp.Shape, uint64(100+i))
				l.P.Tensors()[i].Copy_(r)
				r.MustDrop()
			}
		}
	})
}

// mergeInto copies base's weights with l folded in into dst (the same
// model's parameters).
func mergeInto(dst *Params, l *LoRA, base *Params) {
	merged := l.Merged(base)
	libtorch.NoGrad(func() {
		for name, w := range merged {
			dst.Get(name).Copy_(w)
			w.MustDrop()
		}
	})
}

// An adapted model computes what its merged weights compute, W + α/r·B·A
// (PEFT's definition), for the MLLM and the DiT; a new adapter (B = 0)
// changes nothing; targets pick the modules by name suffix.
func TestLoRAEqualsMergedWeights(t *testing.T) {
	inTorch(t, func() error {
		a := config.Adapter{Rank: 4, Alpha: 8}
		// The MLLM: log-probs.
		m := newTestMLLM(t, tinyMLLMConfig(), 40, 5)
		defer m.Drop()
		plain, err := m.LogProbs(testPrompts, testPrompts, 1, nil)
		if err != nil {
			return err
		}
		defer plain.Drop()
		if m.Adapters, err = NewLoRA(m.P, a, config.MLLMTargets, 9); err != nil {
			return err
		}
		fresh, err := m.LogProbs(testPrompts, testPrompts, 1, nil)
		if err != nil {
			return err
		}
		defer fresh.Drop()
		if d := maxAbsDiff(fresh.LogProbs, plain.LogProbs); d != 0 {
			t.Errorf("a new MLLM adapter changes the log-probs by %g", d)
		}
		randomizeB(m.Adapters)
		adapted, err := m.LogProbs(testPrompts, testPrompts, 1, nil)
		if err != nil {
			return err
		}
		defer adapted.Drop()
		merged := newTestMLLM(t, tinyMLLMConfig(), 40, 5)
		defer merged.Drop()
		mergeInto(merged.P, m.Adapters, m.P)
		want, err := merged.LogProbs(testPrompts, testPrompts, 1, nil)
		if err != nil {
			return err
		}
		defer want.Drop()
		if d := maxAbsDiff(adapted.LogProbs, want.LogProbs); d > 1e-5 || maxAbsDiff(adapted.LogProbs, plain.LogProbs) == 0 {
			t.Errorf("MLLM with adapters vs merged weights: %g apart (want ≤ 1e-5, and a change from the base)", d)
		}
		base, err := m.WithoutAdapters().LogProbs(testPrompts, testPrompts, 1, nil)
		if err != nil {
			return err
		}
		defer base.Drop()
		if d := maxAbsDiff(base.LogProbs, plain.LogProbs); d != 0 {
			t.Errorf("WithoutAdapters differs from the base by %g", d)
		}
		// 2 layers × 7 modules × (A, B).
		if n := len(m.Adapters.P.Specs()); n != 2*7*2 {
			t.Errorf("%d MLLM adapter tensors, want 28", n)
		}

		// The DiT: a velocity.
		d, conn := newTestDiT(t)
		defer d.Drop()
		defer conn.P.Drop()
		if d.Adapters, err = NewLoRA(d.P, config.Adapter{Rank: 2, Alpha: 4, Targets: []string{"to_q", "feed_forward.linear_2"}}, config.DiTTargets, 3); err != nil {
			return err
		}
		for _, sp := range d.Adapters.P.Specs() {
			if !strings.Contains(sp.Name, "attn.to_q.") && !strings.Contains(sp.Name, "feed_forward.linear_2.") {
				t.Errorf("adapter %s for a module not targeted", sp.Name)
			}
		}
		randomizeB(d.Adapters)
		cond := testCondition(t, conn, []int{4, 2}, 10)
		defer cond.Drop()
		x := randn([]int64{2, 3, 16, 16}, 3)
		defer x.MustDrop()
		var v, vm *ts.Tensor
		libtorch.NoGrad(func() { v, err = d.Forward(DiTInput{X: x, T: []float64{0.3, 0.8}, Text: cond}) })
		if err != nil {
			return err
		}
		defer v.MustDrop()
		md, err := NewDiT(tinyDiTConfig(), gotch.CPU, 1)
		if err != nil {
			return err
		}
		defer md.Drop()
		libtorch.NoGrad(func() {
			for i, p := range md.P.Tensors() {
				p.Copy_(d.P.Tensors()[i])
			}
		})
		mergeInto(md.P, d.Adapters, d.P)
		libtorch.NoGrad(func() { vm, err = md.Forward(DiTInput{X: x, T: []float64{0.3, 0.8}, Text: cond}) })
		if err != nil {
			return err
		}
		defer vm.MustDrop()
		if diff := maxAbsDiff(v, vm); diff > 1e-5 {
			t.Errorf("DiT with adapters vs merged weights: %g apart (want ≤ 1e-5)", diff)
		}
		if _, err := NewLoRA(d.P, config.Adapter{Rank: 2, Alpha: 4, Targets: []string{"nothing"}}, config.DiTTargets, 3); err == nil {
			t.Error("adapters for targets that match no weight were made")
		}
		return nil
	})
}
