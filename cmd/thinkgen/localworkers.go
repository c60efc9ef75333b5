package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/thinkgen/thinkgen/cluster"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/controlapi"
	"github.com/thinkgen/thinkgen/internal/childproc"
	"github.com/thinkgen/thinkgen/queue"
)

// parseWorkers parses --workers "rollout=2,reward=1,learner=1".
func parseWorkers(s string) (map[string]int, error) {
	out := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		role, n, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("--workers: %q: want role=count", part)
		}
		if _, err := queue.ParseRoles(role); err != nil {
			return nil, fmt.Errorf("--workers: %w", err)
		}
		c, err := strconv.Atoi(n)
		if err != nil || c < 1 {
			return nil, fmt.Errorf("--workers: %s=%s: want a positive count", role, n)
		}
		out[role] = c
	}
	for _, need := range []string{"rollout", "reward", "learner"} {
		if out[need] == 0 {
			return nil, fmt.Errorf("--workers: no %s worker (want rollout=N,reward=N,learner=N)", need)
		}
	}
	return out, nil
}

// localCluster is a controller's task queue served over HTTP on loopback,
// and worker processes of this binary leasing from it.
type localCluster struct {
	Exec *queue.Executor
	URL  string
	// Server serves the controller API, /metrics included.
	Server *controlapi.Server
	cancel context.CancelFunc
	procs  []*exec.Cmd
	// releases[i] frees the thread that started procs[i] (childproc.Start).
	releases []func()
	wg       sync.WaitGroup
}

// serveController starts the task queue and serves the controller API on
// addr; workers lease from it.
func serveController(ctx context.Context, stderr io.Writer, addr, token string, insecure bool, cl config.Cluster) (*localCluster, error) {
	ctx, cancel := context.WithCancel(ctx)
	lc := &localCluster{cancel: cancel}
	q := queue.New(queue.Options{LeaseTTL: cl.LeaseTimeout, MaxAttempts: cl.MaxAttempts, MaxTaskTime: cl.TaskTimeout})
	lc.Exec = queue.NewExecutor(q)
	go q.Run(ctx)
	srv, err := controlapi.NewServer(q, controlapi.ServerOptions{Token: token, InsecureLocal: insecure})
	if err != nil {
		cancel()
		return nil, &usageError{err}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("controller listen %s: %w", addr, err)
	}
	go srv.Serve(ctx, ln)
	lc.Server = srv
	lc.URL = "http://" + ln.Addr().String()
	fmt.Fprintf(stderr, "train: controller API on %s\n", lc.URL)
	return lc, nil
}

// startLocalCluster starts the queue, its HTTP server on loopback (a fresh
// token, handed to the workers in their environment) and the worker
// processes.
func startLocalCluster(ctx context.Context, stderr io.Writer, cfg *config.Config, rf *runFlags, counts map[string]int) (*localCluster, error) {
	tok, err := controlapi.GenerateToken()
	if err != nil {
		return nil, err
	}
	lc, err := serveController(ctx, stderr, "127.0.0.1:0", tok, false, cfg.Cluster)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		lc.Stop()
		return nil, err
	}
	roles := make([]string, 0, len(counts))
	for r := range counts {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	// Every process gets one libtorch thread: the cores are shared.
	for _, role := range roles {
		for i := 0; i < counts[role]; i++ {
			args := []string{"worker", "--role", role, "--controller", lc.URL, "--store", cfg.Storage.URI,
				"--threads", "1", "--name", fmt.Sprintf("%s-%d", role, i)}
			for _, c := range rf.configs {
				args = append(args, "--config", c)
			}
			for _, s := range rf.sets {
				if strings.HasPrefix(s, "storage.") {
					args = append(args, "--set", s)
				}
			}
			cmd := exec.Command(self, args...)
			cmd.Env = append(os.Environ(), controlapi.TokenEnv+"="+tok, "OMP_NUM_THREADS=1")
			out, err := cmd.StderrPipe()
			if err != nil {
				lc.Stop()
				return nil, err
			}
			cmd.Stdout = cmd.Stderr
			// A worker gets SIGTERM if train dies without stopping it, even
			// by SIGKILL, instead of polling a controller that is gone.
			release, err := childproc.Start(cmd, syscall.SIGTERM)
			if err != nil {
				lc.Stop()
				return nil, fmt.Errorf("start %s worker: %w", role, err)
			}
			lc.procs = append(lc.procs, cmd)
			lc.releases = append(lc.releases, release)
			prefix := fmt.Sprintf("[%s-%d pid %d] ", role, i, cmd.Process.Pid)
			lc.wg.Add(1)
			go func() {
				defer lc.wg.Done()
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					fmt.Fprintln(stderr, prefix+sc.Text())
				}
			}()
		}
	}
	fmt.Fprintf(stderr, "train: controller on %s, %d worker processes\n", lc.URL, len(lc.procs))
	return lc, nil
}

