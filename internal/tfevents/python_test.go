package tfevents_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/thinkgen/thinkgen/internal/tfevents"
	"github.com/thinkgen/thinkgen/internal/tfevents/tfeventstest"
)

// TestTensorBoardReadsGoFiles writes a log directory of several event
// files with this package and reads it with TensorBoard's own
// EventAccumulator: the same tags, steps, wall times and values.
func TestTensorBoardReadsGoFiles(t *testing.T) {
	dir := t.TempDir()
	lr := 0.0001
	// Four files, as a run writes them: one per step, then two steps in one.
	files := [][]tfevents.Event{
		{{WallTime: 1764265781.5, Step: 1, Scalars: []tfevents.Scalar{{Tag: "reward/mean", Value: 0.25}, {Tag: "loss/kl", Value: 0.0012}, {Tag: "reward/text/mean", Value: float32(math.NaN())}}}},
		{{WallTime: 1764265790.25, Step: 2, Scalars: []tfevents.Scalar{{Tag: "reward/mean", Value: -1.5}, {Tag: "loss/kl", Value: 1e-30}, {Tag: "reward/text/mean", Value: 1}},
			Texts: []tfevents.Text{{Tag: "samples/0", Value: "**prompt:** Draw a red circle ✓\n\n**think:** one circle"}}}},
		{
			{WallTime: 1764265800, Step: 3, Scalars: []tfevents.Scalar{{Tag: "reward/mean", Value: 3.4028235e38}}},
			{WallTime: 1764265801, Step: 0, Scalars: []tfevents.Scalar{{Tag: "eval/think/text", Value: 0.5}},
				Images: []tfevents.Image{{Tag: "grid/think", Height: 3, Width: 5, Colorspace: 4, PNG: pngOf(t, 5, 3)}}},
			{WallTime: 1764265802, Step: 4, Images: []tfevents.Image{{Tag: "grid/think", Height: 2, Width: 7, Colorspace: 4, PNG: pngOf(t, 7, 2)}}},
		},
		{{WallTime: 1764265780, Plugins: []tfevents.PluginValue{tfevents.HParamsSessionStart([]tfevents.HParam{
			{Name: "optim.lr", Value: "0.0001", Number: &lr}, {Name: "grpo.decay", Value: "constant"}, {Name: "schedule.phases", Value: "[{phase: mllm-grpo, steps: 20}]"},
		}, 1764265780)}}},
	}
	wantImages := map[string][]string{}
	want := map[string][]tfeventstest.Point{}
	var names []string
	for i, events := range files {
		name := fmt.Sprintf("%s1764265780.%06d.testhost", tfevents.FilePrefix, i+1)
		names = append(names, name)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		w := tfevents.NewWriter(f)
		err = w.WriteEvent(tfevents.Event{WallTime: events[0].WallTime, FileVersion: tfevents.FileVersion})
		for _, e := range events {
			if err == nil {
				err = w.WriteEvent(e)
			}
			for _, s := range e.Scalars {
				want[s.Tag] = append(want[s.Tag], tfeventstest.Point{Step: e.Step, WallTime: e.WallTime, Value: float64(s.Value)})
			}
			for _, im := range e.Images {
				wantImages[im.Tag] = append(wantImages[im.Tag], fmt.Sprint([5]any{float64(e.Step), e.WallTime, float64(im.Width), float64(im.Height), fmt.Sprintf("%x", sha256.Sum256(im.PNG))}))
			}
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// A file TensorBoard must ignore: its name lacks "tfevents".
	if err := os.WriteFile(filepath.Join(dir, ".download-123"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}

	got := tfeventstest.Read(t, dir)
	if txt := got.Texts["samples/0"]; len(txt) != 1 || txt[0].Step != 2 || txt[0].Text != files[1][0].Texts[0].Value {
		t.Errorf("TensorBoard's texts %+v, want the sample at step 2", got.Texts)
	}
	if got.FileVersion != 2 {
		t.Errorf("file version %v, want 2", got.FileVersion)
	}
	sort.Strings(names)
	if fmt.Sprint(got.Files) != fmt.Sprint(names) {
		t.Errorf("TensorBoard's event files %v, want %v", got.Files, names)
	}
	if len(got.Scalars) != len(want) {
		t.Errorf("TensorBoard read %d tags, want %d: %v", len(got.Scalars), len(want), got.Scalars)
	}
	for tag, ps := range want {
		g := got.Scalars[tag]
		if len(g) != len(ps) {
			t.Errorf("%s: %d points, want %d", tag, len(g), len(ps))
			continue
		}
		for i, p := range ps {
			if g[i].Step != p.Step || g[i].WallTime != p.WallTime || !tfeventstest.Same(float32(p.Value), g[i].Value) {
				t.Errorf("%s point %d: TensorBoard read %+v, Go wrote %+v", tag, i, g[i], p)
			}
		}
	}
	if len(got.Images) != len(wantImages) {
		t.Errorf("TensorBoard read %d image tags, want %d: %v", len(got.Images), len(wantImages), got.Images)
	}
	for tag, ims := range wantImages {
		var g []string
		for _, im := range got.Images[tag] {
			g = append(g, fmt.Sprint(im))
		}
		if fmt.Sprint(g) != fmt.Sprint(ims) {
			t.Errorf("image %s: TensorBoard read %v, Go wrote %v", tag, g, ims)
		}
	}
	wantHP := map[string]any{"optim.lr": 0.0001, "grpo.decay": "constant", "schedule.phases": "[{phase: mllm-grpo, steps: 20}]"}
	if fmt.Sprint(got.HParams) != fmt.Sprint(wantHP) || got.HParamsStart != 1764265780 {
		t.Errorf("TensorBoard's hparams %v (start %v), want %v (start 1764265780)", got.HParams, got.HParamsStart, wantHP)
	}
}

// pngOf encodes a w×h RGBA image whose pixels differ, so that two sizes
// never share bytes.
func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 37)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
