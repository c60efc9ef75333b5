// Package tfevents writes and reads TensorBoard event files: a sequence of
// records, each an Event protocol buffer, in TensorFlow's TFRecord framing:
//
//	uint64 length           little-endian
//	uint32 masked CRC32C    of the 8 length bytes
//	[length]byte data       the serialised Event
//	uint32 masked CRC32C    of the data
//
// where a masked CRC is ((crc >> 15) | (crc << 17)) + 0xa282ead8 over the
// Castagnoli polynomial. An Event carries wall_time (field 1, double), step
// (2, int64), file_version (3, string; the first event of a file says
// [FileVersion]) and a summary (5) of values, of which this package knows
// two kinds: scalars, Value{tag (1), simple_value (2, float)}, and
// images, Value{tag (1), image (4): Image{height (1), width (2),
// colorspace (3), encoded_image_string (4, PNG bytes)}}.
//
// To write a file:
//
//  1. Create a [Writer] over it and write the file-version event first
//     (an [Event] with FileVersion set).
//  2. Write one Event per step with its [Scalar] values.
//  3. Name the file so that TensorBoard finds it: its base name must
//     contain "tfevents" ([FilePrefix]); TensorBoard reads the files of a
//     directory in the sorted order of their names.
package tfevents

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// FileVersion is the file_version of the first event of every file:
// TensorBoard's current event format.
const FileVersion = "brain.Event:2"

// FilePrefix starts the name of every event file, which TensorBoard
// expects to be events.out.tfevents.<timestamp>.<host>.
const FilePrefix = "events.out.tfevents."

// ErrCorrupt means a record's length or data does not match its checksum.
var ErrCorrupt = errors.New("thinkgen/tfevents: corrupt record (checksum mismatch)")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaskedCRC is TFRecord's checksum of b: the CRC32C rotated right by 15
// bits plus a constant, so that a CRC of data that holds CRCs stays well
// distributed.
func MaskedCRC(b []byte) uint32 {
	crc := crc32.Checksum(b, castagnoli)
	return ((crc >> 15) | (crc << 17)) + 0xa282ead8
}

// Scalar is one summary value: a tag (TensorBoard groups tags by their
// first "/"-separated part) and a number.
type Scalar struct {
	Tag   string
	Value float32
}

// Image is one image summary value: a PNG with its size and number of
// channels (colorspace: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA), which
// TensorBoard's images dashboard shows under Tag.
type Image struct {
	Tag           string
	Height, Width int32
	Colorspace    int32
	PNG           []byte
}

// Text is one text summary value, which TensorBoard's text dashboard
// shows (as Markdown) under Tag: a string tensor with the "text" plugin's
// metadata.
type Text struct {
	Tag, Value string
}

// Event is one record of an event file.
type Event struct {
	// WallTime is seconds since the Unix epoch.
	WallTime float64
	Step     int64
	// FileVersion is set on the first event of a file only.
	FileVersion string
	// Scalars, Images, Plugins and Texts are the event's summary: its
	// scalar values, then its images, its plugin values and its texts.
	Scalars []Scalar
	Images  []Image
	Plugins []PluginValue
	Texts   []Text
}

// PluginValue is a summary value that carries only its metadata: a
// TensorBoard plugin's data (Value{tag (1), metadata (9):
// SummaryMetadata{plugin_data (1): PluginData{plugin_name (1),
// content (2)}}}), as the hparams plugin reads it ([HParamsSessionStart]).
type PluginValue struct {
	Tag, Plugin string
	Content     []byte
}

// Protobuf field numbers (tensorflow/core/util/event.proto, summary.proto).
const (
	eventWallTime    protowire.Number = 1
	eventStep        protowire.Number = 2
	eventFileVersion protowire.Number = 3
	eventSummary     protowire.Number = 5
	summaryValue     protowire.Number = 1
	valueTag         protowire.Number = 1
	valueSimpleValue protowire.Number = 2
	valueImage       protowire.Number = 4
	imageHeight      protowire.Number = 1
	imageWidth       protowire.Number = 2
	imageColorspace  protowire.Number = 3
	imageEncoded     protowire.Number = 4
	valueMetadata    protowire.Number = 9
	metadataPlugin   protowire.Number = 1
	pluginName       protowire.Number = 1
	pluginContent    protowire.Number = 2
	valueTensor      protowire.Number = 8 // TensorProto
	tensorDType      protowire.Number = 1
	tensorShape      protowire.Number = 2
	tensorStringVal  protowire.Number = 8
	dtString                          = 7 // DT_STRING
	textPlugin                        = "text"
)

