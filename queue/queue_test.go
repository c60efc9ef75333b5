package queue_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/queue"
	"github.com/thinkgen/thinkgen/queue/queuetest"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/task"
)

// clockedRollout returns a queue with o on a test clock, holding one
// rollout task r0, with the clock and the task's key.
func clockedRollout(t *testing.T, o queue.Options) (*queue.Queue, *queuetest.Clock, string) {
	t.Helper()
	clk := queuetest.NewClock()
	o.Clock = clk
	q := queue.New(o)
	return q, clk, submit(t, q, queuetest.Task(task.Rollout, "r0"))[0]
}

func submit(t *testing.T, q *queue.Queue, ts ...task.Task) []string {
	t.Helper()
	var keys []string
	for _, x := range ts {
		k, err := q.Submit(x)
		if err != nil {
			t.Fatalf("Submit(%s): %v", x, err)
		}
		keys = append(keys, k)
	}
	return keys
}

func register(t *testing.T, q *queue.Queue, name string, capacity int, roles ...queue.Role) string {
	t.Helper()
	id, err := q.Register(name, roles, capacity)
	if err != nil {
		t.Fatalf("Register(%s): %v", name, err)
	}
	return id
}

// lease leases without waiting: it fails the test if no task is queued.
func lease(t *testing.T, q *queue.Queue, worker string) task.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	x, _, err := q.Lease(ctx, worker)
	if err != nil {
		t.Fatalf("Lease(%s): %v", worker, err)
	}
	return x
}

// leaseLater leases for worker in a goroutine, waiting up to 10 s, and
// sends the task it gets (the zero task after an error, which fails the
// test).
func leaseLater(t *testing.T, q *queue.Queue, worker string) <-chan task.Task {
	got := make(chan task.Task, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		x, _, err := q.Lease(ctx, worker)
		if err != nil {
			t.Errorf("Lease(%s): %v", worker, err)
		}
		got <- x
	}()
	return got
}

// noLease checks that the worker gets nothing within a short wait.
func noLease(t *testing.T, q *queue.Queue, worker string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if x, _, err := q.Lease(ctx, worker); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lease(%s) = %s, %v; want nothing (deadline exceeded)", worker, x, err)
	}
}

func TestLeaseOrderByRole(t *testing.T) {
	q := queue.New(queue.Options{})
	submit(t, q, queuetest.Task(task.Rollout, "r0"), queuetest.Task(task.Reward, "s0"), queuetest.Task(task.Rollout, "r1"),
		queuetest.Task(task.Learn, "learn"), queuetest.Task(task.Reward, "s1"))
	roll := register(t, q, "roll", 10, queue.RoleRollout)
	other := register(t, q, "other", 10, queue.RoleReward, queue.RoleLearner)
	tests := []struct {
		worker string
		want   string
	}{
		{other, "s0"}, {roll, "r0"}, {other, "learn"}, {roll, "r1"}, {other, "s1"},
	}
	for i, tc := range tests {
		if got := lease(t, q, tc.worker); got.ID != tc.want || got.Attempt != 1 {
			t.Errorf("lease %d: got %s, want %s attempt 1", i, got, tc.want)
		}
	}
	noLease(t, q, roll)
	noLease(t, q, other)
	st := q.Status()
	if st.Tasks[queue.Leased] != 5 || st.Tasks[queue.Queued] != 0 {
		t.Errorf("status tasks = %v, want 5 leased", st.Tasks)
	}
}

func TestLongPollGetsLaterTask(t *testing.T) {
	q := queue.New(queue.Options{})
	w := register(t, q, "w", 1, queue.RoleReward)
	got := leaseLater(t, q, w)
	for q.Status().Workers[0].Waiting == 0 {
		time.Sleep(time.Millisecond)
	}
	submit(t, q, queuetest.Task(task.Rollout, "r0"), queuetest.Task(task.Reward, "s0"))
	if x := <-got; x.ID != "s0" {
		t.Fatalf("long-poll leased %s, want s0", x)
	}
	if st := q.Status(); st.Tasks[queue.Queued] != 1 || st.Tasks[queue.Leased] != 1 {
		t.Fatalf("status tasks = %v, want 1 queued 1 leased", st.Tasks)
	}
}

