package shards

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/thinkgen/thinkgen/storage"
)

// Put writes a shard with write into an unlinked-on-return temporary file
// in tmpDir ("" means os.TempDir()), then puts the file into batch under
// key (hashed, atomic; see [storage.Batch.Put]) and returns its manifest
// entry. The shard never sits in memory whole.
func Put[R any](ctx context.Context, batch *storage.Batch, key string, s *Schema[R], opts WriterOptions, tmpDir string, write func(w *Writer[R]) error) (storage.Object, error) {
	f, err := os.CreateTemp(tmpDir, "thinkgen-shard-*")
	if err != nil {
		return storage.Object{}, fmt.Errorf("write shard %s: %w", key, err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	w, err := NewWriter(f, key, s, opts)
	if err != nil {
		return storage.Object{}, err
	}
	if err := write(w); err != nil {
		w.Close()
		return storage.Object{}, fmt.Errorf("write shard %s: %w", key, err)
	}
	if err := w.Close(); err != nil {
		return storage.Object{}, err
	}
	return batch.Put(ctx, key, f)
}

// PutRows is [Put] of the rows of a slice, in order.
func PutRows[R any](ctx context.Context, batch *storage.Batch, key string, s *Schema[R], opts WriterOptions, tmpDir string, rows []R) (storage.Object, error) {
	return Put(ctx, batch, key, s, opts, tmpDir, func(w *Writer[R]) error {
		for i := range rows {
			if err := w.Write(&rows[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Open fetches the shard key of the committed manifest m from st, checks
// its size and sha256 against m (see [storage.Manifest.Fetch]) and opens
// it for reading. Closing the reader closes the fetched file.
func Open[R any](ctx context.Context, st storage.Store, m *storage.Manifest, key string, s *Schema[R], opts ReadOptions, tmpDir string) (*Reader[R], error) {
	f, err := m.Fetch(ctx, st, key, tmpDir)
	if err != nil {
		return nil, err
	}
	rd, err := NewReader(f, key, s, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	rd.closer = f
	return rd, nil
}

var errClosed = errors.New("thinkgen/shards: reader closed")