// Marshal returns the Event protobuf of e, fields in number order (as
// protobuf's own serialisers write them), zero values left out.
func (e *Event) Marshal() []byte {
	var b []byte
	if e.WallTime != 0 {
		b = protowire.AppendTag(b, eventWallTime, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(e.WallTime))
	}
	if e.Step != 0 {
		b = protowire.AppendTag(b, eventStep, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(e.Step))
	}
	if e.FileVersion != "" {
		b = protowire.AppendTag(b, eventFileVersion, protowire.BytesType)
		b = protowire.AppendString(b, e.FileVersion)
	}
	if len(e.Scalars) > 0 || len(e.Images) > 0 || len(e.Plugins) > 0 || len(e.Texts) > 0 {
		var sum []byte
		for _, s := range e.Scalars {
			// simple_value sits in a oneof: written even when zero.
			v := protowire.AppendTag(nil, valueSimpleValue, protowire.Fixed32Type)
			v = protowire.AppendFixed32(v, math.Float32bits(s.Value))
			sum = appendValue(sum, s.Tag, v)
		}
		for _, im := range e.Images {
			var img []byte
			for _, f := range []struct {
				num protowire.Number
				v   int32
			}{{imageHeight, im.Height}, {imageWidth, im.Width}, {imageColorspace, im.Colorspace}} {
				if f.v != 0 {
					img = protowire.AppendTag(img, f.num, protowire.VarintType)
					img = protowire.AppendVarint(img, uint64(f.v))
				}
			}
			if len(im.PNG) > 0 {
				img = protowire.AppendTag(img, imageEncoded, protowire.BytesType)
				img = protowire.AppendBytes(img, im.PNG)
			}
			sum = appendValue(sum, im.Tag, appendField(nil, valueImage, img))
		}
		for _, pv := range e.Plugins {
			sum = appendValue(sum, pv.Tag, pluginMetadata(pv.Plugin, pv.Content))
		}
		for _, tx := range e.Texts {
			// tensor{dtype DT_STRING, tensor_shape {} (a scalar), string_val}
			// with the text plugin's metadata.
			tp := protowire.AppendTag(nil, tensorDType, protowire.VarintType)
			tp = protowire.AppendVarint(tp, dtString)
			tp = appendField(tp, tensorShape, nil)
			tp = appendField(tp, tensorStringVal, []byte(tx.Value))
			sum = appendValue(sum, tx.Tag, append(appendField(nil, valueTensor, tp), pluginMetadata(textPlugin, nil)...))
		}
		b = appendField(b, eventSummary, sum)
	}
	return b
}

// appendField appends the length-delimited field num holding data.
func appendField(b []byte, num protowire.Number, data []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, data)
}

// appendValue appends one Summary.Value: its tag (when not empty), then
// the encoded fields of its kind.
func appendValue(sum []byte, tag string, fields []byte) []byte {
	var v []byte
	if tag != "" {
		v = appendField(v, valueTag, []byte(tag))
	}
	return appendField(sum, summaryValue, append(v, fields...))
}

// pluginMetadata is a Value's metadata field naming plugin, with its
// content when there is one.
func pluginMetadata(plugin string, content []byte) []byte {
	pd := appendField(nil, pluginName, []byte(plugin))
	if len(content) > 0 {
		pd = appendField(pd, pluginContent, content)
	}
	return appendField(nil, valueMetadata, appendField(nil, metadataPlugin, pd))
}

// Unmarshal parses an Event protobuf into e. Fields and summary values of
// other kinds (histograms, tensors, session logs) are skipped.
func (e *Event) Unmarshal(b []byte) error {
	*e = Event{}
	return eachField(b, func(num protowire.Number, typ protowire.Type, field []byte) error {
		switch {
		case num == eventWallTime && typ == protowire.Fixed64Type:
			v, _ := protowire.ConsumeFixed64(field)
			e.WallTime = math.Float64frombits(v)
		case num == eventStep && typ == protowire.VarintType:
			v, _ := protowire.ConsumeVarint(field)
			e.Step = int64(v)
		case num == eventFileVersion && typ == protowire.BytesType:
			v, _ := protowire.ConsumeBytes(field)
			e.FileVersion = string(v)
		case num == eventSummary && typ == protowire.BytesType:
			sum, _ := protowire.ConsumeBytes(field)
			return eachField(sum, func(num protowire.Number, typ protowire.Type, field []byte) error {
				if num != summaryValue || typ != protowire.BytesType {
					return nil
				}
				val, _ := protowire.ConsumeBytes(field)
				var (
					s                           Scalar
					im                          Image
					pv                          PluginValue
					text                        []byte
					scalar, image, plugin, strv bool
				)
				err := eachField(val, func(num protowire.Number, typ protowire.Type, field []byte) error {
					switch {
					case num == valueTag && typ == protowire.BytesType:
						v, _ := protowire.ConsumeBytes(field)
						s.Tag = string(v)
					case num == valueSimpleValue && typ == protowire.Fixed32Type:
						v, _ := protowire.ConsumeFixed32(field)
						s.Value, scalar = math.Float32frombits(v), true
					case num == valueMetadata && typ == protowire.BytesType:
						md, _ := protowire.ConsumeBytes(field)
						return eachField(md, func(num protowire.Number, typ protowire.Type, field []byte) error {
							if num != metadataPlugin || typ != protowire.BytesType {
								return nil
							}
							pd, _ := protowire.ConsumeBytes(field)
							plugin = true
							return eachField(pd, func(num protowire.Number, typ protowire.Type, field []byte) error {
								if typ != protowire.BytesType {
									return nil
								}
								b, _ := protowire.ConsumeBytes(field)
								switch num {
								case pluginName:
									pv.Plugin = string(b)
								case pluginContent:
									pv.Content = append([]byte(nil), b...)
								}
								return nil
							})
						})
					case num == valueTensor && typ == protowire.BytesType:
						v, _ := protowire.ConsumeBytes(field)
						return eachField(v, func(num protowire.Number, typ protowire.Type, field []byte) error {
							if num == tensorStringVal && typ == protowire.BytesType {
								b, _ := protowire.ConsumeBytes(field)
								text, strv = append([]byte(nil), b...), true
							}
							return nil
						})
					case num == valueImage && typ == protowire.BytesType:
						v, _ := protowire.ConsumeBytes(field)
						image = true
						return eachField(v, func(num protowire.Number, typ protowire.Type, field []byte) error {
							switch {
							case num == imageEncoded && typ == protowire.BytesType:
								b, _ := protowire.ConsumeBytes(field)
								im.PNG = append([]byte(nil), b...)
							case typ == protowire.VarintType:
								x, _ := protowire.ConsumeVarint(field)
								switch num {
								case imageHeight:
									im.Height = int32(x)
								case imageWidth:
									im.Width = int32(x)
								case imageColorspace:
									im.Colorspace = int32(x)
								}
							}
							return nil
						})
					}
					return nil
				})
				if err != nil {
					return fmt.Errorf("summary value: %w", err)
				}
				switch {
				case strv && pv.Plugin == textPlugin:
					e.Texts = append(e.Texts, Text{Tag: s.Tag, Value: string(text)})
				case scalar:
					e.Scalars = append(e.Scalars, s)
				case image:
					im.Tag = s.Tag
					e.Images = append(e.Images, im)
				case plugin:
					pv.Tag = s.Tag
					e.Plugins = append(e.Plugins, pv)
				}
				return nil
			})
		}
		return nil
	})
}