func TestHeartbeatExtendsLease(t *testing.T) {
	q, clk, key := clockedRollout(t, queue.Options{LeaseTTL: 10 * time.Second, WorkerTTL: time.Hour})
	w := register(t, q, "w", 1, queue.RoleRollout)
	x := lease(t, q, w)
	clk.Advance(8 * time.Second)
	d, err := q.Heartbeat(w, key, x.Attempt)
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(10 * time.Second); !d.Equal(want) {
		t.Fatalf("deadline %v, want %v", d, want)
	}
	clk.Advance(8 * time.Second) // 16 s after the lease: past the first deadline
	if n := q.Expire(); n != 0 {
		t.Fatalf("Expire ended %d leases after a heartbeat, want 0", n)
	}
	clk.Advance(3 * time.Second)
	if n := q.Expire(); n != 1 {
		t.Fatalf("Expire ended %d leases past the extended deadline, want 1", n)
	}
	if _, err := q.Heartbeat(w, key, 1); !errors.Is(err, queue.ErrLeaseExpired) {
		t.Fatalf("heartbeat of an expired lease: %v, want ErrLeaseExpired", err)
	}
}

// TestHungTaskLosesItsLease: a worker that keeps heartbeating while its task
// hangs loses the lease at MaxTaskTime, and the task goes to another worker.
func TestHungTaskLosesItsLease(t *testing.T) {
	q, clk, key := clockedRollout(t, queue.Options{LeaseTTL: 10 * time.Second, WorkerTTL: time.Hour, MaxTaskTime: 30 * time.Second})
	a := register(t, q, "a", 1, queue.RoleRollout)
	b := register(t, q, "b", 1, queue.RoleRollout)
	first := lease(t, q, a)
	for i := 0; i < 3; i++ { // heartbeats every 8 s keep it until 30 s
		clk.Advance(8 * time.Second)
		d, err := q.Heartbeat(a, key, first.Attempt)
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 && !d.Equal(clk.Now().Add(6*time.Second)) {
			t.Fatalf("deadline %v, want the grant time + 30 s (%v)", d, clk.Now().Add(6*time.Second))
		}
	}
	clk.Advance(7 * time.Second) // 31 s after the grant
	if n := q.Expire(); n != 1 {
		t.Fatalf("Expire ended %d leases past MaxTaskTime, want 1", n)
	}
	if second := lease(t, q, b); second.Attempt != 2 {
		t.Fatalf("the hung task came back as attempt %d, want 2", second.Attempt)
	}
}

func TestExpiryRequeuesWithNextAttempt(t *testing.T) {
	q, clk, key := clockedRollout(t, queue.Options{LeaseTTL: 10 * time.Second, WorkerTTL: time.Hour})
	a := register(t, q, "a", 1, queue.RoleRollout)
	b := register(t, q, "b", 1, queue.RoleRollout)
	first := lease(t, q, a)
	clk.Advance(11 * time.Second)
	if n := q.Expire(); n != 1 {
		t.Fatalf("Expire = %d, want 1", n)
	}
	second := lease(t, q, b)
	if second.Attempt != 2 || second.OutputKey() == first.OutputKey() {
		t.Fatalf("after expiry got %s (output %s), want attempt 2 with a new output key (first %s)",
			second, second.OutputKey(), first.OutputKey())
	}
	// The first holder's late completion is refused and changes nothing.
	before := q.Status()
	if err := q.Complete(a, key, 1, queuetest.Result(first)); !errors.Is(err, queue.ErrLeaseExpired) || !errors.Is(err, queue.ErrStaleAttempt) {
		t.Fatalf("late completion of attempt 1: %v, want ErrLeaseExpired (a stale attempt)", err)
	}
	assertStatus(t, q, before)
	if err := q.Complete(b, key, 2, queuetest.Result(second)); err != nil {
		t.Fatal(err)
	}
	r, err := q.Wait(context.Background(), key)
	if err != nil || r.Metrics["attempt"] != 2 {
		t.Fatalf("Wait = %v, %v; want attempt 2's result", r, err)
	}
}

