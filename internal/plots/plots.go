// Package plots draws thinkgen's training curves as PNG files or inline SVG
// (gonum/plot):
// one panel per metric, one line per series, steps on the x axis.
package plots

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Series is one line: y values at x values (NaN values are skipped).
type Series struct {
	Name string
	X, Y []float64
	// Points draws a marker per value instead of a line, for values that
	// are not a curve (one per sweep trial, say).
	Points bool
}

// Panel is one chart of a figure.
type Panel struct {
	Title, XLabel, YLabel string
	Series                []Series
}

// palette holds distinguishable line colours.
var palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
}

// Write draws the panels side by side, cols per row, into a PNG at path.
func Write(path string, panels []Panel, cols int) error {
	if len(panels) == 0 {
		return fmt.Errorf("plot %s: no panels", path)
	}
	cols = max(1, min(cols, len(panels)))
	rows := (len(panels) + cols - 1) / cols
	const w, h = 4.5 * vg.Inch, 3.2 * vg.Inch
	img := vgimg.New(w*vg.Length(cols), h*vg.Length(rows))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	plots := make([][]*plot.Plot, rows)
	for r := range plots {
		plots[r] = make([]*plot.Plot, cols)
	}
	for i, pn := range panels {
		p, err := newPlot(pn)
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		plots[i/cols][i%cols] = p
	}
	canvases := plot.Align(plots, tiles, dc)
	for r := range plots {
		for c := range plots[r] {
			if plots[r][c] != nil {
				plots[r][c].Draw(canvases[r][c])
			}
		}
	}
	f, err := createFile(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return f.Close()
}

// newPlot draws one panel's series (NaN and infinite values skipped) with
// a grid and a legend.
func newPlot(pn Panel) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = pn.Title
	p.X.Label.Text = pn.XLabel
	p.Y.Label.Text = pn.YLabel
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	for j, s := range pn.Series {
		var pts plotter.XYs
		for k := range s.X {
			if k < len(s.Y) && !math.IsNaN(s.Y[k]) && !math.IsInf(s.Y[k], 0) {
				pts = append(pts, plotter.XY{X: s.X[k], Y: s.Y[k]})
			}
		}
		if len(pts) == 0 {
			continue
		}
		if s.Points {
			sc, err := plotter.NewScatter(pts)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.Name, err)
			}
			sc.Color = palette[j%len(palette)]
			sc.Shape = draw.CircleGlyph{}
			sc.Radius = vg.Points(4)
			p.Add(sc)
			if s.Name != "" {
				p.Legend.Add(s.Name, sc)
			}
			continue
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		l.Color = palette[j%len(palette)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		if len(pts) == 1 {
			// A single point draws no line: mark it.
			sc, err := plotter.NewScatter(pts)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.Name, err)
			}
			sc.Color = l.Color
			p.Add(sc)
		}
		if s.Name != "" {
			p.Legend.Add(s.Name, l)
		}
	}
	if p.Y.Min == p.Y.Max && p.Y.Min != 0 {
		// A constant curve (a learning rate, say): gonum pads ±1, which
		// draws 1e-4 as 0.0; pad by a tenth of the value instead.
		pad := math.Abs(p.Y.Min) / 10
		p.Y.Min, p.Y.Max = p.Y.Min-pad, p.Y.Max+pad
	}
	return p, nil
}

// Points counts the finite values the panel's series would draw.
func (pn Panel) Points() int {
	n := 0
	for _, s := range pn.Series {
		for k := range s.X {
			if k < len(s.Y) && !math.IsNaN(s.Y[k]) && !math.IsInf(s.Y[k], 0) {
				n++
			}
		}
	}
	return n
}

// SVG draws one panel, width × height, as an <svg> element without an XML
// declaration, ready to be inlined in an HTML page. Its text is escaped.
func SVG(pn Panel, width, height vg.Length) ([]byte, error) {
	p, err := newPlot(pn)
	if err != nil {
		return nil, fmt.Errorf("plot %q: %w", pn.Title, err)
	}
	c := vgsvg.New(width, height)
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("plot %q: %w", pn.Title, err)
	}
	b := buf.Bytes()
	i := bytes.Index(b, []byte("<svg"))
	if i < 0 {
		return nil, fmt.Errorf("plot %q: no <svg> element in the SVG output", pn.Title)
	}
	return b[i:], nil
}

func createFile(path string) (*os.File, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	return f, nil
}
