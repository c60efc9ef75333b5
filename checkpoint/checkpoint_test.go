package checkpoint_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/optim"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/storagetest"
)

// bundleFiles are the files of a saved bundle (model.Bundle.Save).
var bundleFiles = []string{"connector.safetensors", "dit.safetensors", "manifest.json", "mllm.safetensors", "tokenizer.json"}

// tinyConfig is a configuration whose models have a few thousand
// parameters.
func tinyConfig() *config.Config {
	c := config.Default()
	m := &c.Model.MLLM
	m.Hidden, m.Layers, m.Heads, m.KVHeads, m.HeadDim, m.FFN, m.MaxSeqLen = 32, 2, 2, 1, 16, 64, 64
	d := &c.Model.DiT
	d.Hidden, d.Layers, d.Heads, d.KVHeads, d.FFN, d.RefinerLayers, d.ImageSize = 48, 1, 2, 1, 64, 1, 16
	c.Model.Connector.Prepad = 2
	return c
}

func inTorch(t *testing.T, fn func() error) {
	t.Helper()
	if err := libtorch.Run(fn); err != nil {
		t.Fatal(err)
	}
}

// newBundle returns a freshly initialised bundle of c drawn from seed.
func newBundle(t *testing.T, c *config.Config, seed uint64) *model.Bundle {
	t.Helper()
	var b *model.Bundle
	inTorch(t, func() error {
		tok, err := model.TokenizerFor(c.Model.MLLM)
		if err != nil {
			return err
		}
		b, err = model.NewBundle(c, tok, gotch.CPU, seed)
		return err
	})
	t.Cleanup(func() { libtorch.Run(func() error { b.Drop(); return nil }) })
	return b
}

// loadVersion loads version v of run "r" of st (checkpoint.Load) and
// returns the bundle, which the test's cleanup drops, and the directory
// it was downloaded to.
func loadVersion(ctx context.Context, t *testing.T, st storage.Store, v int) (*model.Bundle, string) {
	t.Helper()
	var b *model.Bundle
	var dir string
	inTorch(t, func() error {
		var err error
		b, dir, err = checkpoint.Load(ctx, st, "r", v, t.TempDir(), gotch.CPU)
		return err
	})
	t.Cleanup(func() { libtorch.Run(func() error { b.Drop(); return nil }) })
	return b, dir
}

// newOptimizer returns an AdamW over two small parameters whose moments
// hold the values base+i and the given step count.
func newOptimizer(t *testing.T, base float32, step int64) *optim.AdamW {
	t.Helper()
	var o *optim.AdamW
	inTorch(t, func() error {
		p1 := ts.MustOfSlice([]float32{1, 2, 3})
		p1.MustRequiresGrad_(true)
		p2 := ts.MustOfSlice([]float32{4, 5})
		p2.MustRequiresGrad_(true)
		t.Cleanup(func() {
			libtorch.Run(func() error { p1.MustDrop(); p2.MustDrop(); return nil })
		})
		o = optim.New([]*ts.Tensor{p1, p2}, optim.Config{})
		st, _ := o.State()
		for _, k := range sortedKeys(st) {
			n := st[k].MustSize()[0]
			vals := make([]float32, n)
			for i := range vals {
				vals[i] = base + float32(i)
			}
			src := ts.MustOfSlice(vals)
			st[k].Copy_(src)
			src.MustDrop()
			base += 10
		}
		o.SetStep(step)
		return nil
	})
	t.Cleanup(func() { libtorch.Run(func() error { o.Drop(); return nil }) })
	return o
}

func sortedKeys(m map[string]*ts.Tensor) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// optimizerValues is an optimiser's state as values, by tensor name.
func optimizerValues(t *testing.T, o *optim.AdamW) (map[string][]float64, int64) {
	t.Helper()
	out := map[string][]float64{}
	var step int64
	inTorch(t, func() error {
		st, s := o.State()
		for k, v := range st {
			out[k] = v.Float64Values()
		}
		step = s
		return nil
	})
	return out, step
}

// params is every parameter of a bundle as values, in order.
func params(t *testing.T, b *model.Bundle) [][]float64 {
	t.Helper()
	var out [][]float64
	inTorch(t, func() error {
		for _, p := range []*model.Params{b.MLLM.P, b.Connector.P, b.DiT.P} {
			for _, x := range p.Tensors() {
				out = append(out, x.Float64Values())
			}
		}
		return nil
	})
	return out
}

func equalParams(a, b [][]float64) bool {
	return slices.EqualFunc(a, b, func(x, y []float64) bool { return slices.Equal(x, y) })
}

