package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/thinkgen/thinkgen/config"
)

// The worker roles, in the order groups are placed.
var Roles = []string{"rollout", "reward", "learner"}

// DefaultTokenFileEnv is the environment variable that carries the path of
// the worker token's file when PlacerOptions.TokenFileEnv is empty.
const DefaultTokenFileEnv = "THINKGEN_WORKER_TOKEN_FILE"

// Group is a number of worker processes of one role, each needing
// Resources.
type Group struct {
	Role      string
	Count     int
	Resources config.Resources
}

// Groups returns the worker groups of a cluster configuration
// (cluster.workers and cluster.<role>), in the order of Roles, leaving out
// roles with no workers.
func Groups(c config.Cluster) []Group {
	var gs []Group
	for _, g := range []Group{
		{"rollout", c.Workers.Rollout, c.Rollout},
		{"reward", c.Workers.Reward, c.Reward},
		{"learner", c.Workers.Learner, c.Learner},
	} {
		if g.Count > 0 {
			gs = append(gs, g)
		}
	}
	return gs
}

// Submitter is the part of the Job Submission API a Placer uses; *Client
// implements it.
type Submitter interface {
	Submit(ctx context.Context, req JobRequest) (string, error)
	List(ctx context.Context) ([]Job, error)
	Stop(ctx context.Context, id string) (bool, error)
}

var _ Submitter = (*Client)(nil)

// PlacerOptions configure a Placer.
type PlacerOptions struct {
	// Run names the run; it prefixes every submission id, so it must be
	// letters, digits, '.', '_' and '-'. Required.
	Run string
	// Controller is the URL of the controller the workers register with.
	// Required.
	Controller string
	// Command starts thinkgen on the Ray nodes, e.g.
	// "/opt/thinkgen/bin/thinkgen"; empty means "thinkgen" (on the PATH).
	// The job's entrypoint is
	//   <Command> worker --role <role> --controller <Controller>
	// with the controller URL shell-quoted; Command itself is used as it is.
	Command string
	// TokenFile is the absolute path of the file holding the worker token
	// on every Ray node (a mounted Secret, or a file the operator put
	// there). The token itself never passes through Ray: Ray shows a job's
	// runtime_env to anyone who can read its job info, so the job carries
	// only this path, in the variable TokenFileEnv. Empty means no token.
	TokenFile string
	// TokenFileEnv names the variable that carries TokenFile; empty means
	// DefaultTokenFileEnv.
	TokenFileEnv string
	// Env are more environment variables for every worker. They are not
	// secrets (Ray shows them in its job info): a name that mentions a
	// token, a secret, a password or a key is refused.
	Env map[string]string
	// PollInterval is how often the jobs' states are read; zero means 2 s.
	PollInterval time.Duration
	// MaxResubmits is how many times one worker is resubmitted after its
	// job ended FAILED or STOPPED unexpectedly; zero means 3, negative
	// means never.
	MaxResubmits int
	// OnEvent, if not nil, receives every event, from the goroutine that
	// calls Start, Follow or Stop. WriteEvents adapts an io.Writer.
	OnEvent func(Event)
}

// EventKind says what happened to a worker's job.
type EventKind string

// The events of a Placer.
const (
	EventSubmitted   EventKind = "submitted"   // a job was submitted
	EventAdopted     EventKind = "adopted"     // a live job of an earlier placer was taken over
	EventRunning     EventKind = "running"     // the job's entrypoint started
	EventSucceeded   EventKind = "succeeded"   // the worker exited 0; it is not resubmitted
	EventFailed      EventKind = "failed"      // the job ended FAILED, or STOPPED unexpectedly
	EventResubmitted EventKind = "resubmitted" // a failed worker's job was submitted again, one generation up
	EventGaveUp      EventKind = "gave-up"     // a failed worker was not resubmitted: MaxResubmits reached
	EventStopped     EventKind = "stopped"     // the job ended STOPPED after Placer.Stop
	EventError       EventKind = "error"       // a call to Ray failed (the placer goes on)
)

// Event is one thing that happened to a worker's job.
type Event struct {
	Kind       EventKind
	Role       string
	Index      int
	Generation int
	Job        string // the submission id
	Status     JobStatus
	// Message is Ray's message about the job (its first line), or the
	// error; secrets are redacted.
	Message string
}

func (e Event) String() string {
	if e.Role == "" {
		return fmt.Sprintf("%s: %s", e.Kind, e.Message)
	}
	s := fmt.Sprintf("%s %s-%d gen %d job %s", e.Kind, e.Role, e.Index, e.Generation, e.Job)
	if e.Status != "" {
		s += " " + string(e.Status)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// WriteEvents returns an OnEvent that writes each event as one line to w.
func WriteEvents(w io.Writer) func(Event) {
	var mu sync.Mutex
	return func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "placer: %s\n", e)
	}
}

