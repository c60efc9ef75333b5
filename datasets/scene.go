package datasets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"strings"
)

// Shape is the kind of a ShapeWorld object.
type Shape string

// The shapes of ShapeWorld.
const (
	Circle   Shape = "circle"
	Square   Shape = "square"
	Triangle Shape = "triangle"
	Diamond  Shape = "diamond"
	Cross    Shape = "cross"
)

// AllShapes lists every Shape; keep it in sync with the constants above.
var AllShapes = []Shape{Circle, Square, Triangle, Diamond, Cross}

// Valid reports whether s is one of AllShapes.
func (s Shape) Valid() bool { return indexOf(AllShapes, s) >= 0 }

// Plural is the plural noun of the shape ("crosses").
func (s Shape) Plural() string {
	if s == Cross {
		return "crosses"
	}
	return string(s) + "s"
}

// Color is the name of a ShapeWorld colour.
type Color string

// The object colours of ShapeWorld. Text is always drawn in TextColor.
const (
	Red    Color = "red"
	Orange Color = "orange"
	Yellow Color = "yellow"
	Green  Color = "green"
	Blue   Color = "blue"
	Purple Color = "purple"
)

// AllColors lists every object Color; keep it in sync with the constants.
var AllColors = []Color{Red, Orange, Yellow, Green, Blue, Purple}

// Valid reports whether c is one of AllColors.
func (c Color) Valid() bool { return indexOf(AllColors, c) >= 0 }

// RGBA is the colour's pixel value; the zero value for an unknown colour.
func (c Color) RGBA() color.RGBA { return palette[c] }

var palette = map[Color]color.RGBA{
	Red:    {220, 40, 40, 255},
	Orange: {245, 140, 20, 255},
	Yellow: {235, 215, 30, 255},
	Green:  {40, 170, 60, 255},
	Blue:   {40, 80, 220, 255},
	Purple: {150, 60, 190, 255},
}

// Background is the canvas colour and TextColor the ink of rendered text.
var (
	Background = color.RGBA{255, 255, 255, 255}
	TextColor  = color.RGBA{20, 20, 20, 255}
)

// Size is the size class of an object.
type Size string

// The two object sizes.
const (
	Small Size = "small"
	Large Size = "large"
)

// AllSizes lists every Size.
var AllSizes = []Size{Small, Large}

// Valid reports whether s is one of AllSizes.
func (s Size) Valid() bool { return indexOf(AllSizes, s) >= 0 }

// GridSize is the number of rows and of columns of the object grid.
const GridSize = 3

// RowNames and ColNames name the grid cells in prompts and captions.
var (
	RowNames = [GridSize]string{"top", "middle", "bottom"}
	ColNames = [GridSize]string{"left", "centre", "right"}
)

// Cell is a position on the GridSize×GridSize grid, row 0 at the top.
type Cell struct {
	Row int `json:"row"`
	Col int `json:"col"`
}

// Valid reports whether the cell lies on the grid.
func (c Cell) Valid() bool { return c.Row >= 0 && c.Row < GridSize && c.Col >= 0 && c.Col < GridSize }

// String names the cell as prompts do: "top left", "middle centre".
func (c Cell) String() string {
	if !c.Valid() {
		return fmt.Sprintf("cell(%d,%d)", c.Row, c.Col)
	}
	return RowNames[c.Row] + " " + ColNames[c.Col]
}

// Object is one shape in a scene.
type Object struct {
	Shape Shape `json:"shape"`
	Color Color `json:"color"`
	Size  Size  `json:"size"`
	Cell
}

// Scene is what one image shows: either objects on the grid or one short
// string of text, never both.
type Scene struct {
	Objects []Object `json:"objects,omitempty"`
	// Text is 1 to MaxTextLen characters of TextAlphabet, drawn centred.
	Text string `json:"text,omitempty"`
}

// TextAlphabet holds the characters strings are made of, and MaxTextLen is
// the longest string a scene can show.
const (
	TextAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	MaxTextLen   = 4
)

// Relation kinds: the subject's objects all lie strictly on that side of
// the reference's objects (by grid column or row).
const (
	LeftOf  = "left of"
	RightOf = "right of"
	Above   = "above"
	Below   = "below"
)

// AllRelations lists the relation kinds.
var AllRelations = []string{LeftOf, RightOf, Above, Below}

// Relation places one requirement's objects relative to another's.
type Relation struct {
	Kind string `json:"kind"`
	// Ref is the index of the other requirement in Spec.Require.
	Ref int `json:"ref"`
}

// Requirement is one GenEval-style condition on an image: Count objects of
// Shape, and, when set, of Color and Size, in Cell, placed by Relation.
// Objects are grouped by shape: the requirements of one spec name
// distinct shapes.
type Requirement struct {
	Count    int       `json:"count"`
	Shape    Shape     `json:"shape"`
	Color    Color     `json:"color,omitempty"`
	Size     Size      `json:"size,omitempty"`
	Cell     *Cell     `json:"cell,omitempty"`
	Relation *Relation `json:"relation,omitempty"`
}

