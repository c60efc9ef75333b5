package shards

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// ReadOptions tune a [Reader].
type ReadOptions struct {
	// Columns projects the shard: only these columns are decoded into rows
	// (the others keep their zero values) and only these need to be in the
	// shard. Empty means every column of the schema.
	Columns []string
}

// Reader reads rows of type R from an Arrow IPC file, one record batch at
// a time: memory holds the current batch, never the whole shard.
type Reader[R any] struct {
	name   string
	schema *Schema[R]
	fr     *ipc.FileReader
	// proj[i] is the schema column index of the i-th read column, and
	// fileCol[i] its index in the file.
	proj, fileCol []int
	next          int // next batch
	rec           arrow.Record
	row           int       // next row of rec
	closer        io.Closer // the fetched file, for Open
	closed        bool
}

// NewReader opens the shard named name (for errors) on r and checks its
// schema against s: the same schema name and version in the metadata, and
// every projected column present with the right type. Any mismatch is a
// [*SchemaError] naming the shard and the column.
func NewReader[R any](r ipc.ReadAtSeeker, name string, s *Schema[R], opts ReadOptions) (rd *Reader[R], err error) {
	defer recoverTo(&err, name)
	fr, err := ipc.NewFileReader(r, ipc.WithAllocator(memory.NewGoAllocator()))
	if err != nil {
		return nil, fmt.Errorf("read shard %s: %w", name, err)
	}
	rd = &Reader[R]{name: name, schema: s, fr: fr}
	if err := rd.check(opts.Columns); err != nil {
		fr.Close()
		return nil, err
	}
	return rd, nil
}

func (rd *Reader[R]) check(columns []string) error {
	fs := rd.fr.Schema()
	md := fs.Metadata()
	name, version := md.FindKey(MetaSchema), md.FindKey(MetaVersion)
	if name < 0 || version < 0 {
		return &SchemaError{Shard: rd.name, Reason: fmt.Sprintf("no %s / %s metadata: not a thinkgen shard", MetaSchema, MetaVersion)}
	}
	if got := md.Values()[name]; got != rd.schema.Name {
		return &SchemaError{Shard: rd.name, Reason: fmt.Sprintf("schema %q, want %q", got, rd.schema.Name)}
	}
	if got := md.Values()[version]; got != strconv.Itoa(rd.schema.Version) {
		return &SchemaError{Shard: rd.name, Reason: fmt.Sprintf("unknown %s schema version %q (this build reads version %d)", rd.schema.Name, got, rd.schema.Version)}
	}
	if len(columns) == 0 {
		columns = rd.schema.Columns()
	}
	for _, col := range columns {
		si, ok := rd.schema.column(col)
		if !ok {
			return &SchemaError{Shard: rd.name, Column: col, Reason: fmt.Sprintf("not a column of the %s schema", rd.schema.Name)}
		}
		idx := fs.FieldIndices(col)
		if len(idx) == 0 {
			return &SchemaError{Shard: rd.name, Column: col, Reason: "missing"}
		}
		if len(idx) > 1 {
			return &SchemaError{Shard: rd.name, Column: col, Reason: "appears more than once"}
		}
		want, got := rd.schema.cols[si].field.Type, fs.Field(idx[0]).Type
		if !arrow.TypeEqual(want, got) {
			return &SchemaError{Shard: rd.name, Column: col, Reason: fmt.Sprintf("type %s, want %s", got, want)}
		}
		rd.proj = append(rd.proj, si)
		rd.fileCol = append(rd.fileCol, idx[0])
	}
	return nil
}

// Read fills row with the next row and returns io.EOF after the last one.
// Unprojected fields of row are set to their zero values.
func (rd *Reader[R]) Read(row *R) (err error) {
	defer recoverTo(&err, rd.name)
	if rd.closed {
		return errClosed
	}
	for rd.rec == nil || rd.row >= int(rd.rec.NumRows()) {
		if rd.rec != nil {
			rd.rec.Release()
			rd.rec = nil
		}
		if rd.next >= rd.fr.NumRecords() {
			return io.EOF
		}
		rec, err := rd.fr.RecordAt(rd.next)
		if err != nil {
			return fmt.Errorf("read shard %s: batch %d: %w", rd.name, rd.next, err)
		}
		rd.rec, rd.row = rec, 0
		rd.next++
	}
	var zero R
	*row = zero
	for i, si := range rd.proj {
		col := rd.rec.Column(rd.fileCol[i])
		if col.IsNull(rd.row) && !rd.schema.cols[si].field.Nullable {
			return &SchemaError{Shard: rd.name, Column: rd.schema.cols[si].field.Name, Reason: fmt.Sprintf("null in batch %d row %d of a non-nullable column", rd.next-1, rd.row)}
		}
		rd.schema.cols[si].read(col, rd.row, row)
	}
	rd.row++
	return nil
}

// ReadAll reads the rows left, in order, up to the end of the shard.
func (rd *Reader[R]) ReadAll() ([]R, error) {
	var out []R
	for {
		var r R
		err := rd.Read(&r)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}

// Close releases the reader. It closes the underlying file only if the
// reader came from [Open].
func (rd *Reader[R]) Close() error {
	if rd.closed {
		return nil
	}
	rd.closed = true
	if rd.rec != nil {
		rd.rec.Release()
		rd.rec = nil
	}
	err := rd.fr.Close()
	if rd.closer != nil {
		err = errors.Join(err, rd.closer.Close())
	}
	return err
}

// recoverTo turns a panic of the Arrow decoder (it panics on some
// malformed files) into an error naming the shard.
func recoverTo(err *error, name string) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("read shard %s: malformed Arrow data: %v", name, p)
	}
}
