package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/storagetest"
)

// writeStep writes the n shards of one attempt of a step, then commits the
// step's manifest, the way a controller does. before(i) runs before shard
// i is written, and before(n) before the commit.
func writeStep(ctx context.Context, s storage.Store, step, attempt int, shards [][]byte, before func(int)) (*storage.Manifest, error) {
	b := storage.NewBatch(s, storage.StepManifestKey("run", step), "run", "step", fmt.Sprint(step))
	for i, data := range shards {
		before(i)
		key := storage.ShardKey("run", step, "rollout", fmt.Sprintf("t%d", i), 1, attempt)
		if _, err := b.Put(ctx, key, bytes.NewReader(data)); err != nil {
			return nil, err
		}
	}
	before(len(shards))
	return b.Commit(ctx)
}

// TestFaultMinIORestart kills the MinIO server (by PID) in the middle of a
// multi-object step write and restarts it. Whatever the writer does (its
// retries ride out the outage, or it fails), no manifest may point to a
// missing or partial object, and re-running the step commits it exactly
// once.
func TestFaultMinIORestart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	srv := storagetest.StartServer(t)
	small := [][]byte{randomBytes(11, 3<<20), randomBytes(12, 3<<20), randomBytes(13, 3<<20), randomBytes(14, 3<<20)}
	large := [][]byte{randomBytes(21, 20<<20), randomBytes(22, 20<<20), randomBytes(23, 20<<20)} // multipart
	var kills atomic.Int32
	restart := func(after time.Duration) {
		kills.Add(1)
		srv.Kill()
		go func() {
			time.Sleep(after)
			if err := srv.Start(); err != nil {
				t.Errorf("restart: %v", err)
			}
		}()
	}
	scenarios := []struct {
		name     string
		shards   [][]byte
		timeout  time.Duration // of the first attempt
		fault    func(i int)
		mustFail bool
	}{
		// Down for a moment between two shards: minio-go's retries may
		// carry the write through.
		{name: "between-shards", shards: small, timeout: time.Minute, fault: func(i int) {
			if i == 2 {
				restart(300 * time.Millisecond)
			}
		}},
		// Killed while a multipart upload is in flight.
		{name: "mid-upload", shards: large, timeout: time.Minute, fault: func(i int) {
			if i == 1 {
				go func() { time.Sleep(30 * time.Millisecond); restart(300 * time.Millisecond) }()
			}
		}},
		// Killed just before the manifest is written.
		{name: "before-commit", shards: small, timeout: time.Minute, fault: func(i int) {
			if i == len(small) {
				restart(300 * time.Millisecond)
			}
		}},
		// Down for longer than the attempt may take: it must fail.
		{name: "outage", shards: small, timeout: 3 * time.Second, mustFail: true, fault: func(i int) {
			if i == 1 {
				restart(4 * time.Second)
			}
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			cfg := srv.Config(storagetest.BucketName(t))
			s := storagetest.NewBucketStore(t, cfg)
			before := kills.Load()
			ctx, cancel := context.WithTimeout(context.Background(), sc.timeout)
			_, err := writeStep(ctx, s, 7, 1, sc.shards, sc.fault)
			cancel()
			t.Logf("attempt 1: %v", err)
			if kills.Load() != before+1 {
				t.Fatal("the server was not killed during attempt 1")
			}
			if sc.mustFail && err == nil {
				t.Fatal("attempt 1 succeeded while the server was down")
			}
			waitLive(t, s)
			attempts := 1
			if err != nil {
				if m, rerr := storage.ReadManifest(context.Background(), s, storage.StepManifestKey("run", 7)); rerr == nil {
					// The manifest PUT reached the server, but its answer
					// did not reach the writer: the step is committed.
					checkManifest(t, s, m, sc.shards)
				} else if !errors.Is(rerr, storage.ErrNotExist) {
					t.Fatal(rerr)
				}
				attempts = 2
				if _, err := writeStep(context.Background(), s, 7, 2, sc.shards, func(int) {}); err != nil && !errors.Is(err, storage.ErrCommitted) {
					t.Fatalf("re-run: %v", err)
				}
			}
			m, err := storage.ReadManifest(context.Background(), s, storage.StepManifestKey("run", 7))
			if err != nil {
				t.Fatal(err)
			}
			checkManifest(t, s, m, sc.shards)
			// Another re-run finds the step committed and changes nothing.
			if _, err := writeStep(context.Background(), s, 7, attempts+1, sc.shards, func(int) {}); !errors.Is(err, storage.ErrCommitted) {
				t.Fatalf("re-run of a committed step: %v, want ErrCommitted", err)
			}
			again, err := storage.ReadManifest(context.Background(), s, storage.StepManifestKey("run", 7))
			if err != nil || fmt.Sprint(again) != fmt.Sprint(m) {
				t.Fatalf("manifest changed by a re-run: %v", err)
			}
			// GC leaves exactly the committed objects and the manifest.
			if _, err := storage.GC(context.Background(), s, "run", storage.GCOptions{}); err != nil {
				t.Fatal(err)
			}
			left, err := s.List(context.Background(), storage.StepPrefix("run", 7))
			if err != nil || len(left) != len(m.Objects)+1 {
				t.Fatalf("after GC: %v, %v; want the %d committed objects and the manifest", keys(left), err, len(m.Objects))
			}
		})
	}
}

// checkManifest checks that every object of m is whole and holds the
// shard it should.
func checkManifest(t *testing.T, s storage.Store, m *storage.Manifest, shards [][]byte) {
	t.Helper()
	if len(m.Objects) != len(shards) {
		t.Fatalf("manifest lists %d objects, want %d", len(m.Objects), len(shards))
	}
	for i, obj := range m.Objects {
		if err := storage.Verify(context.Background(), s, obj); err != nil {
			t.Fatalf("committed manifest points to a bad object: %v", err)
		}
		if want := int64(len(shards[i])); obj.Size != want {
			t.Fatalf("%s: size %d, want %d", obj.Key, obj.Size, want)
		}
	}
}

// waitLive waits until the store answers again after a restart.
func waitLive(t *testing.T, s storage.Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := s.List(ctx, "")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store not back after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