// eachField calls fn with the number, wire type and encoded value of every
// field of the message b.
func eachField(b []byte, fn func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("parse event: %w", protowire.ParseError(n))
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return fmt.Errorf("parse event field %d: %w", num, protowire.ParseError(m))
		}
		if err := fn(num, typ, b[:m]); err != nil {
			return err
		}
		b = b[m:]
	}
	return nil
}

// Writer writes records to an io.Writer.
type Writer struct {
	w io.Writer
}

// NewWriter returns a Writer appending records to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// WriteRecord writes data as one framed record.
func (w *Writer) WriteRecord(data []byte) error {
	rec := make([]byte, 0, 8+4+len(data)+4)
	rec = binary.LittleEndian.AppendUint64(rec, uint64(len(data)))
	rec = binary.LittleEndian.AppendUint32(rec, MaskedCRC(rec[:8]))
	rec = append(rec, data...)
	rec = binary.LittleEndian.AppendUint32(rec, MaskedCRC(data))
	if _, err := w.w.Write(rec); err != nil {
		return fmt.Errorf("write event record: %w", err)
	}
	return nil
}

// WriteEvent writes e as one record.
func (w *Writer) WriteEvent(e Event) error { return w.WriteRecord(e.Marshal()) }

// maxRecord bounds the length a Reader accepts, so that a corrupt length
// cannot make it allocate gigabytes before the checksum is checked.
const maxRecord = 1 << 30

// Reader reads records from an io.Reader.
type Reader struct {
	r io.Reader
}

// NewReader returns a Reader of the records of r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// ReadRecord returns the next record's data: io.EOF after the last
// record, an error wrapping io.ErrUnexpectedEOF for a truncated one and
// ErrCorrupt for one whose checksums do not match.
func (r *Reader) ReadRecord() ([]byte, error) {
	var head [12]byte
	if _, err := io.ReadFull(r.r, head[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("read event record header: %w", err)
	}
	if got, want := binary.LittleEndian.Uint32(head[8:]), MaskedCRC(head[:8]); got != want {
		return nil, fmt.Errorf("event record length: %w", ErrCorrupt)
	}
	n := binary.LittleEndian.Uint64(head[:8])
	if n > maxRecord {
		return nil, fmt.Errorf("event record of %d bytes: larger than %d", n, maxRecord)
	}
	data := make([]byte, n+4)
	if _, err := io.ReadFull(r.r, data); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read event record of %d bytes: %w", n, err)
	}
	if got, want := binary.LittleEndian.Uint32(data[n:]), MaskedCRC(data[:n]); got != want {
		return nil, fmt.Errorf("event record data: %w", ErrCorrupt)
	}
	return data[:n], nil
}

// ReadEvent reads and parses the next record; errors as ReadRecord.
func (r *Reader) ReadEvent() (Event, error) {
	data, err := r.ReadRecord()
	if err != nil {
		return Event{}, err
	}
	var e Event
	if err := e.Unmarshal(data); err != nil {
		return Event{}, err
	}
	return e, nil
}

// ReadAll reads every event of r.
func ReadAll(r io.Reader) ([]Event, error) {
	rd := NewReader(r)
	var out []Event
	for {
		e, err := rd.ReadEvent()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}
