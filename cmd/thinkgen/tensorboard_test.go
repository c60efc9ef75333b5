package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/internal/tfevents"
	"github.com/thinkgen/thinkgen/internal/tfevents/tfeventstest"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/storage/storagetest"
)

// readEventDir reads every event file of dir but the hparams one (in name
// order, as TensorBoard does) and returns their events, file-version
// events left out.
func readEventDir(t *testing.T, dir string) (files []string, events []tfevents.Event) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range entries {
		if !strings.HasPrefix(de.Name(), tfevents.FilePrefix) || strings.Contains(de.Name(), "."+runs.HParamsEventsID+".") {
			continue // the hparams file holds no step: see TestResumeAfterACycleEqualsUninterrupted
		}
		files = append(files, de.Name())
		f, err := os.Open(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		es, err := tfevents.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", de.Name(), err)
		}
		if len(es) == 0 || es[0].FileVersion != tfevents.FileVersion {
			t.Fatalf("%s: does not start with the file version: %+v", de.Name(), es)
		}
		events = append(events, es[1:]...)
	}
	return files, events
}

// TestTensorboardCommand copies a run's event files (steps and eval
// scores) from a local store and from MinIO into a log directory, then
// again after one was replaced; and refuses bad input with exit 2.
func TestTensorboardCommand(t *testing.T) {
	dir := t.TempDir()
	local := openLocal(t, dir)
	t.Run("local", func(t *testing.T) { testTensorboardCommand(t, local, []string{"--run-dir", dir}) })
	t.Run("minio", func(t *testing.T) {
		cfg, ok := storagetest.Config(t, storagetest.BucketName(t))
		if !ok {
			storagetest.MinIO(t) // skips, or fails under CI
		}
		st := storagetest.NewBucketStore(t, cfg)
		testTensorboardCommand(t, st, []string{"--store", cfg.URI, "--set", "storage.endpoint=" + cfg.Endpoint, "--set", "storage.insecure=true",
			"--set", "storage.region=" + cfg.Region, "--set", "storage.credentials_file=" + cfg.CredentialsFile})
	})

	logdir := t.TempDir()
	bad := []struct {
		name string
		args []string
		want string
	}{
		{"no run", []string{"--logdir", logdir}, "--run is required"},
		{"bad run", []string{"--run", "../x", "--logdir", logdir}, "--run"},
		{"no logdir", []string{"--run", "r"}, "--logdir is required"},
		{"negative follow", []string{"--run", "r", "--logdir", logdir, "--follow", "-1s"}, "--follow"},
		{"argument", []string{"--run", "r", "--logdir", logdir, "extra"}, "unexpected arguments"},
	}
	for _, tt := range bad {
		code, _, errs := runCLI(t, append([]string{"tensorboard", "--run-dir", dir}, tt.args...)...)
		if code != 2 || !strings.Contains(errs, tt.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", tt.name, code, errs, tt.want)
		}
	}
	// A run the store does not have: exit 1, naming it, nothing written.
	empty := filepath.Join(t.TempDir(), "nothing")
	if code, _, errs := runCLI(t, "tensorboard", "--run", "nosuch", "--run-dir", dir, "--logdir", empty); code != 1 || !strings.Contains(errs, "run nosuch") {
		t.Errorf("missing run: exit %d, stderr %q", code, errs)
	}
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Errorf("a refused copy created %s", empty)
	}
}

