package datasets

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Schema metadata keys and the version this package writes and reads.
const (
	MetaSchema        = "thinkgen.schema"
	MetaSchemaVersion = "thinkgen.schema_version"
	MetaImageSize     = "thinkgen.image_size"
	SchemaName        = "shapeworld"
	SchemaVersion     = 1
)

// Columns of the dataset schema, in order.
const (
	ColID           = "id"
	ColSplit        = "split"
	ColScenario     = "scenario"
	ColTask         = "task"
	ColPrompt       = "prompt"
	ColThink        = "think"
	ColAnswer       = "answer"
	ColSpec         = "spec"
	ColRefScene     = "reference_scene"
	ColTargetPNG    = "target_png"
	ColReferencePNG = "reference_png"
)

var columns = []arrow.Field{
	{Name: ColID, Type: arrow.BinaryTypes.String},
	{Name: ColSplit, Type: arrow.BinaryTypes.String},
	{Name: ColScenario, Type: arrow.BinaryTypes.String},
	{Name: ColTask, Type: arrow.BinaryTypes.String},
	{Name: ColPrompt, Type: arrow.BinaryTypes.String},
	{Name: ColThink, Type: arrow.BinaryTypes.String},
	{Name: ColAnswer, Type: arrow.BinaryTypes.String},
	{Name: ColSpec, Type: arrow.BinaryTypes.String},
	{Name: ColRefScene, Type: arrow.BinaryTypes.String},
	{Name: ColTargetPNG, Type: arrow.BinaryTypes.Binary},
	{Name: ColReferencePNG, Type: arrow.BinaryTypes.Binary},
}

// Schema returns the Arrow schema of a dataset file of imageSize images.
func Schema(imageSize int) *arrow.Schema {
	md := arrow.NewMetadata(
		[]string{MetaSchema, MetaSchemaVersion, MetaImageSize},
		[]string{SchemaName, strconv.Itoa(SchemaVersion), strconv.Itoa(imageSize)},
	)
	return arrow.NewSchema(columns, &md)
}

// batchRows is the number of rows per record batch.
const batchRows = 1024

// WriteIPC writes rows as an Arrow IPC file to w.
func WriteIPC(w io.WriteSeeker, rows []Row, imageSize int) (err error) {
	schema := Schema(imageSize)
	fw, err := ipc.NewFileWriter(w, ipc.WithSchema(schema))
	if err != nil {
		return fmt.Errorf("write dataset: %w", err)
	}
	defer func() {
		if cerr := fw.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write dataset: close: %w", cerr)
		}
	}()
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for start := 0; start < len(rows); start += batchRows {
		for _, r := range rows[start:min(len(rows), start+batchRows)] {
			refScene := ""
			if r.RefScene != nil {
				refScene = string((&Spec{Scene: *r.RefScene}).JSON())
			}
			for i, s := range []string{r.ID, string(r.Split), r.Scenario, r.Task, r.Prompt, r.Think, r.Answer, string(r.Spec.JSON()), refScene} {
				b.Field(i).(*array.StringBuilder).Append(s)
			}
			b.Field(9).(*array.BinaryBuilder).Append(r.Target)
			b.Field(10).(*array.BinaryBuilder).Append(r.Reference)
		}
		rec := b.NewRecord()
		err := fw.Write(rec)
		rec.Release()
		if err != nil {
			return fmt.Errorf("write dataset: record batch at row %d: %w", start, err)
		}
	}
	return nil
}

// WriteFile writes rows to an Arrow IPC file at path, replacing it.
func WriteFile(path string, rows []Row, imageSize int) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write dataset: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write dataset %s: %w", path, cerr)
		}
	}()
	if err := WriteIPC(f, rows, imageSize); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Info is what a dataset file's schema metadata says.
type Info struct {
	SchemaVersion int
	ImageSize     int
}

// ErrSchema is wrapped by errors about a file that is not a ShapeWorld
// dataset of a version this package reads.
var ErrSchema = errors.New("thinkgen/datasets: not a shapeworld dataset")

// ErrCorrupt is wrapped by errors about a dataset file whose Arrow
// structure is malformed (truncated, or lengths and offsets that point
// outside the file).
var ErrCorrupt = errors.New("thinkgen/datasets: corrupt Arrow IPC file")

// cappedAllocator is the Arrow allocator of ReadIPC: it refuses (by
// panicking with errTooLarge, which ReadIPC recovers) to hold more than
// limit bytes at once, so that lengths read from a hostile file cannot
// make the reader allocate past the file's own size.
type cappedAllocator struct {
	mem   memory.Allocator
	live  int
	limit int
}

type errTooLarge struct{ want, limit int }

func (a *cappedAllocator) Allocate(size int) []byte {
	if size < 0 || a.live+size > a.limit {
		panic(errTooLarge{a.live + size, a.limit})
	}
	a.live += size
	return a.mem.Allocate(size)
}

func (a *cappedAllocator) Reallocate(size int, b []byte) []byte {
	if size < 0 || a.live-len(b)+size > a.limit {
		panic(errTooLarge{a.live - len(b) + size, a.limit})
	}
	a.live += size - len(b)
	return a.mem.Reallocate(size, b)
}

