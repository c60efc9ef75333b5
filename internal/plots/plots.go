// Package plots draws thinkgen's training curves as PNG files (gonum/plot):
// one panel per metric, one line per series, steps on the x axis.
package plots

import (
	"fmt"
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
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
					return fmt.Errorf("plot %s: %s: %w", path, s.Name, err)
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
				return fmt.Errorf("plot %s: %s: %w", path, s.Name, err)
			}
			l.Color = palette[j%len(palette)]
			l.Width = vg.Points(1.5)
			p.Add(l)
			if s.Name != "" {
				p.Legend.Add(s.Name, l)
			}
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

func createFile(path string) (*os.File, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	return f, nil
}
