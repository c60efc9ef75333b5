// Package report tells people about training runs: the self-contained HTML
// report of one run (its configuration, held-out scores, training curves,
// and samples with their prompts and chains of thought, all read from the
// run's store through package storage/runs and the committed shards) and
// the list of the runs in a store with their status ([ListRuns]: finished,
// in progress or stale, [StatusOf]).
//
// [Collect] reads what a report shows; [Render] writes it as one HTML page
// that needs nothing else: the charts are inline SVG, the images data:
// URIs, and the page has no script.
package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/schedule"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
)

// ErrNoRun means the store holds no run.json for the run.
var ErrNoRun = errors.New("no such run")

// DefaultGroups is how many prompts (groups) of a step a report shows when
// Options.Groups is 0.
const DefaultGroups = 4

// Report is everything a run's report shows.
type Report struct {
	Run   string
	Store string // the store, described for people
	State *runs.State
	// Config is the run's resolved configuration (nil if run.json's could
	// not be parsed: ConfigErr says why); Plan its schedule.
	Config    *config.Config
	ConfigErr string
	Plan      []schedule.Step
	Status    Status
	// Activity is the run's last sign of life (see Summary.Activity).
	Activity time.Time
	History  *runs.History
	Evals    []Eval
	Samples  []StepSamples
	// Generated is when the report was made.
	Generated time.Time
}

// Eval is one evaluated policy version: runs/<run>/eval/<version>.json and
// the grids beside it.
type Eval struct {
	Version int
	Label   string // "base", "stage4@8", "stage5@16", as train prints them
	// Scores are the per-scenario summaries, by mode ("direct", "think").
	Scores map[string][]reward.Summary
	Grids  []Grid
	// Err says why the scores could not be read.
	Err string
}

// Grid is one PNG grid of held-out samples (reference | generated | target).
type Grid struct {
	Mode string
	PNG  []byte
}

// StepSamples are the samples of one step's rollout shards.
type StepSamples struct {
	Step          int
	Phase         string
	PolicyVersion int64
	// Groups are the first prompts of the step's shards, by group id;
	// Total counts all of them.
	Groups []Group
	Total  int
}

// Group is one prompt and its G samples.
type Group struct {
	Task      string
	ID        int64
	Scenario  string
	Prompt    string
	Answer    string
	Reference []byte // the input image of an editing prompt (PNG), or nil
	Samples   []Sample
}

// Sample is one sampled answer: a chain of thought and instruction, the
// image drawn from it, and its reward.
type Sample struct {
	Index       int32
	CoT         string
	Instruction string
	Image       []byte // PNG
	// Reward is the sample's reward when HasReward.
	Reward    float32
	HasReward bool
	Detail    string // the reward row's one-line detail (why this score, or why scoring failed)
}

// Options configure Collect.
type Options struct {
	// Steps are the steps whose samples the report shows; nil means
	// DefaultSteps. Every step must be committed.
	Steps []int
	// Groups caps the prompts shown per step (0: DefaultGroups).
	Groups int
	// TmpDir receives shards while they are read ("": os.TempDir()).
	TmpDir string
	// Now is the time the status is judged at (zero: time.Now()).
	Now time.Time
	// StaleAfter is the least silence after which an unfinished run is
	// stale (0: DefaultStaleAfter).
	StaleAfter time.Duration
}