// Spec is the target of one row: the scene rendered as the target image,
// and the requirements any correct image must meet (composition, reasoning
// and reflection rows; empty for text and editing rows, which are scored
// against the scene itself).
type Spec struct {
	Scene   Scene         `json:"scene"`
	Require []Requirement `json:"require,omitempty"`
}

// Limits on specs, enforced by Validate.
const (
	MaxObjects = GridSize * GridSize
	MaxCount   = 4
)

// ErrInvalidSpec is wrapped by every validation error of a spec.
var ErrInvalidSpec = errors.New("thinkgen/datasets: invalid spec")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, args...))
}

// ParseSpec decodes a JSON spec, rejecting unknown fields, and validates it.
func ParseSpec(data []byte) (*Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: decode JSON: %v", ErrInvalidSpec, err)
	}
	if dec.More() {
		return nil, invalid("trailing data after the JSON object")
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	// One spec has one decoded form: empty lists are nil.
	if len(s.Require) == 0 {
		s.Require = nil
	}
	if len(s.Scene.Objects) == 0 {
		s.Scene.Objects = nil
	}
	return &s, nil
}

// JSON returns the spec's canonical JSON encoding.
func (s *Spec) JSON() []byte {
	// A Spec holds only strings, ints, slices and pointers to them, which
	// json.Marshal always encodes.
	b, _ := json.Marshal(s)
	return b
}

// Validate checks the scene and the requirements, naming the first bad field.
func (s *Spec) Validate() error {
	if err := s.Scene.Validate(); err != nil {
		return err
	}
	if len(s.Require) > MaxObjects {
		return invalid("require: %d requirements, at most %d", len(s.Require), MaxObjects)
	}
	total := 0
	for i, r := range s.Require {
		if r.Count < 1 || r.Count > MaxCount {
			return invalid("require[%d].count: %d, want 1..%d", i, r.Count, MaxCount)
		}
		total += r.Count
		if !r.Shape.Valid() {
			return invalid("require[%d].shape: unknown shape %q", i, r.Shape)
		}
		if r.Color != "" && !r.Color.Valid() {
			return invalid("require[%d].color: unknown colour %q", i, r.Color)
		}
		if r.Size != "" && !r.Size.Valid() {
			return invalid("require[%d].size: unknown size %q", i, r.Size)
		}
		if r.Cell != nil && (!r.Cell.Valid() || r.Count != 1) {
			return invalid("require[%d].cell: %v with count %d, want a grid cell and count 1", i, *r.Cell, r.Count)
		}
		if r.Relation != nil {
			if indexOf(AllRelations, r.Relation.Kind) < 0 {
				return invalid("require[%d].relation.kind: unknown relation %q", i, r.Relation.Kind)
			}
			if r.Relation.Ref < 0 || r.Relation.Ref >= len(s.Require) || r.Relation.Ref == i {
				return invalid("require[%d].relation.ref: %d is not another requirement", i, r.Relation.Ref)
			}
		}
		for j := range i {
			if s.Require[j].Shape == r.Shape {
				return invalid("require[%d].shape: %q already required by require[%d]", i, r.Shape, j)
			}
		}
	}
	if total > MaxObjects {
		return invalid("require: %d objects in all, at most %d", total, MaxObjects)
	}
	return nil
}

// Validate checks every object and the text of the scene.
func (sc *Scene) Validate() error {
	if len(sc.Objects) > MaxObjects {
		return invalid("scene.objects: %d objects, at most %d", len(sc.Objects), MaxObjects)
	}
	if sc.Text != "" && len(sc.Objects) > 0 {
		return invalid("scene: text and objects together; a scene shows one or the other")
	}
	if err := ValidText(sc.Text); sc.Text != "" && err != nil {
		return invalid("scene.text: %v", err)
	}
	var used [GridSize][GridSize]bool
	for i, o := range sc.Objects {
		switch {
		case !o.Shape.Valid():
			return invalid("scene.objects[%d].shape: unknown shape %q", i, o.Shape)
		case !o.Color.Valid():
			return invalid("scene.objects[%d].color: unknown colour %q", i, o.Color)
		case !o.Size.Valid():
			return invalid("scene.objects[%d].size: unknown size %q", i, o.Size)
		case !o.Cell.Valid():
			return invalid("scene.objects[%d]: cell (%d,%d) is off the %d×%d grid", i, o.Row, o.Col, GridSize, GridSize)
		case used[o.Row][o.Col]:
			return invalid("scene.objects[%d]: cell %s is taken", i, o.Cell)
		}
		used[o.Row][o.Col] = true
	}
	return nil
}

// ValidText checks that s is 1 to MaxTextLen characters of TextAlphabet.
func ValidText(s string) error {
	if len(s) == 0 || len(s) > MaxTextLen {
		return fmt.Errorf("%q has %d characters, want 1..%d", s, len(s), MaxTextLen)
	}
	for _, r := range s {
		if !strings.ContainsRune(TextAlphabet, r) {
			return fmt.Errorf("%q: character %q is not in %s", s, r, TextAlphabet)
		}
	}
	return nil
}

func indexOf[T comparable](xs []T, x T) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	return -1
}
