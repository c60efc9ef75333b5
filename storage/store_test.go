package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/storagetest"
)

func put(t *testing.T, s storage.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, s storage.Store, key string) []byte {
	t.Helper()
	r, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func keys(infos []storage.ObjectInfo) []string {
	var out []string
	for _, i := range infos {
		out = append(out, i.Key)
	}
	return out
}

func TestStoreBasics(t *testing.T) {
	ctx := context.Background()
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		objects := map[string]string{
			"a/a":       "1",
			"a/b.txt":   "22",
			"a/b/c":     "333",
			"a/b/d/e":   "4444",
			"a/c":       "",
			"z":         "zz",
			"a/ünï/κ.x": "unicode",
		}
		for k, v := range objects {
			put(t, s, k, []byte(v))
		}
		for k, v := range objects {
			if got := string(get(t, s, k)); got != v {
				t.Errorf("Get(%q) = %q, want %q", k, got, v)
			}
			info, err := s.Stat(ctx, k)
			if err != nil || info.Key != k || info.Size != int64(len(v)) || time.Since(info.ModTime) > time.Hour {
				t.Errorf("Stat(%q) = %+v, %v; want size %d", k, info, err, len(v))
			}
		}
		listTests := []struct {
			prefix string
			want   []string
		}{
			{"", []string{"a/a", "a/b.txt", "a/b/c", "a/b/d/e", "a/c", "a/ünï/κ.x", "z"}},
			{"a/b", []string{"a/b.txt", "a/b/c", "a/b/d/e"}},
			{"a/b/", []string{"a/b/c", "a/b/d/e"}},
			{"a/c", []string{"a/c"}},
			{"a/x", nil},
			{"nothing/here/", nil},
		}
		for _, lt := range listTests {
			got, err := s.List(ctx, lt.prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", lt.prefix, err)
			}
			if fmt.Sprint(keys(got)) != fmt.Sprint(lt.want) {
				t.Errorf("List(%q) = %v, want %v", lt.prefix, keys(got), lt.want)
			}
			for _, info := range got {
				if info.Size != int64(len(objects[info.Key])) {
					t.Errorf("List(%q): %s has size %d, want %d", lt.prefix, info.Key, info.Size, len(objects[info.Key]))
				}
			}
		}

		put(t, s, "a/a", []byte("replaced"))
		if got := string(get(t, s, "a/a")); got != "replaced" {
			t.Errorf("after overwrite Get = %q", got)
		}
		if err := s.Delete(ctx, "a/a"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "a/a"); err != nil {
			t.Errorf("Delete of a missing object: %v", err)
		}
		for _, k := range []string{"a/a", "never", "a/b.txt/under-a-file"} {
			if _, err := s.Get(ctx, k); !errors.Is(err, storage.ErrNotExist) || !strings.Contains(err.Error(), k) {
				t.Errorf("Get(%q) error = %v, want ErrNotExist naming the key", k, err)
			}
			if _, err := s.Stat(ctx, k); !errors.Is(err, storage.ErrNotExist) {
				t.Errorf("Stat(%q) error = %v, want ErrNotExist", k, err)
			}
		}
		// "a/b" as a directory of the local store is not an object.
		if _, err := s.Stat(ctx, "a/b"); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Stat of a key prefix: %v", err)
		}
	})
}

