package worker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/testmodel"
	"github.com/thinkgen/thinkgen/storage/storagetest"
)

// TestPrefetchPullsTheNextVersion: in an asynchronous run a rollout
// worker that loads version 0 downloads version 1 into its cache in the
// background once version 1 is committed, and then loads it from there.
func TestPrefetchPullsTheNextVersion(t *testing.T) {
	ctx := context.Background()
	c := config.Default()
	testmodel.Shrink(c)
	c.Run.MaxStaleness = 1
	st := storagetest.Local(t)
	bundle := filepath.Join(t.TempDir(), "bundle")
	if err := testmodel.SaveBase(c, bundle, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.ImportBundle(ctx, st, "r", 0, "e1-a1", bundle); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	w, err := New(Options{Config: c, Store: st, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err = libtorch.Run(func() error {
		_, err := w.policyAt(ctx, "r", 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Version 1 is committed after the rollout started with version 0.
	if _, err := checkpoint.ImportBundle(ctx, st, "r", 1, "e1-a1", bundle); err != nil {
		t.Fatal(err)
	}
	complete := filepath.Join(cache, "checkpoints", "r", "000001", ".complete")
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(complete); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("version 1 was not prefetched within a minute of its commit")
		}
		time.Sleep(100 * time.Millisecond)
	}
	err = libtorch.Run(func() error {
		_, err := w.policyAt(ctx, "r", 1)
		return err
	})
	if err != nil || w.policyVersion != 1 {
		t.Fatalf("loading the prefetched version: version %d, %v", w.policyVersion, err)
	}
}
