package learner

import (
	"math"
	"testing"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// TestGRPODecoupled checks decoupled PPO against values worked out by hand
// (c = 3, weight cap 2, ε = 0.2/0.3, no KL). Row 0 (A = +1):
//
//	token 0: r = π_θ/π_prox = e^0.2 (inside the clip), w = e^0.8 = 2.23 → 2:
//	         pg = −2·e^0.2, dpg/dlogp = −2·e^0.2
//	token 1: r = e^−0.1, w = e^0.1: pg = −1, dpg/dlogp = −1
//	token 2: r = e^0.5 > 1.3 (the high clip), w = 0.5: pg = −0.65, gradient 0
//
// Row 1 (A = −1):
//
//	token 0: r = 4 > c (the dual clip), w = 1: pg = 3, gradient 0
//	token 1: r = 1, w = 3 → 2: pg = 2, dpg/dlogp = 2
//	token 2: padding, its proximal log-prob NaN
//
// Everything is divided by the 5 real tokens.
func TestGRPODecoupled(t *testing.T) {
	ln := math.Log
	logp := [][]float64{{-1, -1, -1}, {-1, -1, -1}}
	prox := [][]float64{{-1.2, -0.9, -1.5}, {-1 - ln(4), -1, math.NaN()}}
	old := [][]float64{{-2, -1, -1.5 - ln(0.5)}, {-1 - ln(4), -1 - ln(3), -1}}
	e := math.Exp
	want := struct {
		loss, ratio, prox, weight, capped, high, dual float64
		grad                                          []float64
	}{
		loss:   (-2*e(0.2) - 1 - 0.65 + 3 + 2) / 5,
		ratio:  (e(1) + 1 + e(0.5)*0.5 + 4 + 3) / 5,
		prox:   (e(0.2) + e(-0.1) + e(0.5) + 4 + 1) / 5,
		weight: (2 + e(0.1) + 0.5 + 1 + 2) / 5,
		capped: 2.0 / 5, high: 1.0 / 5, dual: 1.0 / 5,
		grad: []float64{-2 * e(0.2) / 5, -1.0 / 5, 0, 0, 2.0 / 5, 0},
	}
	c := GRPOConfig{EpsLow: 0.2, EpsHigh: 0.3, ClipRatioC: 3, WeightCap: 2}
	runScoped(t, func(s *libtorch.Scope) error {
		lp := s.Add(matrix(logp))
		lp.MustRequiresGrad_(true)
		in := GRPOInput{LogProbs: lp, OldLogProbs: s.Add(matrix(old)), ProxLogProbs: s.Add(matrix(prox)),
			Mask: s.Add(matrix(tinyMask)), Advantages: []float64{1, -1}}
		loss, st, err := GRPOLoss(in, c)
		if err != nil {
			return err
		}
		s.Add(loss)
		checkFigures(t, 1e-5, []figure{
			{"Loss", st.Loss, want.loss}, {"RatioMean (behaviour)", st.RatioMean, want.ratio},
			{"ProxRatioMean", st.ProxRatioMean, want.prox}, {"WeightMean", st.WeightMean, want.weight},
			{"WeightCapped", st.WeightCapped, want.capped}, {"ClipFracHigh", st.ClipFracHigh, want.high},
			{"DualClipFrac", st.DualClipFrac, want.dual}, {"ClipFracLow", st.ClipFracLow, 0},
		})
		loss.MustBackward()
		g := s.Add(lp.MustGrad(false)).Float64Values()
		for i := range want.grad {
			if math.Abs(g[i]-want.grad[i]) > 1e-5 || (want.grad[i] == 0 && g[i] != 0) {
				t.Errorf("dL/dlogp[%d] = %.9g, want %.9g", i, g[i], want.grad[i])
			}
		}
		return nil
	})
}

// TestGRPODecoupledProxEqualsBehaviour: when the proximal policy is the
// behaviour policy every weight is 1 and the loss and gradient are plain
// PPO's, bit for bit.
func TestGRPODecoupledProxEqualsBehaviour(t *testing.T) {
	old := shift(tinyLogp, [][]float64{{-0.5, 0.3, -math.Log(12)}, {0.2, -0.4, 0}})
	c := GRPOConfig{EpsLow: 0.2, EpsHigh: 0.3, Beta: 0.01, ClipRatioC: 3}
	run(t, func() error {
		plain, err := evalGRPO(tinyLogp, old, tinyRef, tinyMask, tinyEnt, []float64{-1, 0.5}, c)
		if err != nil {
			return err
		}
		var s libtorch.Scope
		defer s.Close()
		lp := s.Add(matrix(tinyLogp))
		lp.MustRequiresGrad_(true)
		oldT := s.Add(matrix(old))
		c.WeightCap = 2
		loss, st, err := GRPOLoss(GRPOInput{LogProbs: lp, OldLogProbs: oldT, ProxLogProbs: oldT, RefLogProbs: s.Add(matrix(tinyRef)),
			Mask: s.Add(matrix(tinyMask)), Entropy: s.Add(matrix(tinyEnt)), Advantages: []float64{-1, 0.5}}, c)
		if err != nil {
			return err
		}
		s.Add(loss)
		loss.MustBackward()
		g := s.Add(lp.MustGrad(false)).Float64Values()
		if st.WeightMean != 1 || st.WeightCapped != 0 || st.ProxRatioMean != st.RatioMean {
			t.Errorf("proximal = behaviour: weight mean %v capped %v, prox ratio %v vs ratio %v; want 1, 0, equal", st.WeightMean, st.WeightCapped, st.ProxRatioMean, st.RatioMean)
		}
		st.ProxRatioMean, st.WeightMean = 0, 0
		if st != plain.st || loss.Float64Values()[0] != plain.loss {
			t.Errorf("proximal = behaviour: stats %+v, want plain PPO's %+v", st, plain.st)
		}
		for i := range g {
			if g[i] != plain.grad[i] {
				t.Errorf("dL/dlogp[%d] = %v, plain PPO %v", i, g[i], plain.grad[i])
			}
		}
		return nil
	})
}
