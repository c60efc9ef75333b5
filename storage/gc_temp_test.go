package storage_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/storagetest"
)

// TestGCRemovesStaleTemps: GC deletes a local store's temporary files
// (left by a Put that crashed) older than TempAge, under the run only, and
// leaves younger ones (a Put in progress) and everything else alone.
func TestGCRemovesStaleTemps(t *testing.T) {
	ctx := context.Background()
	l := storagetest.Local(t)
	const run = "r1"
	b := storage.NewBatch(l, storage.StepManifestKey(run, 1), run, "step", "1")
	if _, err := b.Put(ctx, storage.ShardKey(run, 1, "rollout", "t0", 1, 1), bytes.NewReader([]byte("shard"))); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	temp := func(rel string, age time.Duration) string {
		p := filepath.Join(l.Dir(), filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-age)
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := temp("runs/r1/steps/000001/.thinkgen-tmp-111", 3*time.Hour)
	staleUncommitted := temp("runs/r1/steps/000002/.thinkgen-tmp-222", 2*time.Hour)
	fresh := temp("runs/r1/steps/000001/.thinkgen-tmp-333", time.Minute)
	otherRun := temp("runs/r2/steps/000001/.thinkgen-tmp-444", 3*time.Hour)

	dry, err := storage.GC(ctx, l, run, storage.GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"runs/r1/steps/000001/.thinkgen-tmp-111", "runs/r1/steps/000002/.thinkgen-tmp-222"}
	if got := keys(dry); !slices.Equal(got, want) {
		t.Fatalf("dry run lists %v, want %v", got, want)
	}
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("dry run deleted %s: %v", stale, err)
	}
	del, err := storage.GC(ctx, l, run, storage.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(del); !slices.Equal(got, want) {
		t.Fatalf("GC deleted %v, want %v", got, want)
	}
	for p, gone := range map[string]bool{stale: true, staleUncommitted: true, fresh: false, otherRun: false} {
		if _, err := os.Stat(p); os.IsNotExist(err) != gone {
			t.Errorf("%s: gone %v, want %v", p, os.IsNotExist(err), gone)
		}
	}
	if _, err := storage.ReadManifest(ctx, l, storage.StepManifestKey(run, 1)); err != nil {
		t.Fatalf("the committed step after GC: %v", err)
	}
	// A shorter TempAge takes the younger file too.
	del, err = storage.GC(ctx, l, run, storage.GCOptions{TempAge: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(del); !slices.Equal(got, []string{"runs/r1/steps/000001/.thinkgen-tmp-333"}) {
		t.Fatalf("GC with TempAge 1s deleted %v", got)
	}
}
