package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/reward"
)

func TestDataGenShowEval(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(t, "data", "gen", "--out", dir, "--n", "25", "--split", "eval", "--seed", "4")
	if code != 0 {
		t.Fatalf("data gen: exit %d: %s", code, errs)
	}
	part := filepath.Join(dir, "eval", "part-00000.arrow")
	if !strings.Contains(out, part) {
		t.Errorf("data gen output %q does not name %s", out, part)
	}
	rows, _, err := datasets.ReadFile(part)
	if err != nil || len(rows) != 25 {
		t.Fatalf("read back %d rows: %v", len(rows), err)
	}
	want, err := datasets.Generate(datasets.Options{Seed: 4, Split: datasets.Eval}, 0, 25)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if rows[i].ID != want[i].ID || rows[i].Answer != want[i].Answer || !bytes.Equal(rows[i].Target, want[i].Target) {
			t.Fatalf("row %d differs from datasets.Generate", i)
		}
	}

	grid := filepath.Join(dir, "grid.png")
	code, out, errs = runCLI(t, "data", "show", dir, "--n", "5", "--grid", grid, "--scale", "2")
	if code != 0 {
		t.Fatalf("data show: exit %d: %s", code, errs)
	}
	if strings.Count(out, "prompt:") != 5 || !strings.Contains(out, "answer:") {
		t.Errorf("data show printed:\n%s", out)
	}
	g := testutil.ReadPNG(t, grid)
	if b := g.Bounds(); b.Dx() != 2*64+12 || b.Dy() != 5*(64+4)+4 {
		t.Errorf("grid is %v, want 140×344", b)
	}

	// The ground-truth baseline scores 1 everywhere.
	code, out, errs = runCLI(t, "eval", part, "--json")
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errs)
	}
	var report struct{ Scenarios []reward.Summary }
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("eval --json: %v\n%s", err, out)
	}
	if len(report.Scenarios) != 5 {
		t.Fatalf("eval: %d scenarios, want 5", len(report.Scenarios))
	}
	for _, s := range report.Scenarios {
		if s.Score != 1 || s.Strict != 1 || s.Errors != 0 {
			t.Errorf("baseline %+v, want score and strict 1", s)
		}
	}

	// An image folder: every row's target, except text rows drawn blank.
	imgs := filepath.Join(dir, "imgs")
	if err := os.Mkdir(imgs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		b := r.Target
		if r.Scenario == datasets.Text {
			b, _ = datasets.EncodePNG(datasets.MustRender(datasets.Scene{}, 32))
		}
		if err := os.WriteFile(filepath.Join(imgs, r.ID+".png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs = runCLI(t, "eval", part, "--images", imgs)
	if code != 0 {
		t.Fatalf("eval --images: exit %d: %s", code, errs)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`composition\s+GenEval-like\s+5\s+0\s+1\.0000\s+1\.0000`),
		regexp.MustCompile(`text\s+CVTG word accuracy\s+5\s+0\s+0\.0000\s+0\.0000`),
		regexp.MustCompile(`editing\s+ImgEdit-like`), regexp.MustCompile(`reasoning\s+WISE-like`),
	} {
		if !want.MatchString(out) {
			t.Errorf("eval table lacks %v:\n%s", want, out)
		}
	}
	os.Remove(filepath.Join(imgs, rows[0].ID+".png"))
	code, _, errs = runCLI(t, "eval", part, "--images", imgs)
	if code != 1 || !strings.Contains(errs, rows[0].ID) {
		t.Errorf("eval with a missing image: exit %d, stderr %q; want 1 naming %s", code, errs, rows[0].ID)
	}
}

func TestDataUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"data"}, "missing action"},
		{[]string{"data", "frob"}, `unknown action "frob"`},
		{[]string{"data", "gen", "--n", "3"}, "--out"},
		{[]string{"data", "gen", "--out", "x", "--n", "3", "--split", "test"}, `unknown split "test"`},
		{[]string{"data", "gen", "--out", "x", "--n", "3", "--size", "7"}, "size 7"},
		{[]string{"data", "gen", "--out", "x", "--n", "3", "--scenarios", "painting"}, `unknown scenario "painting"`},
		{[]string{"data", "show"}, "one PATH"},
		{[]string{"eval"}, "one DATASET"},
		{[]string{"eval", "x.arrow", "--remote", "localhost:1"}, "--remote"},
		{[]string{"reward-serve", "extra"}, "unexpected arguments"},
	} {
		code, _, errs := runCLI(t, tt.args...)
		if code != 2 || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 containing %q", tt.args, code, errs, tt.want)
		}
	}
	t.Setenv("THINKGEN_REWARD_TOKEN", "")
	t.Setenv("THINKGEN_REWARD_TOKEN_FILE", "")
	if code, _, errs := runCLI(t, "reward-serve", "--addr", "0.0.0.0:0"); code != 1 || !strings.Contains(errs, "only on loopback") {
		t.Errorf("reward-serve on all interfaces without a token: exit %d, stderr %q; want 1, refused", code, errs)
	}
	code, _, errs := runCLI(t, "data", "show", filepath.Join(t.TempDir(), "none.arrow"))
	if code != 1 || !strings.Contains(errs, "none.arrow") {
		t.Errorf("show of a missing file: exit %d, %q", code, errs)
	}
}

// TestRewardServeAndRemoteEval runs reward-serve on a free loopback port
// and evaluates a dataset through it: the table equals the in-process one.
func TestRewardServeAndRemoteEval(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"reward-serve", "--addr", "127.0.0.1:0"}, &env{stdout: &out, stderr: &errb, getenv: os.Getenv})
	}()
	re := regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		url = re.FindString(out.String())
	}
	if url == "" {
		cancel()
		t.Fatalf("reward-serve printed no address: %q %q", out.String(), errb.String())
	}
	resp, err := http.Get(url + reward.HealthPath)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v", err)
	}
	resp.Body.Close()

	dir := t.TempDir()
	if code, _, errs := runCLI(t, "data", "gen", "--out", dir, "--n", "15", "--seed", "2"); code != 0 {
		t.Fatal(errs)
	}
	part := filepath.Join(dir, "train", "part-00000.arrow")
	_, local, _ := runCLI(t, "eval", part, "--json")
	code, remote, errs := runCLI(t, "eval", part, "--json", "--remote", url)
	if code != 0 || local != remote || local == "" {
		t.Errorf("eval through reward-serve: exit %d (%s)\nremote: %s\nlocal: %s", code, errs, remote, local)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("reward-serve exit %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reward-serve did not stop after cancel")
	}
}