func TestStoreBadKeys(t *testing.T) {
	ctx := context.Background()
	bad := []string{
		"", "/abs/path", "a/../b", "..", "../up", "a/..", "./a", "a/./b", "a//b", "a/", `a\b`, `..\..\x`,
		"a\x00b", "line\nbreak", "tab\tkey", "bell\x07", "del\x7f", "a/.thinkgen-tmp-123", "bad-utf8-\xff",
	}
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		for _, key := range bad {
			ops := map[string]error{
				"Put":    s.Put(ctx, key, strings.NewReader("x")),
				"Create": s.Create(ctx, key, strings.NewReader("x")),
				"Delete": s.Delete(ctx, key),
			}
			_, ops["Get"] = s.Get(ctx, key)
			_, ops["Stat"] = s.Stat(ctx, key)
			for op, err := range ops {
				var ke *storage.KeyError
				if !errors.As(err, &ke) || ke.Key != key || !strings.Contains(err.Error(), fmt.Sprintf("%q", key)) {
					t.Errorf("%s(%q) error = %v, want a KeyError naming the key", op, key, err)
				}
			}
		}
		for _, prefix := range []string{"../", "/x", "a//", `a\`} {
			if _, err := s.List(ctx, prefix); err == nil {
				t.Errorf("List(%q) succeeded", prefix)
			}
		}
		if got, err := s.List(ctx, ""); err != nil || len(got) != 0 {
			t.Errorf("bad keys left objects: %v, %v", keys(got), err)
		}
	})
}

func TestStoreCreate(t *testing.T) {
	ctx := context.Background()
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		if err := s.Create(ctx, "m/manifest.json", strings.NewReader("first")); err != nil {
			t.Fatal(err)
		}
		err := s.Create(ctx, "m/manifest.json", strings.NewReader("second"))
		if !errors.Is(err, storage.ErrExist) || !strings.Contains(err.Error(), "m/manifest.json") {
			t.Fatalf("second Create error = %v, want ErrExist naming the key", err)
		}
		if got := string(get(t, s, "m/manifest.json")); got != "first" {
			t.Fatalf("Create replaced the object: %q", got)
		}
		// Racing creators: exactly one wins, and its bytes are the object.
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.Create(ctx, "race", strings.NewReader(fmt.Sprintf("writer %d", i)))
			}()
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("writers %d and %d both created the object", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, storage.ErrExist):
				t.Fatalf("writer %d: %v", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no writer created the object")
		}
		if got, want := string(get(t, s, "race")), fmt.Sprintf("writer %d", winner); got != want {
			t.Fatalf("object = %q, want the winner's %q", got, want)
		}
	})
}

// TestStoreLarge puts an object larger than minio-go's multipart part size
// (16 MiB), so the S3 store uploads it in parts.
func TestStoreLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	data := make([]byte, 20<<20+12345)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	want := sha256.Sum256(data)
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		// An *os.File, as the shard writer hands over its spool file.
		f, err := os.CreateTemp(t.TempDir(), "big")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.Write(data)
		if err := s.Put(context.Background(), "big/object", f); err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(get(t, s, "big/object")); got != want {
			t.Fatal("large object read back differs")
		}
	})
}

// failingReader fails after n bytes, like a writer that dies mid-object.
// It is only an io.ReadSeeker (no ReadAt), so every store must read it.
type failingReader struct {
	r *bytes.Reader
	n int64
}

func (f *failingReader) Seek(off int64, whence int) (int64, error) { return f.r.Seek(off, whence) }

func (f *failingReader) Read(p []byte) (int, error) {
	pos, _ := f.r.Seek(0, io.SeekCurrent)
	if pos >= f.n {
		return 0, errors.New("disk on fire")
	}
	if int64(len(p)) > f.n-pos {
		p = p[:f.n-pos]
	}
	return f.r.Read(p)
}

func TestStorePutAtomic(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		old := bytes.Repeat([]byte("old "), 50_000)
		put(t, s, "obj", old)
		// A failed write leaves the old object, and no new one.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		body := bytes.Repeat([]byte("new "), 100_000)
		if err := s.Put(ctx, "obj", &failingReader{bytes.NewReader(body), 100_000}); err == nil {
			t.Fatal("Put with a failing body succeeded")
		}
		if err := s.Put(ctx, "fresh", &failingReader{bytes.NewReader(body), 1000}); err == nil {
			t.Fatal("Put with a failing body succeeded")
		}
		if got := get(t, s, "obj"); !bytes.Equal(got, old) {
			t.Fatalf("failed Put changed the object (%d bytes)", len(got))
		}
		list, err := s.List(context.Background(), "")
		if err != nil || fmt.Sprint(keys(list)) != "[obj]" {
			t.Fatalf("after failed Puts List = %v, %v; want [obj]", keys(list), err)
		}

		// Readers racing a writer see one whole version or the other.
		versions := [][]byte{old, body, bytes.Repeat([]byte("third"), 70_000)}
		sums := map[[32]byte]bool{}
		for _, v := range versions {
			sums[sha256.Sum256(v)] = true
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.Put(context.Background(), "obj", bytes.NewReader(versions[i%len(versions)])); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		defer wg.Wait()
		defer close(stop)
		for range 30 {
			if got := get(t, s, "obj"); !sums[sha256.Sum256(got)] {
				t.Errorf("reader saw a partial or mixed object of %d bytes", len(got))
			}
		}
	})
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir() + "/new/store"
	s, err := storage.Open(ctx, storagetestConfigLocal(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*storage.Local); !ok {
		t.Fatalf("Open(%q) = %T, want *storage.Local", dir, s)
	}
	put(t, s, "x/y", []byte("z"))
	if b, err := os.ReadFile(dir + "/x/y"); err != nil || string(b) != "z" {
		t.Fatalf("local object file: %q, %v", b, err)
	}

	t.Run("minio", func(t *testing.T) {
		ms := storagetest.MinIO(t) // makes the bucket
		bucket := strings.TrimPrefix(strings.Fields(ms.String())[0], "s3://")
		bucket = strings.TrimSuffix(bucket, "/")
		cfg, _ := storagetest.Config(t, bucket)
		cfg.URI = "s3://" + bucket + "/some/prefix"
		s, err := storage.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		put(t, s, "k", []byte("v"))
		if got := string(get(t, ms, "some/prefix/k")); got != "v" {
			t.Fatalf("prefixed object = %q", got)
		}
		if strings.Contains(s.String(), os.Getenv("THINKGEN_TEST_S3_SECRET_KEY")) {
			t.Fatalf("String() shows the secret key: %s", s)
		}
		cfg.URI = "s3://no-such-bucket-" + bucket[len(bucket)-12:]
		if _, err := storage.Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("Open of a missing bucket: %v", err)
		}
	})
}

func TestOpenExisting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	missing := dir + "/no/store"
	if _, err := storage.OpenExisting(ctx, storagetestConfigLocal(missing)); !errors.Is(err, storage.ErrNoStore) || !strings.Contains(err.Error(), missing) {
		t.Errorf("OpenExisting of a missing directory: %v, want ErrNoStore naming %s", err, missing)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenExisting created %s (%v)", missing, err)
	}
	s, err := storage.OpenExisting(ctx, storagetestConfigLocal(dir))
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := s.(*storage.Local); !ok || l.Dir() != dir {
		t.Errorf("OpenExisting(%q) = %v, want the local store there", dir, s)
	}
}

func storagetestConfigLocal(dir string) config.Storage { return config.Storage{URI: dir} }
