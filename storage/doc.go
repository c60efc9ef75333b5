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
// creates once (Create: a data object is never replaced), replaces on a
// precondition (Replace: compare-and-swap on the object's version, for
// run.json and the run lease), streams gets, and lists by key prefix. Keys are clean relative paths;
// [ValidateKey] refuses "..", absolute paths, backslashes and control
// characters with a [*KeyError] naming the key.
//
// # Commits
//
// The objects of a step or a checkpoint form one unit, committed with a
// [Batch]. The caller's duties, in order:
//
//  1. Write every object of the unit (Batch.Put hashes it and creates it,
//     once; Batch.Add records one a worker wrote and reported; AddVerified
//     checks such a claim at once).
//  2. Batch.Commit: it checks the sha256 of each reported object not yet
//     checked and the presence and size of the rest, then creates the
//     unit's manifest.json last, once ([ErrCommitted] if already there).
//  3. Read only through a committed [Manifest]: [Manifest.Fetch] checks
//     size and sha256 and fails with a [*ChecksumError] naming the key.
//
// Objects no committed manifest lists (a stale attempt's outputs, the
// leftovers of a failed write) are invisible to readers; [GC] deletes them,
// and the run's temporary files in a local store older than
// GCOptions.TempAge (left by a put that crashed).
// [StepManifestKey], [ShardKey], [CheckpointFilesPrefix] and
// [CheckpointManifestKey] give the key layout of docs/storage.md; every key
// a writer makes carries its [AttemptTag] (the run's epoch and the
// attempt), so no key is written twice.
//
// Package storage/storagetest gives tests a local store and a real MinIO
// store (scripts/minio.sh) side by side.
package storage