func TestExpiryWithoutTickOnCall(t *testing.T) {
	// A holder calling after its deadline is refused even if Expire has not
	// run yet, and the task is queued again at once.
	q, clk, key := clockedRollout(t, queue.Options{LeaseTTL: 10 * time.Second, WorkerTTL: time.Hour})
	a := register(t, q, "a", 1, queue.RoleRollout)
	x := lease(t, q, a)
	clk.Advance(10*time.Second + time.Nanosecond)
	if err := q.Complete(a, key, 1, queuetest.Result(x)); !errors.Is(err, queue.ErrLeaseExpired) {
		t.Fatalf("completion after the deadline: %v, want ErrLeaseExpired", err)
	}
	if y := lease(t, q, a); y.Attempt != 2 {
		t.Fatalf("re-leased %s, want attempt 2", y)
	}
}

func TestStaleAndForeignCompletionRefused(t *testing.T) {
	q, _, key := clockedRollout(t, queue.Options{LeaseTTL: 10 * time.Second, WorkerTTL: time.Hour, MaxAttempts: 5})
	a := register(t, q, "a", 1, queue.RoleRollout)
	b := register(t, q, "b", 1, queue.RoleRollout)
	x1 := lease(t, q, a)
	if err := q.Fail(a, key, 1, "out of memory", false); err != nil {
		t.Fatal(err)
	}
	x2 := lease(t, q, a) // the same worker gets attempt 2
	before := q.Status()
	tests := []struct {
		name    string
		worker  string
		attempt int
		res     task.Result
		want    error
	}{
		{"stale attempt by the same worker", a, 1, queuetest.Result(x1), queue.ErrStaleAttempt},
		{"another worker, current attempt", b, 2, queuetest.Result(x2), queue.ErrNotHolder},
		{"another worker, old attempt", b, 1, queuetest.Result(x1), queue.ErrNotHolder},
		{"unregistered worker", "feedface", 2, queuetest.Result(x2), queue.ErrUnknownWorker},
		{"output with path tricks", a, 2, task.Result{Outputs: []storage.Object{{Key: "runs/run1/../x"}}}, queue.ErrInvalid},
		{"output of another run", a, 2, task.Result{Outputs: []storage.Object{{Key: "runs/other/steps/x"}}}, queue.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := q.Complete(tc.worker, key, tc.attempt, tc.res)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Complete: %v, want %v", err, tc.want)
			}
			assertStatus(t, q, before)
			if tc.want == queue.ErrInvalid {
				return // the holder's own calls: Fail would end the lease
			}
			if _, err := q.Heartbeat(tc.worker, key, tc.attempt); !errors.Is(err, tc.want) {
				t.Fatalf("Heartbeat: %v, want %v", err, tc.want)
			}
			// A Fail of attempt 1 by a is a repeat of its earlier Fail:
			// acknowledged, without effect.
			err = q.Fail(tc.worker, key, tc.attempt, "x", true)
			if repeat := tc.worker == a && tc.attempt == 1; (repeat && err != nil) || (!repeat && !errors.Is(err, tc.want)) {
				t.Fatalf("Fail: %v, want %v", err, tc.want)
			}
			assertStatus(t, q, before)
		})
	}
	if err := q.Complete(a, key, 2, queuetest.Result(x2)); err != nil {
		t.Fatalf("the holder's completion: %v", err)
	}
	if err := q.Complete(b, key, 2, queuetest.Result(x2)); !errors.Is(err, queue.ErrNotHolder) {
		t.Fatalf("another worker completing a done task: %v, want ErrNotHolder", err)
	}
}

