package shards

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/storagetest"
)

// benchShards is the benchmark set: 8 rollout shards of DiT rows (a 64 KiB
// image and a 10-step SDE trajectory of 4096-float latents and means, about
// 384 KiB a row), 256 MiB in all, uncompressed (the payload is random).
const (
	benchShards   = 8
	benchRows     = 85 // per shard
	benchSteps    = 10
	benchLatent   = 4096
	benchImage    = 64 << 10
	benchBatchRow = 16
)

func benchRowsFor(shard int) []RolloutRow {
	r := rand.New(rand.NewPCG(uint64(shard), 7))
	out := make([]RolloutRow, benchRows)
	for i := range out {
		row := RolloutRow{Run: "bench", Step: 1, Phase: "dit-grpo", Task: fmt.Sprint(shard), Attempt: 1,
			GroupID: int64(i / 8), SampleIndex: int32(i % 8), Scenario: "composition", Prompt: "a red square left of a blue circle",
			LatentShape: []int32{16, 16, 16}, NoiseSeed: int64(i), PolicyVersion: 1}
		row.ImagePNG = make([]byte, benchImage)
		for k := range row.ImagePNG {
			row.ImagePNG[k] = byte(r.Uint32())
		}
		for range benchSteps {
			lat, mean := make([]float32, benchLatent), make([]float32, benchLatent)
			for k := range lat {
				lat[k], mean[k] = r.Float32(), r.Float32()
			}
			row.SDELatents = append(row.SDELatents, lat)
			row.SDEMeans = append(row.SDEMeans, mean)
			row.SDELogProbs = append(row.SDELogProbs, -r.Float32())
		}
		out[i] = row
	}
	return out
}

// BenchmarkStorage measures, on the local store and on MinIO, writing the
// 256 MiB shard set (encode to Arrow, spool, hash, atomic put, commit) and
// reading it back (fetch with sha256 check, decode every row), next to a
// raw copy / raw PUT and a raw read / raw GET of the same bytes; and the
// fencing checks' costs: a conditional create of the same bytes
// (raw-create, next to raw-put) and the commit's verification of the set
// (verify: read back, sha256).
//
//	scripts/minio.sh run go test -run '^$' -bench Storage -benchtime 3x ./shards/
func BenchmarkStorage(b *testing.B) {
	ctx := context.Background()
	rowsets := make([][]RolloutRow, benchShards)
	for i := range rowsets {
		rowsets[i] = benchRowsFor(i)
	}
	// The encoded shards, for the raw baselines.
	src := b.TempDir()
	var total int64
	for i, rs := range rowsets {
		f, err := os.Create(filepath.Join(src, fmt.Sprint(i)))
		if err != nil {
			b.Fatal(err)
		}
		w, _ := NewWriter(f, "bench", Rollout, WriterOptions{BatchRows: benchBatchRow, Compression: "none"})
		for j := range rs {
			w.Write(&rs[j])
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		st, _ := f.Stat()
		total += st.Size()
		f.Close()
	}
	b.Logf("shard set: %d shards, %.1f MiB", benchShards, float64(total)/(1<<20))

	stores := []storagetest.Named{{Name: "local", Store: storagetest.Local(b)}}
	if os.Getenv("THINKGEN_TEST_S3_ENDPOINT") != "" {
		stores = append(stores, storagetest.Named{Name: "minio", Store: storagetest.MinIO(b)})
	}
	for _, st := range stores {
		s := st.Store
		var m *storage.Manifest
		seq := 0 // b.Run calls each function more than once: keys stay unique
		b.Run(st.Name+"/write", func(b *testing.B) {
			b.SetBytes(total)
			for range b.N {
				seq++
				it := seq
				batch := storage.NewBatch(s, storage.StepManifestKey("bench", it), "bench", "step", fmt.Sprint(it))
				for i, rs := range rowsets {
					_, err := PutRows(ctx, batch, storage.ShardKey("bench", it, "rollout", fmt.Sprint(i), 1, 1), Rollout,
						WriterOptions{BatchRows: benchBatchRow, Compression: "none"}, "", rs)
					if err != nil {
						b.Fatal(err)
					}
				}
				var err error
				if m, err = batch.Commit(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		// putFiles writes the encoded shard files with put, under fresh keys.
		putFiles := func(b *testing.B, put func(ctx context.Context, key string, f *os.File) error) {
			b.SetBytes(total)
			for range b.N {
				seq++
				it := seq
				for i := range benchShards {
					f, err := os.Open(filepath.Join(src, fmt.Sprint(i)))
					if err != nil {
						b.Fatal(err)
					}
					err = put(ctx, fmt.Sprintf("raw/%d/%d", it, i), f)
					f.Close()
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		b.Run(st.Name+"/raw-put", func(b *testing.B) {
			putFiles(b, func(ctx context.Context, key string, f *os.File) error { return rawPut(ctx, s, key, f) })
		})
		// The fencing checks: a conditional PUT (create-if-absent, what
		// every data object is written with) of the encoded files next to
		// raw-put's plain one, and the controller's commit-time verification
		// (read every object back and check its sha256).
		b.Run(st.Name+"/raw-create", func(b *testing.B) {
			putFiles(b, func(ctx context.Context, key string, f *os.File) error { return s.Create(ctx, key, f) })
		})
		b.Run(st.Name+"/verify", func(b *testing.B) {
			if m == nil {
				b.Skip("reads what the write benchmark committed: run it too")
			}
			b.SetBytes(total)
			for range b.N {
				for _, obj := range m.Objects {
					if err := storage.Verify(ctx, s, obj); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(st.Name+"/read", func(b *testing.B) {
			if m == nil {
				b.Skip("reads what the write benchmark committed: run it too")
			}
			b.SetBytes(total)
			for range b.N {
				for _, obj := range m.Objects {
					rd, err := Open(ctx, s, m, obj.Key, Rollout, ReadOptions{}, "")
					if err != nil {
						b.Fatal(err)
					}
					n := 0
					for {
						var row RolloutRow
						if err := rd.Read(&row); err == io.EOF {
							break
						} else if err != nil {
							b.Fatal(err)
						}
						n++
					}
					rd.Close()
					if n != benchRows {
						b.Fatalf("read %d rows", n)
					}
				}
			}
		})
		b.Run(st.Name+"/raw-get", func(b *testing.B) {
			b.SetBytes(total)
			for range b.N {
				for i := range benchShards {
					r, err := s.Get(ctx, fmt.Sprintf("raw/%d/%d", seq, i))
					if err != nil {
						b.Fatal(err)
					}
					_, err = io.Copy(io.Discard, r)
					r.Close()
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// rawPut is the baseline write: for the local store a plain file copy
// (create, copy, fsync, as durable as the store's Put), for S3 one PutObject
// of the file, both without Arrow encoding, spooling or hashing.
func rawPut(ctx context.Context, s storage.Store, key string, f *os.File) error {
	if l, ok := s.(*storage.Local); ok {
		dst := filepath.Join(l.Dir(), filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, f); err != nil {
			out.Close()
			return err
		}
		if err := out.Sync(); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	}
	return s.Put(ctx, key, f)
}