// Worker is the state of one worker process as the Placer last saw it.
type Worker struct {
	Role       string
	Index      int
	Generation int
	// Job is the submission id of the current generation's job; empty
	// while that job is not submitted (it will be at the next poll).
	Job    string
	Status JobStatus
	// Done is set once the worker will not be resubmitted: it succeeded,
	// was stopped by Placer.Stop, or failed MaxResubmits+1 times.
	Done bool
	// GaveUp is set when the worker failed MaxResubmits+1 times.
	GaveUp bool
}

// Placer runs each worker process of a run as a Ray job, follows the jobs'
// states and resubmits a worker whose job failed. Its methods may be
// called from several goroutines: typically Start, then Follow in one
// goroutine and Stop from another.
type Placer struct {
	sub  Submitter
	opts PlacerOptions
	reqs map[string]JobRequest // per role, without submission id and metadata

	mu       sync.Mutex // guards workers and stopping, and is held while resubmitting
	workers  []*Worker
	stopping bool
}

var runNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// NewPlacer returns a Placer of the groups' workers. It checks the options
// and the groups' resources; it submits nothing until Start.
func NewPlacer(sub Submitter, groups []Group, opts PlacerOptions) (*Placer, error) {
	if !runNameRE.MatchString(opts.Run) {
		return nil, fmt.Errorf("cluster: placer: run name %q: want letters, digits, '.', '_' and '-'", opts.Run)
	}
	if opts.Controller == "" {
		return nil, errors.New("cluster: placer: no controller URL")
	}
	opts.Command = cmp.Or(opts.Command, "thinkgen")
	opts.TokenFileEnv = cmp.Or(opts.TokenFileEnv, DefaultTokenFileEnv)
	if opts.TokenFile != "" && !filepath.IsAbs(opts.TokenFile) {
		return nil, fmt.Errorf("cluster: placer: token file %q: want an absolute path (the jobs run elsewhere)", opts.TokenFile)
	}
	for name := range opts.Env {
		if name == opts.TokenFileEnv {
			return nil, fmt.Errorf("cluster: placer: Env sets %s, which carries the token file's path: pass it as TokenFile", name)
		}
		if secretName(name) {
			return nil, fmt.Errorf("cluster: placer: Env sets %s, which looks like a secret: Ray shows a job's environment in its job info; deliver secrets as files", name)
		}
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 2 * time.Second
	}
	switch {
	case opts.MaxResubmits == 0:
		opts.MaxResubmits = 3
	case opts.MaxResubmits < 0:
		opts.MaxResubmits = 0
	}
	p := &Placer{sub: sub, opts: opts, reqs: map[string]JobRequest{}}
	for _, g := range groups {
		if !isRole(g.Role) {
			return nil, fmt.Errorf("cluster: placer: role %q: want one of %s", g.Role, strings.Join(Roles, ", "))
		}
		if _, dup := p.reqs[g.Role]; dup {
			return nil, fmt.Errorf("cluster: placer: role %s given twice", g.Role)
		}
		if g.Count < 0 {
			return nil, fmt.Errorf("cluster: placer: %s workers: %d < 0", g.Role, g.Count)
		}
		req, err := p.request(g)
		if err != nil {
			return nil, err
		}
		p.reqs[g.Role] = req
		for i := 0; i < g.Count; i++ {
			p.workers = append(p.workers, &Worker{Role: g.Role, Index: i})
		}
	}
	return p, nil
}

func isRole(r string) bool {
	for _, x := range Roles {
		if r == x {
			return true
		}
	}
	return false
}

// request builds the job request of one worker of group g.
func (p *Placer) request(g Group) (JobRequest, error) {
	mem, err := g.Resources.MemoryBytes()
	if err != nil {
		return JobRequest{}, fmt.Errorf("cluster: placer: cluster.%s.%w", g.Role, err)
	}
	env := map[string]string{}
	for k, v := range p.opts.Env {
		env[k] = v
	}
	if p.opts.TokenFile != "" {
		env[p.opts.TokenFileEnv] = p.opts.TokenFile
	}
	req := JobRequest{
		Entrypoint:          fmt.Sprintf("%s worker --role %s --controller %s", p.opts.Command, g.Role, ShellQuote(p.opts.Controller)),
		EntrypointNumCPUs:   g.Resources.CPUs,
		EntrypointNumGPUs:   g.Resources.GPUs,
		EntrypointMemory:    mem,
		EntrypointResources: g.Resources.Custom,
	}
	if len(env) > 0 {
		req.RuntimeEnv = &RuntimeEnv{EnvVars: env}
	}
	return req, nil
}

