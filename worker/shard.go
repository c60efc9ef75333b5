package worker

import (
	"context"
	"fmt"
	"strconv"

	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/task"
)

// putShard writes rows as task t's output shard, staged in the batch of
// the step's manifest. The batch is never committed by the worker: the
// controller commits the step's manifest after verifying what the worker
// reports.
func putShard[R any](ctx context.Context, w *Worker, t task.Task, s *shards.Schema[R], rows []R) (storage.Object, error) {
	batch := storage.NewBatch(w.store, storage.StepManifestKey(t.Run, t.Step), t.Run, "step", strconv.Itoa(t.Step))
	obj, err := shards.PutRows(ctx, batch, t.OutputKey(), s, shards.WriterOptions{Compression: w.cfg.Storage.Compression}, w.cacheDir, rows)
	if err != nil {
		return storage.Object{}, fmt.Errorf("write %s: %w", t.OutputKey(), err)
	}
	return obj, nil
}

// readShard reads every row of a shard through its recorded size and sha256.
func readShard[R any](ctx context.Context, st storage.Store, obj storage.Object, s *shards.Schema[R], tmp string) ([]R, error) {
	m := &storage.Manifest{Objects: []storage.Object{obj}}
	rd, err := shards.Open(ctx, st, m, obj.Key, s, shards.ReadOptions{}, tmp)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	out, err := rd.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", obj.Key, err)
	}
	return out, nil
}
