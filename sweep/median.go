package sweep

import (
	"math"
	"slices"
)

// Decision is the outcome of the median stopping rule for one trial at one
// step.
type Decision struct {
	Stop bool `json:"stop"`
	Step int  `json:"step"`
	// Value is the trial's running mean of the metric up to Step, Median
	// the median of the other trials' running means at Step, and Others
	// how many trials that median is over.
	Value  float64 `json:"value"`
	Median float64 `json:"median"`
	Others int     `json:"others"`
}

// Decide applies the median stopping rule (Golovin et al., "Google
// Vizier", 2017) to trial at step: the trial is stopped when its running
// mean of the metric over steps 1..step is worse than the median of the
// running means of the other trials that have reached step (finished,
// running or stopped later than step), provided step ≥ MinStep and at
// least MinTrials others have reached it. signal maps each trial to its
// metric by step (index step-1; NaN where the step did not log it).
//
// Vizier compares against completed trials only; comparing against every
// trial that has reached the step lets trials running side by side stop
// each other, which is what a sweep of a few parallel trials needs.
func (e *EarlyStop) Decide(trial string, step int, signal map[string][]float64) Decision {
	d := Decision{Step: step, Value: math.NaN(), Median: math.NaN()}
	if step < e.MinStep {
		return d
	}
	mine, ok := RunningMean(signal[trial], step)
	if !ok {
		return d
	}
	d.Value = mine
	var others []float64
	for name, s := range signal {
		if name == trial {
			continue
		}
		if m, ok := RunningMean(s, step); ok {
			others = append(others, m)
		}
	}
	d.Others = len(others)
	if len(others) < e.MinTrials {
		return d
	}
	d.Median = Median(others)
	if e.Direction == Minimize {
		d.Stop = mine > d.Median
	} else {
		d.Stop = mine < d.Median
	}
	return d
}

// RunningMean returns the mean of the finite values of series over steps
// 1..step, and false when the series has not reached step or holds no
// finite value there.
func RunningMean(series []float64, step int) (float64, bool) {
	if step < 1 || len(series) < step {
		return 0, false
	}
	var sum float64
	n := 0
	for _, v := range series[:step] {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			sum += v
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}

// Median returns the median of xs (the mean of the middle two for an even
// count); NaN for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}
