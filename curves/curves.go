// Package curves draws training curves from a run's metrics history
// (runs.History): the panels of a run's curves.png (Panels, Write) and
// one metric of several runs side by side (Compare).
package curves

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/thinkgen/thinkgen/internal/plots"
	"github.com/thinkgen/thinkgen/storage/runs"
)

// series returns the named metric, or nil.
func series(h *runs.History, name, label string) []plots.Series {
	v, ok := h.Values[name]
	if !ok {
		return nil
	}
	return []plots.Series{{Name: label, X: h.Steps, Y: v}}
}

// trendWindow is the number of steps the trailing mean of a noisy curve
// averages: each step samples new prompts, so a step's reward mean moves
// by more than a run's trend.
const trendWindow = 5

// trend returns the trailing mean of the named metric over trendWindow
// steps (fewer at the start), or nil when the run is too short for it to
// say more than the curve itself.
func trend(h *runs.History, name, label string) []plots.Series {
	v, ok := h.Values[name]
	if !ok || len(v) < 2*trendWindow {
		return nil
	}
	return []plots.Series{{Name: label, X: h.Steps, Y: trailingMean(v, trendWindow)}}
}

// seriesOf returns a series for every metric that label accepts, named by
// the label it gives, in the order of the metrics' names.
func seriesOf(h *runs.History, label func(name string) (string, bool)) []plots.Series {
	var names []string
	for k := range h.Values {
		if _, ok := label(k); ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var out []plots.Series
	for _, k := range names {
		l, _ := label(k)
		out = append(out, series(h, k, l)...)
	}
	return out
}

// Write draws a run's curves (Panels) into a PNG.
func Write(path string, h *runs.History) error {
	return plots.Write(path, Panels(h), 4)
}

// Panels returns a run's curves as chart panels: the paper's Figure 5
// analogue (reward with its trailing mean over 5 steps, per-scenario reward, chain-of-thought length, the score
// of the MLLM's instructions read as captions, one series per scenario) and
// KL, clipping, entropy, gradient norm, the step time split and, in an
// asynchronous run, the rows' staleness and each role's idle share. A metric
// the run did not log leaves its panel empty.
func Panels(h *runs.History) []plots.Panel {
	perScenario := seriesOf(h, func(k string) (string, bool) {
		if strings.HasPrefix(k, "reward/") && strings.HasSuffix(k, "/mean") && strings.Count(k, "/") == 2 {
			return strings.Split(k, "/")[1], true
		}
		return "", false
	})
	instruction := seriesOf(h, func(k string) (string, bool) {
		return strings.CutPrefix(k, "rollout/instruction/")
	})
	cat := func(ss ...[]plots.Series) []plots.Series {
		var out []plots.Series
		for _, s := range ss {
			out = append(out, s...)
		}
		return out
	}
	return []plots.Panel{
		{Title: "reward (mean over samples)", XLabel: "step", Series: cat(series(h, "reward/mean", "all"), trend(h, "reward/mean", "all, trailing mean"))},
		{Title: "reward by scenario", XLabel: "step", Series: perScenario},
		{Title: "completion length (tokens)", XLabel: "step", Series: series(h, "rollout/cot_tokens", "chain + instruction")},
		{Title: "instruction score, before the DiT", XLabel: "step", Series: instruction},
		{Title: "KL to the reference", XLabel: "step", Series: series(h, "loss/kl", "kl")},
		{Title: "clip fraction", XLabel: "step", Series: cat(series(h, "loss/clip_low", "low"), series(h, "loss/clip_high", "high"), series(h, "loss/dual_clip", "dual"))},
		{Title: "entropy and zero-std groups", XLabel: "step", Series: cat(series(h, "loss/entropy", "entropy"), series(h, "adv/zero_std_ratio", "zero-std ratio"))},
		{Title: "gradient norm", XLabel: "step", Series: series(h, "learn/grad_norm", "grad norm")},
		{Title: "step time (s)", XLabel: "step", Series: cat(series(h, "time/rollout_s", "rollout"), series(h, "time/reward_s", "reward"), series(h, "time/learn_s", "learn"), series(h, "time/storage_s", "storage"),
			series(h, "time/wait_s", "learn waits for samples"), series(h, "time/pull_s", "weight pull"))},
		{Title: "staleness of the rows (policy versions)", XLabel: "step", Series: cat(series(h, "staleness/mean", "mean"), series(h, "staleness/max", "max"))},
		{Title: "rows by staleness (share)", XLabel: "step", Series: seriesOf(h, func(k string) (string, bool) {
			d, ok := strings.CutPrefix(k, "staleness/rows_")
			return d + " behind", ok
		})},
		{Title: "idle share by role", XLabel: "step", Series: cat(series(h, "idle/rollout", "rollout"), series(h, "idle/reward", "reward"), series(h, "idle/learn", "learn"))},
	}
}

// Run is one run's history, named for a figure's legend.
type Run struct {
	Name    string
	History *runs.History
}

// Compare returns one panel per metric with one series per run that
// logged it: the metric's trailing mean over trendWindow steps (the
// smoothing curves.png draws beside the reward), or its values when raw is
// set. It fails, naming the metric and the metrics the runs did log, when
// no run logged a metric.
func Compare(rs []Run, metrics []string, raw bool) ([]plots.Panel, error) {
	panels := make([]plots.Panel, 0, len(metrics))
	for _, m := range metrics {
		title := m
		if !raw {
			title = fmt.Sprintf("%s (trailing mean over %d steps)", m, trendWindow)
		}
		pn := plots.Panel{Title: title, XLabel: "step"}
		for _, r := range rs {
			v, ok := r.History.Values[m]
			if !ok {
				continue
			}
			y := v
			if !raw {
				y = trailingMean(v, trendWindow)
			}
			pn.Series = append(pn.Series, plots.Series{Name: r.Name, X: r.History.Steps, Y: y})
		}
		if len(pn.Series) == 0 {
			return nil, fmt.Errorf("metric %q: no run logged it (they logged %s)", m, strings.Join(loggedMetrics(rs), ", "))
		}
		panels = append(panels, pn)
	}
	return panels, nil
}

// trailingMean averages each value with the up to n − 1 before it; NaN
// steps (a metric another phase logs) are skipped, and stay NaN.
func trailingMean(v []float64, n int) []float64 {
	y := make([]float64, len(v))
	for i := range v {
		if math.IsNaN(v[i]) {
			y[i] = math.NaN()
			continue
		}
		sum, k := 0.0, 0
		for j := max(0, i-n+1); j <= i; j++ {
			if !math.IsNaN(v[j]) {
				sum += v[j]
				k++
			}
		}
		y[i] = sum / float64(k)
	}
	return y
}

// loggedMetrics returns the sorted names of the metrics any run logged.
func loggedMetrics(rs []Run) []string {
	seen := map[string]bool{}
	for _, r := range rs {
		for k := range r.History.Values {
			seen[k] = true
		}
	}
	names := make([]string, 0, len(seen))
	for k := range seen {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
