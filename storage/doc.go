// Package storage keeps a run's data in an object store and commits it
// atomically: local directories ([Local], the embedded default) and
// S3-compatible buckets ([S3], on minio-go; MinIO in tests).
//
// # Stores
//
// A store is named by a URI: a directory ("store", "/data/thinkgen",
// "file:///data/thinkgen") or "s3://bucket/prefix" with the endpoint,
// region and TLS setting of config.Storage; [Open] picks the
// implementation; [OpenExisting], for tools that only read, refuses a
// local directory that does not exist instead of creating it. S3
// credentials come from a credentials file or the environment
// ([LoadCredentials]) and are never logged or printed.
//
// Every [Store] puts atomically (a reader never sees part of an object),
// streams gets, and lists by key prefix. Keys are clean relative paths;
// [ValidateKey] refuses "..", absolute paths, backslashes and control
// characters with a [*KeyError] naming the key.
//
// # Commits
//
// The objects of a step or a checkpoint form one unit, committed with a
// [Batch]. The caller's duties, in order:
//
//  1. Write every object of the unit (Batch.Put hashes and puts it;
//     Batch.Add records one a worker wrote and reported).
//  2. Batch.Commit: it checks each object's presence and size, then creates
//     the unit's manifest.json last, once ([ErrCommitted] if already there).
//  3. Read only through a committed [Manifest]: [Manifest.Fetch] checks
//     size and sha256 and fails with a [*ChecksumError] naming the key.
//
// Objects no committed manifest lists (a stale attempt's outputs, the
// leftovers of a failed write) are invisible to readers; [GC] deletes them,
// and the run's temporary files in a local store older than
// GCOptions.TempAge (left by a put that crashed).
// [StepManifestKey], [ShardKey] and [CheckpointManifestKey] give the key
// layout of docs/storage.md.
//
// Package storage/storagetest gives tests a local store and a real MinIO
// store (scripts/minio.sh) side by side.
package storage
