package sweep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
)

// Launcher starts trials: as processes of this machine ([Local]), as Ray
// jobs ([Ray]) or as KubeRay RayJobs ([KubeRay]).
type Launcher interface {
	// Start starts the trial's training run and returns at once.
	Start(ctx context.Context, t *TrialState, l Launch) (Handle, error)
}

// Launch is what a Launcher starts for a trial.
type Launch struct {
	// Args are the trial's command line after the thinkgen binary
	// (TrainArgs).
	Args []string
	// Resume is true when the trial's run exists in the store: it is
	// continued (Args hold --resume).
	Resume bool
	// Log is the file the trial's output is appended to.
	Log string
}

// Handle is a started trial.
type Handle interface {
	// Wait blocks until the trial's process ends and returns nil if it
	// exited 0. When ctx is done it ends the process first.
	Wait(ctx context.Context) error
	// Stop asks the trial's process to end (the early-stopping rule); Wait
	// then returns.
	Stop(ctx context.Context) error
}

// Runner runs a sweep's unfinished trials, Spec.Parallel at a time, and
// keeps its State in the store.
type Runner struct {
	Spec     *Spec
	Store    storage.Store
	Launcher Launcher
	// ExtraArgs are added to every trial's train command (e.g. --store).
	ExtraArgs []string
	// LogDir receives <trial>.log; when UploadLogs is set, each log is
	// also stored as sweeps/<name>/logs/<trial>.log once its trial ends.
	LogDir     string
	UploadLogs bool
	// Progress receives one line per event (trial started, step committed,
	// stopped, done, failed) with the counts and an ETA.
	Progress io.Writer
	// PollInterval is how often running trials' committed steps are read
	// from the store; zero means 5 s.
	PollInterval time.Duration
	// TmpDir holds the metrics shards read for early stopping.
	TmpDir string
}

// TrainArgs is the command line (after the binary) of a trial: train with
// the base config, the sweep's set overrides, extra, the trial's
// overrides, its run name and eval rows; resume continues its run.
func TrainArgs(s *Spec, t Trial, resume bool, extra []string) []string {
	args := []string{"train", "--config", s.Base}
	for _, o := range s.Set {
		args = append(args, "--set", o.String())
	}
	for _, o := range t.Overrides {
		args = append(args, "--set", o.String())
	}
	args = append(args, "--run", t.Name, "--eval-rows", strconv.Itoa(s.EvalRows))
	if resume {
		args = append(args, "--resume")
	}
	return append(args, extra...)
}

type active struct {
	h        Handle
	started  time.Time
	stopping bool
}

type result struct {
	i   int
	err error
}

