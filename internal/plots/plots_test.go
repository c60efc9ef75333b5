package plots

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/internal/testutil"
)

func TestWriteDrawsLines(t *testing.T) {
	x := []float64{1, 2, 3, 4, 5}
	path := filepath.Join(t.TempDir(), "curves.png")
	err := Write(path, []Panel{
		{Title: "reward", XLabel: "step", Series: []Series{{Name: "mean", X: x, Y: []float64{0.1, 0.2, math.NaN(), 0.4, 0.5}}, {Name: "reasoning", X: x, Y: []float64{0, 0.1, 0.3, 0.2, 0.6}}}},
		{Title: "cot length", XLabel: "step", Series: []Series{{X: x, Y: []float64{20, 22, 25, 24, 30}}}},
		{Title: "empty", Series: []Series{{Name: "nothing", X: x, Y: []float64{math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN()}}}},
	}, 2)
	if err != nil {
		t.Fatal(err)
	}
	img := testutil.ReadPNG(t, path)
	// Two columns, two rows of 4.5 x 3.2 inch panels at vgimg's 96 dpi.
	b := img.Bounds()
	if b.Dx() != 864 || b.Dy() != 614 {
		t.Errorf("image %v, want 864x614", b)
	}
	// The first series' colour appears (a line was drawn).
	found := false
	for y := b.Min.Y; y < b.Max.Y && !found; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 == 31 && g>>8 == 119 && bl>>8 == 180 {
				found = true
				break
			}
		}
	}
	if !found {
		t.Error("no pixel of the first series' colour: no line drawn")
	}
	if err := Write(path, nil, 2); err == nil {
		t.Error("no panels: want an error")
	}
}

func TestSVG(t *testing.T) {
	x := []float64{1, 2, 3}
	tests := []struct {
		name   string
		panel  Panel
		points int
		want   []string
	}{
		{"two series", Panel{Title: "reward", XLabel: "step", Series: []Series{{Name: "mean", X: x, Y: []float64{0.1, math.NaN(), 0.3}}, {Name: "text", X: x, Y: []float64{0, 0.2, 0.4}}}},
			5, []string{"<svg", "reward", "step", "mean", "text", "stroke:#1F77B4", "stroke:#FF7F0E"}},
		{"escaped text", Panel{Title: `a <b> & "c"`, Series: []Series{{Name: "<s>", X: x, Y: []float64{1, 2, 3}}}},
			3, []string{"a &lt;b&gt; &amp;", "&lt;s&gt;"}},
		{"one point", Panel{Title: "one", Series: []Series{{X: x, Y: []float64{math.NaN(), 2, math.Inf(1)}}}}, 1, []string{"<svg"}},
		{"empty", Panel{Title: "none"}, 0, []string{"<svg", "none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.panel.Points(); got != tt.points {
				t.Errorf("Points() = %d, want %d", got, tt.points)
			}
			b, err := SVG(tt.panel, 300, 200)
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			if !strings.HasPrefix(s, "<svg") || !strings.HasSuffix(strings.TrimSpace(s), "</svg>") {
				t.Errorf("not one <svg> element: %.80q … %.20q", s, s[max(0, len(s)-20):])
			}
			if strings.Contains(s, "<?xml") {
				t.Error("XML declaration left in an inline element")
			}
			for _, w := range tt.want {
				if !strings.Contains(s, w) {
					t.Errorf("SVG lacks %q", w)
				}
			}
			if strings.Contains(s, "<b>") || strings.Contains(s, "<s>") {
				t.Error("unescaped text in the SVG")
			}
		})
	}
}

func TestWriteDrawsPoints(t *testing.T) {
	path := filepath.Join(t.TempDir(), "points.png")
	// A single point: a line of one point draws nothing, a marker does.
	err := Write(path, []Panel{{Title: "objective", Series: []Series{{X: []float64{1, 2, 3}, Y: []float64{math.NaN(), 0.5, math.NaN()}, Points: true}}}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	img := testutil.ReadPNG(t, path)
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if r, g, bl, _ := img.At(x, y).RGBA(); r>>8 == 31 && g>>8 == 119 && bl>>8 == 180 {
				n++
			}
		}
	}
	// The marker (radius 4 pt; no legend entry without a name): tens of pixels.
	if n < 20 {
		t.Errorf("%d pixels of the series' colour: no marker drawn", n)
	}
}

// TestConstantSeriesAxis: a constant curve's axis spans ±10% of its value
// (gonum's own ±1 would draw a learning rate of 1e-4 as 0.0); a curve at 0
// is left to gonum, which pads it by ±1 when drawn.
func TestConstantSeriesAxis(t *testing.T) {
	tests := []struct {
		y, min, max float64
	}{
		{1e-4, 0.9e-4, 1.1e-4},
		{-3, -3.3, -2.7},
		{0, 0, 0},
	}
	for _, tt := range tests {
		p, err := newPlot(Panel{Series: []Series{{X: []float64{1, 2, 3}, Y: []float64{tt.y, tt.y, tt.y}}}})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(p.Y.Min-tt.min) > 1e-12 || math.Abs(p.Y.Max-tt.max) > 1e-12 {
			t.Errorf("constant %g: axis [%g, %g], want [%g, %g]", tt.y, p.Y.Min, p.Y.Max, tt.min, tt.max)
		}
	}
	if err := Write(filepath.Join(t.TempDir(), "lr.png"), []Panel{{Title: "lr", Series: []Series{{X: []float64{1, 2}, Y: []float64{1e-4, 1e-4}}}}}, 1); err != nil {
		t.Fatal(err)
	}
}
