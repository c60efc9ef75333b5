package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/thinkgen/thinkgen/internal/plots"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/storage"
)

// History is the metrics of a run's committed steps: per metric name, the
// value at each step (NaN where a step did not log it).
type History struct {
	Steps  []float64
	Phases []string
	Values map[string][]float64
}

// ReadHistory reads the metrics shard of every committed step of run.
func ReadHistory(ctx context.Context, st storage.Store, run string, tmpDir string) (*History, error) {
	rs, err := ReadRunState(ctx, st, run)
	if err != nil {
		return nil, err
	}
	h := &History{Values: map[string][]float64{}}
	for step := 1; step <= rs.Committed; step++ {
		phase, m, _, err := readStepMetrics(ctx, st, run, step, tmpDir)
		if err != nil {
			return nil, err
		}
		i := len(h.Steps)
		h.Steps = append(h.Steps, float64(step))
		h.Phases = append(h.Phases, phase)
		for k := range h.Values {
			h.Values[k] = append(h.Values[k], math.NaN())
		}
		for k, x := range m {
			v, ok := h.Values[k]
			if !ok {
				v = make([]float64, i+1)
				for j := range v {
					v[j] = math.NaN()
				}
			}
			v[i] = x
			h.Values[k] = v
		}
	}
	return h, nil
}

// readStepMetrics reads the metrics shard of a committed step: its phase,
// its values by name and when they were measured.
func readStepMetrics(ctx context.Context, st storage.Store, run string, step int, tmpDir string) (phase string, values map[string]float64, at time.Time, err error) {
	m, err := storage.ReadManifest(ctx, st, storage.StepManifestKey(run, step))
	if err != nil {
		return "", nil, time.Time{}, fmt.Errorf("step %d: %w", step, err)
	}
	key := storage.ShardKey(run, step, "metrics", "controller", 1)
	rd, err := shards.Open(ctx, st, m, key, shards.Metrics, shards.ReadOptions{}, tmpDir)
	if err != nil {
		return "", nil, time.Time{}, fmt.Errorf("step %d: %w", step, err)
	}
	defer rd.Close()
	values = map[string]float64{}
	for {
		var r shards.MetricRow
		err := rd.Read(&r)
		if errors.Is(err, io.EOF) {
			return phase, values, at, nil
		}
		if err != nil {
			return "", nil, time.Time{}, fmt.Errorf("step %d metrics: %w", step, err)
		}
		phase, values[r.Name], at = r.Phase, r.Value, time.UnixMilli(r.TimeMS)
	}
}

// series returns the named metric, or nil.
func (h *History) series(name, label string) []plots.Series {
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
func (h *History) trend(name, label string) []plots.Series {
	v, ok := h.Values[name]
	if !ok || len(v) < 2*trendWindow {
		return nil
	}
	return []plots.Series{{Name: label, X: h.Steps, Y: trailingMean(v, trendWindow)}}
}

// seriesOf returns a series for every metric that label accepts, named by
// the label it gives, in the order of the metrics' names.
func (h *History) seriesOf(label func(name string) (string, bool)) []plots.Series {
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
		out = append(out, h.series(k, l)...)
	}
	return out
}

// WriteCurves draws the run's curves (CurvePanels) into a PNG.
func (h *History) WriteCurves(path string) error {
	return plots.Write(path, h.CurvePanels(), 4)
}

// CurvePanels returns the run's curves as chart panels: the paper's Figure 5
// analogue (reward with its trailing mean over 5 steps, per-scenario reward, chain-of-thought length, the score
// of the MLLM's instructions read as captions, one series per scenario) and
// KL, clipping, entropy, gradient norm and the step time split. A metric
// the run did not log leaves its panel empty.
func (h *History) CurvePanels() []plots.Panel {
	perScenario := h.seriesOf(func(k string) (string, bool) {
		if strings.HasPrefix(k, "reward/") && strings.HasSuffix(k, "/mean") && strings.Count(k, "/") == 2 {
			return strings.Split(k, "/")[1], true
		}
		return "", false
	})
	instruction := h.seriesOf(func(k string) (string, bool) {
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
		{Title: "reward (mean over samples)", XLabel: "step", Series: cat(h.series("reward/mean", "all"), h.trend("reward/mean", "all, trailing mean"))},
		{Title: "reward by scenario", XLabel: "step", Series: perScenario},
		{Title: "completion length (tokens)", XLabel: "step", Series: h.series("rollout/cot_tokens", "chain + instruction")},
		{Title: "instruction score, before the DiT", XLabel: "step", Series: instruction},
		{Title: "KL to the reference", XLabel: "step", Series: h.series("loss/kl", "kl")},
		{Title: "clip fraction", XLabel: "step", Series: cat(h.series("loss/clip_low", "low"), h.series("loss/clip_high", "high"))},
		{Title: "entropy and zero-std groups", XLabel: "step", Series: cat(h.series("loss/entropy", "entropy"), h.series("adv/zero_std_ratio", "zero-std ratio"))},
		{Title: "gradient norm", XLabel: "step", Series: h.series("learn/grad_norm", "grad norm")},
		{Title: "step time (s)", XLabel: "step", Series: cat(h.series("time/rollout_s", "rollout"), h.series("time/reward_s", "reward"), h.series("time/learn_s", "learn"), h.series("time/storage_s", "storage"))},
	}
}

// RunCurves is one run's history, named for a figure's legend.
type RunCurves struct {
	Name    string
	History *History
}

// ComparePanels returns one panel per metric with one series per run that
// logged it: the metric's trailing mean over trendWindow steps (the
// smoothing curves.png draws beside the reward), or its values when raw is
// set. It fails, naming the metric and the metrics the runs did log, when
// no run logged a metric.
func ComparePanels(runs []RunCurves, metrics []string, raw bool) ([]plots.Panel, error) {
	panels := make([]plots.Panel, 0, len(metrics))
	for _, m := range metrics {
		title := m
		if !raw {
			title = fmt.Sprintf("%s (trailing mean over %d steps)", m, trendWindow)
		}
		pn := plots.Panel{Title: title, XLabel: "step"}
		for _, r := range runs {
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
			return nil, fmt.Errorf("metric %q: no run logged it (they logged %s)", m, strings.Join(loggedMetrics(runs), ", "))
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
func loggedMetrics(runs []RunCurves) []string {
	seen := map[string]bool{}
	for _, r := range runs {
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
