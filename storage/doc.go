// Package storage says where a run's data lives and reaches it: local
// directories and S3-compatible object stores (MinIO in tests).
//
// A store is named by a URI: a directory ("runs", "/data/thinkgen",
// "file:///data/thinkgen") or "s3://bucket/prefix" with the endpoint,
// region and TLS setting of config.Storage. S3 credentials come from a
// credentials file or the environment and are never logged or printed.
package storage
