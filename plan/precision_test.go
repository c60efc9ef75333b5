package plan

import (
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/optim"
)

// TestBFloat16LearnerBytesEqualFormulas builds the tiny configuration's
// models in bfloat16 as a learner holds them and checks the bytes they
// really hold — the bfloat16 parameters and gradients, the optimiser's
// float32 masters and moments, a bfloat16 KV cache — equal the plan's
// formulas exactly.
func TestBFloat16LearnerBytesEqualFormulas(t *testing.T) {
	cfg := loadConfig(t, "../configs/tiny.yaml")
	cfg.Model.DType = "bfloat16"
	tok, err := model.TokenizerFor(cfg.Model.MLLM)
	if err != nil {
		t.Fatal(err)
	}
	counts := CountParams(cfg, tok.VocabSize())
	e, _ := DTypeBytes(cfg.Model.DType)
	err = libtorch.Run(func() error {
		b, err := model.NewBundle(cfg, tok, gotch.CPU, 1)
		if err != nil {
			return err
		}
		defer b.Drop()
		b.ToDType(gotch.BFloat16)
		for _, m := range []struct {
			name   string
			params *model.Params
			count  int64
		}{{"mllm", b.MLLM.P, counts.MLLM}, {"connector", b.Connector.P, counts.Connector}, {"dit", b.DiT.P, counts.DiT}} {
			opt := optim.New(m.params.Tensors(), optim.Config{})
			var grads []*ts.Tensor
			for _, p := range m.params.Tensors() {
				grads = append(grads, p.MustGrad(false))
			}
			equal(t, m.name+" bfloat16 weights", WeightBytes(m.count, e), m.params.Bytes())
			equal(t, m.name+" bfloat16 gradients", GradientBytes(m.count, e, 0, 1), tensorBytes(grads))
			equal(t, m.name+" float32 masters + AdamW moments", OptimizerBytes(m.count, e, 0, 1), opt.Bytes())
			for _, g := range grads {
				g.MustDrop()
			}
			opt.Drop()
		}
		const seqs, tokens = 8, 96
		kv := b.MLLM.NewKVCache(seqs, tokens)
		equal(t, "bfloat16 KV cache", KVCacheBytes(cfg.Model.MLLM, seqs, tokens, e), kv.Bytes())
		kv.Drop()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func equal(t *testing.T, what string, formula, measured int64) {
	t.Helper()
	if formula != measured {
		t.Errorf("%s: formula %d bytes, measured %d", what, formula, measured)
	} else {
		t.Logf("%s: %d bytes", what, measured)
	}
}
