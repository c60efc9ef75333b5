package learner_test

import (
	"errors"
	"math"
	"testing"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/internal/testmodel"
	"github.com/thinkgen/thinkgen/learner"
)

// TestPhaseLearningRateSchedule: flow_grpo.warmup_steps and
// flow_grpo.decay shape the DiT phase's rate over its steps in the run,
// counted across blocks and cycles (steps 2, 3, 5 and 6 of
// [mllm-grpo×1, dit-grpo×2]×2), and learn/lr reports it; a step the
// schedule gives to another phase is refused.
func TestPhaseLearningRateSchedule(t *testing.T) {
	c := config.Default()
	testmodel.Shrink(c)
	c.GRPO.MaxNewTokens = 8
	f := &c.FlowGRPO
	f.Group, f.Steps, f.MiniBatches, f.CFG = 2, 2, 1, 1
	f.LR, f.WarmupSteps, f.Decay = 1e-4, 2, config.DecayCosine
	c.Schedule = config.Schedule{Cycles: 2, Phases: []config.PhaseSpec{{Phase: config.PhaseMLLMGRPO, Steps: 1}, {Phase: config.PhaseDiTGRPO, Steps: 2}}}
	rows, err := datasets.Generate(datasets.Options{Seed: 1, Split: datasets.Train, Scenarios: []string{datasets.Composition}}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The DiT phase's 4 steps: warm-up over 2 (½, 1), then cosine from
	// 1 to 0.1 over the other 2 (1, then 0.1 + 0.9·½·(1 + cos π/2)).
	want := map[int]float64{2: 0.5e-4, 3: 1e-4, 5: 1e-4, 6: 0.55e-4}
	err = withLearner(c, nil, func(l *learner.Learner) error {
		const seed = 7
		rolls, rews, err := ditPair(l, c, rows, 2, seed)
		if err != nil {
			return err
		}
		for _, step := range []int{2, 3, 5, 6} {
			l.SetVersion(step - 1)
			m, err := l.Step(config.PhaseDiTGRPO, seed, rolls, rews)
			if err != nil {
				return err
			}
			if got := m["learn/lr"]; math.Abs(got-want[step]) > 1e-12 {
				t.Errorf("step %d: learn/lr %g, want %g", step, got, want[step])
			}
		}
		l.SetVersion(3) // step 4 is an mllm-grpo step
		if _, err := l.Step(config.PhaseDiTGRPO, seed, rolls, rews); !errors.Is(err, learner.ErrFatal) {
			t.Errorf("a dit-grpo learn at step 4 of the schedule (an mllm-grpo step): error %v, want ErrFatal", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
