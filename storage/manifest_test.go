package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/storagetest"
)

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestCommitAndGC(t *testing.T) {
	ctx := context.Background()
	const run = "r1"
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		// Attempt 1 of task t0 wrote its shard, then lost its lease.
		stale := storage.ShardKey(run, 3, "rollout", "t0", 1, 1)
		put(t, s, stale, []byte("stale attempt"))
		// An uncommitted later step, still being written.
		inflight := storage.ShardKey(run, 4, "rollout", "t0", 1, 1)
		put(t, s, inflight, []byte("in flight"))

		b := storage.NewBatch(s, storage.StepManifestKey(run, 3), run, "step", "3")
		contents := map[string][]byte{
			storage.ShardKey(run, 3, "rollout", "t0", 1, 2): randomBytes(1, 1000),
			storage.ShardKey(run, 3, "rollout", "t1", 1, 1): randomBytes(2, 5000),
			storage.ShardKey(run, 3, "reward", "t0", 1, 1):  randomBytes(3, 0),
		}
		for k, v := range contents {
			obj, err := b.Put(ctx, k, bytes.NewReader(v))
			if err != nil {
				t.Fatal(err)
			}
			if obj.Size != int64(len(v)) || len(obj.SHA256) != 64 {
				t.Fatalf("Put returned %+v", obj)
			}
		}
		if _, err := storage.ReadManifest(ctx, s, storage.StepManifestKey(run, 3)); !errors.Is(err, storage.ErrNotExist) {
			t.Fatalf("manifest visible before Commit: %v", err)
		}
		m, err := b.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := storage.ReadManifest(ctx, s, storage.StepManifestKey(run, 3))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(m) || len(got.Objects) != 3 || got.Run != run || got.Kind != "step" {
			t.Fatalf("read manifest %+v, committed %+v", got, m)
		}
		for k, v := range contents {
			f, err := got.Fetch(ctx, s, k, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(f)
			f.Close()
			if !bytes.Equal(data, v) {
				t.Fatalf("Fetch(%s) returned other bytes", k)
			}
		}
		if _, err := got.Fetch(ctx, s, stale, ""); !errors.Is(err, storage.ErrNotInManifest) {
			t.Fatalf("Fetch of a stale attempt's shard: %v", err)
		}
		// A re-run of the step cannot commit it again.
		b2 := storage.NewBatch(s, storage.StepManifestKey(run, 3), run, "step", "3")
		if _, err := b2.Put(ctx, storage.ShardKey(run, 3, "rollout", "t0", 1, 3), strings.NewReader("again")); err != nil {
			t.Fatal(err)
		}
		if _, err := b2.Commit(ctx); !errors.Is(err, storage.ErrCommitted) {
			t.Fatalf("second Commit: %v, want ErrCommitted", err)
		}
		again, _ := storage.ReadManifest(ctx, s, storage.StepManifestKey(run, 3))
		if fmt.Sprint(again) != fmt.Sprint(got) {
			t.Fatal("second Commit changed the manifest")
		}

		wantGarbage := []string{storage.ShardKey(run, 3, "rollout", "t0", 1, 1), storage.ShardKey(run, 3, "rollout", "t0", 1, 3)}
		dry, err := storage.GC(ctx, s, run, storage.GCOptions{DryRun: true})
		if err != nil || fmt.Sprint(keys(dry)) != fmt.Sprint(wantGarbage) {
			t.Fatalf("GC dry run = %v, %v; want %v", keys(dry), err, wantGarbage)
		}
		if _, err := s.Stat(ctx, stale); err != nil {
			t.Fatalf("dry run deleted: %v", err)
		}
		del, err := storage.GC(ctx, s, run, storage.GCOptions{})
		if err != nil || fmt.Sprint(keys(del)) != fmt.Sprint(wantGarbage) {
			t.Fatalf("GC = %v, %v; want %v", keys(del), err, wantGarbage)
		}
		left, _ := s.List(ctx, "")
		wantLeft := []string{storage.StepManifestKey(run, 3)}
		for k := range contents {
			wantLeft = append(wantLeft, k)
		}
		wantLeft = append(wantLeft, inflight)
		if len(left) != len(wantLeft) {
			t.Fatalf("after GC: %v, want %v", keys(left), wantLeft)
		}
		for _, k := range wantLeft {
			if _, err := s.Stat(ctx, k); err != nil {
				t.Errorf("GC removed %s: %v", k, err)
			}
		}
	})
}

