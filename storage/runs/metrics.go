package runs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/storage"
)

// MetricsKey is the key of a metrics shard of a step of run, written by
// the controller of epoch (task "controller") into the step's commit, on
// its write-th try at that step: each write has its own key, and readers
// find the one the step's manifest lists ([FindMetrics]).
func MetricsKey(run string, step, epoch, write int) string {
	return storage.ShardKey(run, step, "metrics", "controller", epoch, write)
}

// FindMetrics returns the key of the metrics shard a committed step's
// manifest lists.
func FindMetrics(m *storage.Manifest, run string, step int) (string, error) {
	prefix := storage.StepPrefix(run, step) + "metrics/"
	var found []string
	for _, o := range m.Objects {
		if strings.HasPrefix(o.Key, prefix) {
			found = append(found, o.Key)
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("step %d: its manifest lists %d metrics shards (%s), want 1", step, len(found), strings.Join(found, ", "))
	}
	return found[0], nil
}

// PutMetrics writes the metrics of a step (one row per name, in name
// order, all measured at) as the shard key (see [MetricsKey]) in batch.
func PutMetrics(ctx context.Context, batch *storage.Batch, key, run string, step int, phase config.Phase, at time.Time, m map[string]float64, opts shards.WriterOptions, tmpDir string) error {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	ms := at.UnixMilli()
	_, err := shards.Put(ctx, batch, key, shards.Metrics, opts, tmpDir, func(w *shards.Writer[shards.MetricRow]) error {
		for _, k := range names {
			r := shards.MetricRow{Run: run, Step: int64(step), Phase: string(phase), Name: k, Value: m[k], TimeMS: ms}
			if err := w.Write(&r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("metrics shard: %w", err)
	}
	return nil
}

// StepMetrics are the metrics of one committed step.
type StepMetrics struct {
	Phase  string
	Values map[string]float64
	// At is when they were measured (milliseconds, as the shard keeps it).
	At time.Time
}

// ReadStepMetrics reads the metrics shard of a committed step.
func ReadStepMetrics(ctx context.Context, st storage.Store, run string, step int, tmpDir string) (StepMetrics, error) {
	m, err := storage.ReadManifest(ctx, st, storage.StepManifestKey(run, step))
	if err != nil {
		return StepMetrics{}, fmt.Errorf("step %d: %w", step, err)
	}
	key, err := FindMetrics(m, run, step)
	if err != nil {
		return StepMetrics{}, err
	}
	rd, err := shards.Open(ctx, st, m, key, shards.Metrics, shards.ReadOptions{}, tmpDir)
	if err != nil {
		return StepMetrics{}, fmt.Errorf("step %d: %w", step, err)
	}
	defer rd.Close()
	sm := StepMetrics{Values: map[string]float64{}}
	for {
		var r shards.MetricRow
		err := rd.Read(&r)
		if errors.Is(err, io.EOF) {
			return sm, nil
		}
		if err != nil {
			return StepMetrics{}, fmt.Errorf("step %d metrics: %w", step, err)
		}
		sm.Phase, sm.Values[r.Name], sm.At = r.Phase, r.Value, time.UnixMilli(r.TimeMS)
	}
}

// History is the metrics of a run's committed steps: per metric name, the
// value at each step (NaN where a step did not log it).
type History struct {
	Steps  []float64
	Phases []string
	Values map[string][]float64
}

// ReadHistory reads the metrics shard of every committed step of run.
func ReadHistory(ctx context.Context, st storage.Store, run string, tmpDir string) (*History, error) {
	rs, err := ReadState(ctx, st, run)
	if err != nil {
		return nil, err
	}
	h := &History{Values: map[string][]float64{}}
	for step := 1; step <= rs.Committed; step++ {
		sm, err := ReadStepMetrics(ctx, st, run, step, tmpDir)
		if err != nil {
			return nil, err
		}
		h.add(step, sm)
	}
	return h, nil
}

// add appends a step's metrics.
func (h *History) add(step int, sm StepMetrics) {
	i := len(h.Steps)
	h.Steps = append(h.Steps, float64(step))
	h.Phases = append(h.Phases, sm.Phase)
	for k := range h.Values {
		h.Values[k] = append(h.Values[k], math.NaN())
	}
	for k, x := range sm.Values {
		v, ok := h.Values[k]
		if !ok {
			v = make([]float64, i+1)
			for j := range v {
				v[j] = math.NaN()
			}
		}
		v[i] = x
		h.Values[k] = v
	}
}
