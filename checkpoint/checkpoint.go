// Package checkpoint keeps a run's policy versions in its store: version v
// is the bundle (MLLM, connector, DiT, tokenizer) after step v (version 0 is
// the base the run started from) plus the optimiser states that continue
// it, under runs/<run>/checkpoints/<v>/, committed with one storage
// manifest. Workers load a version once and keep it in a local cache
// directory.
package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/optim"
	"github.com/thinkgen/thinkgen/storage"
)

// bundleDir is the folder of the bundle's files inside a version.
const bundleDir = "bundle/"

// Optimizer is one optimiser's state to save with a version, by name
// ("mllm", "dit").
type Optimizer struct {
	Name string
	Opt  *optim.AdamW
	// Shards, when set, are the states of a ZeRO-1 group's ranks, indexed
	// by rank, saved one file per rank with a manifest instead of Opt's.
	Shards []Shard
}

// Save writes b and the optimisers as version v of run, under the attempt
// tag of the task that saves it (storage.AttemptTag: its files are created
// once, never replacing another attempt's), and commits it; the bundle's
// manifest records cfg, the run's configuration. A version that is already
// committed is left alone and its manifest returned: versions are a pure
// function of the run, so a retried learn task that finds its version
// committed has nothing to add.
func Save(ctx context.Context, st storage.Store, run string, v int, tag string, b *model.Bundle, cfg *config.Config, opts []Optimizer, tmpDir string) (*storage.Manifest, error) {
	key := storage.CheckpointManifestKey(run, v)
	if m, err := storage.ReadManifest(ctx, st, key); err == nil {
		return m, nil
	}
	dir, err := os.MkdirTemp(tmpDir, "checkpoint-")
	if err != nil {
		return nil, fmt.Errorf("save checkpoint %d: %w", v, err)
	}
	defer os.RemoveAll(dir)
	if err := b.Save(filepath.Join(dir, "bundle"), v, cfg); err != nil {
		return nil, fmt.Errorf("save checkpoint %d: %w", v, err)
	}
	for _, o := range opts {
		if err := saveOptimizer(dir, o); err != nil {
			return nil, fmt.Errorf("save checkpoint %d: %w", v, err)
		}
	}
	batch := storage.NewBatch(st, key, run, "checkpoint", strconv.Itoa(v))
	prefix := storage.CheckpointFilesPrefix(run, v, tag)
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = batch.Put(ctx, prefix+filepath.ToSlash(rel), f)
		return err
	})
	if err != nil {
		batch.Abort(ctx)
		return nil, fmt.Errorf("save checkpoint %d: %w", v, err)
	}
	m, err := commit(ctx, st, batch, key)
	if err != nil {
		return nil, fmt.Errorf("save checkpoint %d: %w", v, err)
	}
	return m, nil
}

// commit commits a version's batch; a version another attempt committed
// first is the same version, and its manifest is returned.
func commit(ctx context.Context, st storage.Store, batch *storage.Batch, key string) (*storage.Manifest, error) {
	m, err := batch.Commit(ctx)
	if errors.Is(err, storage.ErrCommitted) {
		return storage.ReadManifest(ctx, st, key)
	}
	return m, err
}

// sortedState lists named tensors in name order, for saving and loading
// them by name.
func sortedState(tensors map[string]*ts.Tensor) (names []string, list []*ts.Tensor) {
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	list = make([]*ts.Tensor, len(names))
	for i, n := range names {
		list[i] = tensors[n]
	}
	return names, list
}

