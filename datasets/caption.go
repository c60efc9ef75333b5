package datasets

import (
	"fmt"
	"slices"
	"strings"
)

// ParseCaption reads a caption written as Caption writes it ("a small red
// circle at top left and a large blue square at middle centre.", "the text
// "K7Q".", "an empty white image.") back into its scene. It is how an
// instruction the MLLM wrote is scored on its own, before the DiT draws it:
// the parsed objects go through CheckRequirements like a detector's. A
// caption that strays from the grammar is an error naming the part that
// does not parse.
func ParseCaption(s string) (Scene, error) {
	s = strings.TrimSpace(s)
	if s == emptyCaption {
		return Scene{}, nil
	}
	if rest, ok := strings.CutPrefix(s, "the text \""); ok {
		text, ok := strings.CutSuffix(rest, "\".")
		if !ok || text == "" || strings.Contains(text, "\"") {
			return Scene{}, fmt.Errorf("caption %q: text not closed by \".", s)
		}
		return Scene{Text: text}, nil
	}
	body, ok := strings.CutSuffix(s, ".")
	if !ok {
		return Scene{}, fmt.Errorf("caption %q: no final full stop", s)
	}
	var parts []string
	if head, last, ok := cutLast(body, " and "); ok {
		parts = append(strings.Split(head, ", "), last)
	} else {
		parts = []string{body}
	}
	sc := Scene{Objects: make([]Object, 0, len(parts))}
	for _, p := range parts {
		o, err := parseObjectCaption(p)
		if err != nil {
			return Scene{}, fmt.Errorf("caption %q: %w", s, err)
		}
		sc.Objects = append(sc.Objects, o)
	}
	return sc, nil
}

// cutLast is strings.Cut at the last occurrence of sep.
func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// parseObjectCaption reads one objectCaption: "a large red circle at top left".
func parseObjectCaption(p string) (Object, error) {
	w := strings.Fields(p)
	if len(w) != 7 || w[0] != "a" || w[4] != "at" {
		return Object{}, fmt.Errorf("object %q: want \"a <size> <colour> <shape> at <row> <column>\"", p)
	}
	o := Object{Size: Size(w[1]), Color: Color(w[2]), Shape: Shape(w[3])}
	switch {
	case !o.Size.Valid():
		return Object{}, fmt.Errorf("object %q: unknown size %q", p, w[1])
	case !o.Color.Valid():
		return Object{}, fmt.Errorf("object %q: unknown colour %q", p, w[2])
	case !o.Shape.Valid():
		return Object{}, fmt.Errorf("object %q: unknown shape %q", p, w[3])
	}
	o.Cell.Row = slices.Index(RowNames[:], w[5])
	o.Cell.Col = slices.Index(ColNames[:], w[6])
	if !o.Cell.Valid() {
		return Object{}, fmt.Errorf("object %q: unknown cell %q", p, w[5]+" "+w[6])
	}
	return o, nil
}

// AnswersWithCaption reports whether a scenario's answer is a scene caption
// that ScoreCaption can check against the row's requirements: composition
// and reasoning (text rows caption a string, editing and reflection rows
// write an edit).
func AnswersWithCaption(scenario string) bool {
	return scenario == Composition || scenario == Reasoning
}

// ScoreCaption scores a caption against requirements on its own, as if it
// were the detector's reading of an image: the caption is parsed with
// ParseCaption and its objects checked with CheckRequirements (partial
// credit). A caption that does not parse scores 0 and the error says why.
func ScoreCaption(reqs []Requirement, caption string) (float64, error) {
	sc, err := ParseCaption(caption)
	if err != nil {
		return 0, err
	}
	return CheckRequirements(reqs, sc.Objects).Partial, nil
}