func testTensorboardCommand(t *testing.T, st storage.Store, storeArgs []string) {
	ctx := context.Background()
	rs := &runs.State{Version: runs.StateVersion, Run: "r", Steps: 3, Committed: 3, Started: time.Unix(1764265780, 0)}
	b, _ := json.Marshal(rs)
	if err := st.Put(ctx, runs.StateKey("r"), strings.NewReader(string(b))); err != nil {
		t.Fatal(err)
	}
	for step := 1; step <= 3; step++ {
		e := runs.StepEvent(step, time.UnixMilli(1764265790000+int64(step)*1500), map[string]float64{"reward/mean": float64(step) / 4, "loss/kl": 1e-3 * float64(step)})
		if err := runs.PutEvents(ctx, st, rs, fmt.Sprintf("%06d", step), []tfevents.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	scores := []map[string][]reward.Summary{
		{"direct": {{Scenario: "composition", Score: 0.25, Strict: 0.125}}, "think": {{Scenario: "composition", Score: 0.5, Strict: 0.375}}},
		{"direct": {{Scenario: "composition", Score: 0.75, Strict: 0.5}}, "think": {{Scenario: "composition", Score: 1, Strict: 1}}},
	}
	if err := runs.PutEvalEvents(ctx, st, rs, time.Now(), []int{0, 3}, scores); err != nil {
		t.Fatal(err)
	}
	logdir := filepath.Join(t.TempDir(), "logs")
	sync := func() (stdout, stderr string) {
		t.Helper()
		code, out, errs := runCLI(t, append([]string{"tensorboard", "--run", "r", "--logdir", logdir}, storeArgs...)...)
		if code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
		}
		return out, errs
	}

	if out, errs := sync(); !strings.Contains(out, "tensorboard --logdir "+logdir) || !strings.Contains(errs, "4 event files") {
		t.Errorf("stdout: %s\nstderr: %s", out, errs)
	}
	files, events := readEventDir(t, filepath.Join(logdir, "r"))
	if len(files) != 4 || !sort.StringsAreSorted(files) || !strings.Contains(files[3], ".eval.") {
		t.Errorf("copied %v, want the three step files then the eval file", files)
	}
	var steps []int64
	for _, e := range events {
		steps = append(steps, e.Step)
	}
	if got := fmt.Sprint(steps); got != "[1 2 3 0 3]" {
		t.Errorf("steps in file order %s, want 1,2,3 then the eval versions 0,3", got)
	}
	eval := events[len(events)-1]
	if eval.Step != 3 || scalarOf(eval, "eval/think/composition") != 1 || scalarOf(eval, "eval_strict/direct/composition") != 0.5 {
		t.Errorf("eval event of version 3: %+v", eval)
	}

	// Another host replaced step 2's file: the copy follows.
	objs, _ := st.List(ctx, runs.TensorBoardPrefix("r"))
	old := objs[1].Key
	rc, err := st.Get(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	replaced := old[:strings.LastIndex(old, ".")] + ".otherhost"
	if err := st.Put(ctx, replaced, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, errs := sync(); !strings.Contains(errs, "(1 new)") {
		t.Errorf("second copy: %s", errs)
	}
	files, _ = readEventDir(t, filepath.Join(logdir, "r"))
	if len(files) != 4 || files[1] != filepath.Base(replaced) {
		t.Errorf("after the replacement the log directory holds %v", files)
	}

	// --follow copies at its interval until interrupted, then exits 0.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, append([]string{"tensorboard", "--run", "r", "--logdir", logdir, "--follow", "300ms"}, storeArgs...), &env{stdout: &out, stderr: &errb, getenv: os.Getenv})
	if n := strings.Count(errb.String(), "4 event files"); code != 0 || n < 2 {
		t.Errorf("--follow for 2s at 300ms: exit %d, %d copies\n%s", code, n, errb.String())
	}

	t.Run("tensorboard reads them", func(t *testing.T) {
		l := tfeventstest.Read(t, filepath.Join(logdir, "r"))
		if ps := l.Scalars["reward/mean"]; len(ps) != 3 || ps[2].Step != 3 || ps[2].Value != 0.75 {
			t.Errorf("reward/mean: %+v", ps)
		}
		if ps := l.Scalars["eval/direct/composition"]; len(ps) != 2 || ps[0].Step != 0 || ps[1].Step != 3 || ps[1].Value != 0.75 {
			t.Errorf("eval/direct/composition: %+v", ps)
		}
	})
}

func scalarOf(e tfevents.Event, tag string) float32 {
	for _, s := range e.Scalars {
		if s.Tag == tag {
			return s.Value
		}
	}
	return -1
}
