package rollout

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/testmodel"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/shards"
)

func smallConfig() *config.Config {
	c := config.Default()
	testmodel.Shrink(c)
	c.GRPO.Group, c.GRPO.MaxNewTokens, c.GRPO.ImageSteps = 3, 10, 2
	c.FlowGRPO.Group, c.FlowGRPO.Steps = 3, 3
	c.Sampling.DiTSteps = 4
	return c
}

func smallBundle(t *testing.T, c *config.Config) *model.Bundle {
	t.Helper()
	tok, err := model.TokenizerFor(c.Model.MLLM)
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.NewBundle(c, tok, gotch.CPU, 3)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withSmallBundle runs f inside libtorch.Run, on one thread, with the small
// configuration and a fresh bundle of it (dropped afterwards); an error
// ends the test.
func withSmallBundle(t *testing.T, f func(c *config.Config, b *model.Bundle) error) {
	t.Helper()
	err := libtorch.Run(func() error {
		if err := libtorch.SetThreads(1); err != nil {
			return err
		}
		c := smallConfig()
		b := smallBundle(t, c)
		defer b.Drop()
		return f(c, b)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func request(t *testing.T, c *config.Config, phase config.Phase) Request {
	t.Helper()
	// Rows 0..4 cycle through the five scenarios: editing and reflection
	// carry a reference image.
	rows, err := datasets.Generate(datasets.Options{Seed: 1, Split: datasets.Train}, 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	return Request{Run: "r", Step: 1, Task: "r0", Attempt: 1, Phase: phase, Rows: rows, GroupIDs: []int64{10, 11, 12, 13, 14}, Seed: 99,
		Settings: SettingsFor(c, phase, 99)}
}

func TestRolloutsAreDeterministicAndGrouped(t *testing.T) {
	withSmallBundle(t, func(c *config.Config, b *model.Bundle) error {
		before := libtorch.LiveTensors()
		for _, tt := range []struct {
			phase config.Phase
			run   func(*model.Bundle, Request, gotch.Device) ([]shards.RolloutRow, Stats, error)
		}{{config.PhaseMLLMGRPO, MLLM}, {config.PhaseDiTGRPO, DiT}} {
			req := request(t, c, tt.phase)
			a, st, err := tt.run(b, req, gotch.CPU)
			if err != nil {
				return err
			}
			again, _, err := tt.run(b, req, gotch.CPU)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(a, again) {
				t.Errorf("%s: the same request gave different rows", tt.phase)
			}
			g := 3
			if len(a) != 5*g || st.Samples != 5*g || st.Images != 5*g {
				t.Fatalf("%s: %d rows, stats %+v, want %d", tt.phase, len(a), st, 5*g)
			}
			for i, r := range a {
				first := a[i-i%g]
				if r.GroupID != req.GroupIDs[i/g] || int(r.SampleIndex) != i%g || r.RowID != req.Rows[i/g].ID || r.Spec == "" || len(r.ImagePNG) == 0 {
					t.Errorf("%s row %d: group %d sample %d row %q spec %q", tt.phase, i, r.GroupID, r.SampleIndex, r.RowID, r.Spec)
				}
				if (len(r.ReferencePNG) > 0) != (len(req.Rows[i/g].Reference) > 0) {
					t.Errorf("%s row %d: reference image lost", tt.phase, i)
				}
				switch tt.phase {
				case config.PhaseMLLMGRPO:
					// One initial noise per group; one log-prob per token.
					if r.NoiseSeed != first.NoiseSeed {
						t.Errorf("row %d: noise seed %d, its group's first %d", i, r.NoiseSeed, first.NoiseSeed)
					}
					if len(r.TokenIDs) == 0 || len(r.TokenIDs) != len(r.TokenLogProbs) {
						t.Errorf("row %d: %d tokens, %d log-probs", i, len(r.TokenIDs), len(r.TokenLogProbs))
					}
				case config.PhaseDiTGRPO:
					// One instruction per group, its own noise per sample, a
					// whole trajectory.
					if !reflect.DeepEqual(r.TokenIDs, first.TokenIDs) {
						t.Errorf("row %d: instruction differs within its group", i)
					}
					if i%g > 0 && r.NoiseSeed == first.NoiseSeed {
						t.Errorf("row %d: shares its group's noise", i)
					}
					if len(r.SDELatents) != 4 || len(r.SDEMeans) != 3 || len(r.SDELogProbs) != 3 || len(r.SDELatents[0]) != 3*32*32 {
						t.Errorf("row %d: trajectory of %d latents, %d means, %d log-probs", i, len(r.SDELatents), len(r.SDEMeans), len(r.SDELogProbs))
					}
				}
			}
		}
		if after := libtorch.LiveTensors(); after != before {
			t.Errorf("live tensors %d -> %d: rollouts leak", before, after)
		}
		return nil
	})
}

func TestRolloutRejectsBadRequests(t *testing.T) {
	withSmallBundle(t, func(c *config.Config, b *model.Bundle) error {
		req := request(t, c, config.PhaseMLLMGRPO)
		req.GroupIDs = req.GroupIDs[:2]
		if _, _, err := MLLM(b, req, gotch.CPU); err == nil {
			t.Error("mismatched group ids: want an error")
		}
		req.Rows, req.GroupIDs = nil, nil
		if _, _, err := DiT(b, req, gotch.CPU); err == nil {
			t.Error("no prompts: want an error")
		}
		return nil
	})
}

func TestSDEWindow(t *testing.T) {
	for _, tc := range []struct {
		name   string
		f      config.FlowGRPO
		lo, hi int // the window's steps lie in [lo, hi)
	}{
		{"off", config.FlowGRPO{Steps: 10}, 0, 0},
		{"whole range", config.FlowGRPO{Steps: 10, SDEWindow: 2}, 0, 10},
		{"bounded", config.FlowGRPO{Steps: 10, SDEWindow: 2, SDEWindowRange: []int{0, 5}}, 0, 5},
		{"fills its range", config.FlowGRPO{Steps: 10, SDEWindow: 3, SDEWindowRange: []int{4, 7}}, 4, 7},
		{"every step", config.FlowGRPO{Steps: 4, SDEWindow: 4}, 0, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			starts := map[int]bool{}
			for seed := uint64(0); seed < 200; seed++ {
				w := SDEWindow(tc.f, seed)
				if tc.f.SDEWindow == 0 {
					if w != nil {
						t.Fatalf("seed %d: window %v, want nil (every step stochastic)", seed, w)
					}
					continue
				}
				if !reflect.DeepEqual(w, SDEWindow(tc.f, seed)) {
					t.Fatalf("seed %d: two draws differ", seed)
				}
				if len(w) != tc.f.SDEWindow || w[0] < tc.lo || w[len(w)-1] >= tc.hi {
					t.Fatalf("seed %d: window %v, want %d steps within [%d, %d)", seed, w, tc.f.SDEWindow, tc.lo, tc.hi)
				}
				for i := 1; i < len(w); i++ {
					if w[i] != w[i-1]+1 {
						t.Fatalf("seed %d: window %v is not consecutive", seed, w)
					}
				}
				starts[w[0]] = true
			}
			if tc.f.SDEWindow > 0 {
				if want := tc.hi - tc.lo - tc.f.SDEWindow + 1; len(starts) != want {
					t.Errorf("200 seeds drew %d window starts, want every one of %d", len(starts), want)
				}
			}
		})
	}
}

// TestDiTRolloutWithSDEWindow samples as Flow-GRPO-Fast with one initial
// noise per group: a group's trajectories agree up to the window, the
// steps outside it are Euler steps (the next latent is the mean, log-prob
// 0), the window's steps are stochastic.
func TestDiTRolloutWithSDEWindow(t *testing.T) {
	withSmallBundle(t, func(c *config.Config, b *model.Bundle) error {
		f := &c.FlowGRPO
		f.Steps, f.SDEWindow, f.SDEWindowRange, f.SameNoise = 4, 2, []int{1, 4}, true
		req := request(t, c, config.PhaseDiTGRPO)
		req.Rows, req.GroupIDs = req.Rows[:2], req.GroupIDs[:2] // composition and reasoning
		window := SDEWindow(*f, req.Seed)
		in := map[int]bool{}
		for _, k := range window {
			in[k] = true
		}
		before := libtorch.LiveTensors()
		rows, _, err := DiT(b, req, gotch.CPU)
		if err != nil {
			return err
		}
		if after := libtorch.LiveTensors(); after != before {
			t.Errorf("live tensors %d -> %d: the rollout leaks", before, after)
		}
		g := f.Group
		for i, r := range rows {
			first := rows[i-i%g]
			if r.NoiseSeed != first.NoiseSeed || !reflect.DeepEqual(r.SDELatents[0], first.SDELatents[0]) {
				t.Errorf("row %d: its initial noise differs from its group's first", i)
			}
			for k := 0; k < f.Steps; k++ {
				if in[k] {
					if r.SDELogProbs[k] == 0 {
						t.Errorf("row %d step %d (window %v): log-prob 0 on an SDE step", i, k, window)
					}
					if reflect.DeepEqual(r.SDELatents[k+1], r.SDEMeans[k]) {
						t.Errorf("row %d step %d (window %v): no noise added on an SDE step", i, k, window)
					}
					continue
				}
				if r.SDELogProbs[k] != 0 || !reflect.DeepEqual(r.SDELatents[k+1], r.SDEMeans[k]) {
					t.Errorf("row %d step %d (window %v): an ODE step has log-prob %g or a next latent other than its mean", i, k, window, r.SDELogProbs[k])
				}
			}
			if i%g == 0 {
				continue
			}
			// The group shares everything before the window and nothing after.
			for k := 0; k <= window[0]; k++ {
				if !reflect.DeepEqual(r.SDELatents[k], first.SDELatents[k]) {
					t.Errorf("row %d: latent %d differs from its group's first before the window %v", i, k, window)
				}
			}
			if end := window[len(window)-1] + 1; reflect.DeepEqual(r.SDELatents[end], first.SDELatents[end]) {
				t.Errorf("row %d: latent %d equals its group's first after the window %v", i, end, window)
			}
		}
		return nil
	})
}

// TestRolloutStopsWhenContextEnds: a rollout whose ctx ended (its task's
// lease may have) samples nothing and returns ctx's cause.
func TestRolloutStopsWhenContextEnds(t *testing.T) {
	fenced := errors.New("fenced")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(fenced)
	withSmallBundle(t, func(c *config.Config, b *model.Bundle) error {
		for _, tc := range []struct {
			phase config.Phase
			run   func(context.Context, *model.Bundle, Request, gotch.Device) ([]shards.RolloutRow, Stats, error)
		}{
			{config.PhaseMLLMGRPO, MLLMContext},
			{config.PhaseDiTGRPO, DiTContext},
		} {
			rows, _, err := tc.run(ctx, b, request(t, c, tc.phase), gotch.CPU)
			if !errors.Is(err, fenced) || rows != nil {
				t.Errorf("%s with an ended ctx: %d rows, %v; want none and its cause", tc.phase, len(rows), err)
			}
		}
		return nil
	})
}
