package reward

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	res := []Result{
		{Scenario: "text", Partial: 1, Strict: 1, Aux: map[string]float64{"word_accuracy": 1}},
		{Scenario: "composition", Partial: 0.5, Strict: 0},
		{Scenario: "text", Partial: 0.5, Strict: 0, Aux: map[string]float64{"word_accuracy": 0}},
		{Scenario: "text", Err: "image is missing"},
		{Scenario: "composition", Partial: 1, Strict: 1},
	}
	sums := Summarize(res)
	if len(sums) != 2 || sums[0].Scenario != "composition" || sums[1].Scenario != "text" {
		t.Fatalf("summaries %+v, want composition then text", sums)
	}
	c, x := sums[0], sums[1]
	if c.N != 2 || c.Score != 0.75 || c.Strict != 0.5 || c.Benchmark != "GenEval-like" {
		t.Errorf("composition %+v", c)
	}
	if x.N != 3 || x.Errors != 1 || math.Abs(x.Score-0.5) > 1e-12 || math.Abs(x.Strict-1.0/3) > 1e-12 || x.Aux["word_accuracy"] != 0.5 || x.Benchmark != "CVTG word accuracy" {
		t.Errorf("text %+v", x)
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, sums); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"GenEval-like", "CVTG word accuracy", "0.7500", "word_accuracy=0.5000"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}
