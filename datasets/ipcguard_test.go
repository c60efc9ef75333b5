package datasets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/thinkgen/thinkgen/internal/alloccap"
)

// footerOf returns the footer table of an IPC file held in b.
func footerOf(t *testing.T, b []byte) (flatTable, int) {
	t.Helper()
	n := int(binary.LittleEndian.Uint32(b[len(b)-10:]))
	start := len(b) - 10 - n
	root := int(binary.LittleEndian.Uint32(b[start:]))
	return flatTable{b[start:], root}, start
}

// compressedFile writes rows as ReadIPC's schema with Arrow's zstd body
// compression, which thinkgen never writes.
func compressedFile(t *testing.T, rows []Row) []byte {
	t.Helper()
	var buf writeSeeker
	schema := Schema(32)
	fw, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema), ipc.WithZstd())
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for _, r := range rows {
		for i, s := range []string{r.ID, string(r.Split), r.Scenario, r.Task, r.Prompt, r.Think, r.Answer, string(r.Spec.JSON()), ""} {
			b.Field(i).(*array.StringBuilder).Append(s)
		}
		b.Field(9).(*array.BinaryBuilder).Append(r.Target)
		b.Field(10).(*array.BinaryBuilder).Append(r.Reference)
	}
	rec := b.NewRecord()
	defer rec.Release()
	if err := fw.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.b
}

// TestReadIPCChecksMetadata checks that metadata lengths which would size
// the Arrow reader's slices past the file, and compressed record batches,
// are refused as corrupt before the reader runs, naming what is wrong and
// allocating no more than the file's size allows.
func TestReadIPCChecksMetadata(t *testing.T) {
	rows := genRows(t, Train, 3)
	valid := ipcFile(t, rows)
	// claim sets the length word of the footer's vector at slot of the
	// table table(footer) returns to n.
	claim := func(table func(flatTable) flatTable, slot, n int) []byte {
		b := bytes.Clone(valid)
		footer, start := footerOf(t, b)
		tab := table(footer)
		at, err := tab.field(slot)
		if err != nil || at < 0 {
			t.Fatalf("slot %d: at %d, %v", slot, at, err)
		}
		off, _ := tab.u32(at)
		binary.LittleEndian.PutUint32(b[start+at+off:], uint32(n))
		return b
	}
	schema := func(f flatTable) flatTable {
		s, ok, err := f.table(footerSchema)
		if err != nil || !ok {
			t.Fatalf("schema: ok %v, %v", ok, err)
		}
		return s
	}
	firstField := func(f flatTable) flatTable {
		s := schema(f)
		start, _, err := s.vector(schemaFields, offsetSize)
		if err != nil {
			t.Fatal(err)
		}
		fld, err := s.element(start, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fld
	}
	footer := func(f flatTable) flatTable { return f }
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"fields", claim(schema, schemaFields, 50_000_000), "footer: schema: fields: a vector claims 50000000 elements"},
		{"schema metadata", claim(schema, schemaCustomMetadata, 1<<30), "footer: schema: custom metadata: a vector claims 1073741824"},
		{"field children", claim(firstField, fieldChildren, 1<<28), "footer: schema: field 0: children: a vector claims 268435456"},
		{"record batches", claim(footer, footerRecordBatches, 1<<26), "footer: record batch blocks: a vector claims 67108864 elements of 24 bytes"},
		{"compressed", compressedFile(t, rows), "record batch 0: the batch is compressed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			alloccap.Check(t, 1<<20+2*uint64(len(tc.file)), func() { _, _, err = ReadIPC(bytes.NewReader(tc.file)) })
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadIPC = %v, want ErrCorrupt with %q", err, tc.want)
			}
		})
	}
	if got, _, err := ReadIPC(bytes.NewReader(valid)); err != nil || len(got) != len(rows) {
		t.Fatalf("the valid file: %d rows, %v", len(got), err)
	}
}
