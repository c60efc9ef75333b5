package runs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/thinkgen/thinkgen/internal/tfevents"
	"github.com/thinkgen/thinkgen/storage"
)

// SyncEvents makes the local directory dir hold exactly the run's
// TensorBoard event files in the store: it downloads those missing or of
// another size (each to a temporary name, renamed into place) and removes
// event files the store no longer has (replaced when a run resumed on
// another host). It returns how many files dir holds and how many it
// downloaded.
func SyncEvents(ctx context.Context, st storage.Store, run, dir string) (n, added int, err error) {
	objs, err := st.List(ctx, TensorBoardPrefix(run))
	if err != nil {
		return 0, 0, fmt.Errorf("list event files of run %s: %w", run, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, err
	}
	want := map[string]bool{}
	for _, o := range objs {
		name := path.Base(o.Key)
		if !strings.HasPrefix(name, tfevents.FilePrefix) {
			continue
		}
		want[name] = true
		local := filepath.Join(dir, name)
		if fi, err := os.Stat(local); err == nil && fi.Size() == o.Size {
			continue
		}
		if err := download(ctx, st, o.Key, local); err != nil {
			return 0, 0, err
		}
		added++
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, de := range entries {
		if name := de.Name(); strings.HasPrefix(name, tfevents.FilePrefix) && !want[name] {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return 0, 0, err
			}
		}
	}
	return len(want), added, nil
}

// download copies the object key to the file path, whole or not at all.
func download(ctx context.Context, st storage.Store, key, path string) (err error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	// The temporary name lacks "tfevents": TensorBoard never reads it.
	f, err := os.CreateTemp(filepath.Dir(path), ".download-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = io.Copy(f, rc); err != nil {
		return fmt.Errorf("download %s: %w", key, err)
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
