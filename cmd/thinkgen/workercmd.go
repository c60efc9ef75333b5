package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/controlapi"
	"github.com/thinkgen/thinkgen/queue"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/task"
	"github.com/thinkgen/thinkgen/worker"
)

func workerCommand() *command {
	return &command{
		name:  "worker",
		usage: "--role rollout|reward|learner[,…] --controller URL [flags]",
		short: "run a worker process: lease tasks from a controller and execute them",
		long: `Worker registers with the controller at --controller, leases tasks of its
roles, runs them (heartbeating the lease) and reports their outputs. It
reads each run's configuration from the run's run.json in the store named by
--store / --run-dir (default $THINKGEN_STORE; storage.* of --config for S3
endpoints); the policy
versions it needs are fetched from that store once and cached.

The bearer token comes from --token-file, else $THINKGEN_TOKEN, else the
file named by $THINKGEN_TOKEN_FILE. SIGINT/SIGTERM stop the worker; a task
it was running is not reported, its lease expires and another worker redoes
it with the next attempt. A worker that starts while its S3 store does not
answer (a restarting MinIO) waits for it up to two minutes; a missing
bucket or a refused credential fails at once.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			roles := fs.String("role", "", "roles this worker serves: rollout, reward, learner (comma-separated)")
			controller := fs.String("controller", "", "controller URL, e.g. http://127.0.0.1:7700")
			tokenFile := fs.String("token-file", "", "file holding the bearer token (default $THINKGEN_TOKEN, then $THINKGEN_TOKEN_FILE)")
			insecure := fs.Bool("insecure-local", false, "talk to a controller started with --insecure-local (no token; loopback only)")
			threads := fs.Int("threads", 0, "libtorch threads of this worker (0: the run's run.threads)")
			name := fs.String("name", "", "name in the controller's status (default: role@hostname:pid)")
			return func(ctx context.Context, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				rs, err := queue.ParseRoles(*roles)
				if err != nil || len(rs) == 0 {
					return usagef("--role: want rollout, reward or learner (comma-separated), got %q", *roles)
				}
				if *controller == "" {
					return usagef("--controller: the controller's URL is required")
				}
				if *threads < 0 {
					return usagef("--threads must not be negative, got %d", *threads)
				}
				// Placed workers (Ray jobs) get their store from the environment.
				if v := os.Getenv("THINKGEN_STORE"); v != "" && !fs.Changed("store") && !fs.Changed("run-dir") {
					if err := fs.Set("store", v); err != nil {
						return &usageError{err}
					}
				}
				cfg, err := rf.load()
				if err != nil {
					return err
				}
				tok, err := controlapi.LoadToken(*tokenFile)
				if errors.Is(err, controlapi.ErrNoToken) && *insecure {
					tok, err = "", nil
				}
				if err != nil {
					return &usageError{err}
				}
				st, err := openStoreWaiting(ctx, cfg.Storage, storeWait, e.stderr)
				if err != nil {
					return err
				}
				client, err := controlapi.NewClient(*controller, controlapi.ClientOptions{Token: tok})
				if err != nil {
					return &usageError{fmt.Errorf("--controller: %w", err)}
				}
				// A worker whose parent (train --workers) died writes its last
				// log lines into a broken pipe; unless SIGPIPE is caught, the
				// runtime ends it there, before it removes its cache.
				pipe := make(chan os.Signal, 1)
				signal.Notify(pipe, syscall.SIGPIPE)
				defer signal.Stop(pipe)
				cache, err := os.MkdirTemp("", "thinkgen-worker-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(cache)
				if *name == "" {
					host, _ := os.Hostname()
					*name = fmt.Sprintf("%s@%s:%d", *roles, host, os.Getpid())
				}
				rw := &runWorkers{store: st, storage: cfg.Storage, cache: cache, threads: *threads}
				defer rw.close()
				log := slog.New(slog.NewTextHandler(e.stderr, nil))
				err = controlapi.Serve(ctx, client, controlapi.WorkerOptions{Name: *name, Roles: rs, Logger: log}, rw.do)
				if errors.Is(err, context.Canceled) {
					return nil
				}
				return err
			}
		},
	}
}

// runWorkers keeps one in-process worker per run, built from the run's
// recorded configuration.
type runWorkers struct {
	store   storage.Store
	storage config.Storage
	cache   string
	threads int
	mu      sync.Mutex
	byRun   map[string]*worker.Worker
}

func (r *runWorkers) do(ctx context.Context, t task.Task) (task.Result, error) {
	w, err := r.get(ctx, t.Run)
	if err != nil {
		return task.Result{}, err
	}
	return w.Do(ctx, t)
}

func (r *runWorkers) get(ctx context.Context, run string) (*worker.Worker, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w, ok := r.byRun[run]; ok {
		return w, nil
	}
	rs, err := runs.ReadState(ctx, r.store, run)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", run, err)
	}
	cfg, err := rs.ParseConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: run %s: %v", task.ErrFatal, run, err)
	}
	cfg.Storage = r.storage // this process's view of the store (endpoint, credentials)
	if r.threads > 0 {
		cfg.Run.Threads = r.threads
	}
	w, err := worker.New(worker.Options{Config: cfg, Store: r.store, CacheDir: r.cache})
	if err != nil {
		return nil, err
	}
	if r.byRun == nil {
		r.byRun = map[string]*worker.Worker{}
	}
	r.byRun[run] = w
	return w, nil
}

func (r *runWorkers) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.byRun {
		w.Close()
	}
}

// storeWait is how long a starting worker waits for an S3 store that does
// not answer.
const storeWait = 2 * time.Minute

// openStoreWaiting opens the store as storage.Open does, retrying for up
// to wait while the store cannot be reached (a connection refused, reset
// or timed out: a worker started while MinIO restarts, as pods are in a
// cluster), and saying so on w. Any other error — a missing bucket, a
// refused credential, a bad URI — is returned at once.
func openStoreWaiting(ctx context.Context, cfg config.Storage, wait time.Duration, w io.Writer) (storage.Store, error) {
	deadline := time.Now().Add(wait)
	for delay := time.Second; ; delay = min(2*delay, 10*time.Second) {
		st, err := storage.Open(ctx, cfg)
		var ne net.Error
		if err == nil || !errors.As(err, &ne) || time.Now().Add(delay).After(deadline) {
			return st, err
		}
		fmt.Fprintf(w, "worker: the store does not answer (retrying in %v, until %s): %v\n", delay, deadline.Format(time.TimeOnly), err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}
