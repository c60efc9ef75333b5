package orchestrator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/orchestrator"
	"github.com/thinkgen/thinkgen/queue/queuetest"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/storage/storagetest"
	"github.com/thinkgen/thinkgen/task"
)

// TestScenarios runs the controller scripts of testdata/*.txt (the format
// is script_test.go's): the real controller over a local store in a
// temporary directory, with an in-memory executor that writes small
// stand-in shards and checkpoints, a checkpoint store of the same kind, a
// clock that moves only when a task runs, and failures injected into
// tasks and store operations. Commands:
//
//	config phases=mllm-grpo:1,dit-grpo:1 cycles=1 prompts=3 train-size=10 checkpoint-every=10 eval-every=0
//	    the configuration of the runs that follow (these are the defaults)
//	fail kind=K [id=ID] [step=N] [times=N] [fatal]
//	    the next times (1) attempts of a matching task fail, fatally or not
//	break op=put|delete key=S [skip=N] [times=N]
//	    after skip (0) matching operations, the next times (1) store
//	    operations on a key containing S fail, as if the controller were
//	    killed there
//	break op=get key=S [skip=N] [times=N]
//	    the same for reads (Get) of the store
//	train run=R [resume] [stop-after=N] [rollout-tasks=N] [attempts=N] [kill-after-manifest=N] [eval=S1,S2,…]
//	    runs the controller: prints every task attempt, every evaluation
//	    (run.eval_every: version v scores S_v, the list repeating, in each
//	    scenario and mode), the progress lines and how it ended;
//	    kill-after-manifest stops it (Options.AfterManifest) right after
//	    step N's manifest is committed
//	hold run=R holder=H ttl=D
//	    another controller H takes run R's lease for D on the test clock
//	    (and keeps it: a live controller elsewhere)
//	wait d=D
//	    moves the test clock on by D
//	verify run=R
//	    prints runs.Verify's faults, orphans and notes of the run
//	damage key=S how=flip|truncate|delete|extra
//	    alters the first object whose key contains S as a failing disk or a
//	    stray writer would: flips a byte, truncates it, deletes it, or
//	    writes a new object of key S
//	state run=R
//	    prints what the store holds of the run
//	same run=R as=S
//	    compares two runs' committed data (shards, checkpoints, run.json;
//	    shard keys without their attempt)
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario scripts in testdata (%v)", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			local := storagetest.Local(t)
			s := &scenario{store: &faultStore{Store: local}, clock: queuetest.NewClock()}
			s.cfg = scenarioConfig(nil)
			runScript(t, f, s.do)
		})
	}
}

// scenario is the state of one script.
type scenario struct {
	cfg    *config.Config
	store  *faultStore
	clock  *queuetest.Clock
	faults []*taskFault
}

func (s *scenario) do(t *testing.T, d directive) string {
	t.Helper()
	ctx := context.Background()
	switch d.name {
	case "config":
		s.cfg = scenarioConfig(d.args)
		if err := s.cfg.Validate(); err != nil {
			return "error: " + err.Error()
		}
		return "ok"
	case "fail":
		f := &taskFault{kind: task.Kind(d.args["kind"]), id: d.args["id"], step: atoi(t, d, "step", 0), times: atoi(t, d, "times", 1), fatal: d.args["fatal"] == "true"}
		s.faults = append(s.faults, f)
		return "ok"
	case "break":
		s.store.mu.Lock()
		s.store.faults = append(s.store.faults, &storeFault{op: d.args["op"], key: d.args["key"], skip: atoi(t, d, "skip", 0), times: atoi(t, d, "times", 1)})
		s.store.mu.Unlock()
		return "ok"
	case "train":
		return s.train(ctx, t, d)
	case "state":
		return s.state(ctx, t, d.args["run"])
	case "verify":
		return s.verify(ctx, d.args["run"])
	case "damage":
		return s.damage(ctx, t, d)
	case "wait":
		dur, err := time.ParseDuration(d.args["d"])
		if err != nil {
			t.Fatalf("line %d: d: %v", d.line, err)
		}
		s.clock.Advance(dur)
		return s.clock.Now().Format(time.TimeOnly)
	case "hold":
		ttl, err := time.ParseDuration(d.args["ttl"])
		if err != nil {
			t.Fatalf("line %d: ttl: %v", d.line, err)
		}
		l, err := runs.AcquireLease(ctx, s.store, d.args["run"], d.args["holder"], ttl, s.clock.Now)
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("holds epoch %d until %s", l.Epoch(), l.Lease().Expires.Format(time.TimeOnly))
	case "same":
		a, b := s.committed(ctx, t, d.args["run"]), s.committed(ctx, t, d.args["as"])
		if a == b {
			return "same"
		}
		return fmt.Sprintf("differ:\n%s--- vs ---\n%s", a, strings.TrimSuffix(b, "\n"))
	}
	t.Fatalf("line %d: unknown command %q", d.line, d.name)
	return ""
}

