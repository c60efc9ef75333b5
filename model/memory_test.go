package model

import (
	"os"
	"strconv"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// TestGenerateBackwardMemoryIsFlat runs 500 rollout+learn iterations
// (generate, teacher-forced log-probs, backward, DiT forward+backward) and
// checks that live tensors do not grow and the resident set stays within 5%.
func TestGenerateBackwardMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("500 iterations")
	}
	inTorch(t, func() error {
		m := newTestMLLM(t, tinyMLLMConfig(), 40, 11)
		defer m.Drop()
		c := tinyDiTConfig()
		d, _ := NewDiT(c, gotch.CPU, 12)
		defer d.Drop()
		conn, _ := NewConnector(m.Cfg.Hidden, c.Hidden, 2, 1e-6, gotch.CPU, 13)
		defer conn.P.Drop()
		x := randn([]int64{2, 3, 16, 16}, 14)
		defer x.MustDrop()
		prompts := [][]int{{5, 6, 7}, {8, 9, 2}}
		var tensorsAt50, rssAt50 int64
		iters := 500
		if v := os.Getenv("THINKGEN_MEMTEST_ITERS"); v != "" {
			iters, _ = strconv.Atoi(v)
		}
		for i := 0; i < iters; i++ {
			g, err := m.Generate(prompts, GenerateOptions{MaxNewTokens: 6, Temperature: 1, Seeds: []uint64{uint64(i), uint64(i + 1)}})
			if err != nil {
				return err
			}
			lp, err := m.LogProbs(prompts, g.Tokens, 1, nil)
			if err != nil {
				return err
			}
			loss := lp.LogProbs.MustMul(lp.Mask, false).MustSum(gotch.Float, true)
			loss.MustBackward()
			loss.MustDrop()
			lp.Drop()
			states, _, err := m.InstructionStates(prompts, g.Tokens, nil)
			if err != nil {
				return err
			}
			cond, err := conn.Forward(states)
			for _, s := range states {
				s.MustDrop()
			}
			if err != nil {
				return err
			}
			v, err := d.Forward(DiTInput{X: x, T: []float64{0.2, 0.7}, Text: cond})
			if err != nil {
				return err
			}
			l2 := v.MustSquare(false).MustMean(gotch.Float, true)
			l2.MustBackward()
			l2.MustDrop()
			v.MustDrop()
			cond.Drop()
			for _, p := range append(append(m.P.Tensors(), d.P.Tensors()...), conn.P.Tensors()...) {
				g := p.MustGrad(false)
				if g.MustDefined() {
					libtorch.NoGrad(func() { g.MustZero_() })
				}
				g.MustDrop()
			}
			if i == 49 {
				tensorsAt50, rssAt50 = int64(libtorch.LiveTensors()), libtorch.RSS()
			}
		}
		tensors, rss := int64(libtorch.LiveTensors()), libtorch.RSS()
		t.Logf("after 50 iterations: %d tensors, RSS %.1f MiB; after %d: %d tensors, RSS %.1f MiB",
			tensorsAt50, float64(rssAt50)/(1<<20), iters, tensors, float64(rss)/(1<<20))
		if tensors > tensorsAt50 {
			t.Errorf("live tensors grew from %d to %d", tensorsAt50, tensors)
		}
		if growth := float64(rss-rssAt50) / float64(rssAt50); growth > 0.05 {
			t.Errorf("RSS grew %.1f%% (> 5%%)", 100*growth)
		}
		return nil
	})
}
