package tfevents

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// golden is what testdata/golden.py writes into testdata/golden.tfevents
// with TensorBoard's own RecordWriter and Event protobuf.
var golden = []Event{
	{WallTime: 1764265780.125, FileVersion: FileVersion},
	{WallTime: 1764265781.5, Step: 1, Scalars: []Scalar{{"reward/mean", 0.25}, {"loss/kl", 0.0012}, {"reward/composition/mean", 0}}},
	{WallTime: 1764265790.0, Step: 2, Scalars: []Scalar{{"reward/mean", -1.5}, {"time/step_s", 12.75}}},
	{WallTime: 1764265800.0, Step: 1234567890123, Scalars: []Scalar{{"eval/think/text", 1}}},
}

func TestCRCKnownVectors(t *testing.T) {
	tests := []struct {
		name        string
		data        []byte
		crc, masked uint32
	}{
		// CRC32C: RFC 3720 B.4 and the usual check value; masked: the
		// same inputs through TensorBoard's masked_crc32c
		// (tensorboard.compat.tensorflow_stub.pywrap_tensorflow).
		{"123456789", []byte("123456789"), 0xe3069283, 0xc78ab0e5},
		{"32 zeros", make([]byte, 32), 0x8a9136aa, 0x0fd7fffa},
		{"32 x 0xff", bytes.Repeat([]byte{0xff}, 32), 0x62a8ab43, 0xf909b029},
		{"empty", nil, 0, 0xa282ead8},
	}
	for _, tt := range tests {
		if got := crc32.Checksum(tt.data, castagnoli); got != tt.crc {
			t.Errorf("%s: crc32c %#08x, want %#08x", tt.name, got, tt.crc)
		}
		if got := MaskedCRC(tt.data); got != tt.masked {
			t.Errorf("%s: masked crc %#08x, want %#08x", tt.name, got, tt.masked)
		}
	}
}

