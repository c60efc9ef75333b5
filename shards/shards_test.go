package shards

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
)

// rolloutRow returns a deterministic, varied row: MLLM rows have tokens,
// DiT rows an image and an SDE trajectory, editing rows a reference.
func rolloutRow(i int) RolloutRow {
	r := rand.New(rand.NewPCG(uint64(i), 99))
	row := RolloutRow{
		Run: "run-a", Step: int64(3 + i/64), Task: fmt.Sprintf("t%d", i%5), Attempt: int32(1 + i%2),
		GroupID: int64(i / 4), SampleIndex: int32(i % 4), Scenario: []string{"reasoning", "text", "edit"}[i%3],
		Prompt:        fmt.Sprintf("draw %d red squares ünïcode", i),
		RowID:         fmt.Sprintf("train-%07d", i/4),
		Answer:        fmt.Sprintf("%d small red squares at top left.", i%4),
		Spec:          fmt.Sprintf(`{"scene":{"objects":[]},"n":%d}`, i),
		CoT:           strings.Repeat("think ", i%7),
		Instruction:   fmt.Sprintf("%d red squares", i),
		NoiseSeed:     int64(r.Uint64() >> 1),
		PolicyVersion: int64(i % 3),
	}
	if i%2 == 0 {
		row.Phase = "mllm-grpo"
		n := 1 + r.IntN(40)
		row.TokenIDs, row.TokenLogProbs = make([]int32, n), make([]float32, n)
		for j := range n {
			row.TokenIDs[j] = int32(r.IntN(150000))
			row.TokenLogProbs[j] = -r.Float32() * 5
		}
		if i%6 == 0 {
			row.TokenIDs, row.TokenLogProbs = []int32{}, []float32{} // empty, not null
		}
	} else {
		row.Phase = "dit-grpo"
		row.ImagePNG = append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{byte(i)}, 100+i)...)
		row.LatentShape = []int32{4, 2, 2}
		steps := 1 + i%4
		for range steps {
			lat, mean := make([]float32, 16), make([]float32, 16)
			for k := range lat {
				lat[k], mean[k] = float32(r.NormFloat64()), float32(r.NormFloat64())
			}
			row.SDELatents = append(row.SDELatents, lat)
			row.SDEMeans = append(row.SDEMeans, mean)
			row.SDELogProbs = append(row.SDELogProbs, float32(-r.Float64()*100))
		}
	}
	if row.Scenario == "edit" {
		row.ReferencePNG = []byte("\x89PNGref")
	}
	return row
}

func rewardRow(i int) RewardRow {
	return RewardRow{
		Run: "run-a", Step: 3, Task: "t1", Attempt: 2, GroupID: int64(i / 4), SampleIndex: int32(i % 4),
		Scenario: "text", Reward: float32(i) / 7, Detail: fmt.Sprintf("row %d", i),
		Components: map[string]float32{"ocr": float32(i%3) / 2, "layout": 0.25},
	}
}

func advantageRow(i int) AdvantageRow {
	return AdvantageRow{Run: "r", Step: 1, GroupID: int64(i / 4), SampleIndex: int32(i % 4), Reward: float32(i), GroupMean: 1.5, GroupStd: 0.5, Advantage: float32(i) - 1.5}
}

func metricRow(i int) MetricRow {
	return MetricRow{Run: "r", Step: int64(i), Phase: "dit-grpo", Name: "losses/clipfrac", Value: math.Pi * float64(i), TimeMS: 1_700_000_000_000 + int64(i)}
}