// assertStatus checks that the task counts and each worker's leases are
// as in want.
func assertStatus(t *testing.T, q *queue.Queue, want queue.Status) {
	t.Helper()
	got := q.Status()
	if !reflect.DeepEqual(got.Tasks, want.Tasks) {
		t.Fatalf("tasks %v, want unchanged %v", got.Tasks, want.Tasks)
	}
	if len(got.Workers) != len(want.Workers) {
		t.Fatalf("%d workers, want unchanged %d", len(got.Workers), len(want.Workers))
	}
	for i := range got.Workers {
		if !reflect.DeepEqual(got.Workers[i].Leases, want.Workers[i].Leases) {
			t.Fatalf("worker %s leases %v, want unchanged %v", got.Workers[i].Name, got.Workers[i].Leases, want.Workers[i].Leases)
		}
	}
}

func TestFailRetriesThenFailsPermanently(t *testing.T) {
	q := queue.New(queue.Options{MaxAttempts: 3})
	key := submit(t, q, queuetest.Task(task.Reward, "s0"))[0]
	w := register(t, q, "w", 1, queue.RoleReward)
	for a := 1; a <= 3; a++ {
		x := lease(t, q, w)
		if x.Attempt != a {
			t.Fatalf("leased attempt %d, want %d", x.Attempt, a)
		}
		if err := q.Fail(w, key, a, fmt.Sprintf("boom %d", a), false); err != nil {
			t.Fatal(err)
		}
		// A retried request is acknowledged without effect.
		if err := q.Fail(w, key, a, "boom again", false); err != nil {
			t.Fatalf("repeated Fail: %v", err)
		}
	}
	noLease(t, q, w)
	_, err := q.Wait(context.Background(), key)
	var te *queue.TaskError
	if !errors.As(err, &te) || te.Attempt != 3 || !strings.HasPrefix(te.Msg, "boom 3") || te.Fatal || errors.Is(err, task.ErrFatal) {
		t.Fatalf("Wait: %v, want a non-fatal TaskError of attempt 3 (boom 3)", err)
	}
	if st := q.Status(); st.Tasks[queue.Failed] != 1 || st.Tasks[queue.Queued]+st.Tasks[queue.Leased]+st.Tasks[queue.Done] != 0 {
		t.Fatalf("status %v, want 1 failed", st.Tasks)
	}
	// A resubmitted task continues with the next attempt.
	submit(t, q, queuetest.Task(task.Reward, "s0"))
	if st := q.Status(); st.Tasks[queue.Failed] != 0 || st.Tasks[queue.Queued] != 1 {
		t.Fatalf("status after resubmitting %v, want 0 failed, 1 queued", st.Tasks)
	}
	if x := lease(t, q, w); x.Attempt != 4 {
		t.Fatalf("resubmitted task leased as %s, want attempt 4", x)
	}
}

// TestLearnerRankIsNotRetried: a learner rank's task fails at its first
// failure or expired lease, however many attempts the queue allows; a
// resubmission (the controller re-forming the gang) continues it.
func TestLearnerRankIsNotRetried(t *testing.T) {
	clock := queuetest.NewClock()
	q := queue.New(queue.Options{MaxAttempts: 5, LeaseTTL: time.Minute, Clock: clock})
	w := register(t, q, "w", 2, queue.RoleLearner)
	rank := func(r int) task.Task {
		x := queuetest.Task(task.Learn, fmt.Sprintf("learn.%d", r))
		x.Rendezvous = &task.Rendezvous{Addr: "127.0.0.1:1", World: 2, Rank: r, TimeoutMS: 1000}
		return x
	}
	keys := submit(t, q, rank(0), rank(1))
	lease(t, q, w)
	lease(t, q, w)
	if err := q.Fail(w, keys[0], 1, "all-reduce timed out", false); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	q.Expire()
	for i, want := range []string{"all-reduce timed out (a learner rank", "heartbeats (a learner rank"} {
		_, err := q.Wait(context.Background(), keys[i])
		var te *queue.TaskError
		if !errors.As(err, &te) || te.Attempt != 1 || !strings.Contains(te.Msg, want) || te.Fatal {
			t.Fatalf("rank %d: Wait: %v, want a non-fatal failure of attempt 1 containing %q", i, err, want)
		}
	}
	w = register(t, q, "w2", 2, queue.RoleLearner) // w was dropped
	noLease(t, q, w)
	submit(t, q, rank(0))
	if x := lease(t, q, w); x.Attempt != 2 {
		t.Fatalf("resubmitted rank leased as %s, want attempt 2", x)
	}
}

