package mlflow

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The tags that identify a thinkgen run's MLflow run.
const (
	TagRun     = "thinkgen.run"
	TagStarted = "thinkgen.started"
)

// The statuses a run ends with.
const (
	StatusRunning  = "RUNNING"
	StatusFinished = "FINISHED"
	StatusFailed   = "FAILED"
	StatusKilled   = "KILLED"
)

// Options configure a Tracker.
type Options struct {
	// Client talks to the tracking server.
	Client *Client
	// Experiment names the MLflow experiment (created when missing).
	Experiment string
	// Run is the thinkgen run's name and Started when it was created (its
	// run.json's started): together they identify its MLflow run.
	Run     string
	Started time.Time
	// Params are the run's params (the flattened configuration); values
	// longer than MaxParamValueLen are cut.
	Params []Param
	// Warn receives one line per dropped call; nil discards them.
	Warn io.Writer
}

// Tracker logs one thinkgen run to its MLflow run. Its methods may be
// called from any goroutine; the calls to the server run in order on the
// tracker's own goroutine.
type Tracker struct {
	c       *Client
	runID   string
	root    string // artifact root of the proxy; "" when it does not serve the run
	rootErr error
	warn    io.Writer

	mu      sync.Mutex
	jobs    []func(context.Context) error
	pending map[int64][]Metric // steps not yet logged, by step
	last    int64              // highest step the MLflow run holds
	dropped int
	wake    chan struct{}
	closing bool
	done    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
}

