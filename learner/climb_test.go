package learner_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/testmodel"
	"github.com/thinkgen/thinkgen/learner"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/rollout"
	"github.com/thinkgen/thinkgen/shards"
)

// brightness is the mean of an image's RGB channels in [0, 1].
func brightness(t *testing.T, b []byte) float64 {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	r := img.Bounds()
	var sum float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			sum += float64(cr+cg+cb) / (3 * 0xffff)
		}
	}
	return sum / float64(r.Dx()*r.Dy())
}

// TestFlowGRPOClimbsAReward closes the loop the unit tests of the loss
// cannot: rollouts of a small DiT are scored by a dense reward (the image's
// brightness, or its darkness), the learner takes FlowGRPO steps on them,
// and the brightness of fresh rollouts must follow the reward: rise for
// one, fall for the other. A sign error anywhere between the SDE's
// log-probabilities, the advantages and the update — which leaves the
// on-policy ratio at 1 and every hand-computed loss right — turns one of
// them around.
func TestFlowGRPOClimbsAReward(t *testing.T) {
	if testing.Short() {
		t.Skip("trains")
	}
	fast := func(f *config.FlowGRPO) { f.SDEWindow, f.SDEWindowRange, f.SameNoise = 2, []int{0, 3}, true }
	for _, tt := range []struct {
		name   string
		reward func(brightness float64) float64
		sign   float64 // +1: brightness must rise, −1: fall
		setup  func(*config.FlowGRPO)
	}{
		{"brighter", func(b float64) float64 { return b }, 1, nil},
		{"darker", func(b float64) float64 { return 1 - b }, -1, nil},
		// Flow-GRPO-Fast: two SDE steps of four, one noise per group.
		{"brighter with an SDE window", func(b float64) float64 { return b }, 1, fast},
		// Advantage-weighted flow matching on the final images.
		{"brighter by AWM", func(b float64) float64 { return b }, 1, func(f *config.FlowGRPO) { f.Objective = config.ObjectiveAWM }},
		{"darker by AWM", func(b float64) float64 { return 1 - b }, -1, func(f *config.FlowGRPO) { f.Objective = config.ObjectiveAWM }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			means := climb(t, tt.reward, tt.setup)
			first := (means[0] + means[1] + means[2]) / 3
			n := len(means)
			last := (means[n-3] + means[n-2] + means[n-1]) / 3
			t.Logf("mean brightness per iteration: %.3f", means)
			if !(tt.sign*(last-first) > 0.015) {
				t.Errorf("mean brightness %.3f over the first three iterations, %.3f over the last three; want a change of more than 0.015 in the reward's direction (%+.0f)", first, last, tt.sign)
			}
		})
	}
}

// newLearner is a learner over a fresh small bundle of c (seed 3) and its
// reference, a second copy, in c's model.dtype; it must run inside
// libtorch.Run.
func newLearner(c *config.Config) (*learner.Learner, error) {
	tok, err := model.TokenizerFor(c.Model.MLLM)
	if err != nil {
		return nil, err
	}
	dt, err := model.ParseDType(c.Model.DType, gotch.CPU)
	if err != nil {
		return nil, err
	}
	policy, err := model.NewBundle(c, tok, gotch.CPU, 3)
	if err != nil {
		return nil, err
	}
	ref, err := model.NewBundle(c, tok, gotch.CPU, 3)
	if err != nil {
		policy.Drop()
		return nil, err
	}
	policy.ToDType(dt)
	ref.ToDType(dt)
	return learner.New(c, policy, ref, 0), nil
}

