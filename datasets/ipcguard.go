package datasets

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// The Arrow reader sizes some slices from lengths it reads out of the
// file's FlatBuffers metadata without checking them against the bytes
// that hold them (schemaFromFB makes one arrow.Field per claimed field:
// a mutated footer of 9 KB claimed enough fields for 4.4 GB), and those
// slices bypass the reader's allocator. checkIPCMetadata walks the
// footer and each record batch's message first, refusing any vector that
// runs past its buffer, and refuses compressed record batches: thinkgen
// writes its dataset files uncompressed, and a decompressor sizes its
// window from the stream, outside the allocator's cap.
//
// The layouts walked are Arrow's File.fbs, Schema.fbs and Message.fbs
// (format/ in the Arrow repository); slot i of a table is the i-th field
// of its schema.

// FlatBuffers slots read here.
const (
	footerSchema, footerDictionaries, footerRecordBatches = 1, 2, 3
	schemaFields, schemaCustomMetadata                    = 1, 2
	fieldTypeType, fieldType, fieldChildren, fieldMeta    = 2, 3, 5, 6
	unionTypeIDs                                          = 1
	messageHeaderType, messageHeader, messageMeta         = 1, 2, 4
	dictionaryBatchData                                   = 1
	recordBatchCompression                                = 3
)

// Union values read here (Schema.fbs's Type and Message.fbs's MessageHeader).
const (
	typeUnion                    = 14
	headerDictionaryBatch        = 2
	headerRecordBatch            = 3
	blockSize                    = 24 // File.fbs's Block struct
	offsetSize                   = 4  // a vector element that is a table
	ipcContinuation       uint32 = 0xFFFFFFFF
)

// flatTable is a FlatBuffers table at pos in buf, read with every offset
// checked against buf.
type flatTable struct {
	buf []byte
	pos int
}

func (t flatTable) u16(at int) (int, error) {
	if at < 0 || at+2 > len(t.buf) {
		return 0, fmt.Errorf("offset %d is outside the %d-byte buffer", at, len(t.buf))
	}
	return int(binary.LittleEndian.Uint16(t.buf[at:])), nil
}

func (t flatTable) u32(at int) (int, error) {
	if at < 0 || at+4 > len(t.buf) {
		return 0, fmt.Errorf("offset %d is outside the %d-byte buffer", at, len(t.buf))
	}
	return int(binary.LittleEndian.Uint32(t.buf[at:])), nil
}

// field returns the position of slot's value, or -1 when the table does
// not store it.
func (t flatTable) field(slot int) (int, error) {
	soff, err := t.u32(t.pos)
	if err != nil {
		return 0, err
	}
	vt := t.pos - int(int32(soff))
	vtLen, err := t.u16(vt)
	if err != nil {
		return 0, fmt.Errorf("vtable: %w", err)
	}
	entry := 4 + 2*slot
	if entry+2 > vtLen {
		return -1, nil
	}
	off, err := t.u16(vt + entry)
	if err != nil || off == 0 {
		return -1, err
	}
	return t.pos + off, nil
}

// table returns the table slot points to; ok is false when it is absent.
func (t flatTable) table(slot int) (sub flatTable, ok bool, err error) {
	at, err := t.field(slot)
	if err != nil || at < 0 {
		return flatTable{}, false, err
	}
	off, err := t.u32(at)
	if err != nil {
		return flatTable{}, false, err
	}
	return flatTable{t.buf, at + off}, true, nil
}

// byteSlot returns the byte stored at slot, 0 when absent.
func (t flatTable) byteSlot(slot int) (byte, error) {
	at, err := t.field(slot)
	if err != nil || at < 0 {
		return 0, err
	}
	if at >= len(t.buf) {
		return 0, fmt.Errorf("offset %d is outside the %d-byte buffer", at, len(t.buf))
	}
	return t.buf[at], nil
}

// vector returns the start and length of the vector at slot, whose
// elements take elem bytes each, refusing one that runs past the buffer.
func (t flatTable) vector(slot, elem int) (start, n int, err error) {
	at, err := t.field(slot)
	if err != nil || at < 0 {
		return 0, 0, err
	}
	off, err := t.u32(at)
	if err != nil {
		return 0, 0, err
	}
	if n, err = t.u32(at + off); err != nil {
		return 0, 0, err
	}
	start = at + off + 4
	if n > (len(t.buf)-start)/elem {
		return 0, 0, fmt.Errorf("a vector claims %d elements of %d bytes where %d bytes remain", n, elem, len(t.buf)-start)
	}
	return start, n, nil
}

// element returns the table the i-th offset of a vector at start points to.
func (t flatTable) element(start, i int) (flatTable, error) {
	at := start + offsetSize*i
	off, err := t.u32(at)
	if err != nil {
		return flatTable{}, err
	}
	return flatTable{t.buf, at + off}, nil
}

