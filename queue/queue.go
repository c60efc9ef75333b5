package queue

import (
	"container/heap"
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/thinkgen/thinkgen/task"
)

// Clock tells the time; the queue reads every deadline from it.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Options configure a Queue. The zero value is usable.
type Options struct {
	// LeaseTTL is how long a lease lasts without a heartbeat; 0 means 30 s.
	LeaseTTL time.Duration
	// WorkerTTL is how long a worker that is not waiting in Lease may stay
	// silent before it is dropped; 0 means LeaseTTL.
	WorkerTTL time.Duration
	// MaxAttempts bounds the attempts of a task (failures and expired
	// leases count); 0 means 3.
	MaxAttempts int
	// MaxTaskTime bounds one attempt: heartbeats do not extend a lease past
	// its grant time plus MaxTaskTime, so a worker whose process still
	// heartbeats but whose task hangs loses it; 0 means no bound.
	MaxTaskTime time.Duration
	// Clock tells the time; nil means the system clock.
	Clock Clock
}

// State is the state of a task.
type State string

// The states of a task.
const (
	Queued State = "queued"
	Leased State = "leased"
	Done   State = "done"
	Failed State = "failed"
)

// AllStates lists every State; keep it in sync with the constants above.
var AllStates = []State{Queued, Leased, Done, Failed}

// IsTerminal reports whether a task in state s is finished.
func (s State) IsTerminal() bool { return s == Done || s == Failed }

// Queue is a task queue with leases. It is safe for concurrent use.
type Queue struct {
	opts  Options
	clock Clock

	mu      sync.Mutex
	seq     uint64
	tasks   map[string]*entry
	ready   map[task.Kind]*taskHeap
	workers map[string]*worker
	waiters *list.List // of *waiter, oldest first
	counts  map[State]int
}

// outcome is how one submission of a task ended; done is closed then.
type outcome struct {
	done   chan struct{}
	result task.Result
	err    error
}

// attemptEnd records how an attempt ended.
type attemptEnd struct {
	attempt int
	worker  string
	how     endHow
}

// endHow is how an attempt ended.
type endHow int

const (
	endDone     endHow = iota // completed
	endFailed                 // failed, and so did the task
	endRetried                // failed, the task was queued again
	endExpired                // lease expired (or the worker was dropped)
	endCanceled               // the controller canceled the task
	endUnsent                 // granted as the worker's Lease call ended: never handed out
)

type entry struct {
	key      string
	seq      uint64
	t        task.Task // t.Attempt is the current attempt
	state    State
	holder   *worker
	deadline time.Time
	granted  time.Time
	out      *outcome
	ended    []attemptEnd
	heapIdx  int
}

type worker struct {
	id       string
	name     string
	roles    []Role
	kinds    map[task.Kind]bool
	capacity int
	leases   map[string]*entry
	lastSeen time.Time
	polling  int
	joined   time.Time
}

type waiter struct {
	w  *worker
	ch chan *entry // buffered 1: the granted task
	el *list.Element
}

// New returns an empty queue.
func New(o Options) *Queue {
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 30 * time.Second
	}
	if o.WorkerTTL <= 0 {
		o.WorkerTTL = o.LeaseTTL
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	q := &Queue{
		opts: o, clock: o.Clock,
		tasks:   map[string]*entry{},
		ready:   map[task.Kind]*taskHeap{},
		workers: map[string]*worker{},
		waiters: list.New(),
		counts:  map[State]int{},
	}
	for _, r := range AllRoles {
		q.ready[r.Kind()] = &taskHeap{}
	}
	return q
}

// LeaseTTL is the lease duration in effect.
func (q *Queue) LeaseTTL() time.Duration { return q.opts.LeaseTTL }

