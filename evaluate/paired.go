package evaluate

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/thinkgen/thinkgen/datasets"
)

// RowScore is one held-out row's result in one mode, as eval --json writes
// it: what a paired comparison of two evaluations matches row by row.
type RowScore struct {
	ID       string `json:"id"`
	Scenario string `json:"scenario"`
	Task     string `json:"task,omitempty"`
	// Score is the rule model's partial score, 0 for a row that could not
	// be scored (as in the means); Strict is 1 when the image fully meets
	// the target.
	Score  float64 `json:"score"`
	Strict float64 `json:"strict"`
	// Instruction is the InstructionScore of a composition or reasoning
	// row's instruction.
	Instruction *float64 `json:"instruction,omitempty"`
	Err         string   `json:"error,omitempty"`
}

// RowScores lists the scored samples' results in row order.
func RowScores(samples []Sample) []RowScore {
	out := make([]RowScore, len(samples))
	for i, s := range samples {
		r := RowScore{ID: s.Row.ID, Scenario: s.Row.Scenario, Task: s.Row.Task, Strict: s.Result.Strict, Err: s.Result.Err}
		if s.Result.Err == "" {
			r.Score = s.Result.Partial
		}
		if v, ok := s.Result.Aux[InstructionAux]; ok {
			r.Instruction = &v
		}
		out[i] = r
	}
	return out
}

// Paired compares one group of rows (a scenario, or a scenario's task) of
// two evaluations of the same rows in one mode.
type Paired struct {
	Mode  string `json:"mode"`
	Group string `json:"group"`
	// N counts the rows; Base and Run are their mean scores and Gain is
	// Run − Base.
	N    int     `json:"rows"`
	Base float64 `json:"base"`
	Run  float64 `json:"run"`
	Gain float64 `json:"gain"`
	// CI95 bounds Gain's 95% confidence interval, [low, high]: the mean of
	// the per-row differences ± t standard errors, t the 97.5% quantile of
	// Student's t with rows − 1 degrees of freedom (1.97 for 200 rows, 2.57
	// for 6). The rows are paired: the same prompts and the same noise, so
	// the DiT's luck cancels. Nil for a single row.
	CI95 *[2]float64 `json:"ci95,omitempty"`
	// Better and Worse count the rows whose score rose or fell.
	Better int `json:"better"`
	Worse  int `json:"worse"`
}

// Compare pairs run's rows with base's, mode by mode, and summarises the
// differences per scenario (and per scenario/task with byTask), in
// datasets.AllScenarios order. Both must hold the same rows in the same
// order in every mode they share — evaluations with the same --seed,
// --rows and --scenarios — and at least one mode in common.
func Compare(base, run map[string][]RowScore, byTask bool) ([]Paired, error) {
	var out []Paired
	shared := 0
	for _, mode := range knownModes() {
		b, okb := base[mode]
		r, okr := run[mode]
		if !okb || !okr {
			continue
		}
		shared++
		if len(b) != len(r) {
			return nil, fmt.Errorf("mode %s: base has %d rows, run %d: evaluate both with the same --seed, --rows and --scenarios", mode, len(b), len(r))
		}
		groups := map[string][][2]float64{}
		var order []string
		add := func(g string, d [2]float64) {
			if _, ok := groups[g]; !ok {
				order = append(order, g)
			}
			groups[g] = append(groups[g], d)
		}
		for i := range b {
			if b[i].ID != r[i].ID {
				return nil, fmt.Errorf("mode %s, row %d: base has row %q, run %q: evaluate both with the same --seed, --rows and --scenarios", mode, i, b[i].ID, r[i].ID)
			}
			pair := [2]float64{b[i].Score, r[i].Score}
			add(b[i].Scenario, pair)
			if byTask && b[i].Task != "" {
				add(b[i].Scenario+"/"+b[i].Task, pair)
			}
		}
		slices.SortStableFunc(order, func(x, y string) int { return groupRank(x) - groupRank(y) })
		for _, g := range order {
			out = append(out, pairStats(mode, g, groups[g]))
		}
	}
	if shared == 0 {
		return nil, fmt.Errorf("no mode in common: base has %v, run %v", modeNames(base), modeNames(run))
	}
	return out, nil
}

