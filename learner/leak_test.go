package learner

import (
	"runtime/debug"
	"testing"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// TestLossesDoNotLeakTensors runs 200 GRPO and FlowGRPO loss + backward
// calls, and failing calls, and checks that no gotch tensor is left behind.
func TestLossesDoNotLeakTensors(t *testing.T) {
	runScoped(t, func(s *libtorch.Scope) error {
		logp := s.Add(matrix(tinyLogp))
		logp.MustRequiresGrad_(true)
		grpo := GRPOInput{
			LogProbs: logp, OldLogProbs: s.Add(matrix(shift(tinyLogp, [][]float64{{-0.5, 0.1, 0.4}, {0.3, -0.2, 0}}))),
			RefLogProbs: s.Add(matrix(tinyRef)), Mask: s.Add(matrix(tinyMask)), Entropy: s.Add(matrix(tinyEnt)),
			Advantages: []float64{0.9, -0.4},
		}
		flp := s.Add(vector(flowLogp))
		flp.MustRequiresGrad_(true)
		mean := s.Add(latentTensor(flowMean))
		mean.MustRequiresGrad_(true)
		flow := FlowInput{
			LogProb: flp, OldLogProb: s.Add(vector(addVec(flowLogp, []float64{0.2, -0.1, 0, 0.05}))),
			Mean: mean, RefMean: s.Add(latentTensor(flowRefM)), SigmaT: sigmaT, Advantages: []float64{1, -2, 7, 0},
		}
		badGRPO := grpo
		badGRPO.OldLogProbs = s.Add(matrix([][]float64{{1}, {2}}))
		badFlow := flow
		badFlow.Advantages = []float64{1}

		step := func() {
			loss, _, err := GRPOLoss(grpo, grpoCfg)
			if err != nil {
				t.Fatal(err)
			}
			loss.MustBackward()
			loss.MustDrop()
			floss, _, err := FlowGRPOLoss(flow, FlowConfig{ClipRange: 0.1, AdvClamp: 5, Beta: 0.04})
			if err != nil {
				t.Fatal(err)
			}
			floss.MustBackward()
			floss.MustDrop()
			if _, _, err := GRPOLoss(badGRPO, grpoCfg); err == nil {
				t.Fatal("bad GRPO input accepted")
			}
			if _, _, err := FlowGRPOLoss(badFlow, FlowConfig{ClipRange: 0.1}); err == nil {
				t.Fatal("bad FlowGRPO input accepted")
			}
		}
		step() // warm-up: backward creates the leaves' .grad
		// gotch's finalizers would quietly free (and unregister) a leaked
		// tensor at the next GC; with the GC off the count shows every leak.
		defer debug.SetGCPercent(debug.SetGCPercent(-1))
		before := libtorch.LiveTensors()
		for range 200 {
			step()
		}
		if after := libtorch.LiveTensors(); after != before {
			t.Errorf("live tensors %d before 200 loss+backward calls, %d after", before, after)
		}
		return nil
	})
}
