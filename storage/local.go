package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Local is a store in a local directory: the key "a/b/c" is the file
// dir/a/b/c. It is the embedded default, used when no S3 endpoint is
// configured.
//
// Put writes a temporary file in the object's own directory, fsyncs it,
// renames it over the final name and fsyncs the directory, so a crash
// leaves the old object or the new one, never a partial one. Temporary
// files left by a crash are named ".thinkgen-tmp-*"; List skips them.
//
// Unlike S3, a directory cannot hold both an object "a/b" and an object
// "a/b/c": the second Put fails. thinkgen's key layout never does this.
type Local struct {
	dir string
}

var _ Store = (*Local)(nil)

// NewLocal returns the store in dir, creating the directory if needed.
func NewLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open local store: %w", err)
	}
	return &Local{dir: dir}, nil
}

func (l *Local) String() string { return "local directory " + l.dir }

// Dir returns the store's directory.
func (l *Local) Dir() string { return l.dir }

func (l *Local) path(key string) string {
	return filepath.Join(l.dir, filepath.FromSlash(key))
}

// Put implements [Store].
func (l *Local) Put(ctx context.Context, key string, body io.ReadSeeker) error {
	if _, err := l.put(ctx, key, body, writeAny, ""); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Create implements [Store]. The final name is made with link(2), which
// fails if it exists, so of two racing Creates exactly one wins.
func (l *Local) Create(ctx context.Context, key string, body io.ReadSeeker) error {
	if _, err := l.put(ctx, key, body, writeNew, ""); err != nil {
		return fmt.Errorf("create %s: %w", key, err)
	}
	return nil
}

// Replace implements [Store]. With etag "" it is Create. Otherwise it
// holds an exclusive flock(2) on the object's directory while it compares
// the object's version with etag and renames the new file over it, so
// Replaces of one key by processes of this machine are serialised.
func (l *Local) Replace(ctx context.Context, key string, body io.ReadSeeker, etag string) (string, error) {
	mode := writeIf
	if etag == "" {
		mode = writeNew
	}
	tag, err := l.put(ctx, key, body, mode, etag)
	if errors.Is(err, ErrExist) {
		err = ErrChanged
	}
	if err != nil {
		return "", fmt.Errorf("replace %s: %w", key, err)
	}
	return tag, nil
}

// writeMode is how put treats an existing object.
type writeMode int

const (
	writeAny writeMode = iota // replace it
	writeNew                  // fail with ErrExist
	writeIf                   // replace it if its version is the etag given, else fail with ErrChanged
)

// put writes key through a temporary file and returns the new version.
func (l *Local) put(ctx context.Context, key string, body io.ReadSeeker, mode writeMode, etag string) (tag string, err error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	final := l.path(key)
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if mode == writeNew {
		if _, err := os.Lstat(final); err == nil {
			return "", ErrExist
		}
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = io.Copy(f, contextReader{ctx, body}); err != nil {
		return "", err
	}
	if err = f.Sync(); err != nil {
		return "", err
	}
	if err = f.Close(); err != nil {
		return "", err
	}
	switch mode {
	case writeNew:
		if err = os.Link(tmp, final); err != nil {
			if errors.Is(err, fs.ErrExist) {
				err = ErrExist
			}
			return "", err
		}
		os.Remove(tmp)
	case writeIf:
		unlock, lerr := lockDir(dir)
		if lerr != nil {
			return "", lerr
		}
		defer unlock()
		st, serr := os.Stat(final)
		if serr != nil || fileETag(st) != etag {
			err = ErrChanged
			if serr != nil && !errors.Is(serr, fs.ErrNotExist) {
				err = serr
			}
			return "", err
		}
		if err = os.Rename(tmp, final); err != nil {
			return "", err
		}
	default:
		if err = os.Rename(tmp, final); err != nil {
			return "", err
		}
	}
	if err = syncDir(dir); err != nil {
		return "", err
	}
	st, err := os.Stat(final)
	if err != nil {
		return "", err
	}
	return fileETag(st), nil
}

// lockDir takes an exclusive flock on dir and returns its release.
func lockDir(dir string) (func(), error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX); err != nil {
		d.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { d.Close() }, nil // closing releases the lock
}

// fileETag is a local object's version: its file's identity (a put makes
// a new file, renamed into place), modification time and size.
func fileETag(st fs.FileInfo) string {
	var ino uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = uint64(sys.Ino)
	}
	return fmt.Sprintf("%x-%x-%x", ino, st.ModTime().UnixNano(), st.Size())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// contextReader stops a copy when its context is done.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Get implements [Store].
func (l *Local) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	f, err := os.Open(l.path(key))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, notExist(err))
	}
	if st, err := f.Stat(); err != nil || st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", key, ErrNotExist)
	}
	return f, nil
}

// Stat implements [Store].
func (l *Local) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat: %w", err)
	}
	st, err := os.Stat(l.path(key))
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, notExist(err))
	}
	if st.IsDir() {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, ErrNotExist)
	}
	return ObjectInfo{Key: key, Size: st.Size(), ModTime: st.ModTime(), ETag: fileETag(st)}, nil
}

// List implements [Store]. It walks only the deepest directory the prefix
// names.
func (l *Local) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	start := l.dir
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = l.path(prefix[:i])
	}
	var out []ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		rel, err := filepath.Rel(l.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // deleted while listing
				return nil
			}
			return err
		}
		out = append(out, ObjectInfo{Key: key, Size: info.Size(), ModTime: info.ModTime(), ETag: fileETag(info)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q in %s: %w", prefix, l.dir, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// staleTemps deletes (unless dryRun) the temporary files under the key
// prefix dir (ending in "/") last modified before cutoff: the partial
// objects of Puts that crashed, which List never shows. It returns them
// sorted, named by their paths relative to the store's directory.
func (l *Local) staleTemps(ctx context.Context, dir string, cutoff time.Time, dryRun bool) ([]ObjectInfo, error) {
	var out []ObjectInfo
	err := filepath.WalkDir(l.path(strings.TrimSuffix(dir, "/")), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) { // its Put just finished
			return nil
		}
		if err != nil {
			return err
		}
		if !info.ModTime().Before(cutoff) {
			return nil
		}
		rel, err := filepath.Rel(l.dir, p)
		if err != nil {
			return err
		}
		if !dryRun {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		out = append(out, ObjectInfo{Key: filepath.ToSlash(rel), Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("remove stale temporary files under %s: %w", dir, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete implements [Store].
func (l *Local) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := os.Remove(l.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// notExist turns "no such file" (or a path through a file) into ErrNotExist.
func notExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return ErrNotExist
	}
	return err
}
