package shards

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/thinkgen/thinkgen/internal/testenv"
)

func runPython(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(testenv.Python(t), append([]string{filepath.Join("testdata", "pyarrow_shards.py")}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pyarrow_shards.py %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// The JSON forms of the rows, as pyarrow_shards.py prints them. Struct
// conversion ignores tags, so each converts to its row type.
type (
	rolloutJSON struct {
		Run           string      `json:"run"`
		Step          int64       `json:"step"`
		Phase         string      `json:"phase"`
		Task          string      `json:"task"`
		Attempt       int32       `json:"attempt"`
		GroupID       int64       `json:"group_id"`
		SampleIndex   int32       `json:"sample_index"`
		Scenario      string      `json:"scenario"`
		Prompt        string      `json:"prompt"`
		RowID         string      `json:"row_id"`
		Answer        string      `json:"answer"`
		Spec          string      `json:"spec"`
		CoT           string      `json:"cot"`
		Instruction   string      `json:"instruction"`
		TokenIDs      []int32     `json:"token_ids"`
		TokenLogProbs []float32   `json:"token_logprobs"`
		ImagePNG      []byte      `json:"image_png"`
		ReferencePNG  []byte      `json:"reference_png"`
		LatentShape   []int32     `json:"latent_shape"`
		SDELatents    [][]float32 `json:"sde_latents"`
		SDEMeans      [][]float32 `json:"sde_means"`
		SDELogProbs   []float32   `json:"sde_logprobs"`
		NoiseSeed     int64       `json:"noise_seed"`
		PolicyVersion int64       `json:"policy_version"`
	}
	rewardJSON struct {
		Run         string             `json:"run"`
		Step        int64              `json:"step"`
		Task        string             `json:"task"`
		Attempt     int32              `json:"attempt"`
		GroupID     int64              `json:"group_id"`
		SampleIndex int32              `json:"sample_index"`
		Scenario    string             `json:"scenario"`
		Reward      float32            `json:"reward"`
		Components  map[string]float32 `json:"components"`
		Detail      string             `json:"detail"`
	}
	metricJSON struct {
		Run    string  `json:"run"`
		Step   int64   `json:"step"`
		Phase  string  `json:"phase"`
		Name   string  `json:"name"`
		Value  float64 `json:"value"`
		TimeMS int64   `json:"time"`
	}
)

type pyShard[J any] struct {
	Columns  [][2]string       `json:"columns"`
	Metadata map[string]string `json:"metadata"`
	Batches  int               `json:"batches"`
	Rows     []J               `json:"rows"`
}

// goToPyarrow writes rows with Go, reads them with pyarrow, and checks the
// columns, metadata, batch count and every value.
func goToPyarrow[R, J any](t *testing.T, s *Schema[R], want []R, opts WriterOptions, batches int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), s.Name+".arrow")
	if err := os.WriteFile(path, writeShard(t, s, want, opts), 0o644); err != nil {
		t.Fatal(err)
	}
	var got pyShard[J]
	if err := json.Unmarshal(runPython(t, "read", path), &got); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range got.Columns {
		names = append(names, c[0])
	}
	if !reflect.DeepEqual(names, s.Columns()) {
		t.Errorf("pyarrow columns %v, want %v", names, s.Columns())
	}
	if got.Metadata[MetaSchema] != s.Name || got.Metadata[MetaVersion] != strconv.Itoa(s.Version) {
		t.Errorf("pyarrow metadata %v", got.Metadata)
	}
	if got.Batches != batches {
		t.Errorf("pyarrow sees %d batches, want %d", got.Batches, batches)
	}
	if len(got.Rows) != len(want) {
		t.Fatalf("pyarrow read %d rows, want %d", len(got.Rows), len(want))
	}
	for i := range want {
		var row R
		reflect.ValueOf(&row).Elem().Set(reflect.ValueOf(got.Rows[i]).Convert(reflect.TypeOf(row)))
		if !reflect.DeepEqual(row, want[i]) {
			t.Fatalf("row %d as pyarrow reads it:\n got %+v\nwant %+v", i, row, want[i])
		}
	}
}

func TestGoShardsReadByPyarrow(t *testing.T) {
	testenv.Python(t)
	t.Run("rollout", func(t *testing.T) {
		goToPyarrow[RolloutRow, rolloutJSON](t, Rollout, rows(40, rolloutRow), WriterOptions{BatchRows: 16, Compression: "zstd"}, 3)
	})
	t.Run("reward", func(t *testing.T) {
		goToPyarrow[RewardRow, rewardJSON](t, Reward, rows(10, rewardRow), WriterOptions{BatchRows: 4, Compression: "lz4"}, 3)
	})
	t.Run("metrics", func(t *testing.T) {
		goToPyarrow[MetricRow, metricJSON](t, Metrics, rows(5, metricRow), WriterOptions{Compression: "none"}, 1)
	})
}

func TestPyarrowShardReadByGo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "py.arrow")
	var want pyShard[rolloutJSON]
	if err := json.Unmarshal(runPython(t, "write-rollout", path), &want); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, _ := os.ReadFile(path)
	got := readShard(t, Rollout, data, ReadOptions{})
	if len(got) != len(want.Rows) || len(got) == 0 {
		t.Fatalf("Go read %d rows, pyarrow wrote %d", len(got), len(want.Rows))
	}
	for i := range got {
		if w := RolloutRow(want.Rows[i]); !reflect.DeepEqual(got[i], w) {
			t.Fatalf("row %d:\n got %+v\nwant %+v", i, got[i], w)
		}
	}
	// Projection and streaming work on the pyarrow file too.
	rd, err := NewReader(f, path, Rollout, ReadOptions{Columns: []string{"noise_seed"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if rd.fr.NumRecords() != 2 {
		t.Errorf("pyarrow file has %d batches, want 2", rd.fr.NumRecords())
	}
	var row RolloutRow
	if err := rd.Read(&row); err != nil || !reflect.DeepEqual(row, RolloutRow{NoiseSeed: want.Rows[0].NoiseSeed}) {
		t.Fatalf("projected read: %+v, %v", row, err)
	}
}