func (a *cappedAllocator) Free(b []byte) {
	a.live -= len(b)
	a.mem.Free(b)
}

// ReadIPC reads every row of an Arrow IPC dataset file. A malformed file
// gives an error wrapping ErrCorrupt or ErrSchema: the Arrow reader
// trusts the file's structure (it can index out of range on a truncated
// footer), so its panics are recovered here, its allocations are capped
// at twice the file's size plus 1 MiB, and the metadata lengths it would
// size slices from are checked first (ipcguard.go).
func ReadIPC(r ipc.ReadAtSeeker) (rows []Row, info Info, err error) {
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, Info{}, fmt.Errorf("read dataset: %w", err)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, Info{}, fmt.Errorf("read dataset: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			rows, info = nil, Info{}
			if tl, ok := p.(errTooLarge); ok {
				err = fmt.Errorf("read dataset: %w: it asks for %d bytes, more than %d for a %d-byte file", ErrCorrupt, tl.want, tl.limit, size)
				return
			}
			err = fmt.Errorf("read dataset: %w: %v", ErrCorrupt, p)
		}
	}()
	if err := checkIPCMetadata(r, size); err != nil {
		return nil, Info{}, fmt.Errorf("read dataset: %w: %w", ErrCorrupt, err)
	}
	mem := &cappedAllocator{mem: memory.NewGoAllocator(), limit: int(min(size, 1<<40))*2 + 1<<20}
	fr, err := ipc.NewFileReader(r, ipc.WithAllocator(mem))
	if err != nil {
		return nil, Info{}, fmt.Errorf("read dataset: %w", err)
	}
	defer fr.Close()
	info, err = checkSchema(fr.Schema())
	if err != nil {
		return nil, Info{}, err
	}
	for i := range fr.NumRecords() {
		rec, err := fr.Record(i)
		if err != nil {
			return nil, info, fmt.Errorf("read dataset: record batch %d: %w", i, err)
		}
		str := func(c int) *array.String { return rec.Column(c).(*array.String) }
		bin := func(c int) *array.Binary { return rec.Column(c).(*array.Binary) }
		for j := range int(rec.NumRows()) {
			row := Row{
				ID: str(0).Value(j), Split: Split(str(1).Value(j)), Scenario: str(2).Value(j), Task: str(3).Value(j),
				Prompt: str(4).Value(j), Think: str(5).Value(j), Answer: str(6).Value(j),
				Target: clone(bin(9).Value(j)), Reference: clone(bin(10).Value(j)),
			}
			spec, err := ParseSpec([]byte(str(7).Value(j)))
			if err != nil {
				return nil, info, fmt.Errorf("read dataset: row %q: column %s: %w", row.ID, ColSpec, err)
			}
			row.Spec = *spec
			if s := str(8).Value(j); s != "" {
				ref, err := ParseSpec([]byte(s))
				if err != nil {
					return nil, info, fmt.Errorf("read dataset: row %q: column %s: %w", row.ID, ColRefScene, err)
				}
				row.RefScene = &ref.Scene
			}
			rows = append(rows, row)
		}
	}
	return rows, info, nil
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

func checkSchema(s *arrow.Schema) (Info, error) {
	md := s.Metadata()
	get := func(k string) string {
		if i := md.FindKey(k); i >= 0 {
			return md.Values()[i]
		}
		return ""
	}
	if name := get(MetaSchema); name != SchemaName {
		return Info{}, fmt.Errorf("%w: metadata %s is %q, want %q", ErrSchema, MetaSchema, name, SchemaName)
	}
	v, err := strconv.Atoi(get(MetaSchemaVersion))
	if err != nil || v != SchemaVersion {
		return Info{}, fmt.Errorf("%w: metadata %s is %q, this build reads version %d", ErrSchema, MetaSchemaVersion, get(MetaSchemaVersion), SchemaVersion)
	}
	size, err := strconv.Atoi(get(MetaImageSize))
	if err != nil || size < MinImageSize || size > MaxImageSize {
		return Info{}, fmt.Errorf("%w: metadata %s is %q", ErrSchema, MetaImageSize, get(MetaImageSize))
	}
	if len(s.Fields()) != len(columns) {
		return Info{}, fmt.Errorf("%w: %d columns, want %d", ErrSchema, len(s.Fields()), len(columns))
	}
	for i, f := range columns {
		g := s.Field(i)
		if g.Name != f.Name || !arrow.TypeEqual(g.Type, f.Type) {
			return Info{}, fmt.Errorf("%w: column %d is %s %s, want %s %s", ErrSchema, i, g.Name, g.Type, f.Name, f.Type)
		}
	}
	return Info{SchemaVersion: v, ImageSize: size}, nil
}

// ReadFile reads every row of the dataset file at path.
func ReadFile(path string) ([]Row, Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Info{}, fmt.Errorf("read dataset: %w", err)
	}
	defer f.Close()
	rows, info, err := ReadIPC(f)
	if err != nil {
		return nil, info, fmt.Errorf("%s: %w", path, err)
	}
	return rows, info, nil
}
