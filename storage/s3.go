package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/minio/minio-go/v7"
)

// S3 is a store in an S3 bucket (MinIO, AWS S3 or another compatible
// service), under an optional key prefix.
//
// Its one retry layer is minio-go's own (exponential backoff with jitter,
// bounded, stopped by the context): Put hands minio-go the seekable body so
// a failed request or part is replayed from the right offset. Objects larger
// than minio-go's part size are uploaded as multipart uploads, which are
// aborted on error; an S3 object becomes visible only when its PUT or
// CompleteMultipartUpload succeeds, so readers never see a partial object.
type S3 struct {
	client *minio.Client
	bucket string
	prefix string // "" or ends with "/"
}

var _ Store = (*S3)(nil)

// NewS3 returns the store in bucket under prefix ("" or ending in "/"),
// reached through client (see [NewS3Client]).
func NewS3(client *minio.Client, bucket, prefix string) (*S3, error) {
	if prefix != "" {
		if err := validatePrefix(prefix); err != nil || !strings.HasSuffix(prefix, "/") {
			return nil, fmt.Errorf("s3 store prefix %q: want a clean key prefix ending in /", prefix)
		}
	}
	return &S3{client: client, bucket: bucket, prefix: prefix}, nil
}

func (s *S3) String() string {
	return "s3://" + s.bucket + "/" + s.prefix + " at " + s.client.EndpointURL().Host
}

// Put implements [Store].
func (s *S3) Put(ctx context.Context, key string, body io.ReadSeeker) error {
	if _, err := s.put(ctx, key, body, "", ""); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Create implements [Store] with a conditional PUT (If-None-Match: *),
// which MinIO and AWS S3 evaluate atomically.
func (s *S3) Create(ctx context.Context, key string, body io.ReadSeeker) error {
	if _, err := s.put(ctx, key, body, "*", ""); err != nil {
		if errors.Is(err, ErrChanged) {
			err = ErrExist
		}
		return fmt.Errorf("create %s: %w", key, err)
	}
	return nil
}

// Replace implements [Store] with a conditional PUT: If-Match: etag, or
// If-None-Match: * for etag "".
func (s *S3) Replace(ctx context.Context, key string, body io.ReadSeeker, etag string) (string, error) {
	noneMatch := ""
	if etag == "" {
		noneMatch = "*"
	}
	tag, err := s.put(ctx, key, body, noneMatch, etag)
	if err != nil {
		return "", fmt.Errorf("replace %s: %w", key, err)
	}
	return tag, nil
}

// put writes key (if no object matches noneMatch, if the object's ETag is
// match, when they are set) and returns its new ETag; a failed
// precondition is ErrChanged.
func (s *S3) put(ctx context.Context, key string, body io.ReadSeeker, noneMatch, match string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	size, err := sizeOf(body)
	if err != nil {
		return "", err
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	if noneMatch != "" {
		opts.SetMatchETagExcept(noneMatch)
	}
	if match != "" {
		opts.SetMatchETag(match)
	}
	info, err := s.client.PutObject(ctx, s.bucket, s.prefix+key, body, size, opts)
	if err != nil && (noneMatch != "" || match != "") {
		r := minio.ToErrorResponse(err)
		if r.StatusCode == http.StatusPreconditionFailed || r.Code == "PreconditionFailed" || (match != "" && r.Code == "NoSuchKey") {
			return "", ErrChanged
		}
	}
	if err != nil {
		return "", s.wrap(err)
	}
	return info.ETag, nil
}

// Get implements [Store]. It sends one GET and streams its body: the
// reader sees the object as it was when the GET was answered, whole, even
// if it is replaced meanwhile (and an error, never other bytes, if the
// connection breaks).
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	body, _, _, err := minio.Core{Client: s.client}.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, s.wrap(err))
	}
	return body, nil
}

// Stat implements [Store].
func (s *S3) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat: %w", err)
	}
	info, err := s.client.StatObject(ctx, s.bucket, s.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, s.wrap(err))
	}
	return ObjectInfo{Key: key, Size: info.Size, ModTime: info.LastModified, ETag: info.ETag}, nil
}

// List implements [Store].
func (s *S3) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	var out []ObjectInfo
	for info := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if info.Err != nil {
			return nil, fmt.Errorf("list %q in %s: %w", prefix, s, s.wrap(info.Err))
		}
		out = append(out, ObjectInfo{Key: strings.TrimPrefix(info.Key, s.prefix), Size: info.Size, ModTime: info.LastModified, ETag: info.ETag})
	}
	// S3 lists in key order already (UTF-8 binary order, as Go compares).
	return out, nil
}

// Delete implements [Store].
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("delete %s: %w", key, s.wrap(err))
	}
	return nil
}

// wrap maps S3's "no such key" to ErrNotExist and names the bucket on
// other S3 errors. minio-go's errors are inspected before any wrapping,
// since minio.ToErrorResponse does not see through %w.
func (s *S3) wrap(err error) error {
	if err == nil {
		return nil
	}
	r := minio.ToErrorResponse(err)
	switch {
	case r.Code == "NoSuchKey" || (r.StatusCode == http.StatusNotFound && r.Code != "NoSuchBucket"):
		return ErrNotExist
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("%s: %w", s, err)
}