// Start finds the MLflow run of o.Run (by its tags) or creates it, logs
// the params it lacks, marks it RUNNING and starts the tracker's
// goroutine. Its errors (the server unreachable, a param whose value the
// run holds differently) stop a run before it starts.
func Start(ctx context.Context, o Options) (*Tracker, error) {
	c := o.Client
	exp, err := c.ExperimentID(ctx, o.Experiment)
	if err != nil {
		return nil, fmt.Errorf("mlflow %s: experiment %q: %w", c, o.Experiment, err)
	}
	tags := map[string]string{TagRun: o.Run, TagStarted: o.Started.UTC().Format(time.RFC3339Nano)}
	id, err := c.FindRun(ctx, exp, tags)
	if err != nil {
		return nil, fmt.Errorf("mlflow %s: find run %s: %w", c, o.Run, err)
	}
	if id == "" {
		if id, err = c.CreateRun(ctx, exp, o.Run, o.Started, tags); err != nil {
			return nil, fmt.Errorf("mlflow %s: create run %s: %w", c, o.Run, err)
		}
	}
	ri, err := c.Run(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("mlflow %s: run %s: %w", c, id, err)
	}
	var params []Param
	for _, p := range o.Params {
		p.Key, p.Value = SanitizeKey(p.Key), cut(p.Value, MaxParamValueLen)
		switch old, ok := ri.Params[p.Key]; {
		case !ok:
			params = append(params, p)
		case old != p.Value:
			return nil, fmt.Errorf("mlflow %s: run %s (%s) has param %s = %q, this run %q: MLflow params cannot change", c, o.Run, id, p.Key, old, p.Value)
		}
	}
	if err := c.LogBatch(ctx, id, nil, params); err != nil {
		return nil, fmt.Errorf("mlflow %s: run %s: log params: %w", c, id, err)
	}
	if ri.Status != StatusRunning {
		if err := c.UpdateRun(ctx, id, StatusRunning, time.Time{}); err != nil {
			return nil, fmt.Errorf("mlflow %s: run %s: %w", c, id, err)
		}
	}
	t := &Tracker{c: c, runID: id, warn: o.Warn, pending: map[int64][]Metric{}, last: ri.LastStep,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	if t.warn == nil {
		t.warn = io.Discard
	}
	t.root, t.rootErr = ArtifactPath(ri.ArtifactURI)
	t.ctx, t.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go t.loop()
	return t, nil
}

// RunID is the MLflow run's id.
func (t *Tracker) RunID() string { return t.runID }

// LastStep is the highest step the MLflow run holds (0 or -1: none), as
// of the last call that logged one.
func (t *Tracker) LastStep() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// Dropped counts the calls that failed after their retries.
func (t *Tracker) Dropped() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

// Step queues the metrics of a committed step, measured at at. A step the
// MLflow run already holds is ignored, so a step handed over twice (a
// resume's catching up, a repaired commit) is logged once. Names are
// sanitised (SanitizeKey).
func (t *Tracker) Step(step int, at time.Time, metrics map[string]float64) {
	ms := make([]Metric, 0, len(metrics))
	for _, k := range slices.Sorted(maps.Keys(metrics)) {
		ms = append(ms, Metric{Key: SanitizeKey(k), Value: Value(metrics[k]), Timestamp: at.UnixMilli(), Step: int64(step)})
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if int64(step) <= t.last || t.closing {
		return
	}
	t.pending[int64(step)] = ms
	t.enqueue(t.logPending)
}

// Artifact queues data as the artifact at path (e.g. "curves.png").
func (t *Tracker) Artifact(path string, data []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return
	}
	t.enqueue(func(ctx context.Context) error {
		if t.rootErr != nil {
			return fmt.Errorf("artifact %s: %w", path, t.rootErr)
		}
		if err := t.c.UploadArtifact(ctx, t.root, path, data); err != nil {
			return fmt.Errorf("artifact %s: %w", path, err)
		}
		return nil
	})
}

// enqueue adds a job; t.mu is held.
func (t *Tracker) enqueue(job func(context.Context) error) {
	t.jobs = append(t.jobs, job)
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// logPending logs every pending step, in order, in one or more batches;
// what fails stays pending for the next call.
func (t *Tracker) logPending(ctx context.Context) error {
	t.mu.Lock()
	steps := slices.Sorted(maps.Keys(t.pending))
	var ms []Metric
	for _, s := range steps {
		ms = append(ms, t.pending[s]...)
	}
	t.mu.Unlock()
	if len(steps) == 0 {
		return nil
	}
	if err := t.c.LogBatch(ctx, t.runID, ms, nil); err != nil {
		return fmt.Errorf("log steps %d–%d: %w", steps[0], steps[len(steps)-1], err)
	}
	t.mu.Lock()
	for _, s := range steps {
		delete(t.pending, s)
	}
	t.last = max(t.last, steps[len(steps)-1])
	t.mu.Unlock()
	return nil
}

// loop runs the queued jobs until Close.
func (t *Tracker) loop() {
	defer close(t.done)
	for {
		t.mu.Lock()
		jobs := t.jobs
		t.jobs = nil
		closing := t.closing
		t.mu.Unlock()
		for _, job := range jobs {
			if err := job(t.ctx); err != nil {
				t.mu.Lock()
				t.dropped++
				n := t.dropped
				t.mu.Unlock()
				fmt.Fprintf(t.warn, "warning: mlflow %s run %s: %v (%d calls dropped so far; training goes on)\n", t.c, t.runID, err, n)
			}
		}
		if closing && len(jobs) == 0 {
			return
		}
		if len(jobs) == 0 {
			select {
			case <-t.wake:
			case <-t.ctx.Done():
				return
			}
		}
	}
}

// Close runs the queued calls (logging once more the steps whose calls
// failed), then ends the MLflow run with status (FINISHED, FAILED or
// KILLED). When ctx ends first, what is left is dropped. It returns the
// number of dropped calls.
func (t *Tracker) Close(ctx context.Context, status string) int {
	t.mu.Lock()
	if !t.closing {
		t.closing = true
		if len(t.pending) > 0 {
			t.enqueue(t.logPending)
		}
		t.enqueue(func(ctx context.Context) error {
			if err := t.c.UpdateRun(ctx, t.runID, status, time.Now()); err != nil {
				return fmt.Errorf("end the run as %s: %w", status, err)
			}
			return nil
		})
	}
	t.mu.Unlock()
	select {
	case <-t.done:
	case <-ctx.Done():
		t.cancel()
		<-t.done
		fmt.Fprintf(t.warn, "warning: mlflow %s run %s: %v before its last calls ran\n", t.c, t.runID, ctx.Err())
	}
	t.cancel()
	return t.Dropped()
}

// SanitizeKey makes name a valid MLflow metric or param key: characters
// other than letters, digits, '_', '-', '.', ' ', ':' and '/' become '_',
// a ".." segment and a leading '/' (which MLflow refuses as a path) are
// replaced, and the name is cut to MaxKeyLen bytes.
func SanitizeKey(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '_', r == '-', r == '.', r == ' ', r == ':', r == '/':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := strings.ReplaceAll(b.String(), "..", "__")
	if strings.HasPrefix(s, "/") {
		s = "_" + s[1:]
	}
	if s == "" {
		s = "_"
	}
	return cut(s, MaxKeyLen)
}

// cut shortens s to at most n bytes at a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
