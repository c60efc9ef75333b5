package controlapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/thinkgen/thinkgen/queue"
	"github.com/thinkgen/thinkgen/task"
)

// Handler runs one task in a worker. Its ctx ends when the worker stops or
// loses the task's lease. An error that wraps task.ErrFatal fails the task
// for good; any other error lets the controller retry it.
type Handler func(ctx context.Context, t task.Task) (task.Result, error)

// WorkerOptions configure Serve.
type WorkerOptions struct {
	// Name labels the worker in the controller's status; "" means "worker".
	Name string
	// Roles are the roles the worker serves (at least one).
	Roles []queue.Role
	// Capacity is how many tasks the worker runs at once; 0 means 1.
	Capacity int
	// PollWait is how long one lease request waits for a task; 0 means 30 s.
	PollWait time.Duration
	// HeartbeatEvery is the heartbeat period while a task runs; 0 means a
	// third of the controller's lease TTL. Each heartbeat call, retries
	// included, gives up after a quarter of the TTL, so that a hung call
	// does not cost the next one.
	HeartbeatEvery time.Duration
	// FenceMargin is how long before its lease's deadline a task's ctx is
	// canceled when no heartbeat extended the lease (see Serve); 0 means
	// a fifth of the controller's lease TTL.
	FenceMargin time.Duration
	// Logger receives the worker's events; nil discards them.
	Logger *slog.Logger
}

// maxErrorMsg bounds the error text a worker reports.
const maxErrorMsg = 4096

// Serve runs a worker until ctx ends: it registers, leases tasks its roles
// serve, runs h on each while heartbeating the lease in the background, and
// completes the task with h's result or fails it with h's error (fatal if
// the error wraps task.ErrFatal). When the controller no longer knows the
// worker (it dropped it, or restarted) Serve registers again; when it is
// unreachable Serve keeps trying with backoff. A task whose lease is lost
// (heartbeat refused) has its ctx canceled and is not reported; neither is
// the task running when ctx ends: its lease expires and another worker
// redoes it with the next attempt.
//
// A worker fences itself: a task's ctx is also canceled (with cause
// ErrFenced) FenceMargin before the lease's deadline as the controller last
// set it — on the lease, then on each heartbeat it accepted — so a worker
// cut off from the controller (partitioned, or frozen and thawed) stops
// before the controller hands the task to another worker, and does not
// report it. A failed heartbeat (connection error, 5xx, a hung call) does
// not extend the deadline: it counts toward the fence. The deadline is the
// earlier of the controller's and the local time of the request plus the
// TTL, so a controller clock ahead of the worker's cannot push it later.
//
// Serve returns ctx's error, or an error the controller will keep giving (a
// wrong token, invalid options).
func Serve(ctx context.Context, c *Client, o WorkerOptions, h Handler) error {
	if len(o.Roles) == 0 {
		return errors.New("controlapi worker: no roles")
	}
	if o.Capacity <= 0 {
		o.Capacity = 1
	}
	if o.PollWait <= 0 {
		o.PollWait = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Name == "" {
		o.Name = "worker"
	}
	w := &workerLoop{c: c, o: o, h: h, log: o.Logger}
	if _, err := w.register(ctx, ""); err != nil {
		return err
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var wg sync.WaitGroup
	for range o.Capacity {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.loop(ctx); err != nil {
				stop(err)
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}

type workerLoop struct {
	c   *Client
	o   WorkerOptions
	h   Handler
	log *slog.Logger

	mu  sync.Mutex
	reg Registration
}

// permanent reports whether err will not go away by retrying.
func permanent(err error) bool {
	return errors.Is(err, ErrUnauthorized) || errors.Is(err, queue.ErrInvalid) || errors.Is(err, ErrBadRequest)
}

// register registers the worker unless another goroutine already replaced
// the registration stale; it retries until ctx ends.
func (w *workerLoop) register(ctx context.Context, stale string) (Registration, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.reg.WorkerID != stale {
		return w.reg, nil
	}
	for b := newBackoff(); ; {
		reg, err := w.c.Register(ctx, w.o.Name, w.o.Roles, w.o.Capacity)
		if err == nil {
			w.log.Info("worker registered", "worker", reg.WorkerID, "name", w.o.Name, "roles", w.o.Roles, "lease_ttl", reg.LeaseTTL)
			w.reg = reg
			return reg, nil
		}
		if permanent(err) {
			return Registration{}, fmt.Errorf("register worker %s: %w", w.o.Name, err)
		}
		w.log.Warn("worker cannot register, will retry", "error", err)
		if err := b.wait(ctx); err != nil {
			return Registration{}, err
		}
	}
}

func (w *workerLoop) current() Registration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reg
}

// loop leases and runs tasks until ctx ends.
func (w *workerLoop) loop(ctx context.Context) error {
	b := newBackoff()
	for ctx.Err() == nil {
		reg := w.current()
		t, deadline, ok, err := w.c.Lease(ctx, reg.WorkerID, w.o.PollWait)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, queue.ErrUnknownWorker):
			w.log.Warn("controller does not know this worker; registering again", "worker", reg.WorkerID)
			if _, err := w.register(ctx, reg.WorkerID); err != nil {
				return err
			}
			continue
		case permanent(err):
			return fmt.Errorf("lease: %w", err)
		case err != nil:
			w.log.Warn("lease failed, will retry", "error", err)
			b.wait(ctx)
			continue
		case !ok:
			continue
		}
		b.reset()
		// The lease was granted before its reply came: now plus the TTL
		// is later than its end by the reply's travel time only.
		w.run(ctx, reg, t, time.Now(), deadline)
	}
	return nil
}

// run runs one leased task and reports it; its lease was granted until
// deadline, and no later than since plus the TTL.
func (w *workerLoop) run(ctx context.Context, reg Registration, t task.Task, since, deadline time.Time) {
	key := queue.Key(t)
	log := w.log.With("task", t.String(), "epoch", t.Epoch, "worker", reg.WorkerID)
	tctx, lose := context.WithCancelCause(ctx)
	defer lose(nil)
	margin := w.o.FenceMargin
	if margin <= 0 {
		margin = reg.LeaseTTL / 5
	}
	f := &fence{ttl: reg.LeaseTTL, margin: margin, cancel: lose}
	defer f.stop()
	f.extend(since, deadline)
	every := w.o.HeartbeatEvery
	if every <= 0 {
		every = max(reg.LeaseTTL/3, 10*time.Millisecond)
	}
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-tctx.Done():
				return
			case <-tick.C:
			}
			sent := time.Now()
			hctx, cancel := context.WithTimeout(tctx, max(reg.LeaseTTL/4, time.Millisecond))
			d, err := w.c.Heartbeat(hctx, reg.WorkerID, key, t.Attempt)
			cancel()
			switch {
			case tctx.Err() != nil:
			case err == nil:
				f.extend(sent, d)
			case errors.Is(err, queue.ErrStaleAttempt), errors.Is(err, queue.ErrNotHolder),
				errors.Is(err, queue.ErrCanceled), errors.Is(err, queue.ErrUnknownWorker),
				errors.Is(err, queue.ErrUnknownTask), permanent(err):
				lose(fmt.Errorf("lease lost: %w", err))
				return
			default:
				log.Warn("heartbeat failed; the lease is not extended", "error", err, "fence", f.when())
			}
		}
	}()
	res, herr := w.safeRun(tctx, t)
	lost := context.Cause(tctx)
	lose(nil)
	<-hbDone
	if at := f.when(); lost == nil && !time.Now().Before(at) {
		// The task ended past its fence, before the timer fired.
		lost = fenced(at)
	}
	switch {
	case ctx.Err() != nil:
		log.Info("worker stopping; task left to expire")
		return
	case lost != nil:
		log.Warn("task abandoned", "error", lost)
		return
	}
	var err error
	if herr == nil {
		err = w.c.Complete(ctx, reg.WorkerID, key, t.Attempt, res)
	} else {
		msg := herr.Error()
		if len(msg) > maxErrorMsg {
			msg = msg[:maxErrorMsg] + "…"
		}
		fatal := errors.Is(herr, task.ErrFatal)
		log.Warn("task failed", "error", msg, "fatal", fatal)
		err = w.c.Fail(ctx, reg.WorkerID, key, t.Attempt, msg, fatal)
	}
	if err != nil && ctx.Err() == nil {
		log.Warn("report refused or lost; the lease will expire", "error", err)
	}
}