// TestGolden: the bytes TensorBoard's writer produced are read back as the
// events written, and writing those events gives the same bytes.
func TestGolden(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("testdata", "golden.tfevents"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadAll(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, golden) {
		t.Errorf("read %+v\nwant %+v", got, golden)
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, e := range golden {
		if err := w.WriteEvent(e); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("wrote %d bytes differing from TensorBoard's %d:\n% x\n% x", buf.Len(), len(want), buf.Bytes(), want)
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		events []Event
	}{
		{"file version only", []Event{{WallTime: 1, FileVersion: FileVersion}}},
		{"negative step and values", []Event{{WallTime: 2.5, Step: -7, Scalars: []Scalar{{"a", -3}, {"b/c", float32(math.Inf(1))}}}}},
		{"zero step, zero time, empty tag", []Event{{Scalars: []Scalar{{"", 0}}}}},
		{"unicode tag", []Event{{WallTime: 3, Step: 1 << 40, Scalars: []Scalar{{"reward/ratio₀", 1}}}}},
		{"images beside scalars", []Event{{WallTime: 4, Step: 2, Scalars: []Scalar{{"a", 1}},
			Images: []Image{{Tag: "grid/think", Height: 64, Width: 128, Colorspace: 4, PNG: []byte("\x89PNG fake")}, {Tag: "grid/direct", Height: 1, Width: 1, Colorspace: 3, PNG: []byte{0}}}}}},
		{"plugin values", []Event{{WallTime: 6, Plugins: []PluginValue{{Tag: HParamsTag, Plugin: "hparams", Content: []byte{0x1a, 0}}, {Tag: "t", Plugin: "text"}}}}},
		{"texts beside scalars", []Event{{WallTime: 7, Step: 9, Scalars: []Scalar{{"a", 1}}, Texts: []Text{{"samples/0", "**prompt:** draw ✓\n\n<think>two</think>"}, {"samples/1", ""}}}}},
		{"image only", []Event{{WallTime: 5, Step: 3, Images: []Image{{Tag: "g", Height: 2, Width: 3, Colorspace: 1, PNG: []byte("png")}}}}},
		{"many events", func() []Event {
			var es []Event
			for i := 0; i < 100; i++ {
				es = append(es, Event{WallTime: float64(i) / 3, Step: int64(i), Scalars: []Scalar{{"x", float32(i) * 0.1}, {"y", -float32(i)}}})
			}
			return es
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			for _, e := range tt.events {
				if err := w.WriteEvent(e); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadAll(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.events) {
				t.Errorf("read %+v\nwant %+v", got, tt.events)
			}
		})
	}
}

func TestNaNSurvives(t *testing.T) {
	var buf bytes.Buffer
	if err := NewWriter(&buf).WriteEvent(Event{Step: 1, Scalars: []Scalar{{"loss/kl", float32(math.NaN())}}}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadAll(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Scalars) != 1 || !math.IsNaN(float64(got[0].Scalars[0].Value)) {
		t.Errorf("read %+v, want one NaN scalar", got)
	}
}

// TestCorruptRecord flips one bit in each part of a record, or cuts it
// short: the reader reports it and never returns the damaged event.
func TestCorruptRecord(t *testing.T) {
	var buf bytes.Buffer
	if err := NewWriter(&buf).WriteEvent(golden[1]); err != nil {
		t.Fatal(err)
	}
	rec := buf.Bytes()
	n := len(rec)
	tests := []struct {
		name string
		at   int // byte whose low bit is flipped; -1: none
		cut  int // bytes kept; 0: all
		want error
	}{
		{"length", 0, 0, ErrCorrupt},
		{"length crc", 9, 0, ErrCorrupt},
		{"data first byte", 12, 0, ErrCorrupt},
		{"data last byte", n - 5, 0, ErrCorrupt},
		{"data crc", n - 1, 0, ErrCorrupt},
		{"truncated header", -1, 7, io.ErrUnexpectedEOF},
		{"truncated data", -1, n - 10, io.ErrUnexpectedEOF},
		{"missing data crc", -1, n - 4, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := append([]byte(nil), rec...)
			if tt.at >= 0 {
				b[tt.at] ^= 1
			}
			if tt.cut > 0 {
				b = b[:tt.cut]
			}
			e, err := NewReader(bytes.NewReader(b)).ReadEvent()
			if !errors.Is(err, tt.want) {
				t.Errorf("got event %+v, error %v; want %v", e, err, tt.want)
			}
		})
	}
	// The intact record is read, and a second read says io.EOF.
	rd := NewReader(bytes.NewReader(rec))
	if _, err := rd.ReadEvent(); err != nil {
		t.Fatal(err)
	}
	if _, err := rd.ReadEvent(); err != io.EOF {
		t.Errorf("after the last record: %v, want io.EOF", err)
	}
}

// TestUnmarshalSkipsOtherKinds: fields this package does not model (a
// session log, an image value, an unknown field) are skipped, and the
// scalars around them still read.
func TestUnmarshalSkipsOtherKinds(t *testing.T) {
	var histo []byte // Summary.Value{tag: "h", histo (5): {min (1): 2.0}}
	histo = protowire.AppendTag(histo, valueTag, protowire.BytesType)
	histo = protowire.AppendString(histo, "h")
	histo = protowire.AppendTag(histo, 5, protowire.BytesType)
	histo = protowire.AppendBytes(histo, protowire.AppendFixed64(protowire.AppendTag(nil, 1, protowire.Fixed64Type), math.Float64bits(2)))
	var image []byte // Summary.Value{tag: "img", image (4): {height (1): 2}}, a field of its own
	image = protowire.AppendTag(image, valueTag, protowire.BytesType)
	image = protowire.AppendString(image, "img")
	image = protowire.AppendTag(image, valueImage, protowire.BytesType)
	image = protowire.AppendBytes(image, protowire.AppendVarint(protowire.AppendTag(nil, imageHeight, protowire.VarintType), 2))
	e := Event{WallTime: 5, Step: 3, Scalars: []Scalar{{"a", 1}}}
	b := e.Marshal()
	e.Images = []Image{{Tag: "img", Height: 2}}
	var sum []byte
	sum = protowire.AppendTag(sum, summaryValue, protowire.BytesType)
	sum = protowire.AppendBytes(sum, histo)
	sum = protowire.AppendTag(sum, summaryValue, protowire.BytesType)
	sum = protowire.AppendBytes(sum, image)
	b = protowire.AppendTag(b, eventSummary, protowire.BytesType) // a second summary field merges
	b = protowire.AppendBytes(b, sum)
	b = protowire.AppendTag(b, 6, protowire.BytesType) // session_log
	b = protowire.AppendBytes(b, []byte{0x08, 0x01})
	b = protowire.AppendTag(b, 99, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, 7)
	var got Event
	if err := got.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("got %+v, want %+v", got, e)
	}
	if err := got.Unmarshal(b[:len(b)-2]); err == nil {
		t.Error("a truncated event parsed without error")
	}
}