func TestFatalFailsAtOnce(t *testing.T) {
	q := queue.New(queue.Options{MaxAttempts: 5})
	w := register(t, q, "w", 1, queue.RoleLearner)
	x := queue.NewExecutor(q)
	errc := make(chan error, 1)
	go func() {
		_, err := x.Do(context.Background(), queuetest.Task(task.Learn, "learn"))
		errc <- err
	}()
	lt := lease(t, q, w)
	if err := q.Fail(w, queue.Key(lt), lt.Attempt, "NaN loss", true); err != nil {
		t.Fatal(err)
	}
	err := <-errc
	if !errors.Is(err, task.ErrFatal) {
		t.Fatalf("Do: %v, want an error wrapping task.ErrFatal", err)
	}
	noLease(t, q, w)
}

func TestCompletesExactlyOnce(t *testing.T) {
	q := queue.New(queue.Options{})
	key := submit(t, q, queuetest.Task(task.Rollout, "r0"))[0]
	w := register(t, q, "w", 1, queue.RoleRollout)
	var wg sync.WaitGroup
	var got atomic.Int32
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := q.Wait(context.Background(), key)
			if err != nil || r.Metrics["attempt"] != 1 {
				t.Errorf("Wait = %v, %v", r, err)
			}
			got.Add(1)
		}()
	}
	x := lease(t, q, w)
	for range 2 { // the second is a retried request
		if err := q.Complete(w, key, 1, queuetest.Result(x)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if got.Load() != 4 {
		t.Fatalf("%d waiters returned, want 4", got.Load())
	}
	if st := q.Status(); st.Tasks[queue.Done] != 1 {
		t.Fatalf("status %v, want 1 done", st.Tasks)
	}
	if _, err := q.Submit(queuetest.Task(task.Rollout, "r0")); !errors.Is(err, queue.ErrDuplicate) {
		t.Fatalf("resubmitting a done task: %v, want ErrDuplicate", err)
	}
	if err := q.Fail(w, key, 1, "late", false); !errors.Is(err, queue.ErrStaleAttempt) {
		t.Fatalf("failing a completed attempt: %v, want ErrStaleAttempt", err)
	}
	// A later attempt of a done task runs again (a learner rank whose gang
	// is formed anew), and the counts follow.
	again := queuetest.Task(task.Rollout, "r0")
	again.Attempt = 2
	if _, err := q.Submit(again); err != nil {
		t.Fatalf("submitting attempt 2 of a task done at attempt 1: %v", err)
	}
	if st := q.Status(); st.Tasks[queue.Done] != 0 || st.Tasks[queue.Queued] != 1 {
		t.Fatalf("status %v, want 0 done, 1 queued", st.Tasks)
	}
	if x := lease(t, q, w); x.Attempt != 2 {
		t.Fatalf("leased attempt %d, want 2", x.Attempt)
	}
}

func TestSilentWorkerDropped(t *testing.T) {
	q, clk, key := clockedRollout(t, queue.Options{LeaseTTL: time.Hour, WorkerTTL: 5 * time.Second})
	a := register(t, q, "a", 1, queue.RoleRollout)
	b := register(t, q, "b", 1, queue.RoleRollout)
	x := lease(t, q, a)
	// b waits in Lease the whole time: a waiting worker is not dropped.
	got := leaseLater(t, q, b)
	for st := q.Status(); st.Workers[0].Waiting+st.Workers[1].Waiting == 0; st = q.Status() {
		time.Sleep(time.Millisecond)
	}
	clk.Advance(6 * time.Second)
	if n := q.Expire(); n != 1 {
		t.Fatalf("Expire = %d, want a's lease ended", n)
	}
	if y := <-got; y.Attempt != 2 || y.ID != "r0" {
		t.Fatalf("b leased %s, want r0 attempt 2", y)
	}
	st := q.Status()
	if len(st.Workers) != 1 || st.Workers[0].ID != b {
		t.Fatalf("workers %+v, want only b", st.Workers)
	}
	if err := q.Complete(a, key, 1, queuetest.Result(x)); !errors.Is(err, queue.ErrUnknownWorker) {
		t.Fatalf("dropped worker's completion: %v, want ErrUnknownWorker", err)
	}
}

func TestAttemptsExhaustedByExpiry(t *testing.T) {
	q, clk, key := clockedRollout(t, queue.Options{LeaseTTL: time.Second, WorkerTTL: time.Hour, MaxAttempts: 2})
	w := register(t, q, "w", 1, queue.RoleRollout)
	for range 2 {
		lease(t, q, w)
		clk.Advance(2 * time.Second)
		q.Expire()
	}
	_, err := q.Wait(context.Background(), key)
	var te *queue.TaskError
	if !errors.As(err, &te) || te.Attempt != 2 {
		t.Fatalf("Wait: %v, want a TaskError of attempt 2", err)
	}
}

func TestCancelStopsHolder(t *testing.T) {
	q := queue.New(queue.Options{})
	w := register(t, q, "w", 1, queue.RoleRollout)
	x := queue.NewExecutor(q)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := x.Do(ctx, queuetest.Task(task.Rollout, "r0"))
		errc <- err
	}()
	lt := lease(t, q, w)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Do: %v, want context.Canceled", err)
	}
	if _, err := q.Heartbeat(w, queue.Key(lt), 1); !errors.Is(err, queue.ErrCanceled) {
		t.Fatalf("heartbeat of a canceled task: %v, want ErrCanceled", err)
	}
	if err := q.Complete(w, queue.Key(lt), 1, queuetest.Result(lt)); !errors.Is(err, queue.ErrCanceled) {
		t.Fatalf("completion of a canceled task: %v, want ErrCanceled", err)
	}
}

