package plan

import (
	"testing"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
)

// TestMLLMActivationsAgainstRSS runs a teacher-forced forward of the tiny
// MLLM (float32, libtorch's math attention on the CPU) and compares the
// resident memory the autograd graph holds with MLLMActivations: without
// checkpointing, Full; with it (model.Recompute), what a checkpointed
// forward keeps until its backward, Checkpointed − Layer. RSS is a coarse
// measure (it includes the outputs and the allocator's overhead), so the
// bound is 25%, not the 10% the tensor-byte checks meet; the formula
// measured about 15% under the RSS delta without checkpointing.
func TestMLLMActivationsAgainstRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates about 1 GB")
	}
	cfg := loadConfig(t, "../configs/tiny.yaml")
	tok, _ := model.TokenizerFor(cfg.Model.MLLM)
	vocab := tok.VocabSize()
	const seqs, plen, clen = 32, 32, 200
	a := MLLMActivations(cfg.Model.MLLM, vocab, seqs, plen+clen, 4, false)
	measured := map[bool]int64{}
	for _, tc := range []struct {
		checkpointing bool
		formula       int64
	}{
		{false, a.Full},
		{true, a.Checkpointed - a.Layer},
	} {
		err := libtorch.Run(func() error {
			b, err := model.NewBundle(cfg, tok, gotch.CPU, 1)
			if err != nil {
				return err
			}
			defer b.Drop()
			ids, _ := tok.Encode("a red circle left of a blue square above the green triangle")
			var prompts, comps [][]int
			for i := 0; i < seqs; i++ {
				p, c := make([]int, plen), make([]int, clen)
				for j := range p {
					p[j] = ids[(i+j)%len(ids)]
				}
				for j := range c {
					c[j] = ids[(i*3+j)%len(ids)]
				}
				prompts, comps = append(prompts, p), append(comps, c)
			}
			m, rec := b.MLLM, (*model.Recompute)(nil)
			if tc.checkpointing {
				rec = new(model.Recompute)
				defer rec.Drop()
				m = m.Recording(rec)
			}
			before := libtorch.RSS()
			lp, err := m.LogProbs(prompts, comps, 1, nil)
			if err != nil {
				return err
			}
			after := libtorch.RSS()
			lp.Drop()
			got := after - before
			measured[tc.checkpointing] = got
			r := float64(tc.formula) / float64(got)
			t.Logf("checkpointing %v, %d sequences of %d tokens: RSS grew %d bytes, formula %d (ratio %.2f)", tc.checkpointing, seqs, plen+clen, got, tc.formula, r)
			if r < 0.75 || r > 1.25 {
				t.Errorf("checkpointing %v: activations formula %d bytes vs RSS delta %d: ratio %.2f, want within 25%%", tc.checkpointing, tc.formula, got, r)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("a checkpointed forward keeps %.1f%% of an ordinary one's memory", 100*float64(measured[true])/float64(measured[false]))
}
