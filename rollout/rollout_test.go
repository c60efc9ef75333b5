package rollout

import (
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

func smallBundle(t *testing.T) *model.Bundle {
	t.Helper()
	c := config.Default()
	testmodel.Shrink(c)
	c.GRPO.Group, c.GRPO.MaxNewTokens, c.GRPO.ImageSteps = 3, 10, 2
	c.FlowGRPO.Group, c.FlowGRPO.Steps = 3, 3
	c.Sampling.DiTSteps = 4
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

func request(t *testing.T, phase config.Phase) Request {
	t.Helper()
	// Rows 0..4 cycle through the five scenarios: editing and reflection
	// carry a reference image.
	rows, err := datasets.Generate(datasets.Options{Seed: 1, Split: datasets.Train}, 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	return Request{Run: "r", Step: 1, Task: "r0", Attempt: 1, Phase: phase, Rows: rows, GroupIDs: []int64{10, 11, 12, 13, 14}, Seed: 99}
}

func TestRolloutsAreDeterministicAndGrouped(t *testing.T) {
	err := libtorch.Run(func() error {
		if err := libtorch.SetThreads(1); err != nil {
			return err
		}
		b := smallBundle(t)
		defer b.Drop()
		before := libtorch.LiveTensors()
		for _, tt := range []struct {
			phase config.Phase
			run   func(*model.Bundle, Request, gotch.Device) ([]shards.RolloutRow, Stats, error)
		}{{config.PhaseMLLMGRPO, MLLM}, {config.PhaseDiTGRPO, DiT}} {
			req := request(t, tt.phase)
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
	if err != nil {
		t.Fatal(err)
	}
}

func TestRolloutRejectsBadRequests(t *testing.T) {
	err := libtorch.Run(func() error {
		b := smallBundle(t)
		defer b.Drop()
		req := request(t, config.PhaseMLLMGRPO)
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
	if err != nil {
		t.Fatal(err)
	}
}

func TestSplitThinking(t *testing.T) {
	for _, tt := range []struct{ in, cot, instr string }{
		{"two plus one is three.\n</think>\n\na small red circle.<|im_end|>", "two plus one is three.", "a small red circle."},
		{"\n</think>\n\nthe text \"AB\".", "", "the text \"AB\"."},
		{"no end of thinking", "", "no end of thinking"},
	} {
		cot, instr := splitThinking(tt.in)
		if cot != tt.cot || instr != tt.instr {
			t.Errorf("splitThinking(%q) = %q, %q; want %q, %q", tt.in, cot, instr, tt.cot, tt.instr)
		}
	}
}
