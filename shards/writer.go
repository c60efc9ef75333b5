package shards

import (
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// DefaultBatchRows is the record-batch size of a zero WriterOptions.
const DefaultBatchRows = 256

// WriterOptions tune a [Writer].
type WriterOptions struct {
	// BatchRows is the number of rows per record batch; zero means
	// DefaultBatchRows. A reader holds one batch in memory at a time.
	BatchRows int
	// Compression of the IPC buffers: "" or "none", "lz4" (LZ4 frame) or
	// "zstd" (config.Storage.Compression).
	Compression string
}

// Writer writes rows of type R to an Arrow IPC file.
type Writer[R any] struct {
	name   string
	schema *Schema[R]
	fw     *ipc.FileWriter
	rb     *array.RecordBuilder
	rows   int // in the builder
	batch  int
	err    error
}

// NewWriter starts a shard named name (for errors; usually its key) on w.
// The caller must Close the writer to flush the last batch and the footer.
func NewWriter[R any](w io.Writer, name string, s *Schema[R], opts WriterOptions) (*Writer[R], error) {
	batch := opts.BatchRows
	if batch == 0 {
		batch = DefaultBatchRows
	}
	if batch < 0 {
		return nil, fmt.Errorf("shard %s: batch rows %d: want >= 0", name, batch)
	}
	mem := memory.NewGoAllocator()
	ipcOpts := []ipc.Option{ipc.WithSchema(s.arrow), ipc.WithAllocator(mem)}
	switch opts.Compression {
	case "", "none":
	case "lz4":
		ipcOpts = append(ipcOpts, ipc.WithLZ4())
	case "zstd":
		ipcOpts = append(ipcOpts, ipc.WithZstd())
	default:
		return nil, fmt.Errorf("shard %s: compression %q: want none, lz4 or zstd", name, opts.Compression)
	}
	fw, err := ipc.NewFileWriter(&positionWriter{w: w}, ipcOpts...)
	if err != nil {
		return nil, fmt.Errorf("write shard %s: %w", name, err)
	}
	return &Writer[R]{name: name, schema: s, fw: fw, rb: array.NewRecordBuilder(mem, s.arrow), batch: batch}, nil
}

// Write appends one row; a full batch is written out.
func (w *Writer[R]) Write(row *R) error {
	if w.err != nil {
		return w.err
	}
	for i, c := range w.schema.cols {
		c.append(w.rb.Field(i), row)
	}
	w.rows++
	if w.rows >= w.batch {
		return w.flush()
	}
	return nil
}

func (w *Writer[R]) flush() error {
	if w.rows == 0 {
		return nil
	}
	rec := w.rb.NewRecord()
	defer rec.Release()
	w.rows = 0
	if err := w.fw.Write(rec); err != nil {
		w.err = fmt.Errorf("write shard %s: %w", w.name, err)
	}
	return w.err
}

// Close writes the last batch and the file footer. It does not close the
// underlying writer.
func (w *Writer[R]) Close() error {
	defer w.rb.Release()
	if err := w.flush(); err != nil {
		w.fw.Close()
		return err
	}
	if err := w.fw.Close(); err != nil {
		return fmt.Errorf("write shard %s: %w", w.name, err)
	}
	return nil
}

// positionWriter gives the IPC file writer the one kind of Seek it uses,
// asking for the current position, so that a shard can be written to any
// io.Writer (a pipe, a hash, a buffer), not only a file.
type positionWriter struct {
	w   io.Writer
	pos int64
}

func (p *positionWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.pos += int64(n)
	return n, err
}

func (p *positionWriter) Seek(offset int64, whence int) (int64, error) {
	if offset != 0 || whence != io.SeekCurrent {
		return 0, errors.New("thinkgen/shards: shard writer cannot seek")
	}
	return p.pos, nil
}
