package runs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/storage"
)

// DatasetKey is where a run keeps the dataset it trains on
// (data.dataset): runs/<run>/data/train.arrow, copied in when the run
// begins so that every worker, on any machine, reads the same rows.
func DatasetKey(run string) string { return storage.RunPrefix(run) + "data/train.arrow" }

// PutDataset copies the dataset file at path into the run's store (once:
// the key is created, never replaced). A run that already holds a dataset
// keeps it when it has the same bytes and refuses a different one.
func PutDataset(ctx context.Context, st storage.Store, run, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("data.dataset: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return fmt.Errorf("data.dataset: reading %s: %w", path, err)
	}
	key := DatasetKey(run)
	err = st.Create(ctx, key, f)
	if !errors.Is(err, storage.ErrExist) {
		if err != nil {
			return fmt.Errorf("data.dataset: storing %s as %s: %w", path, key, err)
		}
		return nil
	}
	err = storage.Verify(ctx, st, storage.Object{Key: key, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))})
	var bad *storage.ChecksumError
	switch {
	case errors.As(err, &bad):
		return fmt.Errorf("data.dataset %s differs from the dataset run %s began with (%s)", path, run, key)
	case err != nil:
		return fmt.Errorf("data.dataset: reading the dataset run %s holds: %w", run, err)
	}
	return nil
}

// ReadDataset reads the dataset the run holds (PutDataset), spooling it
// through a file in tmpDir.
func ReadDataset(ctx context.Context, st storage.Store, run, tmpDir string) ([]datasets.Row, datasets.Info, error) {
	key := DatasetKey(run)
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, datasets.Info{}, fmt.Errorf("data.dataset: the run's copy %s: %w", key, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(tmpDir, "dataset-*.arrow")
	if err != nil {
		return nil, datasets.Info{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, rc); err != nil {
		return nil, datasets.Info{}, fmt.Errorf("data.dataset: reading %s: %w", key, err)
	}
	rows, info, err := datasets.ReadIPC(f)
	if err != nil {
		return nil, info, fmt.Errorf("data.dataset: %s: %w", key, err)
	}
	return rows, info, nil
}
