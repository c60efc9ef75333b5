package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/config"
)

// memRay is an in-memory Submitter: jobs live in a map, and the test (or
// its onSubmit hook) moves them between states.
type memRay struct {
	mu       sync.Mutex
	jobs     map[string]*Job
	reqs     []JobRequest
	failNext int                       // Submit calls that fail with a 500
	onSubmit func(id string) JobStatus // status of a new job; nil means RUNNING
	stops    []string
}

func newMemRay() *memRay { return &memRay{jobs: map[string]*Job{}} }

func (m *memRay) Submit(_ context.Context, req JobRequest) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failNext > 0 {
		m.failNext--
		return "", &Error{Op: "submit", Job: req.SubmissionID, StatusCode: http.StatusInternalServerError, Message: "agent down"}
	}
	if _, ok := m.jobs[req.SubmissionID]; ok {
		return "", &Error{Op: "submit", Job: req.SubmissionID, StatusCode: http.StatusInternalServerError, Err: ErrJobExists}
	}
	m.reqs = append(m.reqs, req)
	st := StatusRunning
	if m.onSubmit != nil {
		st = m.onSubmit(req.SubmissionID)
	}
	m.jobs[req.SubmissionID] = &Job{Type: TypeSubmission, SubmissionID: req.SubmissionID, Status: st, Entrypoint: req.Entrypoint, Metadata: req.Metadata}
	return req.SubmissionID, nil
}

func (m *memRay) List(context.Context) ([]Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Job
	for _, j := range m.jobs {
		out = append(out, *j)
	}
	return out, nil
}

func (m *memRay) Stop(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stops = append(m.stops, id)
	j, ok := m.jobs[id]
	if !ok {
		return false, &Error{Op: "stop", Job: id, StatusCode: 404, Err: ErrNotFound}
	}
	if j.Status.Terminal() {
		return false, nil
	}
	j.Status = StatusStopped
	return true, nil
}

func (m *memRay) set(id string, s JobStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs[id].Status = s
}

func (m *memRay) put(id string, s JobStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs[id] = &Job{Type: TypeSubmission, SubmissionID: id, Status: s}
}

func kinds(l *eventLog) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s []string
	for _, e := range l.events {
		s = append(s, fmt.Sprintf("%s %s-%d g%d", e.Kind, e.Role, e.Index, e.Generation))
	}
	return strings.Join(s, "; ")
}