// Run runs every trial of state that is not finished (done or stopped),
// resuming the runs that exist, and returns when all have ended or ctx is
// done (running trials are then ended, left unfinished, and the state is
// written). A failed trial does not stop the sweep.
func (r *Runner) Run(ctx context.Context, state *State) error {
	if r.PollInterval <= 0 {
		r.PollInterval = 5 * time.Second
	}
	if err := os.MkdirAll(r.LogDir, 0o755); err != nil {
		return fmt.Errorf("sweep logs: %w", err)
	}
	var queue []int
	for i := range state.Trials {
		if !state.Trials[i].Status.Finished() {
			queue = append(queue, i)
		}
	}
	n := len(state.Trials)
	r.printf("sweep %s: %d trials, %d finished before, %d to run, %d at a time", state.Name, n, n-len(queue), len(queue), r.Spec.Parallel)
	running := map[int]*active{}
	results := make(chan result)
	var durations []time.Duration
	tick := time.NewTicker(r.PollInterval)
	defer tick.Stop()
	status := func() string {
		c := state.Counts()
		s := fmt.Sprintf("%d done, %d stopped, %d failed, %d running, %d pending", c[StatusDone], c[StatusStopped], c[StatusFailed], c[StatusRunning], c[StatusPending])
		if len(durations) == 0 {
			return s + "; ETA unknown"
		}
		var sum time.Duration
		for _, d := range durations {
			sum += d
		}
		left := math.Ceil(float64(len(queue)+len(running)) / float64(r.Spec.Parallel))
		eta := time.Duration(left * float64(sum) / float64(len(durations)))
		return s + "; ETA " + eta.Round(time.Second).String()
	}
	for {
		for len(running) < r.Spec.Parallel && len(queue) > 0 && ctx.Err() == nil {
			i := queue[0]
			queue = queue[1:]
			t := &state.Trials[i]
			h, resume, err := r.start(ctx, t)
			if err != nil {
				t.Status, t.Error, t.Ended = StatusFailed, err.Error(), time.Now().UTC()
				r.printf("trial %d/%d %s failed to start: %v; %s", t.Index, n, t.Name, err, status())
			} else {
				running[i] = &active{h: h, started: time.Now()}
				how := "running"
				if resume {
					how = "resuming its run"
				}
				r.printf("trial %d/%d %s %s (%s); %s", t.Index, n, t.Name, how, t.Describe(), status())
				go func() { results <- result{i, h.Wait(ctx)} }()
			}
			if err := state.Write(ctx, r.Store); err != nil {
				return r.abort(ctx, state, running, results, err)
			}
		}
		if len(running) == 0 {
			break
		}
		select {
		case res := <-results:
			a := running[res.i]
			delete(running, res.i)
			d := r.finish(ctx, state, res, a)
			durations = append(durations, d)
			t := &state.Trials[res.i]
			switch t.Status {
			case StatusDone:
				r.printf("trial %d/%d %s done: %s %.4f in %s; %s", t.Index, n, t.Name, state.Objective.Metric, *t.Objective, d.Round(time.Second), status())
			case StatusStopped:
				r.printf("trial %d/%d %s stopped early at step %d; %s", t.Index, n, t.Name, t.Steps, status())
			default:
				r.printf("trial %d/%d %s failed: %s (log %s); %s", t.Index, n, t.Name, t.Error, t.Log, status())
			}
			if err := state.Write(ctx, r.Store); err != nil {
				return r.abort(ctx, state, running, results, err)
			}
		case <-tick.C:
			if r.poll(ctx, state, running) {
				if err := state.Write(ctx, r.Store); err != nil {
					return r.abort(ctx, state, running, results, err)
				}
			}
		case <-ctx.Done():
			return r.abort(ctx, state, running, results, ctx.Err())
		}
	}
	if err := ctx.Err(); err != nil {
		return r.abort(ctx, state, running, results, err)
	}
	return nil
}

