package sweep

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/thinkgen/thinkgen/storage"
)

// Status is the state of a trial.
type Status string

// The states of a trial. A trial starts pending, runs, and ends done (its
// objective is known), stopped (by the early-stopping rule) or failed. Done
// and stopped trials are never run again; a failed trial, or one a killed
// sweep left running, is resumed (train --resume) when the sweep runs again.
const (
	StatusPending Status = "pending"
	StatusRunning Status = "running"
	StatusDone    Status = "done"
	StatusStopped Status = "stopped"
	StatusFailed  Status = "failed"
)

// AllStatuses lists every Status; keep it in sync with the constants above
// (a test checks it).
var AllStatuses = []Status{StatusPending, StatusRunning, StatusDone, StatusStopped, StatusFailed}

// Finished reports whether a trial in this state is never run again.
func (s Status) Finished() bool { return s == StatusDone || s == StatusStopped }

// TrialState is a trial and what is known about it.
type TrialState struct {
	Trial
	Status Status `json:"status"`
	// Objective is the trial's objective; nil until it is done.
	Objective *float64 `json:"objective,omitempty"`
	// Steps is the number of committed steps, TotalSteps the schedule's.
	Steps      int `json:"steps"`
	TotalSteps int `json:"total_steps,omitempty"`
	// Signal is the early-stopping metric by step (index step-1); null
	// (NaN) where a step did not log it.
	Signal []jsonFloat `json:"signal,omitempty"`
	// StoppedAt says why an early-stopped trial was stopped.
	StoppedAt *Decision `json:"stopped_at,omitempty"`
	// Attempts counts the times the trial was started (resumes included).
	Attempts int `json:"attempts"`
	// Job is the Ray submission id of the trial's last job (ray mode).
	Job     string    `json:"job,omitempty"`
	Log     string    `json:"log,omitempty"`
	Error   string    `json:"error,omitempty"`
	Started time.Time `json:"started,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
	// Elapsed is the time the trial has run, over all its attempts.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// State is a sweep's state, kept in the store as sweeps/<name>/sweep.json.
type State struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
	// Fingerprint identifies what defines the trials (base, set, the
	// trials' overrides): a sweep file whose fingerprint differs cannot
	// resume this sweep.
	Fingerprint string       `json:"fingerprint"`
	Base        string       `json:"base"`
	Set         []Override   `json:"set,omitempty"`
	Method      Method       `json:"method"`
	Objective   Objective    `json:"objective"`
	Trials      []TrialState `json:"trials"`
	Created     time.Time    `json:"created"`
	Updated     time.Time    `json:"updated"`
}

// StateVersion is the version of sweep.json this build writes.
const StateVersion = 1

// Prefix is the store prefix of a sweep's objects.
func Prefix(name string) string { return "sweeps/" + name + "/" }

// StateKey is the key of a sweep's state.
func StateKey(name string) string { return Prefix(name) + "sweep.json" }

// ErrOtherSpace is returned by NewState when the stored sweep of that name
// was made from another search space.
var ErrOtherSpace = errors.New("thinkgen/sweep: a sweep of that name exists with other trials")

// Fingerprint hashes what defines a sweep's trials.
func Fingerprint(s *Spec, trials []Trial) string {
	b, _ := json.Marshal(struct {
		Base   string
		Set    []Override
		Trials []Trial
	}{s.Base, s.Set, trials})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:12])
}

// LoadState returns the stored state of the sweep, or a new one with every
// trial pending when there is none. A stored state of other trials is an
// error wrapping ErrOtherSpace.
func LoadState(ctx context.Context, st storage.Store, s *Spec, trials []Trial) (*State, bool, error) {
	fp := Fingerprint(s, trials)
	old, err := ReadState(ctx, st, s.Name)
	switch {
	case err == nil:
		if old.Fingerprint != fp {
			return nil, false, fmt.Errorf("sweep %s in %s: %w (its base, set or space changed: give the sweep a new name)", s.Name, st, ErrOtherSpace)
		}
		old.Objective = s.Objective // the ranking may change between runs
		return old, true, nil
	case !errors.Is(err, storage.ErrNotExist):
		return nil, false, err
	}
	now := time.Now().UTC()
	state := &State{Version: StateVersion, Name: s.Name, Fingerprint: fp, Base: s.Base, Set: s.Set, Method: s.Method,
		Objective: s.Objective, Created: now}
	for _, t := range trials {
		state.Trials = append(state.Trials, TrialState{Trial: t, Status: StatusPending})
	}
	return state, false, nil
}

// ReadState reads a sweep's sweep.json.
func ReadState(ctx context.Context, st storage.Store, name string) (*State, error) {
	var s State
	if err := storage.GetJSON(ctx, st, StateKey(name), &s); err != nil {
		return nil, err
	}
	if s.Version != StateVersion {
		return nil, fmt.Errorf("read %s: version %d, this build reads %d", StateKey(name), s.Version, StateVersion)
	}
	return &s, nil
}

// Write stores the state as sweeps/<name>/sweep.json (one Put: the store
// writes it atomically).
func (s *State) Write(ctx context.Context, st storage.Store) error {
	s.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode sweep state: %w", err)
	}
	if err := st.Put(ctx, StateKey(s.Name), bytes.NewReader(append(b, '\n'))); err != nil {
		return fmt.Errorf("write sweep state: %w", err)
	}
	return nil
}

// Counts returns how many trials are in each state.
func (s *State) Counts() map[Status]int {
	c := map[Status]int{}
	for _, t := range s.Trials {
		c[t.Status]++
	}
	return c
}

// jsonFloat is a float64 that encodes NaN and ±Inf as null.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if v != v || v > 1e308 || v < -1e308 {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = jsonFloat(nan())
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = jsonFloat(v)
	return nil
}