// scenarioConfig is a small run configuration with the given keys set.
func scenarioConfig(args map[string]string) *config.Config {
	get := func(k, def string) string {
		if v, ok := args[k]; ok {
			return v
		}
		return def
	}
	c := config.Default()
	c.Data.TrainSize, _ = strconv.Atoi(get("train-size", "10"))
	prompts, _ := strconv.Atoi(get("prompts", "3"))
	c.GRPO.PromptsPerStep, c.FlowGRPO.PromptsPerStep = prompts, prompts
	c.Schedule.Cycles, _ = strconv.Atoi(get("cycles", "1"))
	c.Run.CheckpointEvery, _ = strconv.Atoi(get("checkpoint-every", "10"))
	c.Run.MaxStaleness, _ = strconv.Atoi(get("max-staleness", "0"))
	c.Run.EvalEvery, _ = strconv.Atoi(get("eval-every", "0"))
	c.Schedule.Phases = nil
	for _, ph := range strings.Split(get("phases", "mllm-grpo:1,dit-grpo:1"), ",") {
		name, n, _ := strings.Cut(ph, ":")
		steps, _ := strconv.Atoi(n)
		c.Schedule.Phases = append(c.Schedule.Phases, config.PhaseSpec{Phase: config.Phase(name), Steps: steps})
	}
	return c
}

func atoi(t *testing.T, d directive, key string, def int) int {
	t.Helper()
	v, ok := d.args[key]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("line %d: %s=%q: %v", d.line, key, v, err)
	}
	return n
}

func (s *scenario) train(ctx context.Context, t *testing.T, d directive) string {
	exec := &fakeExec{store: s.store, clock: s.clock, faults: s.faults}
	var progress bytes.Buffer
	var afterManifest func(int) error
	if kill := atoi(t, d, "kill-after-manifest", 0); kill > 0 {
		afterManifest = func(step int) error {
			if step == kill {
				return errors.New("killed by the test")
			}
			return nil
		}
	}
	var evals []string
	var eval func(context.Context, int) (map[string][]reward.Summary, error)
	if list, ok := d.args["eval"]; ok {
		scores := strings.Split(list, ",")
		eval = func(ctx context.Context, v int) (map[string][]reward.Summary, error) {
			x, err := strconv.ParseFloat(scores[(v-1)%len(scores)], 64)
			if err != nil {
				t.Fatalf("line %d: eval=%s: %v", d.line, list, err)
			}
			// The policy version must be in the store when it is evaluated.
			if _, err := storage.ReadManifest(ctx, s.store, storage.CheckpointManifestKey(d.args["run"], v)); err != nil {
				return nil, err
			}
			evals = append(evals, fmt.Sprintf("eval version %d: %g", v, x))
			sum := func(sc string) reward.Summary { return reward.Summary{Scenario: sc, N: 1, Score: x, Strict: x / 2} }
			return map[string][]reward.Summary{"direct": {sum("composition"), sum("text")}, "think": {sum("composition")}}, nil
		}
	}
	reps, err := orchestrator.Train(ctx, orchestrator.Options{
		Config: s.cfg, Store: s.store, Run: d.args["run"], Exec: exec, Resume: d.args["resume"] == "true",
		Checkpoints: fakeCheckpoints{s.store}, RolloutTasks: atoi(t, d, "rollout-tasks", 2), Attempts: atoi(t, d, "attempts", 0),
		StopAfter: atoi(t, d, "stop-after", 0), Progress: &progress, TmpDir: t.TempDir(), Clock: s.clock, Eval: eval,
		Holder: "controller-" + d.args["run"], AfterManifest: afterManifest,
	})
	// With run.max_staleness > 0 steps overlap: the progress lines' times
	// and, in a run that stops early, which tasks ran ahead depend on
	// timing; "quiet" leaves the former out, "calls=off" the latter.
	var b strings.Builder
	if d.args["calls"] != "off" {
		for _, c := range exec.sortedCalls() {
			b.WriteString(c + "\n")
		}
	}
	for _, e := range evals {
		b.WriteString(e + "\n")
	}
	if _, quiet := d.args["quiet"]; !quiet {
		b.WriteString(progress.String())
	}
	if err != nil {
		fmt.Fprintf(&b, "error: %v\n", err)
	}
	fmt.Fprintf(&b, "committed %d steps", len(reps))
	return b.String()
}

