package reward

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/thinkgen/thinkgen/datasets"
)

// Benchmarks names each scenario's eval score after the benchmark it
// stands in for.
var Benchmarks = map[string]string{
	datasets.Composition: "GenEval-like",
	datasets.Reasoning:   "WISE-like",
	datasets.Text:        "CVTG word accuracy",
	datasets.Editing:     "ImgEdit-like",
	datasets.Reflection:  "reflection",
}

// Summary aggregates the results of one scenario.
type Summary struct {
	Scenario  string `json:"scenario"`
	Benchmark string `json:"benchmark"`
	// N counts the items, Errors those that could not be scored (they
	// count as 0 in the means).
	N      int `json:"n"`
	Errors int `json:"errors"`
	// Score is the mean partial score, Strict the strict accuracy.
	Score  float64 `json:"score"`
	Strict float64 `json:"strict"`
	// Aux holds the mean of each auxiliary metric over the items that
	// logged it.
	Aux map[string]float64 `json:"aux,omitempty"`
}

// Summarize aggregates results per scenario, in datasets.AllScenarios
// order (then any other scenario, sorted).
func Summarize(results []Result) []Summary {
	by := map[string]*Summary{}
	auxN := map[string]map[string]int{}
	for _, r := range results {
		s := by[r.Scenario]
		if s == nil {
			s = &Summary{Scenario: r.Scenario, Benchmark: Benchmarks[r.Scenario], Aux: map[string]float64{}}
			by[r.Scenario] = s
			auxN[r.Scenario] = map[string]int{}
		}
		s.N++
		if r.Err != "" {
			s.Errors++
			continue
		}
		s.Score += r.Partial
		s.Strict += r.Strict
		for k, v := range r.Aux {
			s.Aux[k] += v
			auxN[r.Scenario][k]++
		}
	}
	var names []string
	for _, sc := range datasets.AllScenarios {
		if by[sc] != nil {
			names = append(names, sc)
		}
	}
	var others []string
	for sc := range by {
		if Benchmarks[sc] == "" {
			others = append(others, sc)
		}
	}
	sort.Strings(others)
	names = append(names, others...)
	out := make([]Summary, 0, len(names))
	for _, sc := range names {
		s := by[sc]
		s.Score /= float64(s.N)
		s.Strict /= float64(s.N)
		for k := range s.Aux {
			s.Aux[k] /= float64(auxN[sc][k])
		}
		out = append(out, *s)
	}
	return out
}

// WriteTable writes summaries as an aligned text table.
func WriteTable(w io.Writer, sums []Summary) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s %-20s %6s %6s %8s %8s  %s\n", "scenario", "benchmark", "n", "errors", "score", "strict", "aux (means)")
	for _, s := range sums {
		var aux []string
		keys := make([]string, 0, len(s.Aux))
		for k := range s.Aux {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			aux = append(aux, fmt.Sprintf("%s=%.4f", k, s.Aux[k]))
		}
		fmt.Fprintf(&b, "%-12s %-20s %6d %6d %8.4f %8.4f  %s\n", s.Scenario, s.Benchmark, s.N, s.Errors, s.Score, s.Strict, strings.Join(aux, " "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
