package sweep

import (
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/internal/testutil"
)

var tiny = filepath.Join("..", "configs", "tiny.yaml")

// parse builds a spec from a sweep file body with the tiny base.
func parse(t *testing.T, body string) *Spec {
	t.Helper()
	s, err := Parse("sweep.yaml", []byte("name: s\nbase: "+tiny+"\nobjective: {metric: think/mean}\n"+body))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPoints(t *testing.T) {
	tests := []struct {
		name  string
		param string
		int   bool
		want  []string
	}{
		{"values verbatim", `{values: [1e-4, 0.5, "x", [1, 2], {a: 1}]}`, false, []string{"1e-4", "0.5", `"x"`, "[1, 2]", "{a: 1}"}},
		{"bare list", `[true, false]`, false, []string{"true", "false"}},
		{"step with rounding error", `{range: {min: 0.1, max: 0.3, step: 0.1}}`, false, []string{"0.1", "0.2", "0.3"}},
		{"step not reaching max", `{range: {min: 0, max: 1, step: 0.4}}`, false, []string{"0", "0.4", "0.8"}},
		{"count", `{range: {min: 0, max: 1, count: 5}}`, false, []string{"0", "0.25", "0.5", "0.75", "1"}},
		{"count one", `{range: {min: 2, max: 2, count: 1}}`, false, []string{"2"}},
		{"log range", `{log_range: {min: 1e-5, max: 1e-3, count: 3}}`, false, []string{"1e-05", "0.0001", "0.001"}},
		{"log range rounded", `{log_range: {min: 1e-4, max: 1e-3, count: 3}}`, false, []string{"0.0001", "0.000316228", "0.001"}},
		{"int count", `{range: {min: 2, max: 5, count: 4}}`, true, []string{"2", "3", "4", "5"}},
		{"int count merges", `{range: {min: 2, max: 3, count: 5}}`, true, []string{"2", "3"}},
		{"int log", `{log_range: {min: 1, max: 100, count: 3}}`, true, []string{"1", "10", "100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := parse(t, "space:\n  grpo.lr: "+tt.param+"\n")
			p := s.Params[0]
			p.Int = tt.int
			if got := p.Points(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("points = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestExpandGrid(t *testing.T) {
	s := parse(t, "space:\n  grpo.lr: [1e-4, 2e-4]\n  grpo.beta: {range: {min: 0, max: 0.02, step: 0.01}}\n")
	trials := s.Expand()
	var got []string
	for _, tr := range trials {
		got = append(got, tr.Name+" "+tr.Describe())
	}
	want := []string{
		"s-t001 grpo.lr=1e-4 grpo.beta=0",
		"s-t002 grpo.lr=1e-4 grpo.beta=0.01",
		"s-t003 grpo.lr=1e-4 grpo.beta=0.02",
		"s-t004 grpo.lr=2e-4 grpo.beta=0",
		"s-t005 grpo.lr=2e-4 grpo.beta=0.01",
		"s-t006 grpo.lr=2e-4 grpo.beta=0.02",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("grid =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestExpandRandom(t *testing.T) {
	body := func(seed int) string {
		return "method: random\nseed: " + strconv.Itoa(seed) + "\ntrials: 50\nspace:\n" +
			"  grpo.lr: {log_range: {min: 1e-5, max: 1e-3, count: 2}}\n" +
			"  grpo.beta: {range: {min: 0, max: 0.1, count: 2}}\n" +
			"  grpo.group: {range: {min: 2, max: 8, step: 2}}\n" +
			"  grpo.temperature: [0.7, 1.0]\n"
	}
	a, b, c := parse(t, body(7)), parse(t, body(7)), parse(t, body(8))
	for _, s := range []*Spec{a, b, c} {
		s.Params[2].Int = true
	}
	ta, tb, tc := a.Expand(), b.Expand(), c.Expand()
	if len(ta) != 50 {
		t.Fatalf("%d trials, want 50", len(ta))
	}
	if !reflect.DeepEqual(ta, tb) {
		t.Error("the same seed gave other trials")
	}
	if reflect.DeepEqual(ta, tc) {
		t.Error("another seed gave the same trials")
	}
	var logBelow, logAbove int // of 1e-4, the geometric middle: about half each
	groups := map[string]int{}
	for _, tr := range ta {
		lr, _ := strconv.ParseFloat(tr.Overrides[0].Value, 64)
		beta, _ := strconv.ParseFloat(tr.Overrides[1].Value, 64)
		if lr < 1e-5 || lr > 1e-3 || beta < 0 || beta > 0.1 {
			t.Errorf("%s out of range", tr.Describe())
		}
		if lr < 1e-4 {
			logBelow++
		} else {
			logAbove++
		}
		groups[tr.Overrides[2].Value]++
		if v := tr.Overrides[3].Value; v != "0.7" && v != "1.0" {
			t.Errorf("temperature %s is not one of the values", v)
		}
	}
	// Log-uniform: a uniform draw would put ~91% above 1e-4.
	if logBelow < 15 || logAbove < 15 {
		t.Errorf("log range draws: %d below 1e-4, %d above; want about half each", logBelow, logAbove)
	}
	for g := range groups {
		if g != "2" && g != "4" && g != "6" && g != "8" {
			t.Errorf("group %s is not a point of the stepped range", g)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
	}{
		{"unknown top-level key", "name: s\nbase: b\nspce: {}\n", []string{"spce"}},
		{"bad name", "name: a/b\n", []string{"name", "a/b"}},
		{"no base", "name: s\n", []string{"base: empty"}},
		{"parallel zero", "name: s\nbase: b\nparallel: 0\n", []string{"parallel: 0"}},
		{"eval rows zero", "name: s\nbase: b\nparallel: 1\neval_rows: 0\n", []string{"eval_rows"}},
		{"unknown method", "name: s\nbase: b\nmethod: bayes\n", []string{`unknown method "bayes"`}},
		{"random without trials", "name: s\nbase: b\nmethod: random\n", []string{"trials: 0"}},
		{"grid with trials", "name: s\nbase: b\ntrials: 3\n", []string{"trials: 3", "grid"}},
		{"empty space", "name: s\nbase: b\n", []string{"space: empty"}},
		{"empty values", "name: s\nbase: b\nspace:\n  grpo.lr: {values: []}\n", []string{"sweep.yaml:4", "space.grpo.lr", "empty list"}},
		{"empty bare list", "name: s\nbase: b\nspace:\n  grpo.lr: []\n", []string{"space.grpo.lr", "empty list"}},
		{"min above max", "name: s\nbase: b\nspace:\n  grpo.lr: {range: {min: 2, max: 1, step: 1}}\n", []string{"space.grpo.lr", "empty range: min 2 > max 1"}},
		{"count zero", "name: s\nbase: b\nspace:\n  grpo.lr: {range: {min: 0, max: 1, count: 0}}\n", []string{"space.grpo.lr", "count 0"}},
		{"step zero", "name: s\nbase: b\nspace:\n  grpo.lr: {range: {min: 0, max: 1, step: 0}}\n", []string{"space.grpo.lr", "step 0"}},
		{"step and count", "name: s\nbase: b\nspace:\n  grpo.lr: {range: {min: 0, max: 1, step: 1, count: 2}}\n", []string{"not both"}},
		{"no max", "name: s\nbase: b\nspace:\n  grpo.lr: {range: {min: 0, step: 1}}\n", []string{"min and max"}},
		{"log of zero", "name: s\nbase: b\nspace:\n  grpo.lr: {log_range: {min: 0, max: 1, count: 2}}\n", []string{"log range needs min > 0"}},
		{"log with step", "name: s\nbase: b\nspace:\n  grpo.lr: {log_range: {min: 1, max: 2, step: 1}}\n", []string{`"step"`}},
		{"two kinds", "name: s\nbase: b\nspace:\n  grpo.lr: {values: [1], range: {min: 0, max: 1, count: 2}}\n", []string{"exactly one"}},
		{"unknown kind", "name: s\nbase: b\nspace:\n  grpo.lr: {choice: [1]}\n", []string{`unknown kind "choice"`}},
		{"duplicate key", "name: s\nbase: b\nspace:\n  grpo.lr: [1]\n  grpo.lr: [2]\n", []string{"grpo.lr"}},
		{"no objective", "name: s\nbase: b\nspace: {grpo.lr: [1]}\n", []string{"objective", "metric: empty"}},
		{"unknown objective mode", "name: s\nbase: b\nspace: {grpo.lr: [1]}\nobjective: {metric: dream/mean}\n", []string{`unknown objective "dream/mean"`}},
		{"unknown objective scenario", "name: s\nbase: b\nspace: {grpo.lr: [1]}\nobjective: {metric: think/juggling}\n", []string{`unknown objective "think/juggling"`}},
		{"unknown score", "name: s\nbase: b\nspace: {grpo.lr: [1]}\nobjective: {metric: think/mean, score: best}\n", []string{`unknown score "best"`}},
		{"unknown direction", "name: s\nbase: b\nspace: {grpo.lr: [1]}\nobjective: {metric: think/mean, direction: up}\n", []string{`unknown direction "up"`}},
		{"unknown rule", "name: s\nbase: b\nspace: {grpo.lr: [1]}\nobjective: {metric: think/mean}\nearly_stop: {rule: mean}\n", []string{`early_stop.rule: unknown rule "mean"`}},
		{"unknown cluster mode", "name: s\nbase: b\nspace: {grpo.lr: [1]}\nobjective: {metric: think/mean}\ncluster: {mode: slurm}\n", []string{`unknown mode "slurm"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("sweep.yaml", []byte(tt.body))
			if err == nil {
				t.Fatal("accepted")
			}
			testutil.Mentions(t, "error", err.Error(), tt.want)
		})
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name  string
		space string
		want  []string // empty: accepted
		int   []bool
	}{
		{"known keys", "  grpo.lr: [1e-4]\n  grpo.group: {range: {min: 2, max: 4, step: 1}}\n  schedule.phases.0.steps: [1, 2]\n", nil, []bool{false, true, true}},
		{"unknown key", "  grpo.lr: [1e-4]\n  grpo.nope: [1]\n", []string{"sweep.yaml:6", `unknown key "grpo.nope"`, "known keys of grpo"}, nil},
		{"unknown section", "  nosuch.key: [1]\n", []string{"sweep.yaml:5", `unknown key "nosuch"`}, nil},
		{"slice index out of range", "  schedule.phases.7.steps: [1]\n", []string{`unknown key "schedule.phases.7"`}, nil},
		{"storage key", "  storage.uri: [a, b]\n", []string{"storage keys cannot be searched"}, nil},
		{"fractional value of an int key", "  grpo.group: [2, 2.5]\n", []string{"value 2.5", "integer"}, nil},
		{"fractional step of an int key", "  grpo.group: {range: {min: 2, max: 4, step: 0.5}}\n", []string{"step 0.5", "integer"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := parse(t, "space:\n"+tt.space)
			_, err := s.Resolve("sweep.yaml", nil)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				for i, p := range s.Params {
					if p.Int != tt.int[i] {
						t.Errorf("%s: Int = %v, want %v", p.Key, p.Int, tt.int[i])
					}
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			testutil.Mentions(t, "error", err.Error(), tt.want)
		})
	}
}

func TestCheckTrialsNamesTheInvalidTrial(t *testing.T) {
	s := parse(t, "space:\n  grpo.group: [4, 1]\n")
	if _, err := s.Resolve("sweep.yaml", nil); err != nil {
		t.Fatal(err)
	}
	err := s.CheckTrials(s.Expand(), nil)
	if err == nil || !strings.Contains(err.Error(), "trial s-t002 (grpo.group=1)") || !strings.Contains(err.Error(), "grpo.group: must be >= 2") {
		t.Fatalf("error = %v", err)
	}
	bad := parse(t, "set:\n  optim.lr: -1\nspace:\n  grpo.lr: [1e-4]\n")
	if _, err := bad.Resolve("sweep.yaml", nil); err == nil || !strings.Contains(err.Error(), "optim.lr") {
		t.Fatalf("an invalid set override: %v", err)
	}
}

func TestSetKeepsOrderAndFlowStyle(t *testing.T) {
	s := parse(t, "set:\n  schedule.phases:\n    - {phase: mllm-grpo, steps: 1}\n  grpo.group: 2\nspace:\n  grpo.lr: [1e-4]\n")
	want := []Override{{"schedule.phases", "[{phase: mllm-grpo, steps: 1}]"}, {"grpo.group", "2"}}
	if !reflect.DeepEqual(s.Set, want) {
		t.Fatalf("set = %q, want %q", s.Set, want)
	}
	cfg, err := s.Resolve("sweep.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Schedule.Phases) != 1 || cfg.GRPO.Group != 2 {
		t.Errorf("overrides not applied: %+v %d", cfg.Schedule.Phases, cfg.GRPO.Group)
	}
}

func TestMedianRule(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name   string
		es     EarlyStop
		trial  string
		step   int
		signal map[string][]float64
		stop   bool
		median float64
	}{
		{"below the median", EarlyStop{Direction: Maximize, MinStep: 1, MinTrials: 2}, "a", 2,
			map[string][]float64{"a": {0.1, 0.1}, "b": {0.5, 0.5}, "c": {0.3, 0.5, 0.9}}, true, 0.45},
		{"above the median", EarlyStop{Direction: Maximize, MinStep: 1, MinTrials: 2}, "a", 2,
			map[string][]float64{"a": {0.6, 0.6}, "b": {0.5, 0.5}, "c": {0.3, 0.5}}, false, 0.45},
		{"running mean, not the last value", EarlyStop{Direction: Maximize, MinStep: 1, MinTrials: 1}, "a", 2,
			map[string][]float64{"a": {0.9, 0.1}, "b": {0.4, 0.4}}, false, 0.4},
		{"minimize", EarlyStop{Direction: Minimize, MinStep: 1, MinTrials: 2}, "a", 1,
			map[string][]float64{"a": {0.6}, "b": {0.5}, "c": {0.3}}, true, 0.4},
		{"grace period", EarlyStop{Direction: Maximize, MinStep: 3, MinTrials: 1}, "a", 2,
			map[string][]float64{"a": {0, 0}, "b": {1, 1}}, false, nan},
		{"too few others at the step", EarlyStop{Direction: Maximize, MinStep: 1, MinTrials: 2}, "a", 2,
			map[string][]float64{"a": {0, 0}, "b": {1, 1}, "c": {1}}, false, nan},
		{"NaN steps skipped", EarlyStop{Direction: Maximize, MinStep: 1, MinTrials: 1}, "a", 2,
			map[string][]float64{"a": {nan, 0.2}, "b": {0.5, nan}}, true, 0.5},
		{"equal is not worse", EarlyStop{Direction: Maximize, MinStep: 1, MinTrials: 1}, "a", 1,
			map[string][]float64{"a": {0.5}, "b": {0.5}}, false, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.es.Decide(tt.trial, tt.step, tt.signal)
			if d.Stop != tt.stop {
				t.Errorf("stop = %v, want %v (%+v)", d.Stop, tt.stop, d)
			}
			if !(math.IsNaN(tt.median) && math.IsNaN(d.Median)) && math.Abs(d.Median-tt.median) > 1e-12 {
				t.Errorf("median = %v, want %v", d.Median, tt.median)
			}
		})
	}
	if m := Median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("Median(3,1,2) = %v", m)
	}
}