// Collect reads the report of run from st. A run without run.json is an
// error wrapping ErrNoRun; a step of Options.Steps that is not committed is
// a *StepError.
func Collect(ctx context.Context, st storage.Store, run string, opts Options) (*Report, error) {
	if err := storage.ValidateRun(run); err != nil {
		return nil, err
	}
	rs, err := readState(ctx, st, run)
	if err != nil {
		return nil, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	r := &Report{Run: run, Store: st.String(), State: rs, Generated: now}
	r.Config, r.Plan, r.ConfigErr = planOf(rs)
	steps := opts.Steps
	if steps == nil {
		steps = DefaultSteps(r.Plan, rs.Committed)
	}
	for _, s := range steps {
		if s < 1 || s > rs.Committed {
			return nil, &StepError{Run: run, Step: s, Committed: rs.Committed}
		}
	}
	objs, err := st.List(ctx, storage.RunPrefix(run))
	if err != nil {
		return nil, fmt.Errorf("report %s: %w", run, err)
	}
	r.Activity = activity(rs, objs)
	r.Status = StatusOf(rs, r.Activity, now, opts.StaleAfter)
	if r.History, err = runs.ReadHistory(ctx, st, run, opts.TmpDir); err != nil {
		return nil, fmt.Errorf("report %s: metrics: %w", run, err)
	}
	if r.Evals, err = readEvals(ctx, st, run, objs, r.Plan); err != nil {
		return nil, fmt.Errorf("report %s: %w", run, err)
	}
	groups := opts.Groups
	if groups <= 0 {
		groups = DefaultGroups
	}
	for _, s := range steps {
		ss, err := readSamples(ctx, st, run, s, groups, opts.TmpDir)
		if err != nil {
			return nil, fmt.Errorf("report %s: samples of step %d: %w", run, s, err)
		}
		r.Samples = append(r.Samples, ss)
	}
	return r, nil
}

// StepError is a requested step the run has not committed.
type StepError struct {
	Run             string
	Step, Committed int
}

func (e *StepError) Error() string {
	if e.Committed == 0 {
		return fmt.Sprintf("step %d: run %s has no committed step yet", e.Step, e.Run)
	}
	return fmt.Sprintf("step %d: run %s has committed steps 1–%d", e.Step, e.Run, e.Committed)
}

// DefaultSteps are the steps a report shows samples of: the first step, the
// last step of each block of the schedule and the last committed step, of
// those committed. Without a plan, the first and the last committed step.
func DefaultSteps(plan []schedule.Step, committed int) []int {
	if committed == 0 {
		return []int{}
	}
	steps := []int{1}
	if len(plan) == 0 {
		if committed > 1 {
			steps = append(steps, committed)
		}
		return steps
	}
	for _, p := range plan {
		if p.Step > committed {
			break
		}
		if p.Step > 1 && (p.EndsPhase || p.Step == committed) {
			steps = append(steps, p.Step)
		}
	}
	return slices.Compact(steps)
}

// VersionLabel names a policy version as `thinkgen train`'s per-stage table
// does (schedule.VersionLabel).
func VersionLabel(plan []schedule.Step, v int) string { return schedule.VersionLabel(plan, v) }

func readState(ctx context.Context, st storage.Store, run string) (*runs.State, error) {
	rs, err := runs.ReadState(ctx, st, run)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, fmt.Errorf("run %s: no %s in %s: %w", run, runs.StateKey(run), st, ErrNoRun)
	}
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", run, err)
	}
	return rs, nil
}

// planOf parses the run's recorded configuration and expands its schedule.
func planOf(rs *runs.State) (*config.Config, []schedule.Step, string) {
	cfg, err := rs.ParseConfig()
	if err != nil {
		return nil, nil, err.Error()
	}
	plan, err := schedule.Plan(cfg)
	if err != nil {
		return cfg, nil, err.Error()
	}
	return cfg, plan, ""
}

