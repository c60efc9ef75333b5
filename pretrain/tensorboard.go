package pretrain

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/thinkgen/thinkgen/internal/tfevents"
)

// TensorBoardDir is the TensorBoard log directory of the pre-training run
// in dir: one event file per stage, tags <stage>/loss, <stage>/lr,
// <stage>/grad_norm, <stage>/live_tensors and <stage>/rss_mib.
func TensorBoardDir(dir string) string { return filepath.Join(dir, "pretrain", "tensorboard") }

// metricsLine is one line of a stage's metrics.jsonl.
type metricsLine struct {
	Step        int64   `json:"step"`
	Loss        float64 `json:"loss"`
	LR          float64 `json:"lr"`
	GradNorm    float64 `json:"grad_norm"`
	LiveTensors float64 `json:"live_tensors"`
	RSSMiB      float64 `json:"rss_mib"`
	Time        string  `json:"time"`
}

// writeEvents rewrites the TensorBoard event file of stage (the i-th of
// AllStages) from its metrics.jsonl in stageDir: one event per step, the
// last line of a step winning, so that the steps a resume ran again (a
// kill after the last checkpoint) show once, with the resumed values. It
// runs at each checkpoint and at the stage's end; the file is replaced
// whole (a rename), so TensorBoard never reads half of it.
func writeEvents(runDir, stageDir, stage string, i int) error {
	f, err := os.Open(filepath.Join(stageDir, "metrics.jsonl"))
	if err != nil {
		return fmt.Errorf("tensorboard events of stage %s: %w", stage, err)
	}
	defer f.Close()
	byStep := map[int64]metricsLine{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var m metricsLine
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("tensorboard events of stage %s: metrics.jsonl:%d: %w", stage, n, err)
		}
		byStep[m.Step] = m
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("tensorboard events of stage %s: %w", stage, err)
	}
	steps := make([]int64, 0, len(byStep))
	for s := range byStep {
		steps = append(steps, s)
	}
	slices.Sort(steps)
	var buf bytes.Buffer
	w := tfevents.NewWriter(&buf)
	for j, s := range steps {
		m := byStep[s]
		at, err := time.Parse(time.RFC3339, m.Time)
		if err != nil {
			return fmt.Errorf("tensorboard events of stage %s: step %d: time %q: %w", stage, s, m.Time, err)
		}
		wall := float64(at.Unix())
		if j == 0 {
			if err := w.WriteEvent(tfevents.Event{WallTime: wall, FileVersion: tfevents.FileVersion}); err != nil {
				return err
			}
		}
		e := tfevents.Event{WallTime: wall, Step: s, Scalars: []tfevents.Scalar{
			{Tag: stage + "/loss", Value: float32(m.Loss)},
			{Tag: stage + "/lr", Value: float32(m.LR)},
			{Tag: stage + "/grad_norm", Value: float32(m.GradNorm)},
			{Tag: stage + "/live_tensors", Value: float32(m.LiveTensors)},
			{Tag: stage + "/rss_mib", Value: float32(m.RSSMiB)},
		}}
		if err := w.WriteEvent(e); err != nil {
			return err
		}
	}
	dir := TensorBoardDir(runDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Named so that the stages' files sort in their order.
	path := filepath.Join(dir, fmt.Sprintf("%s%010d.%s.thinkgen", tfevents.FilePrefix, i, stage))
	// Written beside the stage's metrics, out of TensorBoard's sight.
	tmp := filepath.Join(stageDir, "events.tmp")
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tensorboard events of stage %s: %w", stage, err)
	}
	return nil
}