// keysOf lists a manifest's keys relative to the version's prefix.
func keysOf(m *storage.Manifest, prefix string) []string {
	var ks []string
	for _, o := range m.Objects {
		ks = append(ks, strings.TrimPrefix(o.Key, prefix))
	}
	slices.Sort(ks)
	return ks
}

// TestSaveLoadRoundTrip: a saved version lists its bundle and optimiser
// files in one manifest, and loads back to the same weights and optimiser
// state.
func TestSaveLoadRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := tinyConfig()
	st := storagetest.Local(t)
	b := newBundle(t, c, 7)
	mllm, dit := newOptimizer(t, 1, 3), newOptimizer(t, 100, 5)
	opts := []checkpoint.Optimizer{{Name: "mllm", Opt: mllm}, {Name: "dit", Opt: dit}}

	m, err := checkpoint.Save(ctx, st, "r", 2, "e1-a1", b, tinyConfig(), opts, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	prefix := storage.CheckpointFilesPrefix("r", 2, "e1-a1")
	var want []string
	for _, f := range bundleFiles {
		want = append(want, "bundle/"+f)
	}
	want = append(want, "optim-dit.safetensors", "optim-mllm.safetensors")
	if got := keysOf(m, prefix); !slices.Equal(got, want) {
		t.Errorf("manifest lists %v, want %v", got, want)
	}
	if m.Run != "r" || m.Kind != "checkpoint" || m.ID != "2" {
		t.Errorf("manifest run %q kind %q id %q, want r checkpoint 2", m.Run, m.Kind, m.ID)
	}
	for _, o := range m.Objects {
		if err := storage.Verify(ctx, st, o); err != nil {
			t.Errorf("stored object: %v", err)
		}
	}
	stored, err := storage.ReadManifest(ctx, st, storage.CheckpointManifestKey("r", 2))
	if err != nil {
		t.Fatalf("the committed manifest: %v", err)
	}
	if got := keysOf(stored, prefix); !slices.Equal(got, want) {
		t.Errorf("committed manifest lists %v, want %v", got, want)
	}

	got, dir := loadVersion(ctx, t, st, 2)
	if !equalParams(params(t, got), params(t, b)) {
		t.Error("loaded weights differ from the saved ones")
	}
	if diff := got.Model.ShapeDiff(c.Model); len(diff) > 0 {
		t.Errorf("loaded model shape differs: %v", diff)
	}

	for _, o := range []struct {
		name  string
		saved *optim.AdamW
		base  float32
	}{{"mllm", mllm, 50}, {"dit", dit, 500}} {
		fresh := newOptimizer(t, o.base, 0)
		var ok bool
		inTorch(t, func() error {
			var err error
			ok, err = checkpoint.LoadOptimizer(dir, o.name, fresh)
			return err
		})
		if !ok {
			t.Errorf("optimiser %s: not found in the version", o.name)
		}
		wantVals, wantStep := optimizerValues(t, o.saved)
		gotVals, gotStep := optimizerValues(t, fresh)
		if gotStep != wantStep {
			t.Errorf("optimiser %s: step %d, want %d", o.name, gotStep, wantStep)
		}
		for k, v := range wantVals {
			if !slices.Equal(gotVals[k], v) {
				t.Errorf("optimiser %s: %s = %v, want %v", o.name, k, gotVals[k], v)
			}
		}
	}
}