// Submit queues t and returns its key. A task whose key failed permanently
// before may be submitted again: it continues with the next attempt (or
// t.Attempt if that is higher). A done task may be submitted again with a
// later attempt than the one that completed it (a learner rank whose gang
// failed after this rank finished: the gang is formed again, every rank
// anew). A task whose key is queued or leased, or done without a later
// attempt, is refused with ErrDuplicate.
func (q *Queue) Submit(t task.Task) (string, error) {
	if t.Attempt < 1 {
		t.Attempt = 1
	}
	if err := t.Validate(); err != nil {
		return "", fmt.Errorf("submit: %w", invalidf("%v", err))
	}
	if err := validateSegment("task id", t.ID); err != nil {
		return "", fmt.Errorf("submit: %w", err)
	}
	key := Key(t)
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.tasks[key]
	switch {
	case e == nil:
		e = &entry{key: key, heapIdx: -1}
		q.tasks[key] = e
	case e.state == Failed:
		t.Attempt = max(t.Attempt, e.t.Attempt+1)
	case e.state == Done && t.Attempt > e.t.Attempt:
	default:
		return "", fmt.Errorf("submit %s: %w (%s)", key, ErrDuplicate, e.state)
	}
	q.seq++
	e.seq, e.t = q.seq, t
	e.out = &outcome{done: make(chan struct{})}
	q.enqueue(e)
	return key, nil
}

// Wait returns the result of the task once it is done, or its error once it
// failed permanently (a *TaskError), or ctx's error.
func (q *Queue) Wait(ctx context.Context, key string) (task.Result, error) {
	q.mu.Lock()
	e := q.tasks[key]
	if e == nil {
		q.mu.Unlock()
		return task.Result{}, fmt.Errorf("wait %s: %w", key, ErrUnknownTask)
	}
	out := e.out
	q.mu.Unlock()
	select {
	case <-out.done:
		return out.result, out.err
	case <-ctx.Done():
		return task.Result{}, ctx.Err()
	}
}

// Cancel withdraws a task that has not finished: it fails permanently with
// an error that wraps ErrCanceled, its holder's heartbeats and completion
// are refused from then on, and it may be submitted again. Canceling a
// finished task does nothing.
func (q *Queue) Cancel(key string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.tasks[key]
	if e == nil {
		return fmt.Errorf("cancel %s: %w", key, ErrUnknownTask)
	}
	switch e.state {
	case Queued:
		heap.Remove(q.ready[e.t.Kind], e.heapIdx)
	case Leased:
		q.release(e, endCanceled)
	default:
		return nil
	}
	q.finish(e, Failed, task.Result{}, &TaskError{Key: key, Attempt: e.t.Attempt, Msg: "withdrawn by the controller", Canceled: true})
	return nil
}

// Register adds a worker serving roles, holding at most capacity leases at
// a time (0 means 1), and returns its ID (random, unique). name labels it in
// the status.
func (q *Queue) Register(name string, roles []Role, capacity int) (string, error) {
	if name == "" {
		name = "worker"
	}
	if err := validateSegment("worker name", name); err != nil {
		return "", fmt.Errorf("register: %w", err)
	}
	if len(roles) == 0 {
		return "", fmt.Errorf("register %s: %w", name, invalidf("roles: none, want some of %v", AllRoles))
	}
	kinds := map[task.Kind]bool{}
	for _, r := range roles {
		if r.Kind() == "" {
			return "", fmt.Errorf("register %s: %w", name, invalidf("roles: unknown role %q, want one of %v", r, AllRoles))
		}
		kinds[r.Kind()] = true
	}
	switch {
	case capacity == 0:
		capacity = 1
	case capacity < 0 || capacity > 4096:
		return "", fmt.Errorf("register %s: %w", name, invalidf("capacity %d, want 1..4096", capacity))
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("register %s: worker id: %w", name, err)
	}
	now := q.clock.Now()
	w := &worker{id: hex.EncodeToString(b[:]), name: name, roles: slices.Clone(roles), kinds: kinds,
		capacity: capacity, leases: map[string]*entry{}, lastSeen: now, joined: now}
	q.mu.Lock()
	q.workers[w.id] = w
	q.mu.Unlock()
	return w.id, nil
}