// climb trains a small bundle's DiT with FlowGRPO on reward(brightness) for
// 12 iterations and returns the mean brightness of each iteration's
// rollouts (before its update); setup, when given, changes flow_grpo.
func climb(t *testing.T, reward func(float64) float64, setup func(*config.FlowGRPO)) []float64 {
	t.Helper()
	c := config.Default()
	testmodel.Shrink(c)
	c.GRPO.MaxNewTokens = 8
	f := &c.FlowGRPO
	f.Group, f.Steps, f.TimestepFraction, f.MiniBatches = 8, 4, 1, 1
	f.LR, f.Beta, f.ClipEps, f.AdvClamp, f.CFG = 3e-3, 0, 0.2, 5, 1
	if setup != nil {
		setup(f)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	rows, err := datasets.Generate(datasets.Options{Seed: 1, Split: datasets.Train, Scenarios: []string{datasets.Composition}}, 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	const iters = 12
	means := make([]float64, 0, iters)
	err = withLearner(c, nil, func(l *learner.Learner) error {
		for it := range iters {
			req := rollout.Request{Run: "r", Step: it + 1, Task: "r0", Attempt: 1, Phase: config.PhaseDiTGRPO, Rows: rows, GroupIDs: []int64{0, 1, 2, 3}, Seed: uint64(100 + it),
				Settings: rollout.SettingsFor(c, config.PhaseDiTGRPO, uint64(100+it))}
			rolls, _, err := rollout.DiT(l.Policy(), req, gotch.CPU)
			if err != nil {
				return err
			}
			rews := make([]shards.RewardRow, len(rolls))
			var mean float64
			for i, r := range rolls {
				b := brightness(t, r.ImagePNG)
				mean += b / float64(len(rolls))
				rews[i] = shards.RewardRow{GroupID: r.GroupID, SampleIndex: r.SampleIndex, Scenario: r.Scenario, Reward: float32(reward(b))}
			}
			means = append(means, mean)
			if _, err := l.Step(config.PhaseDiTGRPO, req.Seed, rolls, rews); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return means
}

// TestFlowGRPORefusesStepsTheRolloutDidNotSample: with an SDE window, the
// learner trains the window its seed gives; rows sampled with another
// window are refused, naming the step, instead of scoring an ODE step's
// log-prob of 0.
func TestFlowGRPORefusesStepsTheRolloutDidNotSample(t *testing.T) {
	c := config.Default()
	testmodel.Shrink(c)
	c.GRPO.MaxNewTokens = 8
	f := &c.FlowGRPO
	f.Group, f.Steps, f.SDEWindow, f.MiniBatches, f.CFG = 2, 4, 1, 1, 1
	rows, err := datasets.Generate(datasets.Options{Seed: 1, Split: datasets.Train, Scenarios: []string{datasets.Composition}}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Two seeds whose windows differ.
	a := uint64(1)
	b := a + 1
	for rollout.SDEWindow(*f, b)[0] == rollout.SDEWindow(*f, a)[0] {
		b++
	}
	err = libtorch.Run(func() error {
		l, err := newLearner(c)
		if err != nil {
			return err
		}
		defer l.Close()
		rolls, rews, err := ditPair(l, c, rows, 1, a)
		if err != nil {
			return err
		}
		_, err = l.Step(config.PhaseDiTGRPO, b, rolls, rews)
		want := fmt.Sprintf("step %d was sampled by the ODE", rollout.SDEWindow(*f, b)[0])
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("learner seed %d on rows of seed %d: error %v, want one with %q", b, a, err, want)
		}
		if _, err := l.Step(config.PhaseDiTGRPO, a, rolls, rews); err != nil {
			t.Errorf("learner on its rollout's seed: %v", err)
		}
		// A step whose ctx ended (its task's lease may have) stops before
		// its first mini-batch with ctx's cause.
		fenced := errors.New("fenced")
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(fenced)
		if _, err := l.StepContext(ctx, config.PhaseDiTGRPO, a, rolls, rews); !errors.Is(err, fenced) {
			t.Errorf("a step with an ended ctx: %v, want its cause", err)
		}
		// AWM trains on the final images: the window does not matter, and
		// it draws round(timestep_fraction × steps) times.
		f.Objective = config.ObjectiveAWM
		m, err := l.Step(config.PhaseDiTGRPO, b, rolls, rews)
		if err != nil {
			t.Errorf("AWM on rows of another window: %v", err)
		} else if want := float64(len(learner.TrainedSteps(f.Steps, f.TimestepFraction, b))); m["learn/timesteps"] != want {
			t.Errorf("AWM drew %g times, want %g", m["learn/timesteps"], want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ditPair samples one DiT group of rows' first row at step with seed
// (two images under the small configs) and rewards them 0 and 1.
func ditPair(l *learner.Learner, c *config.Config, rows []datasets.Row, step int, seed uint64) ([]shards.RolloutRow, []shards.RewardRow, error) {
	req := rollout.Request{Run: "r", Step: step, Task: "r0", Attempt: 1, Phase: config.PhaseDiTGRPO, Rows: rows, GroupIDs: []int64{0}, Seed: seed,
		Settings: rollout.SettingsFor(c, config.PhaseDiTGRPO, seed)}
	rolls, _, err := rollout.DiT(l.Policy(), req, gotch.CPU)
	if err != nil {
		return nil, nil, err
	}
	return rolls, []shards.RewardRow{
		{GroupID: 0, SampleIndex: 0, Scenario: rolls[0].Scenario, Reward: 0},
		{GroupID: 0, SampleIndex: 1, Scenario: rolls[1].Scenario, Reward: 1},
	}, nil
}