// checkIPCMetadata checks the metadata of the Arrow IPC file r of size
// bytes before the Arrow reader reads it (see the comment at the top of
// this file). A file too short or without the footer's magic passes: the
// Arrow reader refuses it with its own error.
func checkIPCMetadata(r io.ReaderAt, size int64) error {
	tail := make([]byte, 4+len(arrowMagic))
	if size < int64(2*len(arrowMagic)+4) {
		return nil
	}
	if _, err := r.ReadAt(tail, size-int64(len(tail))); err != nil {
		return fmt.Errorf("read footer: %w", err)
	}
	n := int64(binary.LittleEndian.Uint32(tail))
	if !bytes.Equal(tail[4:], arrowMagic) || n <= 0 || n+int64(len(tail)+len(arrowMagic)) > size {
		return nil
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, size-int64(len(tail))-n); err != nil {
		return fmt.Errorf("read footer: %w", err)
	}
	root, err := flatTable{buf: buf}.u32(0)
	if err != nil {
		return fmt.Errorf("footer: %w", err)
	}
	footer := flatTable{buf, root}
	if schema, ok, err := footer.table(footerSchema); err != nil {
		return fmt.Errorf("footer: schema: %w", err)
	} else if ok {
		if err := checkSchemaTable(schema); err != nil {
			return fmt.Errorf("footer: schema: %w", err)
		}
	}
	for _, b := range []struct {
		slot int
		what string
	}{{footerDictionaries, "dictionary batch"}, {footerRecordBatches, "record batch"}} {
		start, count, err := footer.vector(b.slot, blockSize)
		if err != nil {
			return fmt.Errorf("footer: %s blocks: %w", b.what, err)
		}
		for i := range count {
			at := start + blockSize*i
			off := int64(binary.LittleEndian.Uint64(buf[at:]))
			metaLen := int64(int32(binary.LittleEndian.Uint32(buf[at+8:])))
			if err := checkMessage(r, size, off, metaLen); err != nil {
				return fmt.Errorf("%s %d: %w", b.what, i, err)
			}
		}
	}
	return nil
}

var arrowMagic = []byte("ARROW1")

// checkSchemaTable checks a Schema table's fields and metadata.
func checkSchemaTable(s flatTable) error {
	if _, _, err := s.vector(schemaCustomMetadata, offsetSize); err != nil {
		return fmt.Errorf("custom metadata: %w", err)
	}
	start, n, err := s.vector(schemaFields, offsetSize)
	if err != nil {
		return fmt.Errorf("fields: %w", err)
	}
	for i := range n {
		f, err := s.element(start, i)
		if err == nil {
			err = checkFieldTable(f)
		}
		if err != nil {
			return fmt.Errorf("field %d: %w", i, err)
		}
	}
	return nil
}

// checkFieldTable checks a Field table, its children's too. Children lie
// at offsets past their parent (FlatBuffers' offsets are unsigned), so
// the recursion ends.
func checkFieldTable(f flatTable) error {
	if _, _, err := f.vector(fieldMeta, offsetSize); err != nil {
		return fmt.Errorf("custom metadata: %w", err)
	}
	typ, err := f.byteSlot(fieldTypeType)
	if err != nil {
		return fmt.Errorf("type: %w", err)
	}
	if typ == typeUnion {
		u, ok, err := f.table(fieldType)
		if err == nil && ok {
			_, _, err = u.vector(unionTypeIDs, 4)
		}
		if err != nil {
			return fmt.Errorf("union type ids: %w", err)
		}
	}
	start, n, err := f.vector(fieldChildren, offsetSize)
	if err != nil {
		return fmt.Errorf("children: %w", err)
	}
	for i := range n {
		c, err := f.element(start, i)
		if err != nil {
			return fmt.Errorf("child %d: %w", i, err)
		}
		if c.pos <= f.pos {
			return fmt.Errorf("child %d: offset %d does not lie past its parent's %d", i, c.pos, f.pos)
		}
		if err := checkFieldTable(c); err != nil {
			return fmt.Errorf("child %d: %w", i, err)
		}
	}
	return nil
}

// checkMessage checks the message whose metadata takes metaLen bytes at
// off: its vectors, and that its record batch is not compressed.
func checkMessage(r io.ReaderAt, size, off, metaLen int64) error {
	if off < 0 || metaLen < 8 || off > size || metaLen > size-off {
		return fmt.Errorf("metadata of %d bytes at offset %d lies outside the %d-byte file", metaLen, off, size)
	}
	buf := make([]byte, metaLen)
	if _, err := r.ReadAt(buf, off); err != nil {
		return fmt.Errorf("read metadata: %w", err)
	}
	if binary.LittleEndian.Uint32(buf) == ipcContinuation {
		buf = buf[4:]
	}
	buf = buf[4:] // the metadata's length
	root, err := flatTable{buf: buf}.u32(0)
	if err != nil {
		return err
	}
	msg := flatTable{buf, root}
	if _, _, err := msg.vector(messageMeta, offsetSize); err != nil {
		return fmt.Errorf("custom metadata: %w", err)
	}
	kind, err := msg.byteSlot(messageHeaderType)
	if err != nil {
		return err
	}
	batch, ok, err := msg.table(messageHeader)
	if err != nil || !ok {
		return err
	}
	switch kind {
	case headerDictionaryBatch:
		if batch, ok, err = batch.table(dictionaryBatchData); err != nil || !ok {
			return err
		}
	case headerRecordBatch:
	default:
		return nil
	}
	at, err := batch.field(recordBatchCompression)
	if err != nil {
		return err
	}
	if at >= 0 {
		return fmt.Errorf("the batch is compressed: thinkgen reads uncompressed dataset files (it writes them so)")
	}
	return nil
}
