package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/storagetest"
)

// TestReplace: Replace writes only over the version it names (or where
// nothing is, for ""), returns the new version, which Stat and List
// report, and of racing Replaces from one version exactly one wins.
func TestReplace(t *testing.T) {
	ctx := context.Background()
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		const key = "runs/r/run.json"
		v1, err := s.Replace(ctx, key, strings.NewReader("one"), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Replace(ctx, key, strings.NewReader("again"), ""); !errors.Is(err, storage.ErrChanged) {
			t.Fatalf("Replace of an existing object from none: %v, want ErrChanged", err)
		}
		if info, err := s.Stat(ctx, key); err != nil || info.ETag != v1 {
			t.Fatalf("Stat = %+v, %v; want ETag %q", info, err, v1)
		}
		v2, err := s.Replace(ctx, key, strings.NewReader("two"), v1)
		if err != nil || v2 == v1 {
			t.Fatalf("Replace from the current version: %q, %v", v2, err)
		}
		if _, err := s.Replace(ctx, key, strings.NewReader("stale"), v1); !errors.Is(err, storage.ErrChanged) {
			t.Fatalf("Replace from a stale version: %v, want ErrChanged", err)
		}
		if _, err := s.Replace(ctx, "runs/r/none.json", strings.NewReader("x"), v2); !errors.Is(err, storage.ErrChanged) {
			t.Fatalf("Replace of a missing object from a version: %v, want ErrChanged", err)
		}
		if got := string(get(t, s, key)); got != "two" {
			t.Fatalf("object = %q, want the last successful Replace's", got)
		}
		if l, err := s.List(ctx, key); err != nil || len(l) != 1 || l[0].ETag != v2 {
			t.Fatalf("List = %+v, %v; want ETag %q", l, err, v2)
		}

		var wg sync.WaitGroup
		wins := make(chan string, 8)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				body := string(rune('a' + i))
				if _, err := s.Replace(ctx, key, strings.NewReader(body), v2); err == nil {
					wins <- body
				} else if !errors.Is(err, storage.ErrChanged) {
					t.Error(err)
				}
			}(i)
		}
		wg.Wait()
		close(wins)
		var won []string
		for w := range wins {
			won = append(won, w)
		}
		if len(won) != 1 || string(get(t, s, key)) != won[0] {
			t.Fatalf("racing Replaces: %v won, object %q; want exactly one", won, get(t, s, key))
		}
	})
}

// TestCommittedObjectsStay: a stale writer (a partitioned attempt that
// thawed) cannot replace a committed data object, nor can an abort of its
// batch delete one that a manifest lists.
func TestCommittedObjectsStay(t *testing.T) {
	ctx := context.Background()
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		key := storage.ShardKey("r", 1, "rollout", "t0", 1, 1)
		b := storage.NewBatch(s, storage.StepManifestKey("r", 1), "r", "step", "1")
		obj, err := b.Put(ctx, key, strings.NewReader("committed rows"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := b.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The same key written again (a writer that reuses keys).
		if _, err := storage.PutObject(ctx, s, key, strings.NewReader("stale rows")); !errors.Is(err, storage.ErrExist) {
			t.Fatalf("stale write of a committed object: %v, want ErrExist", err)
		}
		// A batch of the step whose Commit did not succeed aborts: it
		// deletes what it created, never what the manifest lists.
		other := storage.ShardKey("r", 1, "rollout", "t1", 1, 2)
		late := storage.NewBatch(s, storage.StepManifestKey("r", 1), "r", "step", "1")
		if _, err := late.Put(ctx, other, strings.NewReader("late")); err != nil {
			t.Fatal(err)
		}
		if _, err := late.Commit(ctx); !errors.Is(err, storage.ErrCommitted) {
			t.Fatalf("late Commit: %v, want ErrCommitted", err)
		}
		if err := late.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, other); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Abort left its own object: %v", err)
		}
		for _, o := range m.Objects {
			if err := storage.Verify(ctx, s, o); err != nil {
				t.Errorf("committed object after the stale writer: %v", err)
			}
		}
		// An aborting batch that had written the very objects that a
		// commit (its own, whose answer was lost) lists deletes none.
		b.Abort(ctx)
		if err := storage.Verify(ctx, s, obj); err != nil {
			t.Errorf("Abort after a commit deleted a listed object: %v", err)
		}
	})
}