// readEvals reads every eval/<version>.json of the listing and its grids,
// by version.
func readEvals(ctx context.Context, st storage.Store, run string, objs []storage.ObjectInfo, plan []schedule.Step) ([]Eval, error) {
	byVersion := map[int]*Eval{}
	get := func(v int) *Eval {
		e := byVersion[v]
		if e == nil {
			e = &Eval{Version: v, Label: VersionLabel(plan, v)}
			byVersion[v] = e
		}
		return e
	}
	for _, o := range objs {
		v, mode, ok := runs.ParseEvalKey(run, o.Key)
		if !ok {
			continue
		}
		b, err := getAll(ctx, st, o.Key)
		if err != nil {
			return nil, err
		}
		e := get(v)
		if mode == "" {
			if err := json.Unmarshal(b, &e.Scores); err != nil {
				e.Err = fmt.Sprintf("%s: %v", path.Base(o.Key), err)
			}
			continue
		}
		e.Grids = append(e.Grids, Grid{Mode: mode, PNG: b})
	}
	var out []Eval
	for _, e := range byVersion {
		sort.Slice(e.Grids, func(i, j int) bool { return e.Grids[i].Mode < e.Grids[j].Mode })
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

func getAll(ctx context.Context, st storage.Store, key string) ([]byte, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return b, nil
}

// rolloutColumns are what a report reads of a rollout shard (not the SDE
// trajectories, which are large).
var rolloutColumns = []string{"phase", "task", "group_id", "sample_index", "scenario", "prompt", "answer",
	"cot", "instruction", "image_png", "reference_png", "policy_version"}

// readSamples reads the first groups prompts of a committed step from the
// shards its manifest lists, with their rewards.
func readSamples(ctx context.Context, st storage.Store, run string, step, groups int, tmp string) (StepSamples, error) {
	ss := StepSamples{Step: step}
	m, err := storage.ReadManifest(ctx, st, storage.StepManifestKey(run, step))
	if err != nil {
		return ss, err
	}
	// Groups are keyed by group id (the prompt's dataset row, unique within
	// a step, as the learner keys them); reward rows by group and sample.
	type skey struct {
		group int64
		index int32
	}
	byKey := map[int64]*Group{}
	seen := map[int64]bool{}
	var kept []int64
	rewards := map[skey]shards.RewardRow{}
	prefix := storage.StepPrefix(run, step)
	for _, o := range m.Objects {
		rest, ok := strings.CutPrefix(o.Key, prefix)
		if !ok {
			continue
		}
		switch kind, _, _ := strings.Cut(rest, "/"); kind {
		case "rollout":
			err := readShard(ctx, st, m, o.Key, shards.Rollout, shards.ReadOptions{Columns: rolloutColumns}, tmp, func(r *shards.RolloutRow) {
				ss.Phase, ss.PolicyVersion = r.Phase, r.PolicyVersion
				k := r.GroupID
				if !seen[k] {
					seen[k] = true
					if len(kept) < groups {
						kept = append(kept, k)
						byKey[k] = &Group{Task: r.Task, ID: r.GroupID, Scenario: r.Scenario, Prompt: r.Prompt, Answer: r.Answer, Reference: r.ReferencePNG}
					}
				}
				g := byKey[k]
				if g == nil {
					return
				}
				g.Samples = append(g.Samples, Sample{Index: r.SampleIndex, CoT: r.CoT, Instruction: r.Instruction, Image: r.ImagePNG})
			})
			if err != nil {
				return ss, err
			}
		case "reward":
			err := readShard(ctx, st, m, o.Key, shards.Reward, shards.ReadOptions{Columns: []string{"group_id", "sample_index", "reward", "detail"}}, tmp, func(r *shards.RewardRow) {
				rewards[skey{r.GroupID, r.SampleIndex}] = *r
			})
			if err != nil {
				return ss, err
			}
		}
	}
	slices.Sort(kept)
	ss.Total = len(seen)
	for _, k := range kept {
		g := byKey[k]
		sort.Slice(g.Samples, func(i, j int) bool { return g.Samples[i].Index < g.Samples[j].Index })
		for i := range g.Samples {
			if rw, ok := rewards[skey{k, g.Samples[i].Index}]; ok {
				g.Samples[i].Reward, g.Samples[i].HasReward, g.Samples[i].Detail = rw.Reward, true, rw.Detail
			}
		}
		ss.Groups = append(ss.Groups, *g)
	}
	return ss, nil
}

// readShard calls fn with each row of a committed shard.
func readShard[R any](ctx context.Context, st storage.Store, m *storage.Manifest, key string, s *shards.Schema[R], opts shards.ReadOptions, tmp string, fn func(*R)) error {
	rd, err := shards.Open(ctx, st, m, key, s, opts, tmp)
	if err != nil {
		return err
	}
	defer rd.Close()
	for {
		var r R
		err := rd.Read(&r)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		fn(&r)
	}
}

// isPNG reports whether b decodes as a PNG header.
func isPNG(b []byte) bool {
	_, err := png.DecodeConfig(bytes.NewReader(b))
	return err == nil
}