// groupRank orders a scenario and its tasks by the scenario's place in
// datasets.AllScenarios, the scenario before its tasks.
func groupRank(g string) int {
	sc, task, _ := strings.Cut(g, "/")
	rank := slices.Index(datasets.AllScenarios, sc)
	if rank < 0 {
		rank = len(datasets.AllScenarios)
	}
	rank *= 2
	if task != "" {
		rank++
	}
	return rank
}

func modeNames(m map[string][]RowScore) []string {
	var out []string
	for _, mode := range knownModes() {
		if _, ok := m[mode]; ok {
			out = append(out, mode)
		}
	}
	return out
}

func pairStats(mode, group string, pairs [][2]float64) Paired {
	p := Paired{Mode: mode, Group: group, N: len(pairs)}
	for _, x := range pairs {
		p.Base += x[0]
		p.Run += x[1]
		switch d := x[1] - x[0]; {
		case d > 0:
			p.Better++
		case d < 0:
			p.Worse++
		}
	}
	n := float64(len(pairs))
	p.Base /= n
	p.Run /= n
	p.Gain = p.Run - p.Base
	var ss float64
	for _, x := range pairs {
		d := x[1] - x[0] - p.Gain
		ss += d * d
	}
	if len(pairs) > 1 {
		t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: n - 1}.Quantile(0.975)
		half := t * math.Sqrt(ss/(n-1)/n)
		p.CI95 = &[2]float64{p.Gain - half, p.Gain + half}
	}
	return p
}

// Spread summarises one mode and group's gains over several runs (seeds).
type Spread struct {
	Mode  string `json:"mode"`
	Group string `json:"group"`
	Runs  int    `json:"runs"`
	// Mean, SD (sample standard deviation; 0 for one run), Min and Max
	// are over the runs' gains.
	Mean float64 `json:"mean_gain"`
	SD   float64 `json:"sd"`
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
}

// Spreads summarises each mode and group over runs (the results of Compare
// against one base), in the first run's order; a group missing from a run
// is an error.
func Spreads(runs [][]Paired) ([]Spread, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	out := make([]Spread, 0, len(runs[0]))
	for _, p := range runs[0] {
		s := Spread{Mode: p.Mode, Group: p.Group, Runs: len(runs), Min: math.Inf(1), Max: math.Inf(-1)}
		gains := make([]float64, 0, len(runs))
		for i, r := range runs {
			j := slices.IndexFunc(r, func(q Paired) bool { return q.Mode == p.Mode && q.Group == p.Group })
			if j < 0 {
				return nil, fmt.Errorf("run %d has no %s rows in mode %s", i+1, p.Group, p.Mode)
			}
			g := r[j].Gain
			gains = append(gains, g)
			s.Mean += g
			s.Min, s.Max = min(s.Min, g), max(s.Max, g)
		}
		s.Mean /= float64(len(gains))
		if len(gains) > 1 {
			var ss float64
			for _, g := range gains {
				ss += (g - s.Mean) * (g - s.Mean)
			}
			s.SD = math.Sqrt(ss / float64(len(gains)-1))
		}
		out = append(out, s)
	}
	return out, nil
}

// WritePaired prints a comparison: one line per mode and group with the
// row count, the base and run means, the gain with its 95% confidence
// interval ("—" for a single row), and the rows that rose and fell.
func WritePaired(w io.Writer, ps []Paired) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "mode\tgroup\trows\tbase\trun\tgain\t95% CI\tbetter/worse")
	for _, p := range ps {
		ci := "—"
		if p.CI95 != nil {
			ci = fmt.Sprintf("[%+.3f, %+.3f]", p.CI95[0], p.CI95[1])
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%.3f\t%+.3f\t%s\t%d/%d\n", p.Mode, p.Group, p.N, p.Base, p.Run, p.Gain, ci, p.Better, p.Worse)
	}
	return tw.Flush()
}

// WriteSpreads prints the gains over several runs: one line per mode and
// group with their mean, standard deviation and range.
func WriteSpreads(w io.Writer, ss []Spread) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "mode\tgroup\truns\tmean gain\tsd\tmin\tmax")
	for _, s := range ss {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%+.3f\t%.3f\t%+.3f\t%+.3f\n", s.Mode, s.Group, s.Runs, s.Mean, s.SD, s.Min, s.Max)
	}
	return tw.Flush()
}