// TestCommitVerifiesContent: an object reported with the right size but
// other bytes than the claimed sha256 is not committed; an object checked
// by AddVerified is.
func TestCommitVerifiesContent(t *testing.T) {
	ctx := context.Background()
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		key := storage.ShardKey("r", 1, "reward", "s0", 1, 1)
		obj, err := storage.PutObject(ctx, s, key, strings.NewReader("worker's bytes"))
		if err != nil {
			t.Fatal(err)
		}
		claim := obj
		claim.SHA256 = strings.Repeat("0", 64) // same size, other content
		b := storage.NewBatch(s, storage.StepManifestKey("r", 1), "r", "step", "1")
		b.Add(claim)
		var ce *storage.ChecksumError
		if _, err := b.Commit(ctx); !errors.As(err, &ce) || ce.Key != key {
			t.Fatalf("Commit of a false claim: %v, want a ChecksumError naming %s", err, key)
		}
		if _, err := s.Stat(ctx, storage.StepManifestKey("r", 1)); !errors.Is(err, storage.ErrNotExist) {
			t.Fatalf("a manifest was written for a false claim: %v", err)
		}
		if err := b.AddVerified(ctx, claim); !errors.As(err, &ce) {
			t.Fatalf("AddVerified of a false claim: %v, want a ChecksumError", err)
		}
		b = storage.NewBatch(s, storage.StepManifestKey("r", 1), "r", "step", "1")
		if err := b.AddVerified(ctx, obj); err != nil {
			t.Fatal(err)
		}
		m, err := b.Commit(ctx)
		if err != nil || len(m.Objects) != 1 || m.Objects[0] != obj {
			t.Fatalf("Commit = %+v, %v", m, err)
		}
		if _, err := storage.PutObject(ctx, s, key, bytes.NewReader(nil)); !errors.Is(err, storage.ErrExist) {
			t.Fatalf("rewrite of a data object: %v, want ErrExist", err)
		}
	})
}

// TestGCDropsUnkeptVersions: with the run's kept versions, GC deletes a
// committed checkpoint version that is not kept (a delete the controller
// did not finish), its data before its manifest, and leaves kept versions
// and versions after the run's policy version (in flight) alone.
func TestGCDropsUnkeptVersions(t *testing.T) {
	ctx := context.Background()
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		for v := 0; v <= 3; v++ {
			b := storage.NewBatch(s, storage.CheckpointManifestKey("r", v), "r", "checkpoint", fmt.Sprint(v))
			for _, f := range []string{"bundle/dit.safetensors", "optim-dit.safetensors"} {
				if _, err := b.Put(ctx, storage.CheckpointFilesPrefix("r", v, "e1-a1")+f, strings.NewReader(f)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := b.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		// Version 1 was dropped by run.json; 3 is beyond its policy
		// version (a learn task committed it, the step did not).
		kept := &storage.KeptVersions{Kept: []int{0, 2}, Through: 2}
		gone, err := storage.GC(ctx, s, "r", storage.GCOptions{Checkpoints: kept})
		if err != nil {
			t.Fatal(err)
		}
		p := storage.CheckpointFilesPrefix("r", 1, "e1-a1")
		want := []string{p + "bundle/dit.safetensors", p + "optim-dit.safetensors", storage.CheckpointManifestKey("r", 1)}
		if fmt.Sprint(keys(gone)) != fmt.Sprint(want) {
			t.Fatalf("GC deleted %v, want %v (data, then the manifest)", keys(gone), want)
		}
		left, err := s.List(ctx, storage.RunPrefix("r"))
		if err != nil || len(left) != 9 {
			t.Fatalf("left %v, %v; want versions 0, 2 and 3 whole (9 objects)", keys(left), err)
		}
		// Without the kept list (an old caller), nothing more goes.
		if again, err := storage.GC(ctx, s, "r", storage.GCOptions{}); err != nil || len(again) != 0 {
			t.Fatalf("second GC: %v, %v", keys(again), err)
		}
	})
}
