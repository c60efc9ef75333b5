package learner_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/learner"
)

// zero2Run is what a learner saw over two Steps: the trained parameters
// after each, and the bytes of the trained model's gradients it held
// after each.
type zero2Run struct {
	Params    [2][][]float64
	GradBytes [2]int64
}

func zero2Config() *config.Config {
	c := ranksConfig()
	c.Optim.Zero = 2
	return c
}

// gradBytes is the bytes of the gradients the phase's trained parameters
// hold.
func gradBytes(l *learner.Learner, phase config.Phase) int64 {
	var n int64
	for _, ps := range trainedParams(l, phase) {
		for _, p := range ps.Tensors() {
			g := p.MustGrad(false)
			if g.MustDefined() {
				n += int64(g.Numel()) * int64(g.DType().Size())
			}
			g.MustDrop()
		}
	}
	return n
}

func stepTwice(l *learner.Learner, in rankInput) (zero2Run, error) {
	var out zero2Run
	for k := range out.Params {
		if _, err := l.Step(in.Phase, in.Seed+uint64(k), in.Rolls, in.Rews); err != nil {
			return out, err
		}
		out.GradBytes[k] = gradBytes(l, in.Phase)
		for _, ps := range trainedParams(l, in.Phase) {
			for _, p := range ps.Tensors() {
				out.Params[k] = append(out.Params[k], p.Float64Values(false))
			}
		}
	}
	return out, nil
}

// TestZeroTwoShardsGradients: two ZeRO-2 ranks take the two steps of one
// unsharded learner within 1e-6, and after each update each holds the
// gradients of only the parameters it owns — about half of one learner's
// gradient bytes. (The second step's backward may not reach every
// parameter whose gradient a rank released — the reference-image
// refiner without editing rows — and the rank then reduces zeros for it.)
func TestZeroTwoShardsGradients(t *testing.T) {
	if os.Getenv(envRanksDir) != "" {
		g, in := joinRank(t, 2, 2*time.Minute)
		var out zero2Run
		err := withLearner(zero2Config(), g, func(l *learner.Learner) (err error) {
			out, err = stepTwice(l, in)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		writeJSON(t, os.Getenv(envRanksDir), rankFile(g.Rank()), out)
		return
	}
	eachPhaseOnTwoRanks(t, "TestZeroTwoShardsGradients", func(t *testing.T, in rankInput, dir string, wait func()) {
		var one zero2Run
		err := withLearner(ranksConfig(), nil, func(l *learner.Learner) (err error) {
			one, err = stepTwice(l, in)
			return err
		})
		wait()
		if err != nil {
			t.Fatal(err)
		}
		got := readRanks[zero2Run](t, dir, 2)
		for k := range one.Params {
			var sum int64
			for r := range got {
				compareValues(t, fmt.Sprintf("rank %d step %d parameter", r, k+1), got[r].Params[k], one.Params[k], 1e-6)
				share := float64(got[r].GradBytes[k]) / float64(one.GradBytes[k])
				t.Logf("step %d: rank %d holds %d gradient bytes, %.3f of one learner's %d", k+1, r, got[r].GradBytes[k], share, one.GradBytes[k])
				if share < 0.4 || share > 0.6 {
					t.Errorf("step %d: rank %d holds %.3f of the gradients, want about 1/2", k+1, r, share)
				}
				sum += got[r].GradBytes[k]
			}
			if sum != one.GradBytes[k] {
				t.Errorf("step %d: the ranks hold %d gradient bytes together, one learner %d", k+1, sum, one.GradBytes[k])
			}
		}
	})
}