// Fetch copies the committed version v of run into cacheDir/<run>/<v>/
// (once: a complete copy is reused) and returns that directory; its
// bundle/ folder is what model.LoadBundle reads.
func Fetch(ctx context.Context, st storage.Store, run string, v int, cacheDir string) (string, error) {
	dst := filepath.Join(cacheDir, run, fmt.Sprintf("%06d", v))
	if _, err := os.Stat(filepath.Join(dst, ".complete")); err == nil {
		return dst, nil
	}
	m, err := storage.ReadManifest(ctx, st, storage.CheckpointManifestKey(run, v))
	if err != nil {
		return "", fmt.Errorf("load checkpoint %d of run %s: %w", v, run, err)
	}
	tmp := dst + ".part"
	os.RemoveAll(tmp)
	for _, obj := range m.Objects {
		rel, ok := storage.CheckpointFile(run, v, obj.Key)
		if !ok {
			return "", fmt.Errorf("load checkpoint %d: manifest lists %s outside %s", v, obj.Key, storage.CheckpointPrefix(run, v))
		}
		if err := copyObject(ctx, st, m, obj.Key, filepath.Join(tmp, filepath.FromSlash(rel)), cacheDir); err != nil {
			return "", fmt.Errorf("load checkpoint %d: %w", v, err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return "", err
	}
	os.RemoveAll(dst)
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("load checkpoint %d: %w", v, err)
	}
	return dst, nil
}

func copyObject(ctx context.Context, st storage.Store, m *storage.Manifest, key, path, tmpDir string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	src, err := m.Fetch(ctx, st, key, tmpDir)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// Load fetches version v and loads its bundle.
func Load(ctx context.Context, st storage.Store, run string, v int, cacheDir string, dev gotch.Device) (*model.Bundle, string, error) {
	dir, err := Fetch(ctx, st, run, v, cacheDir)
	if err != nil {
		return nil, "", err
	}
	b, _, err := model.LoadBundle(filepath.Join(dir, "bundle"), dev)
	if err != nil {
		return nil, "", fmt.Errorf("load checkpoint %d of run %s: %w", v, run, err)
	}
	return b, dir, nil
}

// Delete removes version v, which run.json no longer lists: its files
// first, its manifest last, so that an interrupted delete leaves a
// manifest for gc (storage.GC with the kept versions) to find and finish;
// a reader of the half-deleted version gets an error naming a missing
// file, never other bytes.
func Delete(ctx context.Context, st storage.Store, run string, v int) error {
	manifest := storage.CheckpointManifestKey(run, v)
	objs, err := st.List(ctx, storage.CheckpointPrefix(run, v))
	if err != nil {
		return fmt.Errorf("delete checkpoint %d: %w", v, err)
	}
	for _, o := range objs {
		if o.Key == manifest {
			continue
		}
		if err := st.Delete(ctx, o.Key); err != nil {
			return fmt.Errorf("delete checkpoint %d: %w", v, err)
		}
	}
	if err := st.Delete(ctx, manifest); err != nil {
		return fmt.Errorf("delete checkpoint %d: %w", v, err)
	}
	return nil
}

// ImportBundle commits a bundle directory (a pretrain result, the shipped
// base) as version v of run, under the attempt tag of the importer: the
// files are copied as they are.
func ImportBundle(ctx context.Context, st storage.Store, run string, v int, tag, dir string) (*storage.Manifest, error) {
	key := storage.CheckpointManifestKey(run, v)
	if m, err := storage.ReadManifest(ctx, st, key); err == nil {
		return m, nil
	}
	// Load to validate the bundle (sizes, checksums, config) before it is
	// committed as a version.
	if _, _, err := model.ReadBundleManifest(dir); err != nil {
		return nil, fmt.Errorf("import %s: %w", dir, err)
	}
	batch := storage.NewBatch(st, key, run, "checkpoint", strconv.Itoa(v))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", dir, err)
		}
		_, err = batch.Put(ctx, storage.CheckpointFilesPrefix(run, v, tag)+bundleDir+e.Name(), f)
		f.Close()
		if err != nil {
			batch.Abort(ctx)
			return nil, fmt.Errorf("import %s: %w", dir, err)
		}
	}
	m, err := commit(ctx, st, batch, key)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", dir, err)
	}
	return m, nil
}

// Versions is a run store's checkpoint versions, with the base bundle a new
// run imports as version 0 (the orchestrator's CheckpointStore).
type Versions struct {
	Store storage.Store
	// Base is the bundle directory of version 0.
	Base string
}

// ImportBase commits the base bundle as version 0 of run, written by the
// controller of epoch.
func (v Versions) ImportBase(ctx context.Context, run string, epoch int) (*storage.Manifest, error) {
	return ImportBundle(ctx, v.Store, run, 0, storage.AttemptTag(epoch, 1), v.Base)
}

// Delete removes version n of run.
func (v Versions) Delete(ctx context.Context, run string, n int) error {
	return Delete(ctx, v.Store, run, n)
}
