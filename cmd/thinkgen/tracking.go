package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/evaluate"
	"github.com/thinkgen/thinkgen/runeval"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/tracking/mlflow"
)

// trackingOf is the tracking section a train invocation reports with: the
// invocation's own (--config, --set) when it names a tracker, else the
// one the run recorded (a resume without --set tracking.mlflow keeps
// reporting where the run started to).
func trackingOf(invocation, recorded config.Tracking) config.Tracking {
	if invocation.MLflow != "" {
		return invocation
	}
	return recorded
}

// mlflowClient returns a client of tr.MLflow after checking that the
// server answers and has (or can create) tr.Experiment, so that a wrong
// tracking.mlflow is refused (exit 2) before the run is created.
// MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and
// MLFLOW_TRACKING_PASSWORD, authenticate as they do for MLflow's own
// client.
func mlflowClient(ctx context.Context, e *env, tr config.Tracking) (*mlflow.Client, error) {
	c, err := mlflow.NewClient(tr.MLflow, mlflow.ClientOptions{Auth: mlflow.Auth{
		Token:    e.getenv("MLFLOW_TRACKING_TOKEN"),
		Username: e.getenv("MLFLOW_TRACKING_USERNAME"),
		Password: e.getenv("MLFLOW_TRACKING_PASSWORD"),
	}})
	if err != nil {
		return nil, &usageError{fmt.Errorf("tracking.mlflow: %w", err)}
	}
	if _, err := c.ExperimentID(ctx, tr.Experiment); err != nil {
		return nil, &usageError{fmt.Errorf("tracking.mlflow %s, tracking.experiment %q: %w", tr.MLflow, tr.Experiment, err)}
	}
	return c, nil
}

// startMLflow starts the MLflow tracker of run (created in the store): it
// finds or creates the run's MLflow run, logs cfg as its params and the
// committed steps the MLflow run lacks.
func startMLflow(ctx context.Context, e *env, c *mlflow.Client, tr config.Tracking, cfg *config.Config, st storage.Store, run, tmp string) (*mlflow.Tracker, error) {
	rs, err := runs.ReadState(ctx, st, run)
	if err != nil {
		return nil, err
	}
	kvs, err := cfg.Flatten()
	if err != nil {
		return nil, err
	}
	params := make([]mlflow.Param, len(kvs))
	for i, kv := range kvs {
		params[i] = mlflow.Param{Key: kv.Key, Value: kv.Value}
	}
	t, err := mlflow.Start(ctx, mlflow.Options{Client: c, Experiment: tr.Experiment, Run: run, Started: rs.Started, Params: params, Warn: e.stderr})
	if err != nil {
		return nil, fmt.Errorf("tracking.mlflow: %w", err)
	}
	fmt.Fprintf(e.stderr, "train: mlflow run %s in experiment %q of %s\n", t.RunID(), tr.Experiment, tr.MLflow)
	// The steps a kill (or a run without tracking) left unlogged.
	for step := max(t.LastStep(), 0) + 1; step <= int64(rs.Committed); step++ {
		sm, err := runs.ReadStepMetrics(ctx, st, run, int(step), tmp)
		if err != nil {
			t.Close(ctx, mlflow.StatusFailed)
			return nil, fmt.Errorf("tracking.mlflow: committed step %d: %w", step, err)
		}
		t.Step(int(step), sm.At, sm.Values)
	}
	return t, nil
}

// endMLflow ends the tracker's run with the status that err (the run's
// outcome) and done (every step committed) give, waiting at most a
// minute for the calls still queued.
func endMLflow(ctx context.Context, e *env, t *mlflow.Tracker, err error, done bool) {
	status := mlflow.StatusFinished
	switch {
	case errors.Is(err, context.Canceled) || (err == nil && !done):
		status = mlflow.StatusKilled
	case err != nil:
		status = mlflow.StatusFailed
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if n := t.Close(ctx, status); n > 0 {
		fmt.Fprintf(e.stderr, "warning: mlflow run %s: %d calls dropped (see the warnings above); the run's store has every step\n", t.RunID(), n)
	}
}

// mlflowFile queues the local file p as the artifact name.
func mlflowFile(t *mlflow.Tracker, p, name string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("mlflow artifact %s: %w", name, err)
	}
	t.Artifact(name, b)
	return nil
}

// mlflowObject queues the stored object key as the artifact name.
func mlflowObject(ctx context.Context, t *mlflow.Tracker, st storage.Store, key, name string) error {
	r, err := st.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("mlflow artifact %s: %w", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("mlflow artifact %s: %w", name, err)
	}
	t.Artifact(name, b)
	return nil
}

// evalRow is one line of a held-out table artifact.
type evalRow struct {
	Version   int     `json:"version"`
	Stage     string  `json:"stage"`
	Mode      string  `json:"mode"`
	Scenario  string  `json:"scenario"`
	Benchmark string  `json:"benchmark"`
	N         int     `json:"n"`
	Score     float64 `json:"score"`
	Strict    float64 `json:"strict"`
}

// mlflowEval queues a split's per-stage table as eval/<split>.json (a row
// per stage, mode and scenario) and eval/<split>.txt (the table train
// prints), and with grids the sample grids of its stages (kept for the
// eval split) as grids/<version>-<mode>.png.
func mlflowEval(ctx context.Context, t *mlflow.Tracker, st storage.Store, run, split string, stages *runeval.Stages, grids bool) error {
	var rows []evalRow
	for i, ent := range stages.Entries {
		for _, mode := range sortedModes(ent.Scores) {
			for _, s := range ent.Scores[mode] {
				rows = append(rows, evalRow{Version: stages.Versions[i], Stage: ent.Label, Mode: mode, Scenario: s.Scenario, Benchmark: s.Benchmark, N: s.N, Score: s.Score, Strict: s.Strict})
			}
		}
	}
	b, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return err
	}
	t.Artifact(path.Join("eval", split+".json"), append(b, '\n'))
	var table bytes.Buffer
	if err := stages.WriteTable(&table); err != nil {
		return err
	}
	t.Artifact(path.Join("eval", split+".txt"), table.Bytes())
	if !grids {
		return nil
	}
	for i, v := range stages.Versions {
		for _, mode := range sortedModes(stages.Entries[i].Scores) {
			key := runs.EvalGridKey(run, v, mode)
			if _, err := st.Stat(ctx, key); errors.Is(err, storage.ErrNotExist) {
				continue
			}
			if err := mlflowObject(ctx, t, st, key, fmt.Sprintf("grids/%06d-%s.png", v, mode)); err != nil {
				return err
			}
		}
	}
	return nil
}

// sortedModes lists the modes of scores in order.
func sortedModes(scores evaluate.Scores) []string {
	return slices.Sorted(maps.Keys(scores))
}
