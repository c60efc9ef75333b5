package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/storage"
)

func TestGCCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openLocal(t, dir)
	stale := storage.ShardKey("r", 1, "rollout", "t0", 1, 1)
	kept := storage.ShardKey("r", 1, "rollout", "t0", 1, 2)
	if err := s.Put(ctx, stale, strings.NewReader("stale attempt")); err != nil {
		t.Fatal(err)
	}
	b := storage.NewBatch(s, storage.StepManifestKey("r", 1), "r", "step", "1")
	if _, err := b.Put(ctx, kept, strings.NewReader("committed attempt")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		code    int
		wantOut string
		wantErr string
		gone    bool
	}{
		{"no run", []string{"gc", "--run-dir", dir}, 2, "", "--run is required", false},
		{"bad run", []string{"gc", "--run", "../x", "--run-dir", dir}, 2, "", `invalid key "../x"`, false},
		{"dry run", []string{"gc", "--run", "r", "--dry-run", "--run-dir", dir}, 0, "would delete " + stale, "", false},
		{"json", []string{"gc", "--run", "r", "--dry-run", "--run-dir", dir, "--log-format", "json"}, 0, `"objects":["` + stale + `"]`, "", false},
		{"delete", []string{"gc", "--run", "r", "--run-dir", dir}, 0, "deleted 1 object(s)", "", true},
		{"again", []string{"gc", "--run", "r", "--run-dir", dir}, 0, "deleted 0 object(s)", "", true},
	}
	for _, tt := range tests {
		code, out, errs := runCLI(t, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.wantOut) || !strings.Contains(errs, tt.wantErr) {
			t.Errorf("%s: code %d, stdout %q, stderr %q; want %d, %q, %q", tt.name, code, out, errs, tt.code, tt.wantOut, tt.wantErr)
		}
		_, err := os.Stat(filepath.Join(dir, stale))
		if gone := os.IsNotExist(err); gone != tt.gone {
			t.Errorf("%s: stale shard gone = %v, want %v", tt.name, gone, tt.gone)
		}
		if _, err := os.Stat(filepath.Join(dir, kept)); err != nil {
			t.Errorf("%s: committed shard removed: %v", tt.name, err)
		}
	}
}
