package runs_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/tfevents"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/storage/storagetest"
)

func TestSyncEvents(t *testing.T) {
	ctx := context.Background()
	st := storagetest.Local(t)
	prefix := runs.TensorBoardPrefix("r")
	a, b := tfevents.FilePrefix+"0000000001.000001.h", tfevents.FilePrefix+"0000000001.000002.h"
	put := func(key, body string) {
		t.Helper()
		if err := st.Put(ctx, key, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	put(prefix+a, "step one")
	put(prefix+b, "step two")
	put(prefix+"notes.txt", "not an event file")
	dir := filepath.Join(t.TempDir(), "logs", "r")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stale := tfevents.FilePrefix + "0000000001.000002.otherhost"
	for name, body := range map[string]string{stale: "replaced", "mine.txt": "kept", a: "step one"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files := func() []string {
		t.Helper()
		des, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, de := range des {
			out = append(out, de.Name())
		}
		return out
	}
	tests := []struct {
		name     string
		before   func()
		n, added int
	}{
		{"first copy downloads what is missing and removes what the store lost", func() {}, 2, 1},
		{"a second copy downloads nothing", func() {}, 2, 0},
		{"a file of another size is downloaded again", func() { put(prefix+b, "step two, rewritten") }, 2, 1},
	}
	for _, tt := range tests {
		tt.before()
		n, added, err := runs.SyncEvents(ctx, st, "r", dir)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if n != tt.n || added != tt.added {
			t.Errorf("%s: %d files, %d added; want %d, %d", tt.name, n, added, tt.n, tt.added)
		}
		if got, want := files(), []string{a, b, "mine.txt"}; !slices.Equal(got, want) {
			t.Errorf("%s: directory holds %v, want %v", tt.name, got, want)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, b)); string(got) != "step two, rewritten" {
		t.Errorf("%s holds %q, want the store's", b, got)
	}
}

func TestPutEvalEvents(t *testing.T) {
	ctx := context.Background()
	st := storagetest.Local(t)
	rs := &runs.State{Version: runs.StateVersion, Run: "r", Started: time.Unix(1764265780, 0)}
	scores := []map[string][]reward.Summary{
		{"think": {{Scenario: "count", Score: 0.5, Strict: 0.25}}, "direct": {{Scenario: "count", Score: 0.25, Strict: 0}}},
		{"direct": {{Scenario: "count", Score: 0.75, Strict: 0.5}}},
	}
	if err := runs.PutEvalEvents(ctx, st, rs, time.Now(), []int{0}, scores); err == nil {
		t.Error("one version for two scores: no error")
	}
	// Version 4's direct-mode grid is in the store (version 0 has none).
	grid := image.NewNRGBA(image.Rect(0, 0, 6, 4))
	for i := range grid.Pix {
		grid.Pix[i] = uint8(i * 11)
	}
	var png4 bytes.Buffer
	if err := png.Encode(&png4, grid); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, runs.EvalGridKey("r", 4, "direct"), bytes.NewReader(png4.Bytes())); err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1764265800250)
	if err := runs.PutEvalEvents(ctx, st, rs, at, []int{0, 4}, scores); err != nil {
		t.Fatal(err)
	}
	objs, err := st.List(ctx, runs.TensorBoardPrefix("r"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || !strings.Contains(objs[0].Key, ".eval.") {
		t.Fatalf("event files %v, want one eval file", objs)
	}
	want := []tfevents.Event{
		{WallTime: 1764265800.25, FileVersion: tfevents.FileVersion},
		{WallTime: 1764265800.25, Step: 0, Scalars: []tfevents.Scalar{
			{Tag: "eval/direct/count", Value: 0.25}, {Tag: "eval_strict/direct/count", Value: 0},
			{Tag: "eval/think/count", Value: 0.5}, {Tag: "eval_strict/think/count", Value: 0.25}}},
		{WallTime: 1764265800.25, Step: 4, Scalars: []tfevents.Scalar{
			{Tag: "eval/direct/count", Value: 0.75}, {Tag: "eval_strict/direct/count", Value: 0.5}},
			Images: []tfevents.Image{{Tag: "grid/direct", Height: 4, Width: 6, Colorspace: 4, PNG: png4.Bytes()}}},
	}
	checkEvents(t, st, objs[0].Key, want)
}

// TestPutHParamsEvents writes a configuration as the hparams event file
// twice (a run, then its resume): one file, the same bytes, at the run's
// start, holding the hparams plugin's session start (TensorBoard's reading
// of it is checked in internal/tfevents and cmd/thinkgen).
func TestPutHParamsEvents(t *testing.T) {
	ctx := context.Background()
	st := storagetest.Local(t)
	rs := &runs.State{Version: runs.StateVersion, Run: "r", Started: time.UnixMilli(1764265780250)}
	cfg := config.Default()
	var first []byte
	for i := range 2 {
		if err := runs.PutHParamsEvents(ctx, st, rs, cfg); err != nil {
			t.Fatal(err)
		}
		objs, err := st.List(ctx, runs.TensorBoardPrefix("r"))
		if err != nil || len(objs) != 1 || !strings.Contains(objs[0].Key, "."+runs.HParamsEventsID+".") {
			t.Fatalf("event files %v (%v), want one hparams file", objs, err)
		}
		b, err := os.ReadFile(filepath.Join(st.Dir(), filepath.FromSlash(objs[0].Key)))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Error("written again, the hparams file differs")
		}
		events, err := tfevents.ReadAll(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 2 || events[1].WallTime != 1764265780.25 || len(events[1].Plugins) != 1 ||
			events[1].Plugins[0].Tag != tfevents.HParamsTag || events[1].Plugins[0].Plugin != "hparams" || len(events[1].Plugins[0].Content) < 100 {
			t.Errorf("hparams events %+v", events)
		}
	}
}