func TestCommitRefusesMissingOrShortObjects(t *testing.T) {
	ctx := context.Background()
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		put(t, s, "runs/r/steps/000001/rollout/t0-a1.arrow", []byte("12345"))
		tests := []struct {
			name string
			obj  storage.Object
			want string
		}{
			{"missing", storage.Object{Key: "runs/r/steps/000001/rollout/t9-a1.arrow", Size: 5, SHA256: strings.Repeat("0", 64)}, "t9-a1.arrow"},
			{"short", storage.Object{Key: "runs/r/steps/000001/rollout/t0-a1.arrow", Size: 6, SHA256: strings.Repeat("0", 64)}, "is 5 bytes, its manifest says 6"},
		}
		for _, tt := range tests {
			b := storage.NewBatch(s, storage.StepManifestKey("r", 1), "r", "step", "1")
			b.Add(tt.obj)
			if _, err := b.Commit(ctx); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: Commit error = %v, want %q", tt.name, err, tt.want)
			}
			if _, err := s.Stat(ctx, storage.StepManifestKey("r", 1)); !errors.Is(err, storage.ErrNotExist) {
				t.Fatalf("%s: a manifest was written: %v", tt.name, err)
			}
		}
	})
}

func TestCorruptObjectDetected(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(7, 100_000)
	flipped := bytes.Clone(data)
	flipped[54321] ^= 0x10
	corruptions := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", data[:99_000], "is 99000 bytes, its manifest says 100000"},
		{"extended", append(bytes.Clone(data), 0), "is 100001 bytes"},
		{"bit-flipped", flipped, "has sha256"},
		{"emptied", nil, "is 0 bytes"},
	}
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		for _, c := range corruptions {
			key := storage.ShardKey("r", 1, "rollout", c.name, 1, 1)
			obj, err := storage.PutObject(ctx, s, key, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			m := &storage.Manifest{Version: storage.ManifestVersion, Objects: []storage.Object{obj}}
			if err := storage.Verify(ctx, s, obj); err != nil {
				t.Fatalf("%s: intact object fails: %v", c.name, err)
			}
			if got, err := storage.Describe(ctx, s, key); err != nil || got != obj {
				t.Fatalf("%s: Describe = %+v, %v; want PutObject's %+v", c.name, got, err, obj)
			}
			put(t, s, key, c.data) // the disk or a bad writer changes it
			if got, err := storage.Describe(ctx, s, key); err != nil || got.Size != int64(len(c.data)) || got.SHA256 == obj.SHA256 {
				t.Errorf("%s: Describe of the changed object = %+v, %v", c.name, got, err)
			}
			var ce *storage.ChecksumError
			err = storage.Verify(ctx, s, obj)
			if !errors.As(err, &ce) || ce.Key != key || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: Verify error = %v, want a ChecksumError naming %s and %q", c.name, err, key, c.want)
			}
			if f, err := m.Fetch(ctx, s, key, t.TempDir()); !errors.As(err, &ce) || !strings.Contains(err.Error(), key) {
				if f != nil {
					f.Close()
				}
				t.Errorf("%s: Fetch error = %v, want a ChecksumError naming %s", c.name, err, key)
			}
		}
	})
}

func TestReadManifestRejects(t *testing.T) {
	ctx := context.Background()
	sum := strings.Repeat("ab", 32)
	tests := []struct {
		name, body, want string
	}{
		{"version", `{"version": 2, "objects": [], "future": true}`, "version 2, want 1"},
		{"unknown field", `{"version": 1, "extra": 1}`, `unknown field "extra"`},
		{"bad sum", `{"version": 1, "objects": [{"key": "a", "size": 1, "sha256": "xyz"}]}`, "objects[0] (a): bad size or sha256"},
		{"bad key", `{"version": 1, "objects": [{"key": "../a", "size": 1, "sha256": "` + sum + `"}]}`, `invalid key "../a"`},
		{"unsorted", `{"version": 1, "objects": [{"key": "b", "size": 1, "sha256": "` + sum + `"}, {"key": "a", "size": 1, "sha256": "` + sum + `"}]}`, "not sorted"},
		{"not json", `manifest`, "invalid character"},
	}
	s := storagetest.Local(t)
	for _, tt := range tests {
		key := "m/" + strings.ReplaceAll(tt.name, " ", "-") + ".json"
		put(t, s, key, []byte(tt.body))
		_, err := storage.ReadManifest(ctx, s, key)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: error = %v, want %q naming %s", tt.name, err, tt.want, key)
		}
	}
}

func TestGetJSON(t *testing.T) {
	ctx := context.Background()
	s := storagetest.Local(t)
	put(t, s, "a.json", []byte(`{"n": 3}`))
	put(t, s, "bad.json", []byte(`{"n": `))
	var v struct{ N int }
	if err := storage.GetJSON(ctx, s, "a.json", &v); err != nil || v.N != 3 {
		t.Errorf("GetJSON(a.json) = %+v, %v", v, err)
	}
	if err := storage.GetJSON(ctx, s, "bad.json", &v); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("GetJSON(bad.json): %v, want an error naming the key", err)
	}
	if err := storage.GetJSON(ctx, s, "none.json", &v); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("GetJSON(none.json): %v, want ErrNotExist", err)
	}
}