// Lease waits until a task that one of the worker's roles serves is
// available or ctx ends, and leases it to the worker: it returns the task
// (with its current attempt) and the lease's deadline. Tasks are leased in
// submission order.
func (q *Queue) Lease(ctx context.Context, workerID string) (task.Task, time.Time, error) {
	q.mu.Lock()
	w := q.workers[workerID]
	if w == nil {
		q.mu.Unlock()
		return task.Task{}, time.Time{}, fmt.Errorf("lease for worker %s: %w", workerID, ErrUnknownWorker)
	}
	w.lastSeen = q.clock.Now()
	if len(w.leases)+w.polling >= w.capacity {
		q.mu.Unlock()
		return task.Task{}, time.Time{}, fmt.Errorf("lease for worker %s: %w (%d)", workerID, ErrAtCapacity, w.capacity)
	}
	if e := q.pop(w); e != nil {
		q.grant(e, w)
		t, d := e.t, e.deadline
		q.mu.Unlock()
		return t, d, nil
	}
	wt := &waiter{w: w, ch: make(chan *entry, 1)}
	wt.el = q.waiters.PushBack(wt)
	w.polling++
	q.mu.Unlock()

	select {
	case e := <-wt.ch:
		q.mu.Lock()
		defer q.mu.Unlock()
		w.polling--
		w.lastSeen = q.clock.Now()
		return e.t, e.deadline, nil
	case <-ctx.Done():
		q.mu.Lock()
		defer q.mu.Unlock()
		w.polling--
		w.lastSeen = q.clock.Now()
		if wt.el != nil {
			q.waiters.Remove(wt.el)
			wt.el = nil
			return task.Task{}, time.Time{}, ctx.Err()
		}
		// A task was granted as ctx ended; it was never handed out, so it
		// goes back at the same attempt.
		e := <-wt.ch
		if e.state == Leased && e.holder == w {
			q.release(e, endUnsent)
			q.enqueue(e)
		}
		return task.Task{}, time.Time{}, ctx.Err()
	}
}

// Heartbeat tells the queue that the worker is alive and still working on
// attempt of the task key, and extends that lease; it returns the new
// deadline.
func (q *Queue) Heartbeat(workerID, key string, attempt int) (time.Time, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	w, e, err := q.held(workerID, key, attempt)
	if err != nil {
		return time.Time{}, fmt.Errorf("heartbeat %s attempt %d by worker %s: %w", key, attempt, workerID, err)
	}
	e.deadline = w.lastSeen.Add(q.opts.LeaseTTL)
	if max := q.opts.MaxTaskTime; max > 0 && e.deadline.After(e.granted.Add(max)) {
		e.deadline = e.granted.Add(max) // a hung task is not kept alive by heartbeats
	}
	return e.deadline, nil
}

// Complete records the result of attempt of the task key by the worker
// holding its lease; the task is done. Completing the attempt again (a
// retried request) is acknowledged without effect; any other completion is
// refused and changes nothing.
func (q *Queue) Complete(workerID, key string, attempt int, r task.Result) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.repeated(workerID, key, attempt, endDone) {
		return nil
	}
	_, e, err := q.held(workerID, key, attempt)
	if err == nil {
		err = validateResult(e.t.Run, r)
	}
	if err != nil {
		return fmt.Errorf("complete %s attempt %d by worker %s: %w", key, attempt, workerID, err)
	}
	q.release(e, endDone)
	q.finish(e, Done, r, nil)
	return nil
}

// Fail records that attempt of the task key failed with msg. The task is
// queued again with the next attempt, or fails permanently if fatal or if
// it used its attempts. Only the lease's holder may fail it; repeating the
// call is acknowledged without effect.
func (q *Queue) Fail(workerID, key string, attempt int, msg string, fatal bool) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.repeated(workerID, key, attempt, endFailed, endRetried) {
		return nil
	}
	_, e, err := q.held(workerID, key, attempt)
	if err != nil {
		return fmt.Errorf("fail %s attempt %d by worker %s: %w", key, attempt, workerID, err)
	}
	q.end(e, msg, fatal, endRetried)
	return nil
}