// state lists what the store holds of a run: run.json, each step's
// committed shards (or the shards of a step that did not commit), the
// checkpoint versions with a manifest and the TensorBoard event files.
func (s *scenario) state(ctx context.Context, t *testing.T, run string) string {
	var b strings.Builder
	rs, err := runs.ReadState(ctx, s.store, run)
	if err != nil {
		fmt.Fprintf(&b, "run.json: %v\n", err)
	} else {
		var seeds []int
		for k := range rs.Seeds {
			n, err := strconv.Atoi(k)
			if err != nil {
				t.Fatalf("run.json: seed of step %q", k)
			}
			seeds = append(seeds, n)
		}
		slices.Sort(seeds)
		fmt.Fprintf(&b, "run.json: committed %d/%d policy %d phase %s kept %v seeds of steps %v started %s updated %s\n",
			rs.Committed, rs.Steps, rs.PolicyVersion, rs.Phase, rs.Kept, seeds, rs.Started.Format(time.TimeOnly), rs.Updated.Format(time.TimeOnly))
		if be := rs.BestEval; be != nil {
			fmt.Fprintf(&b, "best eval: version %d score %g strict %g\n", be.Version, be.Score, be.Strict)
		}
		// The evaluations in the steps' metrics (the history, TensorBoard).
		for step := 1; step <= rs.Committed; step++ {
			sm, err := runs.ReadStepMetrics(ctx, s.store, run, step, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := sm.Values["eval/mean"]; ok {
				fmt.Fprintf(&b, "step %d metrics: eval/mean %g eval_strict/mean %g eval/direct/mean %g eval/think/composition %g\n",
					step, v, sm.Values["eval_strict/mean"], sm.Values["eval/direct/mean"], sm.Values["eval/think/composition"])
			}
		}
	}
	objs, err := s.store.Store.List(ctx, storage.RunPrefix(run))
	if err != nil {
		t.Fatal(err)
	}
	steps := map[string][]string{}
	var stepOrder []string
	var versions, events []string
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, storage.RunPrefix(run))
		parts := strings.Split(rel, "/")
		switch {
		case parts[0] == "steps" && len(parts) >= 3:
			if _, ok := steps[parts[1]]; !ok {
				stepOrder = append(stepOrder, parts[1])
			}
			steps[parts[1]] = append(steps[parts[1]], strings.Join(parts[2:], "/"))
		case parts[0] == "checkpoints" && len(parts) == 3 && parts[2] == storage.ManifestName:
			versions = append(versions, strings.TrimLeft(parts[1], "0")+map[bool]string{true: "0"}[strings.Trim(parts[1], "0") == ""])
		case parts[0] == "tensorboard":
			f := strings.Split(parts[1], ".")
			events = append(events, f[len(f)-2])
		}
	}
	for _, st := range stepOrder {
		files := steps[st]
		label := "committed"
		if !slices.Contains(files, storage.ManifestName) {
			label = "not committed"
		}
		files = slices.DeleteFunc(files, func(f string) bool { return f == storage.ManifestName })
		n, _ := strconv.Atoi(st)
		fmt.Fprintf(&b, "step %d %s: %s\n", n, label, strings.Join(files, " "))
	}
	fmt.Fprintf(&b, "checkpoints: %s\n", strings.Join(versions, " "))
	fmt.Fprintf(&b, "events: %s", strings.Join(events, " "))
	return b.String()
}

