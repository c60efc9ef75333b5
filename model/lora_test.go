package model

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/tokenizer"
)

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

// A bundle of a LoRA run saves and loads its adapters with the weights
// (and refuses a configuration that does not fit them).
func TestBundleSavesAdapters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ckpt")
	tok, err := tokenizer.NewWords([]string{"a", "red", "circle"})
	if err != nil {
		t.Fatal(err)
	}
	inTorch(t, func() error {
		cfg := testBundleConfig()
		cfg.LoRA = config.LoRA{MLLM: config.Adapter{Rank: 2, Alpha: 4}, DiT: config.Adapter{Rank: 3, Alpha: 3}}
		b, err := NewBundle(cfg, tok, gotch.CPU, 42)
		if err != nil {
			return err
		}
		defer b.Drop()
		randomizeB(b.MLLM.Adapters)
		randomizeB(b.DiT.Adapters)
		if err := b.Save(dir, 3, testBundleConfig()); err == nil || !strings.Contains(err.Error(), "lora") {
			t.Errorf("Save of adapters under a configuration without them: %v", err)
		}
		if err := b.Save(dir, 3, cfg); err != nil {
			return err
		}
		got, man, err := LoadBundle(dir, gotch.CPU)
		if err != nil {
			return err
		}
		defer got.Drop()
		for _, f := range []string{fileMLLMLoRA, fileDiTLoRA} {
			if _, ok := man.Files[f]; !ok {
				t.Errorf("manifest lists no %s", f)
			}
		}
		for _, pair := range [][2]*LoRA{{b.MLLM.Adapters, got.MLLM.Adapters}, {b.DiT.Adapters, got.DiT.Adapters}} {
			if pair[1] == nil || pair[1].Rank != pair[0].Rank || pair[1].Alpha != pair[0].Alpha {
				t.Fatalf("loaded adapters %+v, saved %+v", pair[1], pair[0])
			}
			for i, p := range pair[0].P.Tensors() {
				if !slices.Equal(float32s(p), float32s(pair[1].P.Tensors()[i])) {
					t.Errorf("adapter %s differs after a round trip", pair[0].P.Specs()[i].Name)
				}
			}
		}
		return nil
	})
}
