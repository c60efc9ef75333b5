package datasets

import (
	"strings"
	"testing"
)

// NewTrainSet refuses, naming the row and column, what a run could not
// train on; Rows follows a phase's mix and names a scenario the set lacks.
func TestTrainSet(t *testing.T) {
	const size = 32
	rows, err := Generate(Options{Seed: 3, Size: size}, 0, 10) // two of each scenario, in AllScenarios' order
	if err != nil {
		t.Fatal(err)
	}
	info := Info{SchemaVersion: SchemaVersion, ImageSize: size}
	edit := func(i int, f func(*Row)) []Row {
		out := append([]Row(nil), rows...)
		f(&out[i])
		return out
	}
	bad := []struct {
		name string
		rows []Row
		info Info
		n    int
		want []string
	}{
		{"image size", rows, Info{SchemaVersion: SchemaVersion, ImageSize: 64}, 10, []string{"64 pixels", "model.dit.image_size"}},
		{"too few rows", rows, info, 11, []string{"10 rows", "data.train_size", "at most 10"}},
		{"no rows asked", rows, info, 0, []string{"data.train_size 0"}},
		{"unknown scenario", edit(4, func(r *Row) { r.Scenario = "juggling" }), info, 10, []string{"row 4", rows[4].ID, "scenario", `"juggling"`}},
		{"duplicate id", edit(6, func(r *Row) { r.ID = rows[1].ID }), info, 10, []string{"row 6", "same id as row 1"}},
		{"empty id", edit(2, func(r *Row) { r.ID = "" }), info, 10, []string{"row 2", "column id is empty"}},
		{"empty prompt", edit(3, func(r *Row) { r.Prompt = "" }), info, 10, []string{"row 3", "column prompt is empty"}},
		{"editing without its image", edit(3, func(r *Row) { r.Scenario, r.Reference = Editing, nil }), info, 10, []string{"row 3", "editing row", ColReferencePNG}},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			_, err := NewTrainSet(b.rows, b.info, size, b.n)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range b.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}

	// The first 4 rows: composition, reasoning, text, editing.
	set, err := NewTrainSet(rows, info, size, 4)
	if err != nil {
		t.Fatal(err)
	}
	got, err := set.Rows(map[string]float64{Composition: 1, Editing: 1}, []int64{0, 1, 2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	want := []string{rows[0].ID, rows[3].ID, rows[0].ID, rows[3].ID, rows[0].ID}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("rows %v, want %v (each scenario's rows in turn, wrapping)", ids, want)
	}
	if _, err := set.Rows(map[string]float64{Reflection: 1}, []int64{0}); err == nil || !strings.Contains(err.Error(), "no reflection rows") {
		t.Errorf("a mix of a scenario the set lacks: %v", err)
	}
}
