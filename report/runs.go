package report

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
)

// Status is how far a run is.
type Status string

const (
	// Finished: every step of the schedule is committed.
	Finished Status = "finished"
	// InProgress: unfinished, and something was written recently.
	InProgress Status = "in progress"
	// Stale: unfinished, and nothing was written for longer than the
	// stale limit (a killed run waiting for --resume, or a hung one).
	Stale Status = "stale"
)

// DefaultStaleAfter is the least silence after which an unfinished run is
// stale.
const DefaultStaleAfter = 30 * time.Minute

// StatusOf judges a run at now from its run.json and its last activity.
// An unfinished run is stale when it has been silent for longer than
// staleAfter (0: DefaultStaleAfter) and than three of its mean step times
// (a run whose steps take hours is not stale after 30 minutes).
func StatusOf(rs *runs.State, activity, now time.Time, staleAfter time.Duration) Status {
	if rs.Steps > 0 && rs.Committed >= rs.Steps {
		return Finished
	}
	if staleAfter <= 0 {
		staleAfter = DefaultStaleAfter
	}
	if rs.Committed > 0 && !rs.Started.IsZero() {
		staleAfter = max(staleAfter, 3*rs.Updated.Sub(rs.Started)/time.Duration(rs.Committed))
	}
	if now.Sub(activity) > staleAfter {
		return Stale
	}
	return InProgress
}

// activity is a run's last sign of life: run.json's update time, or a
// later write of an object of the step in flight (the step after the last
// committed one), which workers write long before the step commits.
func activity(rs *runs.State, objs []storage.ObjectInfo) time.Time {
	t := rs.Updated
	next := storage.StepPrefix(rs.Run, rs.Committed+1)
	for _, o := range objs {
		if strings.HasPrefix(o.Key, next) && o.ModTime.After(t) {
			t = o.ModTime
		}
	}
	return t
}

// Summary is one run of a store, as `thinkgen runs` lists it.
type Summary struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Committed steps of Steps; Phase is the phase of the last committed
	// step.
	Committed int    `json:"committed"`
	Steps     int    `json:"steps"`
	Phase     string `json:"phase,omitempty"`
	// Best is the evaluation (version and mode) with the highest mean
	// score over its scenarios; BestByScenario the highest score of each
	// scenario over every evaluation. Both are empty before any eval.
	Best           *Best     `json:"best,omitempty"`
	BestByScenario []Best    `json:"best_by_scenario,omitempty"`
	Started        time.Time `json:"started"`
	Updated        time.Time `json:"updated"`
	// Activity is the last write of the run (run.json, or an object of
	// the step in flight).
	Activity time.Time `json:"activity"`
	// Err says why the run could not be read (its other fields are then
	// zero).
	Err string `json:"error,omitempty"`
}

// Best is one best score: Score (mean partial score) and Strict (strict
// accuracy) of Scenario ("mean" for the mean over scenarios), reached by
// the version labelled Label in Mode.
type Best struct {
	Scenario string  `json:"scenario"`
	Score    float64 `json:"score"`
	Strict   float64 `json:"strict"`
	Version  int     `json:"version"`
	Label    string  `json:"label"`
	Mode     string  `json:"mode"`
}

// ListRuns summarises every run of st (every runs/<run>/run.json), sorted
// by name. A run whose files cannot be read is listed with Err set.
func ListRuns(ctx context.Context, st storage.Store, now time.Time, staleAfter time.Duration) ([]Summary, error) {
	objs, err := st.List(ctx, "runs/")
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	byRun := map[string][]storage.ObjectInfo{}
	var names []string
	for _, o := range objs {
		parts := strings.SplitN(o.Key, "/", 3)
		if len(parts) < 3 {
			continue
		}
		byRun[parts[1]] = append(byRun[parts[1]], o)
		if parts[2] == "run.json" {
			names = append(names, parts[1])
		}
	}
	sort.Strings(names)
	var out []Summary
	for _, name := range names {
		s, err := summarise(ctx, st, name, byRun[name], now, staleAfter)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			s = Summary{Name: name, Err: err.Error()}
		}
		out = append(out, s)
	}
	return out, nil
}

func summarise(ctx context.Context, st storage.Store, run string, objs []storage.ObjectInfo, now time.Time, staleAfter time.Duration) (Summary, error) {
	rs, err := readState(ctx, st, run)
	if err != nil {
		return Summary{}, err
	}
	_, plan, _ := planOf(rs)
	s := Summary{Name: run, Committed: rs.Committed, Steps: rs.Steps, Phase: string(rs.Phase),
		Started: rs.Started, Updated: rs.Updated, Activity: activity(rs, objs)}
	s.Status = StatusOf(rs, s.Activity, now, staleAfter)
	for _, o := range objs {
		v, mode, ok := runs.ParseEvalKey(run, o.Key)
		if !ok || mode != "" {
			continue
		}
		b, err := getAll(ctx, st, o.Key)
		if err != nil {
			return Summary{}, err
		}
		var scores map[string][]reward.Summary
		if err := json.Unmarshal(b, &scores); err != nil {
			return Summary{}, fmt.Errorf("read %s: %w", o.Key, err)
		}
		s.addEval(v, VersionLabel(plan, v), scores)
	}
	return s, nil
}

// addEval folds one evaluation into the best scores.
func (s *Summary) addEval(v int, label string, scores map[string][]reward.Summary) {
	modes := make([]string, 0, len(scores))
	for m := range scores {
		modes = append(modes, m)
	}
	sort.Strings(modes)
	for _, mode := range modes {
		sums := scores[mode]
		if len(sums) == 0 {
			continue
		}
		mean := Best{Scenario: "mean", Version: v, Label: label, Mode: mode}
		for _, sc := range sums {
			mean.Score += sc.Score / float64(len(sums))
			mean.Strict += sc.Strict / float64(len(sums))
			b := Best{Scenario: sc.Scenario, Score: sc.Score, Strict: sc.Strict, Version: v, Label: label, Mode: mode}
			i := slices.IndexFunc(s.BestByScenario, func(x Best) bool { return x.Scenario == sc.Scenario })
			switch {
			case i < 0:
				s.BestByScenario = append(s.BestByScenario, b)
			case better(b, s.BestByScenario[i]):
				s.BestByScenario[i] = b
			}
		}
		if s.Best == nil || better(mean, *s.Best) {
			s.Best = &mean
		}
	}
}

// better reports whether a beats b: a higher score, then a higher strict
// accuracy; ties keep the earlier version.
func better(a, b Best) bool {
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	return a.Strict > b.Strict
}