// TestSaveKeepsACommittedVersion: saving a version that is committed
// returns its manifest and leaves its files alone (a retried learn task).
func TestSaveKeepsACommittedVersion(t *testing.T) {
	ctx := context.Background()
	c := tinyConfig()
	st := storagetest.Local(t)
	first := newBundle(t, c, 1)
	m1, err := checkpoint.Save(ctx, st, "r", 1, "e1-a1", first, tinyConfig(), nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m2, err := checkpoint.Save(ctx, st, "r", 1, "e1-a2", newBundle(t, c, 2), tinyConfig(), nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m1.Objects, m2.Objects) {
		t.Errorf("second save returned %v, want the committed %v", m2.Objects, m1.Objects)
	}
	got, _ := loadVersion(ctx, t, st, 1)
	if !equalParams(params(t, got), params(t, first)) {
		t.Error("the committed version's weights were replaced")
	}
}

// TestLoadOptimizerAbsent: a version without an optimiser's state (version
// 0, a phase that has not run) reports false and leaves the optimiser as it
// was; a state file of other shapes is refused, naming the optimiser.
func TestLoadOptimizerAbsent(t *testing.T) {
	ctx := context.Background()
	st := storagetest.Local(t)
	b := newBundle(t, tinyConfig(), 3)
	// A "dit" state saved from an optimiser over other parameters.
	var other *optim.AdamW
	inTorch(t, func() error {
		p := ts.MustOfSlice([]float32{1})
		p.MustRequiresGrad_(true)
		t.Cleanup(func() { libtorch.Run(func() error { p.MustDrop(); return nil }) })
		other = optim.New([]*ts.Tensor{p}, optim.Config{})
		return nil
	})
	defer libtorch.Run(func() error { other.Drop(); return nil })
	if _, err := checkpoint.Save(ctx, st, "r", 1, "e1-a1", b, tinyConfig(), []checkpoint.Optimizer{{Name: "dit", Opt: other}}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	dir, err := checkpoint.Fetch(ctx, st, "r", 1, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o := newOptimizer(t, 1, 4)
	before, _ := optimizerValues(t, o)
	var ok bool
	inTorch(t, func() error {
		var err error
		ok, err = checkpoint.LoadOptimizer(dir, "mllm", o)
		return err
	})
	after, step := optimizerValues(t, o)
	if ok || step != 4 {
		t.Errorf("absent state: found %v, step %d; want false, 4", ok, step)
	}
	for k, v := range before {
		if !slices.Equal(after[k], v) {
			t.Errorf("absent state changed %s: %v, was %v", k, after[k], v)
		}
	}
	err = libtorch.Run(func() error {
		_, err := checkpoint.LoadOptimizer(dir, "dit", o)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "optimiser dit") {
		t.Errorf("a state of other shapes: error %v, want one naming optimiser dit", err)
	}
}

// TestFetchRefusesDamage: a version whose objects were altered, truncated
// or removed, or that was never committed, is refused with an error that
// names the version and the object; nothing is left in the cache.
func TestFetchRefusesDamage(t *testing.T) {
	ctx := context.Background()
	c := tinyConfig()
	b := newBundle(t, c, 5)
	prefix := storage.CheckpointFilesPrefix("r", 1, "e1-a1")
	tests := []struct {
		name    string
		damage  func(t *testing.T, root string)
		wantErr []string
		is      error
	}{
		{"a flipped byte", func(t *testing.T, root string) {
			path := filepath.Join(root, filepath.FromSlash(prefix+"bundle/dit.safetensors"))
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			raw[len(raw)/2] ^= 0xff
			if err := os.WriteFile(path, raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"load checkpoint 1", "bundle/dit.safetensors", "sha256"}, nil},
		{"a truncated file", func(t *testing.T, root string) {
			if err := os.Truncate(filepath.Join(root, filepath.FromSlash(prefix+"bundle/mllm.safetensors")), 10); err != nil {
				t.Fatal(err)
			}
		}, []string{"load checkpoint 1", "bundle/mllm.safetensors", "10 bytes"}, nil},
		{"a missing file", func(t *testing.T, root string) {
			if err := os.Remove(filepath.Join(root, filepath.FromSlash(prefix+"bundle/tokenizer.json"))); err != nil {
				t.Fatal(err)
			}
		}, []string{"load checkpoint 1", "bundle/tokenizer.json"}, storage.ErrNotExist},
		{"no manifest", func(t *testing.T, root string) {
			if err := os.Remove(filepath.Join(root, filepath.FromSlash(storage.CheckpointManifestKey("r", 1)))); err != nil {
				t.Fatal(err)
			}
		}, []string{"load checkpoint 1 of run r"}, storage.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := storagetest.Local(t)
			if _, err := checkpoint.Save(ctx, st, "r", 1, "e1-a1", b, tinyConfig(), nil, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			tt.damage(t, st.Dir())
			cache := t.TempDir()
			err := libtorch.Run(func() error {
				got, _, err := checkpoint.Load(ctx, st, "r", 1, cache, gotch.CPU)
				if err == nil {
					got.Drop()
				}
				return err
			})
			if err == nil {
				t.Fatal("damaged version loaded")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %q", err, s)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if _, err := os.Stat(filepath.Join(cache, "r", "000001", ".complete")); err == nil {
				t.Error("a damaged version was cached as complete")
			}
		})
	}
}

// TestFetchCachesACompleteCopy: a version fetched once is read from the
// cache afterwards, even when the store no longer holds it.
func TestFetchCachesACompleteCopy(t *testing.T) {
	ctx := context.Background()
	st := storagetest.Local(t)
	if _, err := checkpoint.Save(ctx, st, "r", 1, "e1-a1", newBundle(t, tinyConfig(), 1), tinyConfig(), nil, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	dir, err := checkpoint.Fetch(ctx, st, "r", 1, cache)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cache, "r", "000001"); dir != want {
		t.Errorf("fetched into %s, want %s", dir, want)
	}
	for _, f := range bundleFiles {
		if _, err := os.Stat(filepath.Join(dir, "bundle", f)); err != nil {
			t.Errorf("fetched copy: %v", err)
		}
	}
	if err := checkpoint.Delete(ctx, st, "r", 1); err != nil {
		t.Fatal(err)
	}
	again, err := checkpoint.Fetch(ctx, st, "r", 1, cache)
	if err != nil || again != dir {
		t.Errorf("second fetch: %s, %v; want the cached %s", again, err, dir)
	}
	if _, err := checkpoint.Fetch(ctx, st, "r", 1, t.TempDir()); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("fetch of a deleted version into a new cache: %v, want %v", err, storage.ErrNotExist)
	}
}

// TestDelete: Delete removes the manifest and every file of a version,
// and no other version's.
func TestDelete(t *testing.T) {
	ctx := context.Background()
	st := storagetest.Local(t)
	b := newBundle(t, tinyConfig(), 1)
	for v := 1; v <= 2; v++ {
		if _, err := checkpoint.Save(ctx, st, "r", v, "e1-a1", b, tinyConfig(), nil, t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	if err := (checkpoint.Versions{Store: st}).Delete(ctx, "r", 1); err != nil {
		t.Fatal(err)
	}
	if objs, err := st.List(ctx, storage.CheckpointPrefix("r", 1)); err != nil || len(objs) != 0 {
		t.Errorf("version 1 after delete: %d objects (%v)", len(objs), err)
	}
	if _, err := storage.ReadManifest(ctx, st, storage.CheckpointManifestKey("r", 1)); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("version 1 manifest after delete: %v", err)
	}
	m, err := storage.ReadManifest(ctx, st, storage.CheckpointManifestKey("r", 2))
	if err != nil {
		t.Fatalf("version 2 after deleting version 1: %v", err)
	}
	for _, o := range m.Objects {
		if err := storage.Verify(ctx, st, o); err != nil {
			t.Errorf("version 2 after deleting version 1: %v", err)
		}
	}
	// Deleting is idempotent: a retried gc finds some versions gone.
	if err := checkpoint.Delete(ctx, st, "r", 7); err != nil {
		t.Errorf("delete of a version never saved: %v", err)
	}
}

// TestImportBase: the base bundle is committed as version 0 as it is
// (dot files left out) and loads back; a folder that is not a valid bundle
// is refused, naming it, and commits nothing.
func TestImportBase(t *testing.T) {
	ctx := context.Background()
	c := tinyConfig()
	b := newBundle(t, c, 9)
	base := filepath.Join(t.TempDir(), "base")
	inTorch(t, func() error { return b.Save(base, 0, c) })
	if err := os.WriteFile(filepath.Join(base, ".complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st := storagetest.Local(t)
	m, err := checkpoint.Versions{Store: st, Base: base}.ImportBase(ctx, "r", 1)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range bundleFiles {
		want = append(want, "bundle/"+f)
	}
	if got := keysOf(m, storage.CheckpointFilesPrefix("r", 0, "e1-a1")); !slices.Equal(got, want) {
		t.Errorf("imported %v, want %v", got, want)
	}
	for _, f := range bundleFiles {
		src, err := os.ReadFile(filepath.Join(base, f))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.ReadFile(filepath.Join(st.Dir(), filepath.FromSlash(storage.CheckpointFilesPrefix("r", 0, "e1-a1")+"bundle/"+f)))
		if err != nil || string(dst) != string(src) {
			t.Errorf("%s: not copied as it is (%v)", f, err)
		}
	}
	got, _ := loadVersion(ctx, t, st, 0)
	if !equalParams(params(t, got), params(t, b)) {
		t.Error("imported weights differ from the base's")
	}

	// A damaged bundle: a weights file that does not match its manifest.
	bad := filepath.Join(t.TempDir(), "bad")
	inTorch(t, func() error { return b.Save(bad, 0, c) })
	if err := os.WriteFile(filepath.Join(bad, "dit.safetensors"), []byte("not weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{bad, filepath.Join(t.TempDir(), "missing")} {
		st := storagetest.Local(t)
		_, err := checkpoint.ImportBundle(ctx, st, "r", 0, "e1-a1", dir)
		if err == nil || !strings.Contains(err.Error(), "import "+dir) {
			t.Errorf("import of %s: error %v, want one naming the folder", dir, err)
		}
		if objs, _ := st.List(ctx, storage.RunPrefix("r")); len(objs) != 0 {
			t.Errorf("import of %s left %d objects", dir, len(objs))
		}
	}
}