// Expire ends the leases past their deadline and drops the workers silent
// for longer than WorkerTTL (their leases end too); each task whose lease
// ended is queued again with the next attempt, or fails if it used its
// attempts. It returns how many leases ended.
func (q *Queue) Expire() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.clock.Now()
	n := 0
	for _, w := range q.workers {
		drop := w.polling == 0 && now.Sub(w.lastSeen) > q.opts.WorkerTTL
		for _, e := range w.leases {
			if drop || now.After(e.deadline) {
				q.expire(e, now)
				n++
			}
		}
		if drop {
			delete(q.workers, w.id)
		}
	}
	return n
}

// Run calls Expire four times per LeaseTTL (or WorkerTTL, if shorter) until
// ctx ends, and returns ctx's error.
func (q *Queue) Run(ctx context.Context) error {
	every := min(q.opts.LeaseTTL, q.opts.WorkerTTL) / 4
	tick := time.NewTicker(max(every, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			q.Expire()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// held returns the worker and the task entry if the worker holds the lease
// of attempt of key and it has not expired; it marks the worker seen.
func (q *Queue) held(workerID, key string, attempt int) (*worker, *entry, error) {
	w := q.workers[workerID]
	if w == nil {
		return nil, nil, ErrUnknownWorker
	}
	now := q.clock.Now()
	w.lastSeen = now
	e := q.tasks[key]
	if e == nil {
		return nil, nil, ErrUnknownTask
	}
	if e.state == Leased && e.holder == w && e.t.Attempt == attempt {
		if now.After(e.deadline) {
			q.expire(e, now)
			return nil, nil, ErrLeaseExpired
		}
		return w, e, nil
	}
	for _, a := range slices.Backward(e.ended) {
		if a.worker == workerID && a.attempt == attempt {
			switch a.how {
			case endCanceled:
				return nil, nil, ErrCanceled
			case endExpired:
				return nil, nil, ErrLeaseExpired
			case endUnsent:
				continue
			}
			return nil, nil, ErrStaleAttempt
		}
	}
	return nil, nil, ErrNotHolder
}

// repeated reports whether the worker already ended attempt of key as how.
func (q *Queue) repeated(workerID, key string, attempt int, how ...endHow) bool {
	e := q.tasks[key]
	if e == nil || q.workers[workerID] == nil {
		return false
	}
	for _, a := range e.ended {
		if a.worker == workerID && a.attempt == attempt && slices.Contains(how, a.how) {
			q.workers[workerID].lastSeen = q.clock.Now()
			return true
		}
	}
	return false
}

// enqueue queues e, or hands it straight to the oldest waiting worker that
// serves its kind.
func (q *Queue) enqueue(e *entry) {
	q.setState(e, Queued)
	for el := q.waiters.Front(); el != nil; el = el.Next() {
		wt := el.Value.(*waiter)
		if !wt.w.kinds[e.t.Kind] {
			continue
		}
		q.waiters.Remove(el)
		wt.el = nil
		q.grant(e, wt.w)
		wt.ch <- e
		return
	}
	heap.Push(q.ready[e.t.Kind], e)
}

// pop removes and returns the oldest queued task that w serves, or nil.
func (q *Queue) pop(w *worker) *entry {
	var best *taskHeap
	for _, r := range w.roles {
		h := q.ready[r.Kind()]
		if h.Len() > 0 && (best == nil || (*h)[0].seq < (*best)[0].seq) {
			best = h
		}
	}
	if best == nil {
		return nil
	}
	return heap.Pop(best).(*entry)
}

func (q *Queue) grant(e *entry, w *worker) {
	now := q.clock.Now()
	q.setState(e, Leased)
	e.holder, e.deadline, e.granted = w, now.Add(q.opts.LeaseTTL), now
	w.leases[e.key] = e
	w.lastSeen = now
}

// release ends e's lease, recording the attempt's end as how.
func (q *Queue) release(e *entry, how endHow) {
	w := e.holder
	delete(w.leases, e.key)
	e.holder = nil
	e.ended = append(e.ended, attemptEnd{attempt: e.t.Attempt, worker: w.id, how: how})
}

// expire ends e's lease as of now.
func (q *Queue) expire(e *entry, now time.Time) {
	msg := fmt.Sprintf("lease of worker %s (%s) expired at %s", e.holder.id, e.holder.name, e.deadline.Format(time.RFC3339Nano))
	if q.workers[e.holder.id] == e.holder && now.Sub(e.holder.lastSeen) > q.opts.WorkerTTL {
		msg = fmt.Sprintf("worker %s (%s) dropped after missing heartbeats", e.holder.id, e.holder.name)
	}
	q.end(e, msg, false, endExpired)
}

// end ends e's leased attempt with msg and queues the next attempt, or
// fails e permanently; how records why the attempt ended. A learner rank's
// task (one with a rendezvous) is never queued again on its own: its
// group is gone, and the controller re-forms the whole gang.
func (q *Queue) end(e *entry, msg string, fatal bool, how endHow) {
	gang := e.t.Rendezvous != nil
	if fatal || gang || e.t.Attempt >= q.opts.MaxAttempts {
		if how == endRetried {
			how = endFailed
		}
		q.release(e, how)
		switch {
		case gang && !fatal:
			msg += " (a learner rank: the controller re-forms its group)"
		case !fatal:
			msg = fmt.Sprintf("%s (attempts exhausted: %d)", msg, q.opts.MaxAttempts)
		}
		q.finish(e, Failed, task.Result{}, &TaskError{Key: e.key, Attempt: e.t.Attempt, Msg: msg, Fatal: fatal})
		return
	}
	q.release(e, how)
	e.t.Attempt++
	q.enqueue(e)
}

func (q *Queue) finish(e *entry, s State, r task.Result, err error) {
	q.setState(e, s)
	e.out.result, e.out.err = r, err
	close(e.out.done)
}

func (q *Queue) setState(e *entry, s State) {
	if e.state != "" {
		q.counts[e.state]--
	}
	e.state = s
	q.counts[s]++
}

// Status is a snapshot of the queue.
type Status struct {
	// Tasks counts the tasks by state.
	Tasks map[State]int `json:"tasks"`
	// QueuedByKind counts the queued tasks by kind.
	QueuedByKind map[task.Kind]int `json:"queued_by_kind"`
	Workers      []WorkerStatus    `json:"workers"`
}

// WorkerStatus describes a registered worker.
type WorkerStatus struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Roles    []Role    `json:"roles"`
	Capacity int       `json:"capacity"`
	Leases   []string  `json:"leases"` // task keys, sorted
	Waiting  int       `json:"waiting"`
	LastSeen time.Time `json:"last_seen"`
	Joined   time.Time `json:"joined"`
}

// Status returns a snapshot of the queue; workers are sorted by ID.
func (q *Queue) Status() Status {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := Status{Tasks: map[State]int{}, QueuedByKind: map[task.Kind]int{}}
	for _, s := range AllStates {
		st.Tasks[s] = q.counts[s]
	}
	for k, h := range q.ready {
		st.QueuedByKind[k] = h.Len()
	}
	for _, w := range q.workers {
		ws := WorkerStatus{ID: w.id, Name: w.name, Roles: slices.Clone(w.roles), Capacity: w.capacity,
			Leases: []string{}, Waiting: w.polling, LastSeen: w.lastSeen, Joined: w.joined}
		for k := range w.leases {
			ws.Leases = append(ws.Leases, k)
		}
		sort.Strings(ws.Leases)
		st.Workers = append(st.Workers, ws)
	}
	sort.Slice(st.Workers, func(i, j int) bool { return st.Workers[i].ID < st.Workers[j].ID })
	return st
}

// Counts returns the number of tasks in each state and of workers; it is
// Status without the per-worker detail, for metrics.
func (q *Queue) Counts() (tasks map[State]int, workers int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	tasks = map[State]int{}
	for _, s := range AllStates {
		tasks[s] = q.counts[s]
	}
	return tasks, len(q.workers)
}

// taskHeap orders queued tasks by submission.
type taskHeap []*entry

func (h taskHeap) Len() int           { return len(h) }
func (h taskHeap) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h taskHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *taskHeap) Push(x any) {
	e := x.(*entry)
	e.heapIdx = len(*h)
	*h = append(*h, e)
}
func (h *taskHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.heapIdx = -1
	return e
}
