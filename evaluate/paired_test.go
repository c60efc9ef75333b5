package evaluate

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/reward"
)

func rowsOf(scenario, task string, scores ...float64) []RowScore {
	out := make([]RowScore, len(scores))
	for i, s := range scores {
		out[i] = RowScore{ID: scenario + string(rune('a'+i)), Scenario: scenario, Task: task, Score: s}
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func TestCompareHandComputed(t *testing.T) {
	// Differences 0.2, 0, −0.5, 0.25: mean −0.0125; squared deviations
	// 0.04515625 + 0.00015625 + 0.23765625 + 0.06890625 = 0.351875;
	// standard error √(0.351875 / 3 / 4) = 0.1712393; × t(3 df, 97.5%) =
	// 3.1824463 → 0.5449601.
	base := map[string][]RowScore{"think": rowsOf(datasets.Reasoning, "arithmetic", 0.5, 0.2, 1, 0)}
	run := map[string][]RowScore{"think": rowsOf(datasets.Reasoning, "arithmetic", 0.7, 0.2, 0.5, 0.25)}
	ps, err := Compare(base, run, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 {
		t.Fatalf("got %d groups, want 1: %+v", len(ps), ps)
	}
	p := ps[0]
	want := Paired{Mode: "think", Group: datasets.Reasoning, N: 4, Base: 0.425, Run: 0.4125, Gain: -0.0125, CI95: &[2]float64{-0.0125 - 0.5449601, -0.0125 + 0.5449601}, Better: 2, Worse: 1}
	if p.Mode != want.Mode || p.Group != want.Group || p.N != want.N || p.Better != want.Better || p.Worse != want.Worse ||
		!near(p.Base, want.Base) || !near(p.Run, want.Run) || !near(p.Gain, want.Gain) || p.CI95 == nil || !near(p.CI95[0], want.CI95[0]) || !near(p.CI95[1], want.CI95[1]) {
		t.Errorf("got %+v (CI %v)\nwant %+v (CI %v)", p, p.CI95, want, *want.CI95)
	}
	var buf bytes.Buffer
	if err := WritePaired(&buf, ps); err != nil || !strings.Contains(buf.String(), "-0.013  [-0.557, +0.532]  2/1") {
		t.Errorf("table (%v):\n%s", err, buf.String())
	}
}

func TestCompareGroupsAndOrder(t *testing.T) {
	b := append(rowsOf(datasets.Reasoning, "negation", 0, 1), rowsOf(datasets.Composition, "", 0.5)...)
	b = append(b, RowScore{ID: "r9", Scenario: datasets.Reasoning, Task: "arithmetic", Score: 0.5})
	r := make([]RowScore, len(b))
	copy(r, b)
	r[0].Score = 1 // negation: +1 on one of two rows
	ps, err := Compare(map[string][]RowScore{"think": b, "direct": b}, map[string][]RowScore{"think": r, "direct": b}, true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Mode+" "+p.Group)
	}
	want := []string{
		"direct composition", "direct reasoning", "direct reasoning/negation", "direct reasoning/arithmetic",
		"think composition", "think reasoning", "think reasoning/negation", "think reasoning/arithmetic",
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("groups\n got %v\nwant %v", got, want)
	}
	for _, p := range ps {
		wantGain := 0.0
		switch {
		case p.Mode == "think" && p.Group == "reasoning":
			wantGain = 1.0 / 3
		case p.Mode == "think" && p.Group == "reasoning/negation":
			wantGain = 0.5
		}
		if !near(p.Gain, wantGain) {
			t.Errorf("%s %s: gain %.4f, want %.4f", p.Mode, p.Group, p.Gain, wantGain)
		}
		if (p.N == 1) != (p.CI95 == nil) {
			t.Errorf("%s %s: %d rows with interval %v; want one exactly for more than one row", p.Mode, p.Group, p.N, p.CI95)
		}
		if wantGain == 0 && p.N > 1 && (*p.CI95 != [2]float64{} || p.Better+p.Worse != 0) {
			t.Errorf("%s %s: identical rows give %+v, interval %v", p.Mode, p.Group, p, *p.CI95)
		}
	}
}

func TestCompareRefusesOtherRows(t *testing.T) {
	base := map[string][]RowScore{"think": rowsOf(datasets.Composition, "", 0.1, 0.2)}
	tests := []struct {
		name string
		run  map[string][]RowScore
		want string
	}{
		{"another row", map[string][]RowScore{"think": {base["think"][0], {ID: "zz", Scenario: datasets.Composition}}}, `row 1: base has row "compositionb", run "zz"`},
		{"fewer rows", map[string][]RowScore{"think": base["think"][:1]}, "base has 2 rows, run 1"},
		{"no shared mode", map[string][]RowScore{"direct": base["think"]}, "no mode in common"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compare(base, tt.run, false)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to say %q", err, tt.want)
			}
		})
	}
}

func TestSpreads(t *testing.T) {
	runs := [][]Paired{
		{{Mode: "think", Group: "composition", Gain: 0.1}},
		{{Mode: "think", Group: "composition", Gain: -0.05}},
		{{Mode: "think", Group: "composition", Gain: 0.02}},
	}
	ss, err := Spreads(runs)
	if err != nil {
		t.Fatal(err)
	}
	// Mean 0.07/3; squared deviations 0.0058778 + 0.0053778 + 0.0000111
	// = 0.0112667, / 2 → SD 0.0750555.
	if len(ss) != 1 || ss[0].Runs != 3 || !near(ss[0].Mean, 0.07/3) || !near(ss[0].SD, 0.0750555) || ss[0].Min != -0.05 || ss[0].Max != 0.1 {
		t.Errorf("got %+v", ss)
	}
	if _, err := Spreads([][]Paired{runs[0], {{Mode: "think", Group: "text"}}}); err == nil || !strings.Contains(err.Error(), "run 2 has no composition rows in mode think") {
		t.Errorf("a run without the group: %v", err)
	}
	var buf bytes.Buffer
	if err := WriteSpreads(&buf, ss); err != nil || !strings.Contains(buf.String(), "+0.023") || !strings.Contains(buf.String(), "0.075") {
		t.Errorf("table (%v):\n%s", err, buf.String())
	}
}

func TestRowScores(t *testing.T) {
	rows := []datasets.Row{{ID: "a", Scenario: datasets.Reasoning, Task: "negation"}, {ID: "b", Scenario: datasets.Text}}
	samples := []Sample{
		{Row: &rows[0], Result: reward.Result{Partial: 0.75, Strict: 0, Aux: map[string]float64{InstructionAux: 1}}},
		{Row: &rows[1], Result: reward.Result{Partial: 0.5, Err: "bad image"}},
	}
	got := RowScores(samples)
	if got[0].ID != "a" || got[0].Task != "negation" || got[0].Score != 0.75 || got[0].Instruction == nil || *got[0].Instruction != 1 {
		t.Errorf("row a: %+v", got[0])
	}
	// A row that could not be scored counts 0, as in the means.
	if got[1].Score != 0 || got[1].Err != "bad image" || got[1].Instruction != nil {
		t.Errorf("row b: %+v", got[1])
	}
}
