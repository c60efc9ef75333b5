// Package schedule expands a configuration's SepGRPO schedule into the
// steps of a run (phase, prompts, group size, place in the schedule) and
// derives each step's seed. The controller runs these steps; the report
// and the CLI label policy versions by them.
package schedule

import (
	"fmt"

	"github.com/thinkgen/thinkgen/config"
)

// Step is what the schedule says about one step.
type Step struct {
	Step  int // 1-based
	Phase config.Phase
	// Cycle and PhaseStep place the step in the schedule (1-based).
	Cycle, PhaseStep int
	// Prompts is the step's number of prompts; FirstRow the index of its
	// first prompt in the train split (prompts are consecutive rows,
	// wrapping around the split).
	Prompts  int
	FirstRow int64
	// Group is the number of samples per prompt.
	Group int
	// EndsPhase marks the last step of a block of the schedule: its policy
	// version is kept and evaluated (the stage rows of the per-stage table).
	EndsPhase bool
}

// Plan expands the configuration's schedule into its steps.
func Plan(c *config.Config) ([]Step, error) {
	cycles := c.Schedule.Cycles
	if cycles <= 0 {
		cycles = 1
	}
	n := int64(c.Data.TrainSize)
	if n <= 0 {
		return nil, fmt.Errorf("data.train_size: %d, want > 0 (the prompts of a run come from the train split)", c.Data.TrainSize)
	}
	var plan []Step
	var row int64
	for cy := 1; cy <= cycles; cy++ {
		for i, ph := range c.Schedule.Phases {
			if !ph.Phase.Valid() {
				return nil, fmt.Errorf("schedule.phases[%d].phase: unknown phase %q (want %v)", i, ph.Phase, config.AllPhases)
			}
			prompts, group := c.GRPO.PromptsPerStep, c.GRPO.Group
			if ph.Phase == config.PhaseDiTGRPO {
				prompts, group = c.FlowGRPO.PromptsPerStep, c.FlowGRPO.Group
			}
			for k := 1; k <= ph.Steps; k++ {
				plan = append(plan, Step{
					Step: len(plan) + 1, Phase: ph.Phase, Cycle: cy, PhaseStep: k,
					Prompts: prompts, FirstRow: row % n, Group: group, EndsPhase: k == ph.Steps,
				})
				row += int64(prompts)
			}
		}
	}
	if len(plan) == 0 {
		return nil, fmt.Errorf("schedule: no steps (every phase has steps: 0)")
	}
	return plan, nil
}

// Rows returns the train-split indices of the step's prompts.
func (p Step) Rows(trainSize int) []int64 {
	rows := make([]int64, p.Prompts)
	for i := range rows {
		rows[i] = (p.FirstRow + int64(i)) % int64(trainSize)
	}
	return rows
}

// VersionLabel names policy version v of a run of plan: "base" for 0,
// "stage4@N" or "stage5@N" after step N of a GRPO or a FlowGRPO block;
// "vN" when the plan does not know the step.
func VersionLabel(plan []Step, v int) string {
	switch {
	case v == 0:
		return "base"
	case v <= len(plan) && plan[v-1].Phase == config.PhaseMLLMGRPO:
		return fmt.Sprintf("stage4@%d", v)
	case v <= len(plan) && plan[v-1].Phase == config.PhaseDiTGRPO:
		return fmt.Sprintf("stage5@%d", v)
	}
	return fmt.Sprintf("v%d", v)
}

// Seed derives a step's seed from the run's (SplitMix64 finaliser): every
// random draw of the step's tasks derives from it, so a re-run step
// reproduces its data whatever task or attempt runs it.
func Seed(runSeed int64, step int) uint64 {
	z := uint64(runSeed)*0x9e3779b97f4a7c15 + uint64(step)*0xbf58476d1ce4e5b9 + 0x94d049bb133111eb
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
