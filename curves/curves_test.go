package curves_test

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/curves"
	"github.com/thinkgen/thinkgen/internal/plots"
	"github.com/thinkgen/thinkgen/storage/runs"
)

// TestCurvePanels checks which metric each curve panel draws: the
// per-scenario reward and instruction panels get one series per scenario,
// named by it, with the step's values; a metric the run did not log
// (the DiT phase has no instructions) leaves its panel empty, and the
// figure is still written.
func TestCurvePanels(t *testing.T) {
	h := &runs.History{
		Steps:  []float64{1, 2, 3},
		Phases: []string{"mllm-grpo", "mllm-grpo", "dit-grpo"},
		Values: map[string][]float64{
			"reward/mean":                     {0.4, 0.5, 0.6},
			"reward/reasoning/mean":           {0.3, 0.4, 0.5},
			"reward/composition/mean":         {0.5, 0.6, 0.7},
			"reward/reasoning/std":            {0.1, 0.1, 0.1}, // not a per-scenario mean
			"rollout/instruction/reasoning":   {0.45, 0.55, 0},
			"rollout/instruction/composition": {0.6, 0.7, 0},
			"rollout/cot_tokens":              {30, 32, 0},
			"loss/kl":                         {0, 0.01, 0.02},
			"staleness/rows_0":                {1, 0.5, 0},
			"staleness/rows_1":                {0, 0.5, 1},
			"idle/learn":                      {0.5, 0.4, 0.3},
		},
	}
	byTitle := map[string]plots.Panel{}
	for _, p := range curves.Panels(h) {
		byTitle[p.Title] = p
	}
	names := func(p plots.Panel) []string {
		var out []string
		for _, s := range p.Series {
			out = append(out, s.Name)
		}
		return out
	}
	tests := []struct {
		title  string
		series []string
		first  []float64 // the first series' values
	}{
		{"reward (mean over samples)", []string{"all"}, []float64{0.4, 0.5, 0.6}},
		{"reward by scenario", []string{"composition", "reasoning"}, []float64{0.5, 0.6, 0.7}},
		{"instruction score, before the DiT", []string{"composition", "reasoning"}, []float64{0.6, 0.7, 0}},
		{"completion length (tokens)", []string{"chain + instruction"}, []float64{30, 32, 0}},
		{"KL to the reference", []string{"kl"}, []float64{0, 0.01, 0.02}},
		{"gradient norm", nil, nil},
		{"rows by staleness (share)", []string{"0 behind", "1 behind"}, []float64{1, 0.5, 0}},
		{"idle share by role", []string{"learn"}, []float64{0.5, 0.4, 0.3}},
	}
	for _, tt := range tests {
		p, ok := byTitle[tt.title]
		if !ok {
			t.Errorf("no panel %q", tt.title)
			continue
		}
		if got := names(p); !slices.Equal(got, tt.series) {
			t.Errorf("%s: series %v, want %v", tt.title, got, tt.series)
			continue
		}
		if len(p.Series) > 0 && (!slices.Equal(p.Series[0].Y, tt.first) || !slices.Equal(p.Series[0].X, h.Steps)) {
			t.Errorf("%s: first series %v at %v, want %v at %v", tt.title, p.Series[0].Y, p.Series[0].X, tt.first, h.Steps)
		}
	}
	if err := curves.Write(filepath.Join(t.TempDir(), "curves.png"), h); err != nil {
		t.Error(err)
	}
}

// TestCurvePanelsTrend: from ten steps on, the reward panel adds the
// trailing mean over 5 steps (fewer at the start).
func TestCurvePanelsTrend(t *testing.T) {
	h := &runs.History{Values: map[string][]float64{}}
	for i := range 10 {
		h.Steps = append(h.Steps, float64(i+1))
		h.Values["reward/mean"] = append(h.Values["reward/mean"], float64(i%2)) // 0 1 0 1 …
	}
	p := curves.Panels(h)[0]
	if len(p.Series) != 2 || p.Series[1].Name != "all, trailing mean" {
		t.Fatalf("reward panel series %+v, want the curve and its trailing mean", p.Series)
	}
	want := []float64{0, 0.5, 1.0 / 3, 0.5, 0.4, 0.6, 0.4, 0.6, 0.4, 0.6}
	for i, w := range want {
		if got := p.Series[1].Y[i]; got < w-1e-12 || got > w+1e-12 {
			t.Errorf("trailing mean at step %d = %v, want %v", i+1, got, w)
		}
	}
	h.Steps, h.Values["reward/mean"] = h.Steps[:9], h.Values["reward/mean"][:9]
	if p := curves.Panels(h)[0]; len(p.Series) != 1 {
		t.Errorf("9 steps: %d series in the reward panel, want the curve alone", len(p.Series))
	}
}

// TestComparePanels: one panel per metric, one series per run that logged
// it, smoothed by the trailing mean (NaN steps skipped) unless raw; a
// metric no run logged is refused by name.
func TestComparePanels(t *testing.T) {
	nan := math.NaN()
	a := &runs.History{Steps: []float64{1, 2, 3, 4}, Values: map[string][]float64{
		"reward/mean": {0, 1, 0, 1},
		"loss/kl":     {nan, 0.2, nan, 0.4}, // logged by every other step's phase
	}}
	b := &runs.History{Steps: []float64{1, 2}, Values: map[string][]float64{"reward/mean": {0.5, 0.7}}}
	rs := []curves.Run{{Name: "seed1", History: a}, {Name: "seed2", History: b}}
	tests := []struct {
		name    string
		metrics []string
		raw     bool
		want    map[string][][]float64 // panel title → each series' Y
		names   [][]string
	}{
		{"smoothed", []string{"reward/mean", "loss/kl"}, false,
			map[string][][]float64{
				"reward/mean (trailing mean over 5 steps)": {{0, 0.5, 1.0 / 3, 0.5}, {0.5, 0.6}},
				"loss/kl (trailing mean over 5 steps)":     {{nan, 0.2, nan, 0.3}},
			}, [][]string{{"seed1", "seed2"}, {"seed1"}}},
		{"raw", []string{"reward/mean"}, true,
			map[string][][]float64{"reward/mean": {{0, 1, 0, 1}, {0.5, 0.7}}}, [][]string{{"seed1", "seed2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			panels, err := curves.Compare(rs, tt.metrics, tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if len(panels) != len(tt.metrics) {
				t.Fatalf("%d panels, want %d", len(panels), len(tt.metrics))
			}
			for i, p := range panels {
				want, ok := tt.want[p.Title]
				if !ok {
					t.Fatalf("panel %d title %q, want one of %v", i, p.Title, tt.want)
				}
				var got []string
				for _, s := range p.Series {
					got = append(got, s.Name)
				}
				if !slices.Equal(got, tt.names[i]) {
					t.Fatalf("%s: series %v, want %v", p.Title, got, tt.names[i])
				}
				for j, s := range p.Series {
					if !slices.EqualFunc(s.Y, want[j], func(x, y float64) bool {
						return math.IsNaN(x) && math.IsNaN(y) || math.Abs(x-y) < 1e-12
					}) {
						t.Errorf("%s, %s: %v, want %v", p.Title, s.Name, s.Y, want[j])
					}
				}
			}
		})
	}
	_, err := curves.Compare(rs, []string{"reward/mean", "loss/klx"}, false)
	if err == nil || !strings.Contains(err.Error(), `metric "loss/klx"`) || !strings.Contains(err.Error(), "loss/kl, reward/mean") {
		t.Errorf("unknown metric: %v, want an error naming it and the logged metrics", err)
	}
}
