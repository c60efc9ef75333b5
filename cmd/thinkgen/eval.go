package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/reward"
)

func evalCommand() *command {
	return &command{
		name:  "eval",
		usage: "DATASET [--images DIR] [--json] [--remote URL]",
		short: "score images against a ShapeWorld dataset, per scenario",
		long: `Eval scores one image per row of DATASET (an .arrow file or a directory of
them) with the rule models and prints one line per scenario, named after
the benchmark it stands in for: composition ≈ GenEval, reasoning ≈ WISE,
text ≈ CVTG word accuracy, editing ≈ ImgEdit, reflection.

The images are DIR/<row id>.png with --images; without it, the dataset's
own target images (the ground-truth baseline, which should score 1).
For reflection rows a DIR/<row id>.txt file, when present, is the
written correction, compared with the reference one (aux "ned").
Editing and reflection rows take their reference image from the dataset.
A row without an image in DIR is an error naming it.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			images := fs.String("images", "", "folder of PNGs named <row id>.png (default: the dataset's target images)")
			asJSON := fs.Bool("json", false, "print the table as JSON")
			remote := fs.String("remote", "", "score every scenario through the remote reward service at this URL (default: reward.remote of the config, else in process)")
			weightsFrom := addRunFlags(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return usagef("eval takes one DATASET (an .arrow file or a directory)")
				}
				cfg, err := weightsFrom.load()
				if err != nil {
					return err
				}
				var scorer reward.Scorer
				if scorer, err = reward.FromConfig(cfg.Reward); err != nil {
					return usagef("%v", err)
				}
				if *remote != "" {
					c, err := reward.NewClient(*remote, reward.ClientOptions{Timeout: cfg.Reward.Timeout})
					if err != nil {
						return usagef("--remote: %v", err)
					}
					scorers := map[string]reward.Scorer{}
					for _, sc := range datasets.AllScenarios {
						scorers[sc] = c
					}
					scorer = reward.NewRegistry(scorers, cfg.Reward.Weights)
				}
				sums, err := evalDataset(ctx, scorer, args[0], *images)
				if err != nil {
					return err
				}
				if *asJSON {
					enc := json.NewEncoder(e.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(map[string]any{"dataset": args[0], "images": *images, "scenarios": sums})
				}
				return reward.WriteTable(e.stdout, sums)
			}
		},
	}
}

// evalBatch is the number of rows scored per call.
const evalBatch = 256

func evalDataset(ctx context.Context, scorer reward.Scorer, path, imagesDir string) ([]reward.Summary, error) {
	rows, _, err := readDataset(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	var results []reward.Result
	for start := 0; start < len(rows); start += evalBatch {
		batch := rows[start:min(len(rows), start+evalBatch)]
		items := make([]reward.Item, len(batch))
		for i, r := range batch {
			it, err := evalItem(r, imagesDir)
			if err != nil {
				return nil, fmt.Errorf("eval: %w", err)
			}
			items[i] = it
		}
		res, err := scorer.Score(ctx, items)
		if err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		results = append(results, res...)
	}
	return reward.Summarize(results), nil
}

func evalItem(r datasets.Row, imagesDir string) (reward.Item, error) {
	it := reward.Item{ID: r.ID, Scenario: r.Scenario, Spec: r.Spec.JSON(), Answer: r.Answer}
	imgBytes := r.Target
	if r.Scenario == datasets.Reflection {
		it.Text = r.Answer
	}
	if imagesDir != "" {
		b, err := os.ReadFile(filepath.Join(imagesDir, r.ID+".png"))
		if err != nil {
			return it, fmt.Errorf("row %s: %w", r.ID, err)
		}
		imgBytes = b
		if r.Scenario == datasets.Reflection {
			t, err := os.ReadFile(filepath.Join(imagesDir, r.ID+".txt"))
			switch {
			case err == nil:
				it.Text = string(bytes.TrimSpace(t))
			case errors.Is(err, fs.ErrNotExist):
				it.Text = ""
			default:
				return it, fmt.Errorf("row %s: %w", r.ID, err)
			}
		}
	}
	img, err := png.Decode(bytes.NewReader(imgBytes))
	if err != nil {
		return it, fmt.Errorf("row %s: decode image: %w", r.ID, err)
	}
	it.Image = img
	if len(r.Reference) > 0 {
		if it.Reference, err = png.Decode(bytes.NewReader(r.Reference)); err != nil {
			return it, fmt.Errorf("row %s: decode reference image: %w", r.ID, err)
		}
	}
	return it, nil
}
