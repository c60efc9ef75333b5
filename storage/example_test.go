package storage_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	"github.com/thinkgen/thinkgen/storage"
)

// A step's shards are written first and its manifest last; readers go
// through the manifest, which checks every object's size and sha256.
func ExampleBatch() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "store")
	defer os.RemoveAll(dir)
	s, err := storage.NewLocal(dir)
	if err != nil {
		log.Fatal(err)
	}

	b := storage.NewBatch(s, storage.StepManifestKey("demo", 1), "demo", "step", "1")
	shard := storage.ShardKey("demo", 1, "rollout", "t0", 1, 1)
	if _, err := b.Put(ctx, shard, strings.NewReader("rows…")); err != nil {
		log.Fatal(err)
	}
	if _, err := b.Commit(ctx); err != nil {
		log.Fatal(err)
	}

	m, err := storage.ReadManifest(ctx, s, storage.StepManifestKey("demo", 1))
	if err != nil {
		log.Fatal(err)
	}
	f, err := m.Fetch(ctx, s, shard, "")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	data, _ := io.ReadAll(f)
	fmt.Println(m.Objects[0].Key, m.Objects[0].Size, string(data))
	// Output: runs/demo/steps/000001/rollout/t0-e1-a1.arrow 7 rows…
}