func writeShard[R any](t *testing.T, s *Schema[R], rows []R, opts WriterOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "mem", s, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if err := w.Write(&rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readShard[R any](t *testing.T, s *Schema[R], data []byte, opts ReadOptions) []R {
	t.Helper()
	rd, err := NewReader(bytes.NewReader(data), "mem", s, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	out, err := rd.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func rows[R any](n int, f func(int) R) []R {
	out := make([]R, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func roundTrip[R any](t *testing.T, s *Schema[R], want []R) {
	for _, comp := range []string{"none", "lz4", "zstd"} {
		for _, batch := range []int{1, 7, 0} {
			t.Run(fmt.Sprintf("%s/%s/batch%d", s.Name, comp, batch), func(t *testing.T) {
				data := writeShard(t, s, want, WriterOptions{BatchRows: batch, Compression: comp})
				got := readShard(t, s, data, ReadOptions{})
				if len(got) != len(want) {
					t.Fatalf("read %d rows, wrote %d", len(got), len(want))
				}
				for i := range want {
					if !reflect.DeepEqual(got[i], want[i]) {
						t.Fatalf("row %d:\n got %+v\nwant %+v", i, got[i], want[i])
					}
				}
			})
		}
	}
}

func TestRoundTrip(t *testing.T) {
	roundTrip(t, Rollout, rows(50, rolloutRow))
	roundTrip(t, Reward, rows(20, rewardRow))
	roundTrip(t, Advantage, rows(20, advantageRow))
	roundTrip(t, Metrics, rows(20, metricRow))
	// An empty shard is valid and has no rows.
	if got := readShard(t, Rollout, writeShard[RolloutRow](t, Rollout, nil, WriterOptions{}), ReadOptions{}); len(got) != 0 {
		t.Fatalf("empty shard read %d rows", len(got))
	}
}

func TestBatchesAndCompression(t *testing.T) {
	want := rows(100, rolloutRow)
	sizes := map[string]int{}
	for _, comp := range []string{"none", "zstd"} {
		data := writeShard(t, Rollout, want, WriterOptions{BatchRows: 8, Compression: comp})
		sizes[comp] = len(data)
		rd, err := NewReader(bytes.NewReader(data), "mem", Rollout, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := rd.fr.NumRecords(); n != 13 { // ceil(100/8)
			t.Errorf("%s: %d record batches, want 13", comp, n)
		}
		rd.Close()
	}
	if sizes["zstd"] >= sizes["none"] {
		t.Errorf("zstd shard %d bytes, uncompressed %d", sizes["zstd"], sizes["none"])
	}
	if _, err := NewWriter(&bytes.Buffer{}, "x", Rollout, WriterOptions{Compression: "gzip"}); err == nil || !strings.Contains(err.Error(), `"gzip"`) {
		t.Errorf("compression gzip: %v", err)
	}
}

func TestProjection(t *testing.T) {
	all := rows(30, rolloutRow)
	data := writeShard(t, Rollout, all, WriterOptions{BatchRows: 4, Compression: "lz4"})
	got := readShard(t, Rollout, data, ReadOptions{Columns: []string{"group_id", "sample_index", "token_ids"}})
	for i, row := range got {
		want := RolloutRow{GroupID: all[i].GroupID, SampleIndex: all[i].SampleIndex, TokenIDs: all[i].TokenIDs}
		if !reflect.DeepEqual(row, want) {
			t.Fatalf("row %d: got %+v, want %+v", i, row, want)
		}
	}
	// A shard that lacks an unprojected column can still be read.
	partial := newSchema("rollout", Rollout.Version, Rollout.cols[5], Rollout.cols[6]) // group_id, sample_index
	data = writeShard(t, partial, []RolloutRow{{GroupID: 9, SampleIndex: 2}}, WriterOptions{})
	if got := readShard(t, Rollout, data, ReadOptions{Columns: []string{"sample_index"}}); len(got) != 1 || got[0].SampleIndex != 2 {
		t.Fatalf("projected read of a partial shard: %+v", got)
	}
}

func without[R any](cols []column[R], name string) []column[R] {
	var out []column[R]
	for _, c := range cols {
		if c.field.Name != name {
			out = append(out, c)
		}
	}
	return out
}

func TestBadShards(t *testing.T) {
	row := []RolloutRow{rolloutRow(1)}
	stepAsInt32 := append(without(Rollout.cols, "step"), int32Col("step", func(r *RolloutRow) *int32 { return &r.Attempt }))
	good := writeShard(t, Rollout, row, WriterOptions{})
	tests := []struct {
		name    string
		data    []byte
		columns []string
		column  string // the column the error must name, if any
		want    string
	}{
		{"unknown version", writeShard(t, newSchema("rollout", 1, Rollout.cols...), row, WriterOptions{}), nil, "", `unknown rollout schema version "1"`},
		{"other schema", writeShard(t, Reward, []RewardRow{rewardRow(0)}, WriterOptions{}), nil, "", `schema "reward", want "rollout"`},
		{"missing column", writeShard(t, newSchema("rollout", Rollout.Version, without(Rollout.cols, "cot")...), row, WriterOptions{}), nil, "cot", "missing"},
		{"wrong type", writeShard(t, newSchema("rollout", Rollout.Version, stepAsInt32...), row, WriterOptions{}), nil, "step", "type int32, want int64"},
		{"unknown projected column", good, []string{"nope"}, "nope", "not a column of the rollout schema"},
		{"not arrow", []byte("PAR1 this is not an arrow file at all, just some bytes"), nil, "", "read shard bad.arrow"},
		{"truncated", good[:len(good)-20], nil, "", "read shard bad.arrow"},
		{"empty", nil, nil, "", "read shard bad.arrow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd, err := NewReader(bytes.NewReader(tt.data), "bad.arrow", Rollout, ReadOptions{Columns: tt.columns})
			if err == nil {
				// Some damage shows only when a batch is decoded.
				var r RolloutRow
				for err == nil {
					err = rd.Read(&r)
				}
				rd.Close()
				if err == io.EOF {
					t.Fatalf("bad shard read without error")
				}
			}
			if !strings.Contains(err.Error(), "bad.arrow") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one naming the shard and %q", err, tt.want)
			}
			var se *SchemaError
			if tt.column != "" && (!errors.As(err, &se) || se.Column != tt.column || !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.column))) {
				t.Fatalf("error %v, want a SchemaError naming column %q", err, tt.column)
			}
		})
	}
}

func TestSchemasAreDocumented(t *testing.T) {
	doc := readDoc(t)
	check := func(name string, version int, cols []string) {
		if !strings.Contains(doc, fmt.Sprintf("`%s` (version %d)", name, version)) {
			t.Errorf("docs/storage.md does not document schema %s version %d", name, version)
		}
		for _, c := range cols {
			if !strings.Contains(doc, "| `"+c+"` |") {
				t.Errorf("docs/storage.md does not document column %s.%s", name, c)
			}
		}
	}
	check(Rollout.Name, Rollout.Version, Rollout.Columns())
	check(Reward.Name, Reward.Version, Reward.Columns())
	check(Advantage.Name, Advantage.Version, Advantage.Columns())
	check(Metrics.Name, Metrics.Version, Metrics.Columns())
}

func TestArrowTypes(t *testing.T) {
	// The types pyarrow and docs/storage.md expect.
	want := map[string]string{
		"token_ids": "list<item: int32, nullable>", "sde_latents": "list<item: list<item: float32, nullable>, nullable>",
		"image_png": "binary", "noise_seed": "int64",
	}
	for _, f := range Rollout.Arrow().Fields() {
		if w, ok := want[f.Name]; ok && f.Type.String() != w {
			t.Errorf("%s: type %s, want %s", f.Name, f.Type, w)
		}
	}
	if !arrow.TypeEqual(Metrics.Arrow().Field(5).Type, &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}) {
		t.Errorf("metrics time type %s", Metrics.Arrow().Field(5).Type)
	}
}
