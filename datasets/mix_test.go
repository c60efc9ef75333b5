package datasets

import (
	"slices"
	"testing"
)

func TestScenarioCycle(t *testing.T) {
	hundred := make([]string, 100)
	for i := range hundred {
		hundred[i] = Text
	}
	tests := []struct {
		name string
		mix  map[string]float64
		want []string
	}{
		{"no mix", nil, nil},
		{"equal weights in AllScenarios order", map[string]float64{Text: 2, Composition: 2}, []string{Composition, Text}},
		{"weights in proportion, interleaved", map[string]float64{Reasoning: 2, Composition: 1, Text: 2},
			[]string{Composition, Reasoning, Text, Reasoning, Text}},
		{"zero weights are left out", map[string]float64{Editing: 0, Reflection: 0.5}, []string{Reflection}},
		{"every weight zero", map[string]float64{Editing: 0}, nil},
		{"at most 100 entries a scenario", map[string]float64{Text: 1000}, []string{Text}},
		{"the largest ratio is capped", map[string]float64{Composition: 1, Text: 500}, append([]string{Composition}, hundred...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ScenarioCycle(tt.mix); !slices.Equal(got, tt.want) {
				t.Errorf("ScenarioCycle(%v) = %v, want %v", tt.mix, got, tt.want)
			}
		})
	}
}

// TestRows: Rows returns the rows GenerateRow gives for each index, in the
// order asked, and names the options it refuses.
func TestRows(t *testing.T) {
	opts := Options{Seed: 5, Scenarios: []string{Text, Composition}}
	idx := []int64{7, 0, 3}
	rows, err := Rows(opts, idx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(idx) {
		t.Fatalf("%d rows, want %d", len(rows), len(idx))
	}
	for i, k := range idx {
		want, err := GenerateRow(opts, int(k))
		if err != nil {
			t.Fatal(err)
		}
		if rows[i].ID != want.ID || rows[i].Prompt != want.Prompt || !slices.Equal(rows[i].Target, want.Target) {
			t.Errorf("row %d: %s %q, want %s %q", k, rows[i].ID, rows[i].Prompt, want.ID, want.Prompt)
		}
	}
	if _, err := Rows(Options{Scenarios: []string{"poetry"}}, idx); err == nil {
		t.Error("an unknown scenario: no error")
	}
}
