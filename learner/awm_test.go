package learner

import (
	"errors"
	"math"
	"testing"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

func fill(v float64) []float64 {
	out := make([]float64, 8)
	for i := range out {
		out[i] = v
	}
	return out
}

// TestAWMLoss checks the advantage-weighted flow-matching loss and its
// gradient against values computed by hand: sample 0's velocity is off its
// target by 1 in every dim (squared error 1), sample 1's by 2 (error 4).
func TestAWMLoss(t *testing.T) {
	for _, tc := range []struct {
		name          string
		adv           []float64
		cfg           FlowConfig
		ref           [][]float64
		loss, pol, kl float64
		clamped       float64
		grad0, grad1  float64 // dL/dv, the same in every dim of a sample
	}{
		{
			// policy = (1·1 − 1·4)/2; dL/dv = A·2(v − x)/8/2.
			name: "no reference", adv: []float64{1, -1}, cfg: FlowConfig{ClipRange: 0.1},
			loss: -1.5, pol: -1.5, grad0: 0.125, grad1: -0.25,
		},
		{
			// KL = (8·0.5² + 0)/16 = 0.125; its gradient β·2(v − v_ref)/16.
			name: "beta 0.1", adv: []float64{1, -1}, cfg: FlowConfig{ClipRange: 0.1, Beta: 0.1}, ref: [][]float64{fill(0.5), fill(2)},
			loss: -1.5 + 0.0125, pol: -1.5, kl: 0.125, grad0: 0.125 + 0.00625, grad1: -0.25,
		},
		{
			// Both advantages clamped to ±2: policy = (2·1 − 2·4)/2.
			name: "clamped", adv: []float64{3, -3}, cfg: FlowConfig{ClipRange: 0.1, AdvClamp: 2},
			loss: -3, pol: -3, clamped: 1, grad0: 0.25, grad1: -0.5,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runScoped(t, func(s *libtorch.Scope) error {
				v := s.Add(latentTensor([][]float64{fill(1), fill(2)}))
				v.MustRequiresGrad_(true)
				in := AWMInput{Velocity: v, Target: s.Add(latentTensor([][]float64{fill(0), fill(0)})), Advantages: tc.adv}
				if tc.ref != nil {
					in.RefVelocity = s.Add(latentTensor(tc.ref))
				}
				loss, st, err := AWMLoss(in, tc.cfg)
				if err != nil {
					return err
				}
				s.Add(loss)
				checkFigures(t, 1e-6, []figure{
					{"Loss", st.Loss, tc.loss}, {"loss tensor", loss.Float64Values()[0], tc.loss},
					{"PolicyLoss", st.PolicyLoss, tc.pol}, {"KL", st.KL, tc.kl}, {"AdvClampedFrac", st.AdvClampedFrac, tc.clamped},
					{"RatioMean", st.RatioMean, 0}, {"ClipFrac", st.ClipFrac, 0},
				})
				loss.MustBackward()
				g := s.Add(v.MustGrad(false)).Float64Values()
				for k, got := range g {
					want := tc.grad0
					if k >= 8 {
						want = tc.grad1
					}
					if math.Abs(got-want) > 1e-6 {
						t.Errorf("dL/dv[%d] = %.9g, want %.9g", k, got, want)
					}
				}
				return nil
			})
		})
	}
}

func TestAWMLossRejectsBadInput(t *testing.T) {
	runScoped(t, func(s *libtorch.Scope) error {
		v := s.Add(latentTensor([][]float64{fill(1), fill(2)}))
		target := s.Add(latentTensor([][]float64{fill(0), fill(0)}))
		short := s.Add(latentTensor([][]float64{fill(0)}))
		for _, tc := range []struct {
			name string
			in   AWMInput
			cfg  FlowConfig
		}{
			{"no velocity", AWMInput{Target: target, Advantages: []float64{1, -1}}, FlowConfig{ClipRange: 0.1}},
			{"target of another shape", AWMInput{Velocity: v, Target: short, Advantages: []float64{1, -1}}, FlowConfig{ClipRange: 0.1}},
			{"one advantage for two", AWMInput{Velocity: v, Target: target, Advantages: []float64{1}}, FlowConfig{ClipRange: 0.1}},
			{"NaN advantage", AWMInput{Velocity: v, Target: target, Advantages: []float64{math.NaN(), 1}}, FlowConfig{ClipRange: 0.1}},
			{"beta without reference", AWMInput{Velocity: v, Target: target, Advantages: []float64{1, -1}}, FlowConfig{ClipRange: 0.1, Beta: 0.1}},
			{"bad config", AWMInput{Velocity: v, Target: target, Advantages: []float64{1, -1}}, FlowConfig{ClipRange: 0}},
		} {
			if loss, _, err := AWMLoss(tc.in, tc.cfg); err == nil {
				loss.MustDrop()
				t.Errorf("%s: want an error", tc.name)
			}
		}
		huge := s.Add(latentTensor([][]float64{fill(math.Inf(1)), fill(2)}))
		loss, _, err := AWMLoss(AWMInput{Velocity: huge, Target: target, Advantages: []float64{1, -1}}, FlowConfig{ClipRange: 0.1})
		if !errors.Is(err, ErrNonFinite) {
			if loss != nil {
				loss.MustDrop()
			}
			t.Errorf("infinite velocity: error %v, want ErrNonFinite", err)
		}
		return nil
	})
}
