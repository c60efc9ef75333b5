package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
)

// TestVerifyCommand: a sound run exits 0 and lists its orphans; an
// altered object makes verify exit 1 with a fault naming the object.
func TestVerifyCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openLocal(t, dir)
	b := storage.NewBatch(s, storage.CheckpointManifestKey("r", 0), "r", "checkpoint", "0")
	weights := storage.CheckpointFilesPrefix("r", 0, "e1-a1") + "bundle/dit.safetensors"
	if _, err := b.Put(ctx, weights, strings.NewReader("the base weights")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	stray := storage.CheckpointFilesPrefix("r", 0, "e1-a2") + "bundle/dit.safetensors"
	if err := s.Put(ctx, stray, strings.NewReader("a stale attempt's weights")); err != nil {
		t.Fatal(err)
	}
	if err := runs.WriteState(ctx, s, &runs.State{Version: runs.StateVersion, Run: "r", Steps: 2, Kept: []int{0}}); err != nil {
		t.Fatal(err)
	}
	check := func(name string, code int, wantOut ...string) {
		t.Helper()
		got, out, errs := runCLI(t, "verify", "--run", "r", "--run-dir", dir)
		if got != code {
			t.Errorf("%s: exit %d, want %d\n%s%s", name, got, code, out, errs)
		}
		for _, w := range wantOut {
			if !strings.Contains(out, w) {
				t.Errorf("%s: stdout lacks %q:\n%s", name, w, out)
			}
		}
	}
	check("sound", 0, "orphan: "+stray, "0 fault(s), 1 orphan(s)", "1 objects checked")
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(weights)), []byte("the base weightz"), 0o644); err != nil {
		t.Fatal(err)
	}
	check("altered", 1, "fault: checkpoint 0: thinkgen/storage: object "+weights+" has sha256", "1 fault(s)")
	if code, _, errs := runCLI(t, "verify", "--run-dir", dir); code != 2 || !strings.Contains(errs, "--run is required") {
		t.Errorf("without --run: exit %d, %s", code, errs)
	}
}
