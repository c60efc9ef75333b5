package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/thinkgen/thinkgen/config"
)

// Store is a flat namespace of immutable objects named by slash-separated
// keys (see [ValidateKey]). Both implementations, [Local] and [S3], give the
// same guarantees:
//
//   - Put is atomic: a reader sees the whole new object or none of it (the
//     old one, or nothing), never a prefix of it.
//   - Get streams; it does not hold the object in memory.
//   - List returns every object whose key starts with the prefix, sorted by
//     key. A prefix is a string prefix, as in S3: "a/b" matches "a/b.txt"
//     and "a/b/c".
//   - Delete of a missing object is not an error.
//
// Errors for a missing object wrap [ErrNotExist]; errors for a refused key
// are a [*KeyError].
type Store interface {
	// Put writes the object key from body (read from its start to its end;
	// it is seeked, so a failed transfer can be replayed), replacing any
	// object of that key.
	Put(ctx context.Context, key string, body io.ReadSeeker) error
	// Create is Put that fails with an error wrapping ErrExist if the
	// object already exists; of two racing Creates, exactly one succeeds.
	Create(ctx context.Context, key string, body io.ReadSeeker) error
	// Replace is Put on a precondition (compare-and-swap): it writes the
	// object only if its current version is etag (an ObjectInfo.ETag), or,
	// for etag "", only if it does not exist; otherwise it fails with an
	// error wrapping ErrChanged and writes nothing. Of racing Replaces
	// from one version, at most one succeeds. It returns the new version.
	// Writers of a key use Replace only, never Put.
	Replace(ctx context.Context, key string, body io.ReadSeeker, etag string) (string, error)
	// Get opens the object for reading. The caller closes it.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat returns the object's size, modification time and version.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List returns the objects under a key prefix ("" lists everything).
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes the object.
	Delete(ctx context.Context, key string) error
	// String describes the store for logs; it never shows credentials.
	String() string
}

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
	// ETag names this version of the object: a rewrite changes it. It is
	// opaque (S3's ETag; a local store's file identity).
	ETag string
}

var (
	// ErrNotExist means the object does not exist.
	ErrNotExist = errors.New("thinkgen/storage: object does not exist")
	// ErrExist means Create found the object already there.
	ErrExist = errors.New("thinkgen/storage: object already exists")
	// ErrChanged means Replace found another version of the object than
	// the one it was to replace (or none, or one where none was expected).
	ErrChanged = errors.New("thinkgen/storage: object changed since it was read")
)

// Open opens the store that cfg names (see [ParseURI]): a local directory,
// created if missing, or an S3 bucket at cfg.Endpoint, which must exist
// and answer with the credentials of [LoadCredentials] before ctx is done.
func Open(ctx context.Context, cfg config.Storage) (Store, error) {
	loc, err := ParseURI(cfg.URI)
	if err != nil {
		return nil, err
	}
	if !loc.IsS3() {
		return NewLocal(loc.Dir)
	}
	creds, err := LoadCredentials(cfg)
	if err != nil {
		return nil, err
	}
	client, err := NewS3Client(cfg, creds)
	if err != nil {
		return nil, err
	}
	ok, err := client.BucketExists(ctx, loc.Bucket)
	if err != nil {
		return nil, fmt.Errorf("open s3 store %s at %s: %w", loc, client.EndpointURL().Host, err)
	}
	if !ok {
		return nil, fmt.Errorf("open s3 store %s at %s: bucket %q does not exist", loc, client.EndpointURL().Host, loc.Bucket)
	}
	return NewS3(client, loc.Bucket, loc.Prefix)
}

// ErrNoStore means a local store's directory does not exist
// (OpenExisting).
var ErrNoStore = errors.New("no such directory")

// OpenExisting opens the store that cfg names as Open does, but does not
// create a local store: one whose directory does not exist is an error
// wrapping ErrNoStore that names the directory. Tools that only read a
// store use it, so that a mistyped path is reported, not created empty.
func OpenExisting(ctx context.Context, cfg config.Storage) (Store, error) {
	loc, err := ParseURI(cfg.URI)
	if err != nil {
		return nil, err
	}
	if !loc.IsS3() {
		if _, err := os.Stat(loc.Dir); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", loc.Dir, ErrNoStore)
		}
	}
	return Open(ctx, cfg)
}

// sizeOf returns the number of bytes from body's start to its end and
// leaves body at its start.
func sizeOf(body io.ReadSeeker) (int64, error) {
	n, err := body.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	return n, nil
}
