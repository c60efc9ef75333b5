// Package shards defines thinkgen's Arrow shard schemas and reads and
// writes shards: Arrow IPC files of record batches.
//
// # Schemas
//
// Each schema ([Rollout], [Reward], [Advantage], [Metrics]) pairs a Go row
// type with Arrow columns and carries its name and version in the Arrow
// schema's metadata ("thinkgen.schema", "thinkgen.schema_version").
// docs/storage.md documents every column. A reader refuses a shard of
// another schema or version, or one that lacks a column it reads or holds
// it with another type, with a [*SchemaError] naming the shard and column.
//
// # Writing
//
//  1. [NewWriter] (or [Put], which spools to a temporary file and hands it
//     to a [storage.Batch]) with the batch size and compression of
//     config.Storage.Compression.
//  2. Write rows; every BatchRows rows become one record batch.
//  3. Close, which writes the last batch and the footer.
//
// # Reading
//
// [Open] fetches a shard through its committed manifest, so its size and
// sha256 are checked before a row is decoded; [NewReader] reads any IPC
// file. Read returns one row at a time and holds one record batch in
// memory. ReadOptions.Columns projects: only those columns are decoded and
// required.
package shards
