// Package tfeventstest reads TensorBoard log directories with TensorBoard's
// own Python event reader (EventAccumulator, from the test venv of
// scripts/setup-pyenv.sh), so that tests can check what TensorBoard would
// show of the files thinkgen writes.
package tfeventstest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/thinkgen/thinkgen/internal/testenv"
)

//go:embed tb_read.py
var script []byte

// Log is what TensorBoard read from a log directory.
type Log struct {
	// FileVersion is the parsed file_version of the files (2 for
	// "brain.Event:2").
	FileVersion float64 `json:"file_version"`
	// Files are the names TensorBoard takes for event files, sorted as it
	// reads them.
	Files []string `json:"files"`
	// Scalars holds each tag's points in the order TensorBoard keeps them.
	Scalars map[string][]Point `json:"scalars"`
	// Images holds each image tag's images in the order TensorBoard keeps
	// them: [step, wall_time, width, height, sha256 of the PNG in hex].
	Images map[string][][5]any `json:"images"`
	// HParams are the hyperparameters of the hparams plugin's session
	// start (numbers as float64), HParamsStart its start_time_secs.
	HParams      map[string]any `json:"hparams"`
	HParamsStart float64        `json:"hparams_start"`
	// Texts holds each text tag's summaries, in TensorBoard's order.
	Texts map[string][]TextPoint `json:"texts"`
}

// TextPoint is one text summary.
type TextPoint struct {
	Step int64
	Text string
}

// Point is one scalar value.
type Point struct {
	Step     int64
	WallTime float64
	Value    float64
}

// UnmarshalJSON reads [step, wall_time, value], the value possibly a
// string spelling a non-finite number ("nan", "inf", "-inf").
func (p *Point) UnmarshalJSON(b []byte) error {
	var v json.RawMessage
	if err := tuple(b, &p.Step, &p.WallTime, &v); err != nil {
		return err
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("scalar value %q: %w", s, err)
		}
		p.Value = x
		return nil
	}
	return json.Unmarshal(v, &p.Value)
}

// UnmarshalJSON reads [step, text].
func (p *TextPoint) UnmarshalJSON(b []byte) error { return tuple(b, &p.Step, &p.Text) }

// tuple decodes the JSON array b into the values ptrs point at, in order.
func tuple(b []byte, ptrs ...any) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if len(raw) != len(ptrs) {
		return fmt.Errorf("%d values, want %d: %s", len(raw), len(ptrs), b)
	}
	for i, p := range ptrs {
		if err := json.Unmarshal(raw[i], p); err != nil {
			return err
		}
	}
	return nil
}

// Read loads dir with TensorBoard's EventAccumulator. It skips the test
// (fails under CI) when the test venv is not given (testenv.Python).
func Read(t testing.TB, dir string) *Log {
	t.Helper()
	py := testenv.Python(t)
	path := filepath.Join(t.TempDir(), "tb_read.py")
	if err := os.WriteFile(path, script, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, path, dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tb_read.py %s: %v\n%s", dir, err, stderr.String())
	}
	var l Log
	if err := json.Unmarshal(out, &l); err != nil {
		t.Fatalf("tb_read.py output: %v\n%s", err, out)
	}
	return &l
}

// Same reports whether a float32 written by Go and the value TensorBoard
// read are the same number (both NaN counts as the same).
func Same(written float32, read float64) bool {
	if math.IsNaN(float64(written)) {
		return math.IsNaN(read)
	}
	return float64(written) == read
}
