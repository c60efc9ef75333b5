package sweep

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/thinkgen/thinkgen/internal/childproc"
)

// Local runs each trial as a process of this machine: Binary (thinkgen)
// with the trial's train arguments.
type Local struct {
	// Binary is the thinkgen executable.
	Binary string
	// Env is added to the process's environment (which is this one's).
	Env []string
	// Grace is how long a stopped trial has to exit after its interrupt
	// before it is killed; zero means 30 s.
	Grace time.Duration
}

var _ Launcher = (*Local)(nil)

// Start starts the trial's process with its stdout and stderr appended to
// the log file.
func (l *Local) Start(ctx context.Context, t *TrialState, la Launch) (Handle, error) {
	args := la.Args
	f, err := os.OpenFile(la.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("trial %s: log: %w", t.Name, err)
	}
	fmt.Fprintf(f, "--- %s attempt %d: %s %s\n", time.Now().UTC().Format(time.RFC3339), t.Attempts, l.Binary, strings.Join(args, " "))
	cmd := exec.Command(l.Binary, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), l.Env...)
	// A trial gets SIGTERM (train stops, keeping its committed steps) if
	// the sweep dies without stopping it, even by SIGKILL.
	release, err := childproc.Start(cmd, syscall.SIGTERM)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("trial %s: start %s: %w", t.Name, l.Binary, err)
	}
	h := &localHandle{cmd: cmd, done: make(chan struct{}), grace: l.Grace}
	if h.grace <= 0 {
		h.grace = 30 * time.Second
	}
	go func() {
		h.err = cmd.Wait()
		release()
		f.Close()
		close(h.done)
	}()
	return h, nil
}

type localHandle struct {
	cmd   *exec.Cmd
	done  chan struct{}
	err   error
	grace time.Duration
	once  sync.Once
}

func (h *localHandle) Wait(ctx context.Context) error {
	select {
	case <-h.done:
	case <-ctx.Done():
		h.Stop(context.WithoutCancel(ctx))
		<-h.done
	}
	if h.err != nil {
		return fmt.Errorf("train exited: %w", h.err)
	}
	return nil
}

// Stop interrupts the process (train then stops at once, keeping its
// committed steps) and kills it if it has not exited after the grace time.
func (h *localHandle) Stop(ctx context.Context) error {
	var err error
	h.once.Do(func() {
		err = h.cmd.Process.Signal(os.Interrupt)
		go func() {
			select {
			case <-h.done:
			case <-time.After(h.grace):
				h.cmd.Process.Kill()
			}
		}()
	})
	return err
}