func testPlacer(t *testing.T, m *memRay, groups []Group, opts PlacerOptions) (*Placer, *eventLog) {
	t.Helper()
	var log eventLog
	if opts.Run == "" {
		opts.Run = "r1"
	}
	if opts.Controller == "" {
		opts.Controller = "http://127.0.0.1:7000"
	}
	opts.PollInterval = time.Millisecond
	opts.OnEvent = log.add
	p, err := NewPlacer(m, groups, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p, &log
}

var oneRollout = []Group{{Role: "rollout", Count: 1}}

func TestPlacerGivesUpAfterMaxResubmits(t *testing.T) {
	m := newMemRay()
	m.onSubmit = func(string) JobStatus { return StatusFailed }
	p, log := testPlacer(t, m, oneRollout, PlacerOptions{MaxResubmits: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	err := p.Follow(ctx)
	if err == nil || !strings.Contains(err.Error(), "gave up on rollout-0 after 2 resubmits") {
		t.Fatalf("Follow: %v, want a give-up error", err)
	}
	want := "submitted rollout-0 g1; failed rollout-0 g1; resubmitted rollout-0 g2; failed rollout-0 g2; " +
		"resubmitted rollout-0 g3; failed rollout-0 g3; gave-up rollout-0 g3"
	if got := kinds(log); got != want {
		t.Errorf("events\n%s\nwant\n%s", got, want)
	}
	if w := p.Workers()[0]; !w.Done || !w.GaveUp || w.Generation != 3 || w.Job != JobID("r1", "rollout", 0, 3) {
		t.Errorf("worker %+v", w)
	}
}

func TestPlacerNeverResubmits(t *testing.T) {
	m := newMemRay()
	m.onSubmit = func(string) JobStatus { return StatusStopped }
	p, log := testPlacer(t, m, oneRollout, PlacerOptions{MaxResubmits: -1})
	ctx := context.Background()
	p.Start(ctx)
	if err := p.Follow(ctx); err == nil {
		t.Fatal("Follow: no error")
	}
	if got, want := kinds(log), "submitted rollout-0 g1; failed rollout-0 g1; gave-up rollout-0 g1"; got != want {
		t.Errorf("events %s, want %s", got, want)
	}
}

func TestPlacerRetriesAFailedSubmission(t *testing.T) {
	m := newMemRay()
	m.failNext = 1
	m.onSubmit = func(string) JobStatus { return StatusSucceeded }
	p, log := testPlacer(t, m, oneRollout, PlacerOptions{})
	ctx := context.Background()
	if err := p.Start(ctx); err == nil || !strings.Contains(err.Error(), "rollout-0") || !strings.Contains(err.Error(), "agent down") {
		t.Fatalf("Start: %v, want the submission error", err)
	}
	if err := p.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := kinds(log), "error rollout-0 g1; submitted rollout-0 g1; succeeded rollout-0 g1"; got != want {
		t.Errorf("events %s, want %s", got, want)
	}
}

func TestPlacerStartAdoptsAnEarlierPlacersJobs(t *testing.T) {
	m := newMemRay()
	m.put(JobID("r1", "rollout", 0, 1), StatusFailed)
	m.put(JobID("r1", "rollout", 0, 2), StatusRunning)   // live: adopted
	m.put(JobID("r1", "rollout", 1, 1), StatusSucceeded) // done
	m.put(JobID("r1", "reward", 0, 3), StatusFailed)     // resubmitted as g4
	m.put(JobID("r2", "learner", 0, 1), StatusRunning)   // another run's
	groups := []Group{{Role: "rollout", Count: 2}, {Role: "reward", Count: 1}, {Role: "learner", Count: 1}}
	p, log := testPlacer(t, m, groups, PlacerOptions{MaxResubmits: 3})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := "adopted rollout-0 g2; succeeded rollout-1 g1; failed reward-0 g3; resubmitted reward-0 g4; submitted learner-0 g1"
	if got := kinds(log); got != want {
		t.Errorf("events\n%s\nwant\n%s", got, want)
	}
	if len(m.reqs) != 2 {
		t.Errorf("%d submissions, want 2", len(m.reqs))
	}
}

func TestPlacerAdoptsAnExistingJobOnSubmit(t *testing.T) {
	m := newMemRay()
	p, log := testPlacer(t, m, oneRollout, PlacerOptions{})
	// The job appears between Start's List and its Submit, as when an
	// earlier submission's answer was lost.
	sub := &listFirst{memRay: m, before: func() { m.put(JobID("r1", "rollout", 0, 1), StatusRunning) }}
	p.sub = sub
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := kinds(log); got != "adopted rollout-0 g1" {
		t.Errorf("events %s", got)
	}
	if w := p.Workers()[0]; w.Job != JobID("r1", "rollout", 0, 1) {
		t.Errorf("worker %+v", w)
	}
}

// listFirst runs before after the first List.
type listFirst struct {
	*memRay
	before func()
	once   sync.Once
}

func (l *listFirst) List(ctx context.Context) ([]Job, error) {
	jobs, err := l.memRay.List(ctx)
	l.once.Do(l.before)
	return jobs, err
}

func TestPlacerStop(t *testing.T) {
	m := newMemRay()
	p, log := testPlacer(t, m, []Group{{Role: "rollout", Count: 2}, {Role: "learner", Count: 1}}, PlacerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	followed := make(chan error, 1)
	go func() { followed <- p.Follow(ctx) }()
	waitWorkers(ctx, t, p, "running", allRunning)
	m.set(JobID("r1", "rollout", 1, 1), StatusFailed)
	waitWorkers(ctx, t, p, "rollout-1 g2", func(ws []Worker) bool { return ws[1].Generation == 2 && allRunning(ws) })
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-followed; err != nil {
		t.Errorf("Follow: %v", err)
	}
	want := []string{JobID("r1", "rollout", 0, 1), JobID("r1", "rollout", 1, 2), JobID("r1", "learner", 0, 1)}
	if fmt.Sprint(m.stops) != fmt.Sprint(want) {
		t.Errorf("stopped %v, want %v", m.stops, want)
	}
	for _, w := range p.Workers() {
		if !w.Done || w.Status != StatusStopped {
			t.Errorf("after Stop: %+v", w)
		}
	}
	if log.has(EventResubmitted, "rollout", 0, 2) || len(m.reqs) != 4 {
		t.Errorf("submissions after Stop: %d requests; events %s", len(m.reqs), kinds(log))
	}
}

func TestPlacerRequests(t *testing.T) {
	const tokenFile = "/var/run/thinkgen/token"
	cl := config.Default().Cluster
	cl.Workers = config.Workers{Rollout: 2, Reward: 1, Learner: 1}
	cl.Rollout = config.Resources{CPUs: 8, GPUs: 1, Memory: "80Gi", Custom: map[string]float64{"accelerator_type:A100": 1}}
	cl.Reward = config.Resources{CPUs: 4}
	cl.Learner = config.Resources{CPUs: 16, GPUs: 8, Memory: "640Gi"}
	m := newMemRay()
	p, _ := testPlacer(t, m, Groups(cl), PlacerOptions{
		Run: "exp.7", Controller: "http://ctl:7000/a b", Command: "/opt/thinkgen/bin/thinkgen",
		TokenFile: tokenFile, Env: map[string]string{"OMP_NUM_THREADS": "8"},
	})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(m.reqs) != 4 {
		t.Fatalf("%d submissions, want 4", len(m.reqs))
	}
	tests := []struct {
		id, role       string
		cpus, gpus     float64
		mem            int64
		custom         map[string]float64
		metadataIndex  string
		wantEntrypoint string
	}{
		{"thinkgen-exp.7-rollout-0-g1", "rollout", 8, 1, 80 << 30, map[string]float64{"accelerator_type:A100": 1}, "0", ""},
		{"thinkgen-exp.7-rollout-1-g1", "rollout", 8, 1, 80 << 30, map[string]float64{"accelerator_type:A100": 1}, "1", ""},
		{"thinkgen-exp.7-reward-0-g1", "reward", 4, 0, 0, nil, "0", ""},
		{"thinkgen-exp.7-learner-0-g1", "learner", 16, 8, 640 << 30, nil, "0", ""},
	}
	for i, tt := range tests {
		r := m.reqs[i]
		if r.SubmissionID != tt.id {
			t.Errorf("request %d id %q, want %q", i, r.SubmissionID, tt.id)
		}
		if want := "/opt/thinkgen/bin/thinkgen worker --role " + tt.role + " --controller 'http://ctl:7000/a b'"; r.Entrypoint != want {
			t.Errorf("%s entrypoint %q, want %q", tt.id, r.Entrypoint, want)
		}
		if r.EntrypointNumCPUs != tt.cpus || r.EntrypointNumGPUs != tt.gpus || r.EntrypointMemory != tt.mem || !equalResources(r.EntrypointResources, tt.custom) {
			t.Errorf("%s resources %v CPU %v GPU %v bytes %v", tt.id, r.EntrypointNumCPUs, r.EntrypointNumGPUs, r.EntrypointMemory, r.EntrypointResources)
		}
		// The job carries the token file's path, never a token.
		if r.RuntimeEnv == nil || len(r.RuntimeEnv.EnvVars) != 2 || r.RuntimeEnv.EnvVars[DefaultTokenFileEnv] != tokenFile || r.RuntimeEnv.EnvVars["OMP_NUM_THREADS"] != "8" {
			t.Errorf("%s env %v", tt.id, r.RuntimeEnv)
		}
		md := r.Metadata
		if md["thinkgen_run"] != "exp.7" || md["thinkgen_role"] != tt.role || md["thinkgen_index"] != tt.metadataIndex || md["thinkgen_generation"] != "1" {
			t.Errorf("%s metadata %v", tt.id, md)
		}
	}
}

var badPlacerTests = []struct {
	name   string
	groups []Group
	opts   PlacerOptions
	want   string
}{
	{"run name", oneRollout, PlacerOptions{Run: "a/b", Controller: "http://c"}, `run name "a/b"`},
	{"empty run", oneRollout, PlacerOptions{Controller: "http://c"}, `run name ""`},
	{"controller", oneRollout, PlacerOptions{Run: "r"}, "no controller URL"},
	{"token file in Env", oneRollout, PlacerOptions{Run: "r", Controller: "http://c", Env: map[string]string{DefaultTokenFileEnv: "/t"}}, "Env sets " + DefaultTokenFileEnv},
	{"token in Env", oneRollout, PlacerOptions{Run: "r", Controller: "http://c", Env: map[string]string{"THINKGEN_TOKEN": "x"}}, "Env sets THINKGEN_TOKEN, which looks like a secret"},
	{"secret key in Env", oneRollout, PlacerOptions{Run: "r", Controller: "http://c", Env: map[string]string{"AWS_SECRET_ACCESS_KEY": "x"}}, "Env sets AWS_SECRET_ACCESS_KEY"},
	{"relative token file", oneRollout, PlacerOptions{Run: "r", Controller: "http://c", TokenFile: "token"}, `token file "token": want an absolute path`},
	{"role", []Group{{Role: "critic", Count: 1}}, PlacerOptions{Run: "r", Controller: "http://c"}, `role "critic"`},
	{"duplicate role", []Group{{Role: "reward", Count: 1}, {Role: "reward", Count: 2}}, PlacerOptions{Run: "r", Controller: "http://c"}, "role reward given twice"},
	{"memory", []Group{{Role: "learner", Count: 1, Resources: config.Resources{Memory: "lots"}}}, PlacerOptions{Run: "r", Controller: "http://c"}, `cluster.learner.memory "lots"`},
}

func TestNewPlacerRejects(t *testing.T) {
	for _, tt := range badPlacerTests {
		_, err := NewPlacer(newMemRay(), tt.groups, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestGroups(t *testing.T) {
	cl := config.Default().Cluster
	if g := Groups(cl); len(g) != 0 {
		t.Errorf("embedded mode: groups %v, want none", g)
	}
	cl.Workers = config.Workers{Rollout: 2, Learner: 1}
	g := Groups(cl)
	if len(g) != 2 || g[0].Role != "rollout" || g[0].Count != 2 || g[1].Role != "learner" || g[1].Resources.CPUs != cl.Learner.CPUs {
		t.Errorf("groups %+v", g)
	}
}

func TestWriteEvents(t *testing.T) {
	var b bytes.Buffer
	f := WriteEvents(&b)
	f(Event{Kind: EventResubmitted, Role: "rollout", Index: 1, Generation: 2, Job: "thinkgen-r-rollout-1-g2", Status: StatusPending})
	f(Event{Kind: EventError, Message: "cluster: list jobs: boom"})
	want := "placer: resubmitted rollout-1 gen 2 job thinkgen-r-rollout-1-g2 PENDING\nplacer: error: cluster: list jobs: boom\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:7000": "http://127.0.0.1:7000",
		"http://h/a b":          "'http://h/a b'",
		"http://h/?a=1&b=2":     "'http://h/?a=1&b=2'",
		"it's":                  `'it'\''s'`,
		"":                      "''",
	} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
