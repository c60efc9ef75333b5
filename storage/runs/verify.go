package runs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/thinkgen/thinkgen/storage"
)

// Check is the result of [Verify]: what is wrong with a run in its store
// (Faults), what it holds that no committed manifest lists (Orphans, for
// `thinkgen gc`), and states that are sound but worth saying (Notes).
type Check struct {
	Run       string
	Committed int   // run.json's last committed step
	Kept      []int // run.json's kept checkpoint versions
	// Objects is how many objects were read through and checked.
	Objects int
	Faults  []string
	Orphans []storage.ObjectInfo
	Notes   []string
}

// OK reports whether the run has no fault.
func (c *Check) OK() bool { return len(c.Faults) == 0 }

func (c *Check) fault(format string, args ...any) {
	c.Faults = append(c.Faults, fmt.Sprintf(format, args...))
}

// Verify checks a run as it is stored (fsck): run.json reads; every step
// it records as committed has a manifest, with one metrics shard and a
// seed in run.json; every kept checkpoint version has a manifest and the
// run's policy version is kept; every object a committed manifest lists
// exists with its size and sha256; no step after run.json's has a
// manifest, except the next one (a commit that stopped between the
// manifest and run.json, which resuming repairs: a note). Objects no
// manifest of a step or kept version lists are orphans (stale attempts,
// dropped versions, writes in flight). The error is for a store that
// cannot be read at all; faults are in the Check.
func Verify(ctx context.Context, st storage.Store, run string) (*Check, error) {
	if err := storage.ValidateRun(run); err != nil {
		return nil, err
	}
	c := &Check{Run: run}
	rs, err := ReadState(ctx, st, run)
	if err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return nil, fmt.Errorf("verify run %s: no %s in %s", run, StateKey(run), st)
		}
		return nil, fmt.Errorf("verify run %s: %w", run, err)
	}
	c.Committed, c.Kept = rs.Committed, rs.Kept
	all, err := st.List(ctx, storage.RunPrefix(run))
	if err != nil {
		return nil, fmt.Errorf("verify run %s: %w", run, err)
	}
	referenced := map[string]bool{StateKey(run): true, LeaseKey(run): true}

	// Which steps and versions have a manifest.
	steps, versions := map[int]bool{}, map[int]bool{}
	for _, o := range all {
		kind, n, ok := storage.Unit(run, o.Key)
		switch {
		case !ok:
		case kind == "steps":
			steps[n] = true
		default:
			versions[n] = true
		}
	}

	// check reads a unit's manifest and every object it lists.
	check := func(what, key string) *storage.Manifest {
		m, err := storage.ReadManifest(ctx, st, key)
		if err != nil {
			c.fault("%s: %v", what, err)
			return nil
		}
		referenced[key] = true
		for _, obj := range m.Objects {
			referenced[obj.Key] = true
			c.Objects++
			if err := storage.Verify(ctx, st, obj); err != nil {
				c.fault("%s: %v", what, err)
			}
		}
		return m
	}

	for step := 1; step <= rs.Committed; step++ {
		what := fmt.Sprintf("step %d", step)
		if !steps[step] {
			c.fault("%s: run.json records it committed but it has no manifest (%s)", what, storage.StepManifestKey(run, step))
			continue
		}
		if m := check(what, storage.StepManifestKey(run, step)); m != nil {
			if _, err := FindMetrics(m, run, step); err != nil {
				c.fault("%s: %v", what, err)
			}
		}
		if _, ok := rs.Seeds[strconv.Itoa(step)]; !ok {
			c.fault("%s: run.json records no seed for it", what)
		}
	}
	for _, step := range sortedKeys(steps) {
		switch {
		case step <= rs.Committed:
		case step == rs.Committed+1:
			c.Notes = append(c.Notes, fmt.Sprintf("step %d: committed after run.json was last written (a controller stopped mid-commit); `train --resume` records it", step))
			check(fmt.Sprintf("step %d", step), storage.StepManifestKey(run, step))
		default:
			c.fault("step %d: has a manifest but run.json's last committed step is %d", step, rs.Committed)
		}
	}

	if !slices.Contains(rs.Kept, rs.PolicyVersion) {
		c.fault("run.json: policy version %d is not among the kept versions %v", rs.PolicyVersion, rs.Kept)
	}
	for _, v := range rs.Kept {
		what := fmt.Sprintf("checkpoint %d", v)
		if !versions[v] {
			c.fault("%s: run.json keeps it but it has no manifest (%s)", what, storage.CheckpointManifestKey(run, v))
			continue
		}
		check(what, storage.CheckpointManifestKey(run, v))
	}
	// The version the next step's learn task commits may exist before the
	// step does: it is checked, not an orphan.
	if next := rs.PolicyVersion + 1; versions[next] && !slices.Contains(rs.Kept, next) {
		c.Notes = append(c.Notes, fmt.Sprintf("checkpoint %d: committed by a learn task whose step is not committed yet", next))
		check(fmt.Sprintf("checkpoint %d", next), storage.CheckpointManifestKey(run, next))
	}

	// Orphans: objects of steps and checkpoints that no manifest checked
	// above lists (run records such as eval results and event files are
	// not units and are left out).
	for _, o := range all {
		if referenced[o.Key] {
			continue
		}
		rel := strings.TrimPrefix(o.Key, storage.RunPrefix(run))
		if strings.HasPrefix(rel, "steps/") || strings.HasPrefix(rel, "checkpoints/") {
			c.Orphans = append(c.Orphans, o)
		}
	}
	return c, nil
}

func sortedKeys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