// Stop ends the worker processes (SIGTERM, then SIGKILL after 10 s) and
// the controller's server.
func (lc *localCluster) Stop() {
	for _, p := range lc.procs {
		p.Process.Signal(syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() {
		for i, p := range lc.procs {
			p.Wait()
			lc.releases[i]()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		for _, p := range lc.procs {
			p.Process.Kill()
		}
		<-done
	}
	lc.wg.Wait()
	lc.cancel()
}

// tokenPath returns the file the controller's token tok came from: flag,
// else $THINKGEN_TOKEN_FILE unless $THINKGEN_TOKEN gave it; "" when there
// is no token or it came from $THINKGEN_TOKEN.
func tokenPath(flag, tok string) string {
	switch {
	case tok == "":
		return ""
	case flag != "":
		return flag
	case os.Getenv(controlapi.TokenEnv) != "":
		return ""
	}
	return os.Getenv(controlapi.TokenFileEnv)
}

// placeOnRay runs the configuration's workers (cluster.workers) as Ray jobs
// on the Ray cluster of cluster.ray, pointed at the controller at url; the
// workers read the token from tokenFile, at the same path on every Ray node
// ("" with --insecure-local). The returned function stops them.
func placeOnRay(ctx context.Context, stderr io.Writer, cfg *config.Config, run, url, tokenFile string) (func(), error) {
	groups := cluster.Groups(cfg.Cluster)
	if len(groups) == 0 {
		return nil, usagef("cluster.ray is set but cluster.workers names no worker")
	}
	if tokenFile == "" && os.Getenv(controlapi.TokenEnv) != "" {
		return nil, usagef("cluster.ray: the workers read the token from a file at the same path on every Ray node (a Ray job's environment is visible in its job info): pass --token-file or $%s instead of $%s", controlapi.TokenFileEnv, controlapi.TokenEnv)
	}
	if tokenFile != "" {
		abs, err := filepath.Abs(tokenFile)
		if err != nil {
			return nil, err
		}
		tokenFile = abs
	}
	client, err := cluster.NewClient(cfg.Cluster.Ray, cluster.ClientOptions{})
	if err != nil {
		return nil, &usageError{fmt.Errorf("cluster.ray: %w", err)}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	env := map[string]string{"THINKGEN_STORE": cfg.Storage.URI, "OMP_NUM_THREADS": "1"}
	if v := os.Getenv("THINKGEN_TEST_MAIN"); v != "" {
		env["THINKGEN_TEST_MAIN"] = v // a test binary standing in for thinkgen
	}
	p, err := cluster.NewPlacer(client, groups, cluster.PlacerOptions{
		Run: run, Controller: url, Command: self, TokenFile: tokenFile, TokenFileEnv: controlapi.TokenFileEnv, Env: env,
		OnEvent: cluster.WriteEvents(stderr),
	})
	if err != nil {
		return nil, &usageError{err}
	}
	if err := p.Start(ctx); err != nil {
		return nil, fmt.Errorf("place workers on Ray: %w", err)
	}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.Follow(fctx); err != nil && fctx.Err() == nil {
			fmt.Fprintf(stderr, "train: following the Ray worker jobs: %v\n", err)
		}
	}()
	return func() {
		cancel()
		<-done
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		if err := p.Stop(sctx); err != nil {
			fmt.Fprintf(stderr, "train: stopping the Ray worker jobs: %v\n", err)
		}
	}, nil
}
