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
	// third of the controller's lease TTL.
	HeartbeatEvery time.Duration
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
		t, _, ok, err := w.c.Lease(ctx, reg.WorkerID, w.o.PollWait)
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
		w.run(ctx, reg, t)
	}
	return nil
}

// run runs one leased task and reports it.
func (w *workerLoop) run(ctx context.Context, reg Registration, t task.Task) {
	key := queue.Key(t)
	log := w.log.With("task", t.String(), "worker", reg.WorkerID)
	tctx, lose := context.WithCancelCause(ctx)
	defer lose(nil)
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
			_, err := w.c.Heartbeat(tctx, reg.WorkerID, key, t.Attempt)
			switch {
			case err == nil || tctx.Err() != nil:
			case errors.Is(err, queue.ErrStaleAttempt), errors.Is(err, queue.ErrNotHolder),
				errors.Is(err, queue.ErrCanceled), errors.Is(err, queue.ErrUnknownWorker),
				errors.Is(err, queue.ErrUnknownTask), permanent(err):
				lose(fmt.Errorf("lease lost: %w", err))
				return
			default:
				log.Warn("heartbeat failed, will retry", "error", err)
			}
		}
	}()
	res, herr := w.safeRun(tctx, t)
	lost := context.Cause(tctx)
	lose(nil)
	<-hbDone
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