// ShellQuote quotes s for a POSIX shell unless it is made of safe
// characters only (a Ray job's entrypoint is a shell command line).
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@%+=,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// JobID returns the submission id of a worker's job of a generation:
// "thinkgen-<run>-<role>-<index>-g<generation>". Ids are deterministic, so a
// restarted placer finds the jobs of the one before.
func JobID(run, role string, index, generation int) string {
	return fmt.Sprintf("%s-g%d", workerPrefix(run, role, index), generation)
}

func workerPrefix(run, role string, index int) string {
	return fmt.Sprintf("thinkgen-%s-%s-%d", run, role, index)
}

// redact keeps the first line of s.
func (p *Placer) redact(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// secretName reports whether an environment variable's name says it holds
// a secret.
func secretName(name string) bool {
	n := strings.ToUpper(name)
	for _, w := range []string{"TOKEN", "SECRET", "PASSWORD", "KEY"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

func (p *Placer) emit(w *Worker, kind EventKind, status JobStatus, msg string) {
	if p.opts.OnEvent == nil {
		return
	}
	p.opts.OnEvent(Event{Kind: kind, Role: w.Role, Index: w.Index, Generation: w.Generation, Job: w.Job, Status: status, Message: p.redact(msg)})
}

// Workers returns a snapshot of the workers' states.
func (p *Placer) Workers() []Worker {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Worker, len(p.workers))
	for i, w := range p.workers {
		out[i] = *w
	}
	return out
}

// Start places every worker. A worker whose job of an earlier placer of
// the same run is still PENDING or RUNNING is adopted; one whose latest job
// failed is resubmitted one generation up (within MaxResubmits); one whose
// latest job succeeded is left done; the others are submitted as
// generation 1. It returns the first submission error, after trying every
// worker.
func (p *Placer) Start(ctx context.Context) error {
	jobs, err := p.sub.List(ctx)
	if err != nil {
		return fmt.Errorf("cluster: placer: start: %w", err)
	}
	latest := map[string]Job{} // worker prefix → its job of the highest generation
	gens := map[string]int{}
	for _, j := range jobs {
		prefix, gen, ok := splitJobID(j.SubmissionID)
		if ok && gen > gens[prefix] {
			latest[prefix], gens[prefix] = j, gen
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var first error
	for _, w := range p.workers {
		if p.stopping {
			break
		}
		prefix := workerPrefix(p.opts.Run, w.Role, w.Index)
		if j, ok := latest[prefix]; ok {
			w.Generation, w.Job, w.Status = gens[prefix], j.SubmissionID, j.Status
			switch {
			case !j.Status.Terminal():
				p.emit(w, EventAdopted, j.Status, "")
				continue
			case j.Status == StatusSucceeded:
				w.Done = true
				p.emit(w, EventSucceeded, j.Status, j.Message)
				continue
			}
			p.failed(w, j.Status, j.Message)
			if !w.Done {
				if err := p.submit(ctx, w, EventResubmitted); err != nil && first == nil {
					first = err
				}
			}
			continue
		}
		w.Generation = 1
		if err := p.submit(ctx, w, EventSubmitted); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// splitJobID splits a submission id made by JobID into the worker's prefix
// and the generation.
func splitJobID(id string) (string, int, bool) {
	i := strings.LastIndex(id, "-g")
	if i < 0 || !strings.HasPrefix(id, "thinkgen-") {
		return "", 0, false
	}
	gen, err := strconv.Atoi(id[i+2:])
	if err != nil || gen < 1 {
		return "", 0, false
	}
	return id[:i], gen, true
}

// submit submits w's job of generation w.Generation; p.mu is held. A job
// already there under that id (a submission whose answer was lost, or an
// earlier placer's) is adopted.
func (p *Placer) submit(ctx context.Context, w *Worker, kind EventKind) error {
	req := p.reqs[w.Role]
	req.SubmissionID = JobID(p.opts.Run, w.Role, w.Index, w.Generation)
	req.Metadata = map[string]string{
		"thinkgen_run": p.opts.Run, "thinkgen_role": w.Role,
		"thinkgen_index": strconv.Itoa(w.Index), "thinkgen_generation": strconv.Itoa(w.Generation),
	}
	if _, err := p.sub.Submit(ctx, req); err != nil {
		if errors.Is(err, ErrJobExists) {
			w.Job, w.Status = req.SubmissionID, ""
			p.emit(w, EventAdopted, "", "")
			return nil
		}
		w.Job, w.Status = "", ""
		p.emit(w, EventError, "", err.Error())
		return fmt.Errorf("cluster: placer: %s-%d: %w", w.Role, w.Index, err)
	}
	w.Job, w.Status = req.SubmissionID, StatusPending
	p.emit(w, kind, StatusPending, "")
	return nil
}

// failed records that w's job ended FAILED or STOPPED without Stop, and
// marks w done if it may not be resubmitted; otherwise it moves w to the
// next generation, not yet submitted. p.mu is held.
func (p *Placer) failed(w *Worker, status JobStatus, msg string) {
	w.Status = status
	p.emit(w, EventFailed, status, msg)
	if w.Generation > p.opts.MaxResubmits {
		w.Done, w.GaveUp = true, true
		p.emit(w, EventGaveUp, status, fmt.Sprintf("failed %d times", w.Generation))
		return
	}
	w.Generation++
	w.Job = ""
}

// Follow polls the jobs' states every PollInterval, reports the changes as
// events, and resubmits each worker whose job ended FAILED, or STOPPED
// other than by Stop, within MaxResubmits. It returns when every worker is
// done (nil, or an error naming the workers that were given up), or when
// ctx is done (ctx.Err()). A failed poll is reported as an EventError and
// retried at the next tick.
func (p *Placer) Follow(ctx context.Context) error {
	t := time.NewTicker(p.opts.PollInterval)
	defer t.Stop()
	for {
		if done, err := p.poll(ctx); done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// poll reads every job's state once and acts on it; done reports that
// every worker is done.
func (p *Placer) poll(ctx context.Context) (done bool, err error) {
	jobs, lerr := p.sub.List(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if lerr != nil {
		if ctx.Err() != nil {
			return true, ctx.Err()
		}
		if p.opts.OnEvent != nil {
			p.opts.OnEvent(Event{Kind: EventError, Message: p.redact(lerr.Error())})
		}
		return false, nil
	}
	byID := make(map[string]Job, len(jobs))
	for _, j := range jobs {
		if j.SubmissionID != "" {
			byID[j.SubmissionID] = j
		}
	}
	var gaveUp []string
	done = true
	for _, w := range p.workers {
		if !w.Done && w.Job != "" {
			j, ok := byID[w.Job]
			if !ok {
				j = Job{Status: StatusFailed, Message: "the job is gone from the Ray cluster"}
			}
			p.observe(w, j)
		}
		if !w.Done && w.Job == "" {
			// A new generation, or a submission that failed: submit it,
			// unless stopping (then there is nothing to stop).
			if p.stopping {
				w.Done = true
			} else {
				kind := EventResubmitted
				if w.Generation <= 1 {
					kind, w.Generation = EventSubmitted, 1
				}
				p.submit(ctx, w, kind)
			}
		}
		if w.GaveUp {
			gaveUp = append(gaveUp, fmt.Sprintf("%s-%d", w.Role, w.Index))
		}
		done = done && w.Done
	}
	if done && len(gaveUp) > 0 {
		sort.Strings(gaveUp)
		return true, fmt.Errorf("cluster: placer: gave up on %s after %d resubmits", strings.Join(gaveUp, ", "), p.opts.MaxResubmits)
	}
	return done, nil
}

// observe applies a job's state to its worker; p.mu is held.
func (p *Placer) observe(w *Worker, j Job) {
	if j.Status == w.Status {
		return
	}
	w.Status = j.Status
	switch j.Status {
	case StatusRunning:
		p.emit(w, EventRunning, j.Status, "")
	case StatusSucceeded:
		w.Done = true
		p.emit(w, EventSucceeded, j.Status, j.Message)
	case StatusStopped:
		if p.stopping {
			w.Done = true
			p.emit(w, EventStopped, j.Status, j.Message)
			return
		}
		p.failed(w, j.Status, j.Message)
	case StatusFailed:
		p.failed(w, j.Status, j.Message)
	}
}

// Stop stops every worker's job and waits until each has ended (or ctx is
// done). Workers are not resubmitted after Stop.
func (p *Placer) Stop(ctx context.Context) error {
	p.mu.Lock()
	p.stopping = true
	var live []*Worker
	for _, w := range p.workers {
		if !w.Done && w.Job != "" {
			live = append(live, w)
		}
	}
	p.mu.Unlock()
	var first error
	for _, w := range live {
		if _, err := p.sub.Stop(ctx, w.Job); err != nil && first == nil {
			first = fmt.Errorf("cluster: placer: stop %s-%d: %w", w.Role, w.Index, err)
		}
	}
	if first != nil {
		return first
	}
	t := time.NewTicker(p.opts.PollInterval)
	defer t.Stop()
	for {
		done, _ := p.poll(ctx)
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: placer: stop: %w", ctx.Err())
		case <-t.C:
		}
	}
}
