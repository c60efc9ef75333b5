package queue

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/task"
)

// Role is what a worker does; each role serves one kind of task.
type Role string

// The roles of a worker.
const (
	RoleRollout Role = "rollout"
	RoleReward  Role = "reward"
	RoleLearner Role = "learner"
)

// AllRoles lists every Role; keep it in sync with the constants above.
var AllRoles = []Role{RoleRollout, RoleReward, RoleLearner}

// Kind is the kind of task the role serves ("" for an unknown role).
func (r Role) Kind() task.Kind {
	switch r {
	case RoleRollout:
		return task.Rollout
	case RoleReward:
		return task.Reward
	case RoleLearner:
		return task.Learn
	}
	return ""
}

// ParseRoles parses a comma-separated list of roles ("rollout,reward").
func ParseRoles(s string) ([]Role, error) {
	var roles []Role
	for _, f := range strings.Split(s, ",") {
		r := Role(strings.TrimSpace(f))
		if r.Kind() == "" {
			return nil, invalidf("role %q: want one of %v", r, AllRoles)
		}
		roles = append(roles, r)
	}
	return roles, nil
}

// Key names a task across its attempts: "<run>/<step>/<kind>/<id>".
func Key(t task.Task) string {
	return fmt.Sprintf("%s/%d/%s/%s", t.Run, t.Step, t.Kind, t.ID)
}

// ValidateKey checks that key is a well-formed task key: a clean object key
// (storage.ValidateKey: no "..", no empty segment, no backslash) of exactly
// four segments, a valid run name, a step >= 1, a known kind and an ID.
func ValidateKey(key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return invalidf("task key: %v", err)
	}
	seg := strings.Split(key, "/")
	if len(seg) != 4 {
		return invalidf("task key %q: want <run>/<step>/<kind>/<id>", key)
	}
	if err := storage.ValidateRun(seg[0]); err != nil {
		return invalidf("task key %q: run: %v", key, err)
	}
	if n, err := strconv.Atoi(seg[1]); err != nil || n < 1 || strconv.Itoa(n) != seg[1] {
		return invalidf("task key %q: step %q, want an integer >= 1", key, seg[1])
	}
	switch task.Kind(seg[2]) {
	case task.Rollout, task.Reward, task.Learn:
	default:
		return invalidf("task key %q: unknown kind %q", key, seg[2])
	}
	return nil
}

// validateSegment checks a name used as one key segment (a task ID, a
// worker name).
func validateSegment(what, s string) error {
	if strings.Contains(s, "/") {
		return invalidf("%s %q: must not contain /", what, s)
	}
	if err := storage.ValidateKey(s); err != nil {
		return invalidf("%s: %v", what, err)
	}
	return nil
}

// validateResult checks that every output of a task is a clean key under
// the task's run.
func validateResult(run string, r task.Result) error {
	prefix := storage.RunPrefix(run)
	for i, o := range r.Outputs {
		if err := storage.ValidateKey(o.Key); err != nil {
			return invalidf("outputs[%d].key: %v", i, err)
		}
		if !strings.HasPrefix(o.Key, prefix) {
			return invalidf("outputs[%d].key %q: not under the task's run %s", i, o.Key, prefix)
		}
		if o.Size < 0 {
			return invalidf("outputs[%d].size: %d", i, o.Size)
		}
	}
	return nil
}
