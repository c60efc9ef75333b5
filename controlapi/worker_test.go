package controlapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/controlapi"
	"github.com/thinkgen/thinkgen/internal/faultproxy"
	"github.com/thinkgen/thinkgen/queue"
	"github.com/thinkgen/thinkgen/queue/queuetest"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/task"
)

// run is one handler invocation.
type run struct {
	worker  string
	attempt int
}

// TestEndToEnd drives 50 tasks through three worker processes' loops over
// HTTP; one worker is killed mid-task, its task expires and another redoes
// it as attempt 2. Every task completes exactly once.
func TestEndToEnd(t *testing.T) {
	const n = 50
	f := newFixture(t, queue.Options{LeaseTTL: 600 * time.Millisecond, WorkerTTL: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.q.Run(ctx)

	var (
		mu   sync.Mutex
		runs = map[string][]run{} // task key → handler invocations
	)
	killedKey := make(chan string, 1)
	handler := func(name string, kill bool) controlapi.Handler {
		first := true
		return func(hctx context.Context, x task.Task) (task.Result, error) {
			key := queue.Key(x)
			mu.Lock()
			runs[key] = append(runs[key], run{name, x.Attempt})
			mu.Unlock()
			if kill && first {
				first = false
				killedKey <- key
				<-hctx.Done() // the worker dies mid-task
				return task.Result{}, hctx.Err()
			}
			time.Sleep(time.Duration(x.Seed%5) * time.Millisecond)
			if x.Kind == task.Reward && x.Attempt == 1 && x.Seed%10 == 3 {
				return task.Result{}, errors.New("flaky scorer")
			}
			return task.Result{Outputs: []storage.Object{{Key: x.OutputKey(), Size: int64(x.Seed)}},
				Metrics: map[string]float64{"attempt": float64(x.Attempt)}}, nil
		}
	}
	var workers sync.WaitGroup
	serveErr := make([]error, 3)
	killCtx, kill := context.WithCancel(ctx)
	for i := range 3 {
		wctx := ctx
		if i == 0 {
			wctx = killCtx
		}
		name := fmt.Sprintf("w%d", i)
		workers.Add(1)
		go func() {
			defer workers.Done()
			serveErr[i] = controlapi.Serve(wctx, f.client(t), controlapi.WorkerOptions{Name: name, Roles: queue.AllRoles,
				PollWait: 200 * time.Millisecond}, handler(name, i == 0))
		}()
	}
	go func() {
		<-killedKey
		kill()
	}()

	ex := queue.NewExecutor(f.q)
	tasks, results, errs := queuetest.DoMany(ctx, ex, n)
	for i, x := range tasks {
		if errs[i] != nil {
			t.Errorf("Do(%s): %v", x, errs[i])
		}
	}
	cancel()
	workers.Wait()

	if !errors.Is(serveErr[0], context.Canceled) {
		t.Errorf("killed worker's Serve returned %v, want context.Canceled", serveErr[0])
	}
	st := f.q.Status()
	if st.Tasks[queue.Done] != n || st.Tasks[queue.Failed]+st.Tasks[queue.Queued]+st.Tasks[queue.Leased] != 0 {
		t.Fatalf("status %v, want %d done", st.Tasks, n)
	}
	mu.Lock()
	defer mu.Unlock()
	killed := ""
	for k, rs := range runs {
		if rs[0].worker == "w0" && len(rs) > 1 && rs[1].worker != "w0" {
			killed = k
		}
	}
	if killed == "" {
		t.Fatalf("no task of the killed worker was redone by another: %v", runs)
	}
	key := killed
	if rs := runs[key]; len(rs) != 2 || rs[1].attempt != 2 {
		t.Fatalf("killed task %s ran %v, want attempt 1 on w0 then attempt 2 elsewhere", key, rs)
	}
	for i, r := range results {
		kinds := []task.Kind{task.Rollout, task.Reward, task.Learn}
		x := queuetest.Task(kinds[i%3], fmt.Sprintf("t%d", i))
		rs := runs[queue.Key(x)]
		last := rs[len(rs)-1]
		// The result is the last run's: the one accepted, exactly once.
		if len(r.Outputs) != 1 || r.Metrics["attempt"] != float64(last.attempt) {
			t.Errorf("%s: result %+v, want the one of its last run %+v", queue.Key(x), r, last)
		}
		if want := 1 + boolInt(kinds[i%3] == task.Reward && i%10 == 3); queue.Key(x) != key && len(rs) != want {
			t.Errorf("%s ran %d times (%v), want %d", queue.Key(x), len(rs), rs, want)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestWorkerFailsFatal checks that a handler error wrapping task.ErrFatal
// fails the task for good.
func TestWorkerFailsFatal(t *testing.T) {
	f := newFixture(t, queue.Options{MaxAttempts: 5})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	go controlapi.Serve(ctx, f.client(t), controlapi.WorkerOptions{Roles: []queue.Role{queue.RoleLearner}, PollWait: 100 * time.Millisecond},
		func(ctx context.Context, x task.Task) (task.Result, error) {
			calls.Add(1)
			return task.Result{}, fmt.Errorf("loss is NaN: %w", task.ErrFatal)
		})
	_, err := queue.NewExecutor(f.q).Do(ctx, queuetest.Task(task.Learn, "learn"))
	var te *queue.TaskError
	if !errors.Is(err, task.ErrFatal) || !errors.As(err, &te) || te.Attempt != 1 {
		t.Fatalf("Do: %v, want a fatal TaskError of attempt 1", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", calls.Load())
	}
}

// TestWorkerRegistersAgain: a controller that restarts (a new, empty queue
// behind the same address) no longer knows the worker; the worker
// registers again and serves the new controller's tasks.
func TestWorkerRegistersAgain(t *testing.T) {
	token, _ := controlapi.GenerateToken()
	var current atomic.Pointer[controlapi.Server]
	newController := func() *queue.Queue {
		q := queue.New(queue.Options{})
		s, err := controlapi.NewServer(q, controlapi.ServerOptions{Token: token})
		if err != nil {
			t.Fatal(err)
		}
		current.Store(s)
		return q
	}
	q1 := newController()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { current.Load().ServeHTTP(w, r) }))
	defer srv.Close()
	c, err := controlapi.NewClient(srv.URL, controlapi.ClientOptions{Token: token, RetryWaitMin: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go controlapi.Serve(ctx, c, controlapi.WorkerOptions{Name: "survivor", Roles: []queue.Role{queue.RoleReward}, PollWait: 50 * time.Millisecond},
		func(ctx context.Context, x task.Task) (task.Result, error) {
			return task.Result{Metrics: map[string]float64{"seed": float64(x.Seed)}}, nil
		})
	if _, err := queue.NewExecutor(q1).Do(ctx, queuetest.Task(task.Reward, "s0")); err != nil {
		t.Fatal(err)
	}
	q2 := newController()
	r, err := queue.NewExecutor(q2).Do(ctx, queuetest.Task(task.Reward, "s0"))
	if err != nil || r.Metrics["seed"] != 7 {
		t.Fatalf("Do on the restarted controller = %v, %v", r, err)
	}
	if st := q2.Status(); len(st.Workers) != 1 || st.Workers[0].Name != "survivor" {
		t.Fatalf("restarted controller's workers: %+v, want the survivor", st.Workers)
	}
}

// TestWorkerStopsOnWrongToken: a wrong token does not go away by retrying.
func TestWorkerStopsOnWrongToken(t *testing.T) {
	f := newFixture(t, queue.Options{})
	c, err := controlapi.NewClient(f.srv.URL, controlapi.ClientOptions{Token: "wrong-token-wrong-token"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = controlapi.Serve(ctx, c, controlapi.WorkerOptions{Roles: []queue.Role{queue.RoleRollout}},
		func(context.Context, task.Task) (task.Result, error) { return task.Result{}, nil })
	if !errors.Is(err, controlapi.ErrUnauthorized) {
		t.Fatalf("Serve with a wrong token: %v, want ErrUnauthorized", err)
	}
}

// expiries calls q.Expire every few milliseconds until ctx ends and sends
// the time of the first call that ended a lease.
func expiries(ctx context.Context, q *queue.Queue) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() {
		for ctx.Err() == nil && q.Expire() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		ch <- time.Now()
	}()
	return ch
}

// TestWorkerFencesItselfWhenCutOff cuts the link between a worker and the
// controller while the worker runs a task: the task's ctx must end (cause
// ErrFenced) before the controller expires the lease, the worker must not
// report the task, and once the link heals the worker serves the next
// attempt, whose result is the one the controller keeps.
func TestWorkerFencesItselfWhenCutOff(t *testing.T) {
	const ttl = 1500 * time.Millisecond
	f := newFixture(t, queue.Options{LeaseTTL: ttl, WorkerTTL: time.Minute})
	p, err := faultproxy.New(strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := controlapi.NewClient("http://"+p.Addr(), controlapi.ClientOptions{Token: f.token, RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	expired := expiries(ctx, f.q)
	type end struct {
		at    time.Time
		cause error
	}
	started, ended := make(chan time.Time, 1), make(chan end, 1)
	go controlapi.Serve(ctx, c, controlapi.WorkerOptions{Roles: []queue.Role{queue.RoleRollout}, PollWait: 100 * time.Millisecond},
		func(hctx context.Context, x task.Task) (task.Result, error) {
			if x.Attempt == 1 {
				started <- time.Now()
				<-hctx.Done()
				ended <- end{time.Now(), context.Cause(hctx)}
			}
			// A zombie attempt would report this result too.
			return queuetest.Result(x), nil
		})
	key, err := f.q.Submit(queuetest.Task(task.Rollout, "r0"))
	if err != nil {
		t.Fatal(err)
	}
	start := <-started
	p.Blackhole()
	var e end
	select {
	case e = <-ended:
	case <-time.After(3 * ttl):
		t.Fatalf("the cut-off worker's task still runs %v after its lease", 3*ttl)
	}
	if !errors.Is(e.cause, controlapi.ErrFenced) {
		t.Fatalf("task ctx ended with %v, want ErrFenced", e.cause)
	}
	if d := e.at.Sub(start); d < ttl/2 || d > ttl {
		t.Errorf("fenced %v after the task started, want within (TTL/2, TTL) = (%v, %v)", d, ttl/2, ttl)
	}
	select {
	case at := <-expired:
		if !at.After(e.at) {
			t.Fatalf("the controller expired the lease at %v, before the worker fenced itself at %v", at, e.at)
		}
	case <-time.After(3 * ttl):
		t.Fatal("the controller never expired the cut-off lease")
	}
	p.Heal()
	r, err := f.q.Wait(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if r.Metrics["attempt"] != 2 || r.Outputs[0].Key != (func() task.Task { x := queuetest.Task(task.Rollout, "r0"); x.Attempt = 2; return x }()).OutputKey() {
		t.Fatalf("result %+v, want attempt 2's", r)
	}
}

// TestHungHeartbeatDoesNotCostTheLease: a heartbeat call that hangs gives
// up within a quarter of the TTL, so the next heartbeat still extends the
// lease and the task completes on its first attempt.
func TestHungHeartbeatDoesNotCostTheLease(t *testing.T) {
	const ttl = 2 * time.Second
	q := queue.New(queue.Options{LeaseTTL: ttl, WorkerTTL: time.Minute})
	token, _ := controlapi.GenerateToken()
	s, err := controlapi.NewServer(q, controlapi.ServerOptions{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	var heartbeats atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == controlapi.PathHeartbeat && heartbeats.Add(1) == 1 {
			select { // the first heartbeat hangs
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		s.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for the hung handler
	c, err := controlapi.NewClient(srv.URL, controlapi.ClientOptions{Token: token, RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go q.Run(ctx)
	go controlapi.Serve(ctx, c, controlapi.WorkerOptions{Roles: []queue.Role{queue.RoleReward}, PollWait: 100 * time.Millisecond},
		func(hctx context.Context, x task.Task) (task.Result, error) {
			select {
			case <-time.After(ttl * 3 / 2):
			case <-hctx.Done():
				return task.Result{}, context.Cause(hctx)
			}
			return queuetest.Result(x), nil
		})
	r, err := queue.NewExecutor(q).Do(ctx, queuetest.Task(task.Reward, "s0"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Metrics["attempt"] != 1 {
		t.Fatalf("result of attempt %v, want 1: the hung heartbeat cost the lease", r.Metrics["attempt"])
	}
	if n := heartbeats.Load(); n < 3 {
		t.Fatalf("%d heartbeats in %v with a TTL of %v, want ≥ 3", n, ttl*3/2, ttl)
	}
}
