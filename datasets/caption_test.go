package datasets

import (
	"reflect"
	"strings"
	"testing"
)

// TestParseCaptionRoundTrip parses the answer of every generated row that
// is a caption back into the row's scene, whose check must then pass.
func TestParseCaptionRoundTrip(t *testing.T) {
	n := 0
	for _, r := range genRows(t, Eval, 300) {
		if r.Scenario != Composition && r.Scenario != Reasoning && r.Scenario != Text {
			continue
		}
		n++
		sc, err := ParseCaption(r.Answer)
		if err != nil {
			t.Fatalf("row %s: %v", r.ID, err)
		}
		want := r.Spec.Scene
		want.Objects = sortedObjects(want.Objects)
		if !reflect.DeepEqual(sc, want) && !(len(sc.Objects) == 0 && len(want.Objects) == 0 && sc.Text == want.Text) {
			t.Fatalf("row %s: %q parsed as %+v, want %+v", r.ID, r.Answer, sc, want)
		}
		if c := CheckRequirements(r.Spec.Require, sc.Objects); !c.Strict {
			t.Fatalf("row %s: the parsed answer fails its own requirements: %+v", r.ID, c)
		}
	}
	if n < 150 {
		t.Fatalf("only %d caption rows in 300", n)
	}
}

func TestParseCaption(t *testing.T) {
	tests := []struct {
		in      string
		want    Scene
		wantErr string
	}{
		{in: "an empty white image.", want: Scene{}},
		{in: `the text "K7Q".`, want: Scene{Text: "K7Q"}},
		{in: "a small red circle at top left.", want: Scene{Objects: []Object{{Shape: Circle, Color: Red, Size: Small, Cell: Cell{0, 0}}}}},
		{in: "a small red circle at top left, a large blue square at middle centre and a small green cross at bottom right.",
			want: Scene{Objects: []Object{
				{Shape: Circle, Color: Red, Size: Small, Cell: Cell{0, 0}},
				{Shape: Square, Color: Blue, Size: Large, Cell: Cell{1, 1}},
				{Shape: Cross, Color: Green, Size: Small, Cell: Cell{2, 2}},
			}}},
		{in: "a small red circle at top left", wantErr: "no final full stop"},
		{in: "a small pink circle at top left.", wantErr: `unknown colour "pink"`},
		{in: "a huge red circle at top left.", wantErr: `unknown size "huge"`},
		{in: "a small red blob at top left.", wantErr: `unknown shape "blob"`},
		{in: "a small red circle at top middle.", wantErr: `unknown cell "top middle"`},
		{in: "a small red circle at top left and.", wantErr: `object "a small red circle at top left and"`},
		{in: "two red circles.", wantErr: `want "a <size> <colour> <shape> at <row> <column>"`},
		{in: `the text "K7Q`, wantErr: "text not closed"},
		{in: "", wantErr: "no final full stop"},
	}
	for _, tt := range tests {
		got, err := ParseCaption(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseCaption(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseCaption(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}
