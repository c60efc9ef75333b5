package runs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/storage"
)

// State is runs/<run>/run.json: the run's configuration and how far it
// has committed.
type State struct {
	Version int    `json:"version"`
	Run     string `json:"run"`
	// Config is the run's configuration (YAML); a resumed run uses it.
	Config string `json:"config"`
	Seed   int64  `json:"seed"`
	Steps  int    `json:"steps"`
	// Committed is the last committed step (0: none); PolicyVersion the
	// checkpoint version the next step samples with (= Committed).
	Committed     int          `json:"committed"`
	PolicyVersion int          `json:"policy_version"`
	Phase         config.Phase `json:"phase,omitempty"`
	// Seeds records each committed step's seed (the run's RNG state: every
	// draw of a step derives from its seed).
	Seeds map[string]uint64 `json:"seeds,omitempty"`
	// Kept lists the checkpoint versions kept in the store.
	Kept []int `json:"kept"`
	// BestEval is the best of the versions evaluated during training
	// (run.eval_every), which the run keeps; nil before the first.
	BestEval *BestEval `json:"best_eval,omitempty"`
	Started  time.Time `json:"started"`
	Updated  time.Time `json:"updated"`

	// Rev is the version (storage.ObjectInfo.ETag) of the run.json this
	// state was read from or last written as ("" for a new run): WriteState
	// replaces only that version.
	Rev string `json:"-"`
}

// StateVersion is the version of run.json this build writes.
const StateVersion = 1

// StateKey is the key of a run's run.json.
func StateKey(run string) string { return storage.RunPrefix(run) + "run.json" }

// ReadState reads a run's run.json and its version. A run without one is
// an error that wraps storage.ErrNotExist.
func ReadState(ctx context.Context, st storage.Store, run string) (*State, error) {
	// The version is read before and after the content: when both agree,
	// the content is of that version.
	for try := 0; ; try++ {
		before, err := st.Stat(ctx, StateKey(run))
		if err != nil {
			return nil, err
		}
		rs, err := readState(ctx, st, run)
		if err != nil {
			return nil, err
		}
		after, err := st.Stat(ctx, StateKey(run))
		if err != nil {
			return nil, err
		}
		if before.ETag == after.ETag || try == 4 {
			rs.Rev = before.ETag
			return rs, nil // after 5 tries, a Rev that makes the next write fail
		}
	}
}

func readState(ctx context.Context, st storage.Store, run string) (*State, error) {
	var rs State
	if err := storage.GetJSON(ctx, st, StateKey(run), &rs); err != nil {
		return nil, err
	}
	if rs.Version != StateVersion {
		return nil, fmt.Errorf("read %s: version %d, this build reads %d", StateKey(run), rs.Version, StateVersion)
	}
	return &rs, nil
}

// WriteState writes rs as its run's run.json, as it is (the caller sets
// Updated), on the precondition that run.json is still at version rs.Rev
// (absent, for ""), and sets rs.Rev to the new version. When another
// writer changed run.json meanwhile it fails with an error wrapping
// storage.ErrChanged and writes nothing.
func WriteState(ctx context.Context, st storage.Store, rs *State) error {
	b, err := json.MarshalIndent(rs, "", "  ")
	if err != nil {
		return err
	}
	rev, err := st.Replace(ctx, StateKey(rs.Run), bytes.NewReader(append(b, '\n')), rs.Rev)
	if errors.Is(err, storage.ErrChanged) {
		return fmt.Errorf("write %s: another process wrote it since this one read it (is another controller running run %s?): %w", StateKey(rs.Run), rs.Run, err)
	}
	if err != nil {
		return fmt.Errorf("write run state: %w", err)
	}
	rs.Rev = rev
	return nil
}

// ParseConfig parses the run's recorded configuration (errors name
// run.json).
func (rs *State) ParseConfig() (*config.Config, error) {
	return config.Parse(StateKey(rs.Run), []byte(rs.Config))
}

// GC is storage.GC of a run with the checkpoint versions its run.json
// keeps (opts.Checkpoints): versions it dropped whose deletion was
// interrupted go too. A run without run.json is cleaned without them.
func GC(ctx context.Context, st storage.Store, run string, opts storage.GCOptions) ([]storage.ObjectInfo, error) {
	rs, err := ReadState(ctx, st, run)
	switch {
	case err == nil:
		opts.Checkpoints = &storage.KeptVersions{Kept: rs.Kept, Through: rs.PolicyVersion}
	case !errors.Is(err, storage.ErrNotExist):
		return nil, fmt.Errorf("gc %s: %w", run, err)
	}
	return storage.GC(ctx, st, run, opts)
}

// BestEval is a policy version evaluated during training and its held-out
// scores in its best mode (EvalMean).
type BestEval struct {
	Version int     `json:"version"`
	Score   float64 `json:"score"`
	Strict  float64 `json:"strict"`
}

// Beats reports whether b ranks above o: a higher mean score, then a
// higher strict accuracy; a tie keeps the earlier version.
func (b BestEval) Beats(o BestEval) bool {
	if b.Score != o.Score {
		return b.Score > o.Score
	}
	return b.Strict > o.Strict
}

// EvalMean is the best mode of held-out scores (a map of EvalKey's form):
// the one whose scenarios' mean partial score is the highest (then the
// highest mean strict accuracy, then the first mode in name order), with
// those means; false when no mode has a scenario.
func EvalMean(scores map[string][]reward.Summary) (EvalModeMean, bool) {
	modes := make([]string, 0, len(scores))
	for m := range scores {
		modes = append(modes, m)
	}
	sort.Strings(modes)
	var best EvalModeMean
	found := false
	for _, mode := range modes {
		sums := scores[mode]
		if len(sums) == 0 {
			continue
		}
		m := EvalModeMean{Mode: mode}
		for _, s := range sums {
			m.Score += s.Score / float64(len(sums))
			m.Strict += s.Strict / float64(len(sums))
		}
		if !found || m.Score > best.Score || m.Score == best.Score && m.Strict > best.Strict {
			best, found = m, true
		}
	}
	return best, found
}

// EvalModeMean is the mean over scenarios of one mode's held-out scores.
type EvalModeMean struct {
	Mode          string
	Score, Strict float64
}
