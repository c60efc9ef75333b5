package main

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/datasets"
)

// rowsPerPart is the number of rows per dataset file part.
const rowsPerPart = 10000

func dataCommand() *command {
	return &command{
		name:  "data",
		usage: "gen --out DIR --n N [flags] | show PATH [flags]",
		short: "generate or inspect a ShapeWorld dataset",
		long: `Data generates and inspects ShapeWorld datasets (docs/shapeworld.md).

	gen    writes N rows of one split to DIR/<split>/part-NNNNN.arrow
	       (10,000 rows per part). Rows are a function of (seed, split,
	       index): the same flags give the same bytes.
	show   prints the first rows of a dataset file (or of every .arrow file
	       under a directory) and, with --grid, writes a PNG grid with one
	       line per row: reference image (blank when none) | target image.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			out := fs.String("out", "", "gen: output directory")
			n := fs.Int("n", 0, "gen: number of rows; show: rows to print (0 = 10)")
			seed := fs.Uint64("seed", 1, "gen: generator seed")
			split := fs.String("split", "train", "gen: split, train, eval (out of distribution) or eval-id (in distribution)")
			size := fs.Int("size", datasets.DefaultImageSize, "gen: image side in pixels (32..1024)")
			scenarios := fs.StringSlice("scenarios", nil, "gen: scenarios to cycle through (default all five)")
			grid := fs.String("grid", "", "show: write an image grid PNG to this file")
			scale := fs.Int("scale", 4, "show: upscale factor of grid images")
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					return usagef("missing action: gen or show")
				}
				switch args[0] {
				case "gen":
					if err := noArgs(args[1:]); err != nil {
						return err
					}
					if *out == "" || *n <= 0 {
						return usagef("gen needs --out DIR and --n N > 0")
					}
					sp, err := datasets.ParseSplit(*split)
					if err != nil {
						return usagef("--split: %v", err)
					}
					opts := datasets.Options{Seed: *seed, Split: sp, Size: *size, Scenarios: *scenarios}
					return dataGen(ctx, e, *out, *n, opts)
				case "show":
					if len(args) != 2 {
						return usagef("show takes one PATH (a dataset file or directory)")
					}
					if *scale < 1 || *scale > 16 {
						return usagef("--scale %d: want 1..16", *scale)
					}
					count := *n
					if count <= 0 {
						count = 10
					}
					return dataShow(e, args[1], count, *grid, *scale)
				}
				return usagef("unknown action %q: want gen or show", args[0])
			}
		},
	}
}

func dataGen(ctx context.Context, e *env, out string, n int, opts datasets.Options) error {
	if _, err := datasets.Generate(opts, 0, 0); err != nil {
		return usagef("%v", err)
	}
	dir := filepath.Join(out, string(opts.Split))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data gen: %w", err)
	}
	size := opts.Size
	for part, start := 0, 0; start < n; part, start = part+1, start+rowsPerPart {
		if err := ctx.Err(); err != nil {
			return err
		}
		rows, err := datasets.Generate(opts, start, min(rowsPerPart, n-start))
		if err != nil {
			return fmt.Errorf("data gen: %w", err)
		}
		path := filepath.Join(dir, fmt.Sprintf("part-%05d.arrow", part))
		if err := datasets.WriteFile(path, rows, size); err != nil {
			return fmt.Errorf("data gen: %w", err)
		}
		fmt.Fprintf(e.stdout, "wrote %s (%d rows)\n", path, len(rows))
	}
	return nil
}

// datasetFiles lists path itself or the .arrow files under it, sorted.
func datasetFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".arrow") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no .arrow files", path)
	}
	sort.Strings(files)
	return files, nil
}

// readDataset reads every row of the dataset files at path.
func readDataset(path string) ([]datasets.Row, int, error) {
	files, err := datasetFiles(path)
	if err != nil {
		return nil, 0, err
	}
	var rows []datasets.Row
	size := 0
	for _, f := range files {
		rs, info, err := datasets.ReadFile(f)
		if err != nil {
			return nil, 0, err
		}
		if size != 0 && info.ImageSize != size {
			return nil, 0, fmt.Errorf("%s: image size %d, earlier files have %d", f, info.ImageSize, size)
		}
		size = info.ImageSize
		rows = append(rows, rs...)
	}
	return rows, size, nil
}

func dataShow(e *env, path string, n int, grid string, scale int) error {
	rows, size, err := readDataset(path)
	if err != nil {
		return fmt.Errorf("data show: %w", err)
	}
	rows = rows[:min(n, len(rows))]
	for _, r := range rows {
		fmt.Fprintf(e.stdout, "%s  %s/%s\n  prompt: %s\n", r.ID, r.Scenario, r.Task, r.Prompt)
		if r.Think != "" {
			fmt.Fprintf(e.stdout, "  think:  %s\n", r.Think)
		}
		fmt.Fprintf(e.stdout, "  answer: %s\n  spec:   %s\n", r.Answer, r.Spec.JSON())
	}
	if grid == "" {
		return nil
	}
	img, err := gridImage(rows, size, scale)
	if err != nil {
		return fmt.Errorf("data show: %w", err)
	}
	if err := datasets.WritePNG(grid, img); err != nil {
		return fmt.Errorf("data show: %w", err)
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d rows: reference | target)\n", grid, len(rows))
	return nil
}

// gridImage lays rows out one per line: reference | target, each scaled,
// separated by grey gutters.
func gridImage(rows []datasets.Row, size, scale int) (*image.RGBA, error) {
	const gap = 4
	cell := size * scale
	w := 2*cell + 3*gap
	h := len(rows)*(cell+gap) + gap
	img := image.NewRGBA(image.Rect(0, 0, w, max(h, 1)))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.RGBA{128, 128, 128, 255}}, image.Point{}, draw.Src)
	for i, r := range rows {
		y := gap + i*(cell+gap)
		for j, b := range [][]byte{r.Reference, r.Target} {
			x := gap + j*(cell+gap)
			dst := image.Rect(x, y, x+cell, y+cell)
			if len(b) == 0 {
				draw.Draw(img, dst, &image.Uniform{color.RGBA{200, 200, 200, 255}}, image.Point{}, draw.Src)
				continue
			}
			src, err := png.Decode(strings.NewReader(string(b)))
			if err != nil {
				return nil, fmt.Errorf("row %s: decode image: %w", r.ID, err)
			}
			for py := range cell {
				for px := range cell {
					img.Set(x+px, y+py, src.At(src.Bounds().Min.X+px/scale, src.Bounds().Min.Y+py/scale))
				}
			}
		}
	}
	return img, nil
}
