package shards

import (
	"context"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/storagetest"
)

func TestShardsThroughStores(t *testing.T) {
	ctx := context.Background()
	want := rows(300, rolloutRow)
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		b := storage.NewBatch(s, storage.StepManifestKey("r", 1), "r", "step", "1")
		keys := []string{storage.ShardKey("r", 1, "rollout", "t0", 1, 1), storage.ShardKey("r", 1, "rollout", "t1", 1, 1)}
		for i, key := range keys {
			part := want[i*150 : (i+1)*150]
			_, err := PutRows(ctx, b, key, Rollout, WriterOptions{BatchRows: 32, Compression: "zstd"}, t.TempDir(), part)
			if err != nil {
				t.Fatal(err)
			}
		}
		m, err := b.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []RolloutRow
		for _, key := range keys {
			rd, err := Open(ctx, s, m, key, Rollout, ReadOptions{}, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			part, err := rd.ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, part...)
			if err := rd.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("rows read through the store differ (%d rows, want %d)", len(got), len(want))
		}

		// A bit flipped in a committed shard is caught before decoding.
		r, err := s.Get(ctx, keys[1])
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(r)
		r.Close()
		data[len(data)/2] ^= 1
		put := strings.NewReader(string(data))
		if err := s.Put(ctx, keys[1], put); err != nil {
			t.Fatal(err)
		}
		var ce *storage.ChecksumError
		if _, err := Open(ctx, s, m, keys[1], Rollout, ReadOptions{}, t.TempDir()); !errors.As(err, &ce) || ce.Key != keys[1] {
			t.Fatalf("Open of a bit-flipped shard: %v, want a ChecksumError naming %s", err, keys[1])
		}
	})
}

// TestReadStreams reads a shard much larger than one record batch and
// checks that the heap never holds anything near the whole shard.
func TestReadStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const n, image = 64, 1 << 20 // 64 rows of 1 MiB: a 64 MiB shard
	s := storagetest.Local(t)
	b := storage.NewBatch(s, "m.json", "r", "step", "1")
	row := RolloutRow{Phase: "dit-grpo", ImagePNG: make([]byte, image)}
	_, err := Put(context.Background(), b, "big.arrow", Rollout, WriterOptions{BatchRows: 2}, t.TempDir(), func(w *Writer[RolloutRow]) error {
		for i := range n {
			row.ImagePNG[0] = byte(i)
			if err := w.Write(&row); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.Commit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rd, err := Open(context.Background(), s, m, "big.arrow", Rollout, ReadOptions{Columns: []string{"image_png"}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapAlloc, uint64(0)
	for i := 0; ; i++ {
		var got RolloutRow
		if err := rd.Read(&got); err == io.EOF {
			if i != n {
				t.Fatalf("read %d rows, want %d", i, n)
			}
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if len(got.ImagePNG) != image || got.ImagePNG[0] != byte(i) {
			t.Fatalf("row %d: image of %d bytes starting %d", i, len(got.ImagePNG), got.ImagePNG[0])
		}
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
	}
	if grew := int64(peak) - int64(base); grew > 24<<20 {
		t.Fatalf("heap grew by %d MiB while streaming a %d MiB shard", grew>>20, n*image>>20)
	}
}