// ErrFenced is the cause of a task's ctx canceled by its worker because the
// task's lease may have ended (see Serve).
var ErrFenced = errors.New("lease may have expired: task fenced")

func fenced(at time.Time) error {
	return fmt.Errorf("%w (fence at %s)", ErrFenced, at.Format(time.RFC3339Nano))
}

// fence cancels a task at its lease's deadline minus a margin; only
// heartbeats the controller accepted move it later.
type fence struct {
	ttl, margin time.Duration
	cancel      context.CancelCauseFunc

	mu    sync.Mutex
	at    time.Time
	timer *time.Timer
}

// extend sets the fence for a lease the controller extended until
// deadline in reply to a request sent at since (for a lease: received): at
// the earlier of deadline and since plus the TTL, minus the margin. It
// never moves the fence earlier.
func (f *fence) extend(since, deadline time.Time) {
	end := since.Add(f.ttl)
	if !deadline.IsZero() && deadline.Before(end) {
		end = deadline
	}
	at := end.Add(-f.margin)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.timer != nil {
		if !at.After(f.at) {
			return
		}
		f.timer.Stop()
	}
	f.at = at
	f.timer = time.AfterFunc(time.Until(at), func() { f.cancel(fenced(at)) })
}

// when is the time the fence cancels the task.
func (f *fence) when() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at
}

func (f *fence) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.timer != nil {
		f.timer.Stop()
	}
}

// safeRun runs the handler, turning a panic into an error.
func (w *workerLoop) safeRun(ctx context.Context, t task.Task) (r task.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: panic: %v", t, p)
		}
	}()
	return w.h(ctx, t)
}

// backoff waits exponentially longer between tries, 100 ms to 10 s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 100 * time.Millisecond} }

func (b *backoff) reset() { b.d = 100 * time.Millisecond }

func (b *backoff) wait(ctx context.Context) error {
	t := time.NewTimer(b.d)
	defer t.Stop()
	b.d = min(2*b.d, 10*time.Second)
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
