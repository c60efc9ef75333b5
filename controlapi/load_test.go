package controlapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/controlapi"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/queue"
	"github.com/thinkgen/thinkgen/queue/queuetest"
	"github.com/thinkgen/thinkgen/task"
)

// The load test runs the controller (queue + server) in this process and
// the simulated workers in a child process (this test binary again, running
// TestLoadWorkers), so the controller's CPU time is measured alone.
//
//	THINKGEN_LOAD=1 go test -run '^TestLoad$' -v ./controlapi
//
// THINKGEN_LOAD_WORKERS and THINKGEN_LOAD_TASKS change the defaults (1000,
// 100000).
const (
	envLoad        = "THINKGEN_LOAD"
	envLoadURL     = "THINKGEN_LOAD_CHILD_URL"
	envLoadToken   = "THINKGEN_LOAD_CHILD_TOKEN"
	envLoadWorkers = "THINKGEN_LOAD_WORKERS"
	envLoadTasks   = "THINKGEN_LOAD_TASKS"
)

// loadStats is what the worker process reports.
type loadStats struct {
	Workers    int     `json:"workers"`
	Runs       int64   `json:"runs"`       // handler invocations
	Duplicates int64   `json:"duplicates"` // tasks run more than once
	Leases     int     `json:"leases"`     // lease requests that returned a task
	P50MS      float64 `json:"p50_ms"`     // their latency, as the worker saw it
	P99MS      float64 `json:"p99_ms"`
	MaxMS      float64 `json:"max_ms"`
	CPUSeconds float64 `json:"cpu_seconds"` // the worker process's
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("$%s = %q, want a positive integer", name, s)
	}
	return n
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func TestLoad(t *testing.T) {
	if os.Getenv(envLoad) != "1" {
		t.Skipf("load test: set %s=1 to run it (1,000 workers, 100,000 tasks, about a minute)", envLoad)
	}
	nWorkers := envInt(t, envLoadWorkers, 1000)
	nTasks := envInt(t, envLoadTasks, 100000)
	token, _ := controlapi.GenerateToken()
	q := queue.New(queue.Options{LeaseTTL: 30 * time.Second})
	s, err := controlapi.NewServer(q, controlapi.ServerOptions{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	ln := testutil.Listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, ln)
	go q.Run(ctx)

	cpu0, t0 := cpuSeconds(), time.Now()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLoadWorkers$", "-test.v")
	child.Env = append(os.Environ(), envLoadURL+"=http://"+ln.Addr().String(), envLoadToken+"="+token,
		fmt.Sprintf("%s=%d", envLoadWorkers, nWorkers), fmt.Sprintf("%s=%d", envLoadTasks, nTasks))
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	statsc := make(chan loadStats, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "LOADSTATS "); ok {
				var st loadStats
				if err := json.Unmarshal([]byte(rest), &st); err == nil {
					statsc <- st
				}
			}
		}
		close(statsc)
	}()

	keys := make([]string, nTasks)
	for i := range nTasks {
		x := queuetest.Task(task.Rollout, fmt.Sprintf("t%d", i))
		x.Seed = uint64(i)
		if keys[i], err = q.Submit(x); err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range keys {
		r, err := q.Wait(ctx, k)
		if err != nil {
			t.Fatalf("Wait(%s): %v", k, err)
		}
		if r.Metrics["seed"] != float64(i) || r.Metrics["attempt"] != 1 {
			t.Fatalf("%s: result %v, want seed %d attempt 1", k, r.Metrics, i)
		}
	}
	elapsed, cpu := time.Since(t0), cpuSeconds()-cpu0
	st, ok := <-statsc
	if err := child.Wait(); err != nil || !ok {
		t.Fatalf("worker process: %v (stats received: %v)", err, ok)
	}
	qs := q.Status()
	if qs.Tasks[queue.Done] != nTasks || st.Runs != int64(nTasks) || st.Duplicates != 0 {
		t.Fatalf("done %d, handler runs %d, duplicates %d; want %d, %d, 0", qs.Tasks[queue.Done], st.Runs, st.Duplicates, nTasks, nTasks)
	}
	t.Logf("%d workers, %d tasks in %.1f s (%.0f tasks/s): lease latency p50 %.2f ms, p99 %.2f ms, max %.1f ms; controller CPU %.1f s (%.0f µs/task), worker process CPU %.1f s",
		st.Workers, nTasks, elapsed.Seconds(), float64(nTasks)/elapsed.Seconds(), st.P50MS, st.P99MS, st.MaxMS,
		cpu, cpu/float64(nTasks)*1e6, st.CPUSeconds)
}

// latencyTransport records how long lease requests that returned a task
// took.
type latencyTransport struct {
	http.RoundTripper
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := l.RoundTripper.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusOK && r.URL.Path == controlapi.PathLease {
		d := time.Since(start)
		l.mu.Lock()
		l.d = append(l.d, d)
		l.mu.Unlock()
	}
	return resp, err
}

// TestLoadWorkers is the worker process of TestLoad.
func TestLoadWorkers(t *testing.T) {
	url := os.Getenv(envLoadURL)
	if url == "" {
		t.Skip("the worker process of TestLoad")
	}
	nWorkers := envInt(t, envLoadWorkers, 1000)
	nTasks := envInt(t, envLoadTasks, 100000)
	lt := &latencyTransport{RoundTripper: &http.Transport{
		MaxIdleConns: 2 * nWorkers, MaxIdleConnsPerHost: 2 * nWorkers, IdleConnTimeout: time.Minute}}
	c, err := controlapi.NewClient(url, controlapi.ClientOptions{Token: os.Getenv(envLoadToken), Transport: lt})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runs, dups atomic.Int64
	var seen sync.Map
	handler := func(_ context.Context, x task.Task) (task.Result, error) {
		runs.Add(1)
		if _, loaded := seen.LoadOrStore(queue.Key(x), true); loaded {
			dups.Add(1)
		}
		return task.Result{Metrics: map[string]float64{"seed": float64(x.Seed), "attempt": float64(x.Attempt)}}, nil
	}
	var wg sync.WaitGroup
	for i := range nWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := controlapi.Serve(ctx, c, controlapi.WorkerOptions{Name: fmt.Sprintf("sim%d", i), Roles: queue.AllRoles, PollWait: 2 * time.Second}, handler)
			if err != nil && ctx.Err() == nil {
				t.Errorf("worker %d: %v", i, err)
			}
		}()
	}
	// Stop once the controller reports every task done.
	for ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
		st, err := c.Status(ctx)
		if err == nil && st.Tasks[queue.Done] >= nTasks {
			cancel()
		}
	}
	wg.Wait()
	lt.mu.Lock()
	d := slices.Clone(lt.d)
	lt.mu.Unlock()
	slices.Sort(d)
	ms := func(p float64) float64 {
		if len(d) == 0 {
			return 0
		}
		return float64(d[min(len(d)-1, int(p*float64(len(d))))]) / 1e6
	}
	b, _ := json.Marshal(loadStats{Workers: nWorkers, Runs: runs.Load(), Duplicates: dups.Load(), Leases: len(d),
		P50MS: ms(0.5), P99MS: ms(0.99), MaxMS: ms(1), CPUSeconds: cpuSeconds()})
	fmt.Printf("LOADSTATS %s\n", b)
}
