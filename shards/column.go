package shards

import (
	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// column maps one field of a row type R to one Arrow column: its field,
// how a row's value is appended to a builder, and how it is read back.
// get returns a pointer to the row's field, so one accessor serves both
// directions.
type column[R any] struct {
	field  arrow.Field
	append func(b array.Builder, r *R)
	read   func(a arrow.Array, i int, r *R)
}

// scalarCol is a non-nullable column of Arrow type typ whose builder B
// appends a V and whose array A reads a V back.
func scalarCol[R, V any, B interface{ Append(V) }, A interface{ Value(int) V }](name string, typ arrow.DataType, get func(*R) *V) column[R] {
	return column[R]{
		field:  arrow.Field{Name: name, Type: typ},
		append: func(b array.Builder, r *R) { b.(B).Append(*get(r)) },
		read:   func(a arrow.Array, i int, r *R) { *get(r) = a.(A).Value(i) },
	}
}

func utf8Col[R any](name string, get func(*R) *string) column[R] {
	return scalarCol[R, string, *array.StringBuilder, *array.String](name, arrow.BinaryTypes.String, get)
}

func int64Col[R any](name string, get func(*R) *int64) column[R] {
	return scalarCol[R, int64, *array.Int64Builder, *array.Int64](name, arrow.PrimitiveTypes.Int64, get)
}

func int32Col[R any](name string, get func(*R) *int32) column[R] {
	return scalarCol[R, int32, *array.Int32Builder, *array.Int32](name, arrow.PrimitiveTypes.Int32, get)
}

func float32Col[R any](name string, get func(*R) *float32) column[R] {
	return scalarCol[R, float32, *array.Float32Builder, *array.Float32](name, arrow.PrimitiveTypes.Float32, get)
}

func float64Col[R any](name string, get func(*R) *float64) column[R] {
	return scalarCol[R, float64, *array.Float64Builder, *array.Float64](name, arrow.PrimitiveTypes.Float64, get)
}

// timestampCol stores Unix milliseconds as timestamp[ms, UTC].
func timestampCol[R any](name string, get func(*R) *int64) column[R] {
	typ := &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}
	return column[R]{
		field:  arrow.Field{Name: name, Type: typ},
		append: func(b array.Builder, r *R) { b.(*array.TimestampBuilder).Append(arrow.Timestamp(*get(r))) },
		read:   func(a arrow.Array, i int, r *R) { *get(r) = int64(a.(*array.Timestamp).Value(i)) },
	}
}

// binaryCol is nullable: a nil slice is stored as null and read back as nil.
func binaryCol[R any](name string, get func(*R) *[]byte) column[R] {
	return column[R]{
		field: arrow.Field{Name: name, Type: arrow.BinaryTypes.Binary, Nullable: true},
		append: func(b array.Builder, r *R) {
			if v := *get(r); v != nil {
				b.(*array.BinaryBuilder).Append(v)
			} else {
				b.AppendNull()
			}
		},
		read: func(a arrow.Array, i int, r *R) {
			if a.IsNull(i) {
				*get(r) = nil
				return
			}
			// Copy: the record's buffers are released when the next batch
			// is read.
			*get(r) = append([]byte{}, a.(*array.Binary).Value(i)...)
		},
	}
}

// listCol is a nullable list of a primitive type: nil is null, an empty
// non-nil slice an empty list.
func listCol[R any, T int32 | float32](name string, elem arrow.DataType, get func(*R) *[]T) column[R] {
	return nullableListCol(name, elem, get, appendValues[T], values[T])
}

// listListCol is a nullable list of nullable-free float32 lists: one inner
// list per SDE step.
func listListCol[R any](name string, get func(*R) *[][]float32) column[R] {
	appendSteps := func(b array.Builder, v [][]float32) {
		inner := b.(*array.ListBuilder)
		for _, step := range v {
			inner.Append(true)
			appendValues(inner.ValueBuilder(), step)
		}
	}
	readSteps := func(a arrow.Array, start, end int) [][]float32 {
		inner := a.(*array.List)
		out := make([][]float32, 0, end-start)
		for j := start; j < end; j++ {
			s, e := inner.ValueOffsets(j)
			out = append(out, values[float32](inner.ListValues(), int(s), int(e)))
		}
		return out
	}
	return nullableListCol(name, arrow.ListOf(arrow.PrimitiveTypes.Float32), get, appendSteps, readSteps)
}

// nullableListCol is a nullable list of elem: a nil slice is stored as
// null and read back as nil. appendElems adds a slice's elements to the
// list's value builder; readElems reads the elements [start, end) of the
// list's values.
func nullableListCol[R, E any](name string, elem arrow.DataType, get func(*R) *[]E,
	appendElems func(b array.Builder, v []E), readElems func(a arrow.Array, start, end int) []E) column[R] {
	return column[R]{
		field: arrow.Field{Name: name, Type: arrow.ListOf(elem), Nullable: true},
		append: func(b array.Builder, r *R) {
			v := *get(r)
			lb := b.(*array.ListBuilder)
			if v == nil {
				lb.AppendNull()
				return
			}
			lb.Append(true)
			appendElems(lb.ValueBuilder(), v)
		},
		read: func(a arrow.Array, i int, r *R) {
			l := a.(*array.List)
			if l.IsNull(i) {
				*get(r) = nil
				return
			}
			start, end := l.ValueOffsets(i)
			*get(r) = readElems(l.ListValues(), int(start), int(end))
		},
	}
}

// mapCol is a map<utf8, float32>; nil is stored as an empty map.
func mapCol[R any](name string, get func(*R) *map[string]float32) column[R] {
	return column[R]{
		field: arrow.Field{Name: name, Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Float32)},
		append: func(b array.Builder, r *R) {
			mb := b.(*array.MapBuilder)
			mb.Append(true)
			m := *get(r)
			keys := sortedKeys(m)
			kb, ib := mb.KeyBuilder().(*array.StringBuilder), mb.ItemBuilder().(*array.Float32Builder)
			for _, k := range keys {
				kb.Append(k)
				ib.Append(m[k])
			}
		},
		read: func(a arrow.Array, i int, r *R) {
			m := a.(*array.Map)
			start, end := m.ValueOffsets(i)
			keys, items := m.Keys().(*array.String), m.Items().(*array.Float32)
			out := make(map[string]float32, end-start)
			for j := int(start); j < int(end); j++ {
				out[keys.Value(j)] = items.Value(j)
			}
			*get(r) = out
		},
	}
}

func appendValues[T int32 | float32](b array.Builder, v []T) {
	switch vb := b.(type) {
	case *array.Int32Builder:
		vb.AppendValues(any(v).([]int32), nil)
	case *array.Float32Builder:
		vb.AppendValues(any(v).([]float32), nil)
	}
}

func values[T int32 | float32](a arrow.Array, start, end int) []T {
	var all []T
	switch va := a.(type) {
	case *array.Int32:
		all = any(va.Int32Values()).([]T)
	case *array.Float32:
		all = any(va.Float32Values()).([]T)
	}
	return append(make([]T, 0, end-start), all[start:end]...)
}
