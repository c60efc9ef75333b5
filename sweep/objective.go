package sweep

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
)

// Objective is the eval score that ranks trials: the score of a scenario
// (or the mean over the scenarios) in a mode, of the trial's final policy.
type Objective struct {
	// Metric is "<mode>/<scenario>" with mode "think" or "direct" and
	// scenario one of config.Scenarios or "mean" (the mean over the
	// scenarios evaluated), e.g. "think/reasoning".
	Metric string `json:"metric"`
	// Score is "partial" (the mean partial score; the default) or
	// "strict" (the strict accuracy).
	Score string `json:"score"`
	// Direction is "maximize" (the default) or "minimize".
	Direction string `json:"direction"`
}

// evalModes are the modes the train command evaluates in (evaluate.Modes).
var evalModes = []string{"direct", "think"}

func (o *Objective) check() error {
	if o.Metric == "" {
		return fmt.Errorf("metric: empty; want <mode>/<scenario>, e.g. think/reasoning or think/mean")
	}
	mode, sc, ok := strings.Cut(o.Metric, "/")
	if !ok || !slices.Contains(evalModes, mode) || !(sc == "mean" || slices.Contains(config.Scenarios, sc)) {
		return fmt.Errorf("metric: unknown objective %q (want <mode>/<scenario> with mode %s and scenario mean or one of %s)",
			o.Metric, strings.Join(evalModes, " or "), strings.Join(config.Scenarios, ", "))
	}
	if o.Score == "" {
		o.Score = "partial"
	}
	if o.Score != "partial" && o.Score != "strict" {
		return fmt.Errorf("score: unknown score %q (want partial or strict)", o.Score)
	}
	if o.Direction == "" {
		o.Direction = Maximize
	}
	if o.Direction != Maximize && o.Direction != Minimize {
		return fmt.Errorf("direction: unknown direction %q (want maximize or minimize)", o.Direction)
	}
	return nil
}

// Better reports whether objective value a ranks before b.
func (o Objective) Better(a, b float64) bool {
	if o.Direction == Minimize {
		return a < b
	}
	return a > b
}

// Value computes the objective from a version's eval scores (by mode, one
// summary per scenario: eval/<version>.json of a run).
func (o Objective) Value(scores map[string][]reward.Summary) (float64, error) {
	mode, sc, _ := strings.Cut(o.Metric, "/")
	sums := scores[mode]
	pick := func(s reward.Summary) float64 {
		if o.Score == "strict" {
			return s.Strict
		}
		return s.Score
	}
	if sc == "mean" {
		if len(sums) == 0 {
			return 0, fmt.Errorf("objective %s: no %s scores", o.Metric, mode)
		}
		var sum float64
		for _, s := range sums {
			sum += pick(s)
		}
		return sum / float64(len(sums)), nil
	}
	for _, s := range sums {
		if s.Scenario == sc {
			return pick(s), nil
		}
	}
	return 0, fmt.Errorf("objective %s: scenario %s was not evaluated", o.Metric, sc)
}

// ReadObjective reads the objective of a finished run: the eval scores of
// its last version, which the train command stores as
// runs/<run>/eval/<version>.json. A run that has not committed its whole
// schedule, or whose last version was not evaluated, is an error.
func (o Objective) ReadObjective(ctx context.Context, st storage.Store, run string) (float64, error) {
	rs, err := runs.ReadState(ctx, st, run)
	if err != nil {
		return 0, fmt.Errorf("run %s: %w", run, err)
	}
	if rs.Committed < rs.Steps {
		return 0, fmt.Errorf("run %s: committed %d of %d steps", run, rs.Committed, rs.Steps)
	}
	scores, err := runs.ReadEvalScores(ctx, st, run, rs.Committed)
	if err != nil {
		return 0, fmt.Errorf("run %s: eval scores of version %d: %w", run, rs.Committed, err)
	}
	return o.Value(scores)
}