// verify runs runs.Verify on a run and prints what it found.
func (s *scenario) verify(ctx context.Context, run string) string {
	c, err := runs.Verify(ctx, s.store, run)
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, f := range c.Faults {
		fmt.Fprintf(&b, "fault: %s\n", f)
	}
	for _, o := range c.Orphans {
		fmt.Fprintf(&b, "orphan: %s\n", strings.TrimPrefix(o.Key, storage.RunPrefix(run)))
	}
	for _, n := range c.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	fmt.Fprintf(&b, "ok %v: %d steps committed, versions %v kept, %d objects checked", c.OK(), c.Committed, c.Kept, c.Objects)
	return b.String()
}

// damage alters an object of the store under the controller's feet.
func (s *scenario) damage(ctx context.Context, t *testing.T, d directive) string {
	local := s.store.Store.(*storage.Local)
	key := d.args["key"]
	if d.args["how"] == "extra" {
		if err := local.Put(ctx, key, strings.NewReader("a stray object\n")); err != nil {
			t.Fatal(err)
		}
		return "wrote " + key
	}
	objs, err := local.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(objs, func(o storage.ObjectInfo) bool { return strings.Contains(o.Key, key) })
	if i < 0 {
		t.Fatalf("line %d: no object matches %q", d.line, key)
	}
	key = objs[i].Key
	path := filepath.Join(local.Dir(), filepath.FromSlash(key))
	switch d.args["how"] {
	case "flip":
		data, err := os.ReadFile(path)
		if err == nil {
			data[len(data)/2] ^= 0x01
			err = os.WriteFile(path, data, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	case "truncate":
		if err := os.Truncate(path, objs[i].Size/2); err != nil {
			t.Fatal(err)
		}
	case "delete":
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("line %d: how=%q", d.line, d.args["how"])
	}
	return d.args["how"] + " " + key
}

// committed describes a run's committed data, the run's name left out:
// run.json's progress, each committed step's shards with their sha256
// (its metrics shard, which holds wall times, by name only) and each kept
// checkpoint's objects with theirs.
func (s *scenario) committed(ctx context.Context, t *testing.T, run string) string {
	rs, err := runs.ReadState(ctx, s.store, run)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "committed %d policy %d phase %s kept %v seeds %v\n", rs.Committed, rs.PolicyVersion, rs.Phase, rs.Kept, rs.Seeds)
	if be := rs.BestEval; be != nil {
		fmt.Fprintf(&b, "best eval %+v\n", *be)
	}
	list := func(m *storage.Manifest) {
		for _, o := range m.Objects {
			key := attempt.ReplaceAllString(strings.TrimPrefix(o.Key, storage.RunPrefix(run)), "$1$2")
			if strings.Contains(key, "/metrics/") {
				fmt.Fprintf(&b, "  %s\n", key)
				continue
			}
			fmt.Fprintf(&b, "  %s %d %s\n", key, o.Size, o.SHA256[:12])
		}
	}
	for step := 1; step <= rs.Committed; step++ {
		m, err := storage.ReadManifest(ctx, s.store, storage.StepManifestKey(run, step))
		if err != nil {
			t.Fatal(err)
		}
		list(m)
	}
	for _, v := range rs.Kept {
		m, err := storage.ReadManifest(ctx, s.store, storage.CheckpointManifestKey(run, v))
		if err != nil {
			t.Fatal(err)
		}
		list(m)
	}
	return b.String()
}

// attempt matches the attempt tag in a shard's key (storage.ShardKey) or
// in a checkpoint file's (storage.CheckpointFilesPrefix).
var attempt = regexp.MustCompile(`-e[0-9]+-a[0-9]+(\.arrow)$|/e[0-9]+-a[0-9]+(/)`)

// taskCost is how long a task of each kind takes on the fake clock.
var taskCost = map[task.Kind]time.Duration{task.Rollout: 2 * time.Second, task.Reward: time.Second, task.Learn: 3 * time.Second}

// taskFault makes the next times attempts of the tasks it matches fail.
type taskFault struct {
	kind  task.Kind
	id    string // "" matches any
	step  int    // 0 matches any
	times int
	fatal bool
}

// fakeExec is an executor that writes small stand-in outputs: a rollout
// shard naming its rows, policy version and seed; a reward shard naming
// the rollout shard it scored; and, for a learn task, the next checkpoint
// version, naming the version and every shard it learned from. Its outputs
// are a function of the task alone (not of the attempt), as a worker's
// are.
type fakeExec struct {
	store  storage.Store
	clock  *queuetest.Clock
	mu     sync.Mutex
	faults []*taskFault
	calls  []call
}

type call struct {
	t       task.Task
	outcome string
}

func (e *fakeExec) Do(ctx context.Context, t task.Task) (task.Result, error) {
	e.mu.Lock()
	var fault *taskFault
	for _, f := range e.faults {
		if f.times > 0 && f.kind == t.Kind && (f.id == "" || f.id == t.ID) && (f.step == 0 || f.step == t.Step) {
			f.times--
			fault = f
			break
		}
	}
	e.clock.Advance(taskCost[t.Kind])
	outcome := "ok"
	switch {
	case fault != nil && fault.fatal:
		outcome = "fatal"
	case fault != nil:
		outcome = "failed"
	}
	e.calls = append(e.calls, call{t, outcome})
	e.mu.Unlock()
	switch {
	case fault != nil && fault.fatal:
		return task.Result{}, fmt.Errorf("%w: injected", task.ErrFatal)
	case fault != nil:
		return task.Result{}, errors.New("injected")
	}
	switch t.Kind {
	case task.Rollout:
		obj, err := storage.PutObject(ctx, e.store, t.OutputKey(), strings.NewReader(fmt.Sprintf("rollout of rows %v by policy %d, seed %d\n", t.Rows, t.PolicyVersion, t.Seed)))
		m := map[string]float64{"count/tokens": float64(10 * len(t.Rows)), "time/generate_s": 2}
		return task.Result{Outputs: []storage.Object{obj}, Metrics: m}, err
	case task.Reward:
		obj, err := storage.PutObject(ctx, e.store, t.OutputKey(), strings.NewReader("reward of "+t.Inputs[0].SHA256+"\n"))
		return task.Result{Outputs: []storage.Object{obj}, Metrics: map[string]float64{"time/score_s": 1}}, err
	}
	var from []string
	for _, in := range t.Inputs {
		from = append(from, in.SHA256[:12])
	}
	v := t.PolicyVersion + 1
	m, err := putVersion(ctx, e.store, t.Run, v, t.Tag(), fmt.Sprintf("policy %d from %d, learned from %s\n", v, t.PolicyVersion, strings.Join(from, " ")))
	if err != nil {
		return task.Result{}, err
	}
	mobj, err := storage.Describe(ctx, e.store, storage.CheckpointManifestKey(t.Run, v))
	if err != nil {
		return task.Result{}, err
	}
	stats := map[string]float64{"reward/mean": 0.1 * float64(t.Step), "loss/kl": 0.01 * float64(t.Step), "learn/grad_norm": 1}
	return task.Result{Outputs: append(append([]storage.Object{}, m.Objects...), mobj), Metrics: stats}, nil
}

// sortedCalls lists the task attempts in the order of the step's stages
// (tasks of one stage run concurrently, so their order is the sort's).
func (e *fakeExec) sortedCalls() []string {
	rank := map[task.Kind]int{task.Rollout: 0, task.Reward: 1, task.Learn: 2}
	cs := slices.Clone(e.calls)
	slices.SortStableFunc(cs, func(a, b call) int {
		if a.t.Step != b.t.Step {
			return a.t.Step - b.t.Step
		}
		if rank[a.t.Kind] != rank[b.t.Kind] {
			return rank[a.t.Kind] - rank[b.t.Kind]
		}
		if c := strings.Compare(a.t.ID, b.t.ID); c != 0 {
			return c
		}
		return a.t.Attempt - b.t.Attempt
	})
	out := make([]string, len(cs))
	for i, c := range cs {
		detail := ""
		switch c.t.Kind {
		case task.Rollout:
			detail = fmt.Sprintf(" rows %v", c.t.Rows)
		default:
			detail = fmt.Sprintf(" inputs %d", len(c.t.Inputs))
		}
		out[i] = fmt.Sprintf("task step %d %s %s attempt %d policy %d%s: %s", c.t.Step, c.t.Kind, c.t.ID, c.t.Attempt, c.t.PolicyVersion, detail, c.outcome)
	}
	return out
}

// putVersion commits a stand-in checkpoint version holding one file,
// written under tag; a version committed before is kept, as
// checkpoint.Save keeps it.
func putVersion(ctx context.Context, st storage.Store, run string, v int, tag, body string) (*storage.Manifest, error) {
	key := storage.CheckpointManifestKey(run, v)
	if m, err := storage.ReadManifest(ctx, st, key); err == nil {
		return m, nil
	}
	batch := storage.NewBatch(st, key, run, "checkpoint", strconv.Itoa(v))
	if _, err := batch.Put(ctx, storage.CheckpointFilesPrefix(run, v, tag)+"policy.txt", strings.NewReader(body)); err != nil {
		return nil, err
	}
	return batch.Commit(ctx)
}

// fakeCheckpoints imports a stand-in base as version 0 and deletes
// versions with checkpoint.Delete.
type fakeCheckpoints struct{ store storage.Store }

func (c fakeCheckpoints) ImportBase(ctx context.Context, run string, epoch int) (*storage.Manifest, error) {
	return putVersion(ctx, c.store, run, 0, storage.AttemptTag(epoch, 1), "the base policy\n")
}

func (c fakeCheckpoints) Delete(ctx context.Context, run string, v int) error {
	return checkpoint.Delete(ctx, c.store, run, v)
}

// faultStore is a store whose Put, Delete or Get of chosen keys fails, as
// a kill at that point would stop the controller (or as a flaky store
// would answer).
type faultStore struct {
	storage.Store
	mu     sync.Mutex
	faults []*storeFault
}

type storeFault struct {
	op, key     string
	skip, times int
}

func (s *faultStore) fail(op, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		if f.times == 0 || f.op != op || !strings.Contains(key, f.key) {
			continue
		}
		if f.skip > 0 {
			f.skip--
			continue
		}
		f.times--
		return fmt.Errorf("injected: %s %s…", op, f.key)
	}
	return nil
}

func (s *faultStore) String() string { return "the test store" }

func (s *faultStore) Put(ctx context.Context, key string, body io.ReadSeeker) error {
	if err := s.fail("put", key); err != nil {
		return err
	}
	return s.Store.Put(ctx, key, body)
}

func (s *faultStore) Create(ctx context.Context, key string, body io.ReadSeeker) error {
	if err := s.fail("put", key); err != nil {
		return err
	}
	return s.Store.Create(ctx, key, body)
}

func (s *faultStore) Replace(ctx context.Context, key string, body io.ReadSeeker, etag string) (string, error) {
	if err := s.fail("put", key); err != nil {
		return "", err
	}
	return s.Store.Replace(ctx, key, body, etag)
}

func (s *faultStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := s.fail("get", key); err != nil {
		return nil, err
	}
	return s.Store.Get(ctx, key)
}

func (s *faultStore) Delete(ctx context.Context, key string) error {
	if err := s.fail("delete", key); err != nil {
		return err
	}
	return s.Store.Delete(ctx, key)
}
