package schedule_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/schedule"
)

// cfg is a configuration of two phases (2 MLLM steps of 3 prompts × 4,
// 1 DiT step of 2 prompts × 5) over a train split of 7 rows.
func cfg(cycles int) *config.Config {
	c := config.Default()
	c.Data.TrainSize = 7
	c.GRPO.PromptsPerStep, c.GRPO.Group = 3, 4
	c.FlowGRPO.PromptsPerStep, c.FlowGRPO.Group = 2, 5
	c.Schedule.Cycles = cycles
	c.Schedule.Phases = []config.PhaseSpec{{Phase: config.PhaseMLLMGRPO, Steps: 2}, {Phase: config.PhaseDiTGRPO, Steps: 1}}
	return c
}

func TestPlan(t *testing.T) {
	m, d := config.PhaseMLLMGRPO, config.PhaseDiTGRPO
	tests := []struct {
		name   string
		cycles int
		want   []schedule.Step
	}{
		{"one cycle", 1, []schedule.Step{
			{Step: 1, Phase: m, Cycle: 1, PhaseStep: 1, Prompts: 3, FirstRow: 0, Group: 4},
			{Step: 2, Phase: m, Cycle: 1, PhaseStep: 2, Prompts: 3, FirstRow: 3, Group: 4, EndsPhase: true},
			{Step: 3, Phase: d, Cycle: 1, PhaseStep: 1, Prompts: 2, FirstRow: 6, Group: 5, EndsPhase: true},
		}},
		{"no cycles count as one", 0, []schedule.Step{
			{Step: 1, Phase: m, Cycle: 1, PhaseStep: 1, Prompts: 3, FirstRow: 0, Group: 4},
			{Step: 2, Phase: m, Cycle: 1, PhaseStep: 2, Prompts: 3, FirstRow: 3, Group: 4, EndsPhase: true},
			{Step: 3, Phase: d, Cycle: 1, PhaseStep: 1, Prompts: 2, FirstRow: 6, Group: 5, EndsPhase: true},
		}},
		{"two cycles wrap the split", 2, []schedule.Step{
			{Step: 1, Phase: m, Cycle: 1, PhaseStep: 1, Prompts: 3, FirstRow: 0, Group: 4},
			{Step: 2, Phase: m, Cycle: 1, PhaseStep: 2, Prompts: 3, FirstRow: 3, Group: 4, EndsPhase: true},
			{Step: 3, Phase: d, Cycle: 1, PhaseStep: 1, Prompts: 2, FirstRow: 6, Group: 5, EndsPhase: true},
			{Step: 4, Phase: m, Cycle: 2, PhaseStep: 1, Prompts: 3, FirstRow: 1, Group: 4},
			{Step: 5, Phase: m, Cycle: 2, PhaseStep: 2, Prompts: 3, FirstRow: 4, Group: 4, EndsPhase: true},
			{Step: 6, Phase: d, Cycle: 2, PhaseStep: 1, Prompts: 2, FirstRow: 0, Group: 5, EndsPhase: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := schedule.Plan(cfg(tt.cycles))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Plan =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *config.Config)
		want string
	}{
		{"empty train split", func(c *config.Config) { c.Data.TrainSize = 0 }, "data.train_size: 0"},
		{"unknown phase", func(c *config.Config) { c.Schedule.Phases[1].Phase = "sft" }, `schedule.phases[1].phase: unknown phase "sft"`},
		{"no steps", func(c *config.Config) {
			c.Schedule.Phases = []config.PhaseSpec{{Phase: config.PhaseMLLMGRPO, Steps: 0}}
		}, "schedule: no steps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg(1)
			tt.edit(c)
			_, err := schedule.Plan(c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Plan: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRows(t *testing.T) {
	p := schedule.Step{Prompts: 4, FirstRow: 5}
	if got, want := p.Rows(7), []int64{5, 6, 0, 1}; !slices.Equal(got, want) {
		t.Errorf("Rows = %v, want %v", got, want)
	}
}

// TestSeed: a step's seed depends on the run's seed and the step only,
// and differs between steps and runs.
func TestSeed(t *testing.T) {
	seen := map[uint64]string{}
	for _, run := range []int64{0, 1, 2, -1} {
		for step := 1; step <= 50; step++ {
			s := schedule.Seed(run, step)
			if s != schedule.Seed(run, step) {
				t.Fatalf("Seed(%d, %d) is not deterministic", run, step)
			}
			key := fmt.Sprintf("Seed(%d, %d)", run, step)
			if prev, ok := seen[s]; ok {
				t.Errorf("Seed(%d, %d) = %d, the same as %s", run, step, s, prev)
			}
			seen[s] = key
		}
	}
}

func TestVersionLabel(t *testing.T) {
	plan, err := schedule.Plan(cfg(1))
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[int]string{0: "base", 1: "stage4@1", 2: "stage4@2", 3: "stage5@3", 4: "v4"} {
		if got := schedule.VersionLabel(plan, v); got != want {
			t.Errorf("VersionLabel(%d) = %q, want %q", v, got, want)
		}
	}
}
