package serve

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// A job is one request's work for a model worker: images to draw or
// completions to write. Jobs of one key run batched together.
type job struct {
	ctx      context.Context
	key      string
	draw     []DrawInput
	complete []CompleteInput
	opts     CompleteOptions
	done     chan result // buffered: the worker never blocks on it
}

type result struct {
	drawn       []Drawn
	completions []Completion
	err         error
}

// loadResult is what a worker's load returned.
type loadResult struct {
	eng Engine
	err error
}

func (j *job) size() int { return len(j.draw) + len(j.complete) }

// retryAfter is the Retry-After of a refusal for want of capacity, in
// seconds.
const retryAfter = 2

// submit queues j and waits for its result, RequestTimeout at the most. A
// full queue is a 503 with Retry-After; so is a request whose ctx ends
// first (RequestTimeout) — a client that went away gets nothing back.
func (s *Server) submit(ctx context.Context, j *job) (result, *apiError) {
	ctx, cancel := context.WithTimeout(ctx, s.o.RequestTimeout)
	defer cancel()
	j.ctx, j.done = ctx, make(chan result, 1)
	select {
	case s.jobs <- j:
	default:
		return result{}, &apiError{status: http.StatusServiceUnavailable, retryAfter: retryAfter,
			Message: fmt.Sprintf("the server is busy: %d requests already wait for a model worker; retry later", cap(s.jobs)),
			Type:    "server_error", Code: "server_overloaded"}
	}
	select {
	case r := <-j.done:
		if r.err != nil {
			s.log.Error("serve: model pass failed", "err", r.err)
			return r, &apiError{status: http.StatusInternalServerError, Message: "the model failed on this request: " + r.err.Error(), Type: "server_error", Code: "internal_error"}
		}
		return r, nil
	case <-ctx.Done():
		msg := "the request was cancelled"
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			msg = fmt.Sprintf("no model worker finished the request within %s; retry later", s.o.RequestTimeout)
		}
		return result{}, &apiError{status: http.StatusServiceUnavailable, retryAfter: retryAfter, Message: msg, Type: "server_error", Code: "timeout"}
	}
}

// work is one model worker: it loads its engine (reporting the outcome
// to loaded), then runs batches of queued jobs until stop closes. It runs
// inside libtorch.Run.
func (s *Server) work(load func() (Engine, error), loaded func(loadResult), stop <-chan struct{}) error {
	eng, err := load()
	loaded(loadResult{eng, err})
	if err != nil {
		return err
	}
	defer eng.Close()
	var next *job
	for {
		j := next
		next = nil
		if j == nil {
			select {
			case j = <-s.jobs:
			case <-stop:
				return nil
			}
		}
		batch, n := []*job{j}, j.size()
	gather:
		for n < s.o.MaxBatch {
			select {
			case k := <-s.jobs:
				if k.key != j.key || n+k.size() > s.o.MaxBatch {
					next = k
					break gather
				}
				batch, n = append(batch, k), n+k.size()
			default:
				break gather
			}
		}
		s.run(eng, batch)
		libtorch.ReleaseFreeMemory()
	}
}

// run runs one batch of jobs of one key on eng and hands each job its
// part of the outputs; a job whose request has gone is left out.
func (s *Server) run(eng Engine, batch []*job) {
	var live []*job
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			j.done <- result{err: err}
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return
	}
	fail := func(err error) {
		for _, j := range live {
			j.done <- result{err: err}
		}
	}
	defer func() {
		// A failing gotch op panics (internal/libtorch.Run); the worker
		// fails this batch and goes on.
		if r := recover(); r != nil {
			fail(fmt.Errorf("model worker: %v", r))
		}
	}()
	var err error
	if live[0].draw != nil {
		err = runBatch(live, "images", func(j *job) []DrawInput { return j.draw }, eng.Draw,
			func(out []Drawn) result { return result{drawn: out} })
	} else {
		err = runBatch(live, "completions", func(j *job) []CompleteInput { return j.complete },
			func(in []CompleteInput) ([]Completion, error) { return eng.Complete(in, live[0].opts) },
			func(out []Completion) result { return result{completions: out} })
	}
	if err != nil {
		fail(err)
	}
}

// runBatch runs the inputs of every job (inputs) in one model pass (pass)
// and sends each job its share of the outputs (as the result of); an
// error, or a pass that returns another number of outputs (named what),
// is returned and nothing is sent.
func runBatch[In, Out any](live []*job, what string, inputs func(*job) []In, pass func([]In) ([]Out, error), of func([]Out) result) error {
	var in []In
	for _, j := range live {
		in = append(in, inputs(j)...)
	}
	out, err := pass(in)
	if err == nil && len(out) != len(in) {
		err = fmt.Errorf("model worker: %d %s for %d inputs", len(out), what, len(in))
	}
	if err != nil {
		return err
	}
	for _, j := range live {
		n := len(inputs(j))
		j.done <- of(out[:n])
		out = out[n:]
	}
	return nil
}