func TestCapacity(t *testing.T) {
	q := queue.New(queue.Options{})
	submit(t, q, queuetest.Task(task.Rollout, "r0"), queuetest.Task(task.Rollout, "r1"), queuetest.Task(task.Rollout, "r2"))
	w := register(t, q, "w", 2, queue.RoleRollout)
	lease(t, q, w)
	lease(t, q, w)
	if _, _, err := q.Lease(context.Background(), w); !errors.Is(err, queue.ErrAtCapacity) {
		t.Fatalf("third lease at capacity 2: %v, want ErrAtCapacity", err)
	}
}

func TestInvalidRequests(t *testing.T) {
	q := queue.New(queue.Options{})
	bad := []struct {
		name string
		t    task.Task
	}{
		{"run with a slash", func() task.Task { x := queuetest.Task(task.Rollout, "r0"); x.Run = "a/b"; return x }()},
		{"run ..", func() task.Task { x := queuetest.Task(task.Rollout, "r0"); x.Run = ".."; return x }()},
		{"id with path tricks", queuetest.Task(task.Rollout, "../x")},
		{"id with a slash", queuetest.Task(task.Rollout, "a/b")},
		{"unknown kind", func() task.Task { x := queuetest.Task(task.Rollout, "r0"); x.Kind = "sleep"; return x }()},
	}
	for _, tc := range bad {
		if _, err := q.Submit(tc.t); !errors.Is(err, queue.ErrInvalid) {
			t.Errorf("Submit(%s): %v, want ErrInvalid", tc.name, err)
		}
	}
	regs := []struct {
		name     string
		roles    []queue.Role
		capacity int
	}{
		{"../x", []queue.Role{queue.RoleRollout}, 1},
		{"a/b", []queue.Role{queue.RoleRollout}, 1},
		{"w", nil, 1},
		{"w", []queue.Role{"trainer"}, 1},
		{"w", []queue.Role{queue.RoleRollout}, -1},
	}
	for _, tc := range regs {
		if _, err := q.Register(tc.name, tc.roles, tc.capacity); !errors.Is(err, queue.ErrInvalid) {
			t.Errorf("Register(%q, %v, %d): %v, want ErrInvalid", tc.name, tc.roles, tc.capacity, err)
		}
	}
	if st := q.Status(); len(st.Workers) != 0 || st.Tasks[queue.Queued] != 0 {
		t.Fatalf("status after refused requests: %+v, want empty", st)
	}
}

func TestValidateKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"run1/3/rollout/r0", true},
		{"run1/12/learn/learn", true},
		{"../x", false},
		{"run1/../rollout/r0", false},
		{"a/b/3/rollout/r0", false},
		{"run1/03/rollout/r0", false},
		{"run1/0/rollout/r0", false},
		{"run1/3/sleep/r0", false},
		{"/run1/3/rollout/r0", false},
		{"run1/3/rollout/r0/", false},
		{`run1/3/rollout/r\0`, false},
		{"", false},
	}
	for _, tc := range tests {
		err := queue.ValidateKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
		}
		if err != nil && !errors.Is(err, queue.ErrInvalid) {
			t.Errorf("ValidateKey(%q) = %v, want it to wrap ErrInvalid", tc.key, err)
		}
	}
	if k := queue.Key(queuetest.Task(task.Reward, "s3")); queue.ValidateKey(k) != nil || k != "run1/1/reward/s3" {
		t.Errorf("Key = %q (%v)", k, queue.ValidateKey(k))
	}
}

func TestConcurrentWorkers(t *testing.T) {
	q := queue.New(queue.Options{LeaseTTL: time.Minute, MaxAttempts: 2})
	const n = 2000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var completions sync.Map // key → *atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		w := register(t, q, fmt.Sprintf("w%d", i), 1, queue.AllRoles...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				x, _, err := q.Lease(ctx, w)
				if err != nil {
					return
				}
				key := queue.Key(x)
				// Every 7th task fails its first attempt.
				if x.Attempt == 1 && x.Seed%7 == 0 {
					if err := q.Fail(w, key, 1, "flaky", false); err != nil {
						t.Errorf("Fail: %v", err)
					}
					continue
				}
				if err := q.Complete(w, key, x.Attempt, queuetest.Result(x)); err != nil {
					t.Errorf("Complete: %v", err)
					continue
				}
				c, _ := completions.LoadOrStore(key, new(atomic.Int32))
				c.(*atomic.Int32).Add(1)
			}
		}()
	}
	ex := queue.NewExecutor(q)
	tasks, results, errs := queuetest.DoMany(ctx, ex, n)
	for i, x := range tasks {
		if errs[i] != nil {
			t.Errorf("Do(%s): %v", x, errs[i])
			continue
		}
		if want := float64(1 + b2i(i%7 == 0)); results[i].Metrics["attempt"] != want {
			t.Errorf("%s completed by attempt %v, want %v", x, results[i].Metrics["attempt"], want)
		}
	}
	cancel()
	wg.Wait()
	count := 0
	completions.Range(func(k, v any) bool {
		count++
		if c := v.(*atomic.Int32).Load(); c != 1 {
			t.Errorf("%s completed %d times", k, c)
		}
		return true
	})
	if count != n {
		t.Fatalf("%d tasks completed, want %d", count, n)
	}
	if st := q.Status(); st.Tasks[queue.Done] != n {
		t.Fatalf("status %v, want %d done", st.Tasks, n)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestParseRoles(t *testing.T) {
	got, err := queue.ParseRoles("rollout, reward")
	if err != nil || !reflect.DeepEqual(got, []queue.Role{queue.RoleRollout, queue.RoleReward}) {
		t.Fatalf("ParseRoles = %v, %v", got, err)
	}
	if _, err := queue.ParseRoles("rollout,trainer"); !errors.Is(err, queue.ErrInvalid) {
		t.Fatalf("ParseRoles(trainer): %v, want ErrInvalid", err)
	}
	for _, r := range queue.AllRoles {
		if r.Kind() == "" {
			t.Errorf("role %s serves no kind", r)
		}
	}
}