// abort ends the running trials (their Wait sees ctx done, or they are
// stopped), leaves them unfinished for the next run and writes the state.
func (r *Runner) abort(ctx context.Context, state *State, running map[int]*active, results chan result, cause error) error {
	for _, a := range running {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		a.h.Stop(sctx)
		cancel()
	}
	for len(running) > 0 {
		res := <-results
		a := running[res.i]
		delete(running, res.i)
		t := &state.Trials[res.i]
		t.Elapsed += time.Since(a.started)
		t.Status, t.Error = StatusPending, "interrupted: "+cause.Error()
		r.saveLog(context.WithoutCancel(ctx), t)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := state.Write(wctx, r.Store); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// start starts one trial; it resumes the trial's run if the store has one.
func (r *Runner) start(ctx context.Context, t *TrialState) (Handle, bool, error) {
	_, err := runs.ReadState(ctx, r.Store, t.Name)
	resume := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotExist) {
		return nil, false, fmt.Errorf("read run %s: %w", t.Name, err)
	}
	t.Status, t.Error, t.Attempts = StatusRunning, "", t.Attempts+1
	t.Started, t.Ended = time.Now().UTC(), time.Time{}
	logPath := filepath.Join(r.LogDir, t.Name+".log")
	t.Log = logPath
	if r.UploadLogs {
		t.Log = Prefix(r.Spec.Name) + "logs/" + t.Name + ".log"
	}
	h, err := r.Launcher.Start(ctx, t, Launch{Args: TrainArgs(r.Spec, t.Trial, resume, r.ExtraArgs), Resume: resume, Log: logPath})
	return h, resume, err
}

// finish records how a trial ended and returns the time it ran.
func (r *Runner) finish(ctx context.Context, state *State, res result, a *active) time.Duration {
	t := &state.Trials[res.i]
	d := time.Since(a.started)
	t.Elapsed += d
	t.Ended = time.Now().UTC()
	r.update(ctx, state, t)
	r.saveLog(ctx, t)
	var objErr error
	if res.err == nil {
		var v float64
		if v, objErr = state.Objective.ReadObjective(ctx, r.Store, t.Name); objErr == nil {
			t.Status, t.Objective = StatusDone, &v
			return d
		}
	}
	switch {
	case a.stopping:
		t.Status = StatusStopped
	case res.err != nil:
		t.Status, t.Error = StatusFailed, res.err.Error()
	default:
		t.Status, t.Error = StatusFailed, objErr.Error()
	}
	return d
}

// saveLog stores the trial's log file in the sweep's prefix, if asked to.
func (r *Runner) saveLog(ctx context.Context, t *TrialState) {
	if !r.UploadLogs {
		return
	}
	f, err := os.Open(filepath.Join(r.LogDir, t.Name+".log"))
	if err != nil {
		return
	}
	defer f.Close()
	if err := r.Store.Put(ctx, t.Log, f); err != nil {
		r.printf("trial %s: storing its log: %v", t.Name, err)
	}
}

// poll reads the committed steps of the running trials and applies the
// early-stopping rule to those that committed a new step. It reports
// whether anything changed.
func (r *Runner) poll(ctx context.Context, state *State, running map[int]*active) bool {
	changed := false
	for i, a := range running {
		t := &state.Trials[i]
		before := t.Steps
		if !r.update(ctx, state, t) || t.Steps == before {
			continue
		}
		changed = true
		line := fmt.Sprintf("trial %d/%d %s step %d/%d", t.Index, len(state.Trials), t.Name, t.Steps, t.TotalSteps)
		es := r.Spec.EarlyStop
		if es == nil || a.stopping {
			r.printf("%s", line)
			continue
		}
		sig := map[string][]float64{}
		for j := range state.Trials {
			if u := &state.Trials[j]; len(u.Signal) > 0 {
				sig[u.Name] = u.signal()
			}
		}
		// Every step committed since the last poll is judged, in order,
		// but the schedule's last: then the trial's training is over, and
		// its eval, already under way, gives it a real objective.
		var d Decision
		for s := max(before+1, 1); s <= t.Steps && s < t.TotalSteps; s++ {
			if d = es.Decide(t.Name, s, sig); d.Stop {
				break
			}
		}
		if !math.IsNaN(d.Value) && d.Step > 0 {
			line += fmt.Sprintf(" %s %.4f", es.Metric, d.Value)
		}
		if !math.IsNaN(d.Median) && d.Step > 0 {
			line += fmt.Sprintf(" (median of %d others %.4f)", d.Others, d.Median)
		}
		r.printf("%s", line)
		if d.Stop {
			a.stopping = true
			t.StoppedAt = &d
			r.printf("trial %d/%d %s: stopping (median rule: running mean of %s %.4f worse than the median %.4f at step %d)",
				t.Index, len(state.Trials), t.Name, es.Metric, d.Value, d.Median, d.Step)
			if err := a.h.Stop(ctx); err != nil {
				r.printf("trial %s: stop: %v", t.Name, err)
			}
		}
	}
	return changed
}

// update reads the trial's committed steps and, with early stopping, its
// metric by step. It reports whether the run could be read.
func (r *Runner) update(ctx context.Context, state *State, t *TrialState) bool {
	rs, err := runs.ReadState(ctx, r.Store, t.Name)
	if err != nil {
		return false
	}
	t.TotalSteps = rs.Steps
	if rs.Committed == t.Steps && (r.Spec.EarlyStop == nil || len(t.Signal) == rs.Committed) {
		return true
	}
	t.Steps = rs.Committed
	if es := r.Spec.EarlyStop; es != nil {
		h, err := runs.ReadHistory(ctx, r.Store, t.Name, r.TmpDir)
		if err != nil {
			r.printf("trial %s: metrics: %v", t.Name, err)
			return true
		}
		vals, ok := h.Values[es.Metric]
		if !ok {
			vals = make([]float64, len(h.Steps))
			for k := range vals {
				vals[k] = math.NaN()
			}
		}
		t.Signal = t.Signal[:0]
		for _, v := range vals {
			t.Signal = append(t.Signal, jsonFloat(v))
		}
	}
	return true
}

func (r *Runner) printf(format string, args ...any) {
	if r.Progress == nil {
		return
	}
	line := fmt.Sprintf(format, args...)
	fmt.Fprintf(r.Progress, "sweep: %s %s\n", time.Now().Format("15:04:05"), strings.TrimSpace(line))
}
