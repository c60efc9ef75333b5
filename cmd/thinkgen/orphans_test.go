package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// procStat returns the parent PID and state letter of pid from
// /proc/PID/stat; ok is false once the process is gone.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if i < 0 || len(f) < 2 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[0][0], true
}

// running reports whether pid runs (a zombie does not).
func running(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// childrenOf lists the running processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(c); ok && ppid == pid && running(c) {
			kids = append(kids, c)
		}
	}
	slices.Sort(kids)
	return kids
}

// TestKilledParentEndsItsChildren SIGKILLs a sweep running two local trials
// and a train running three local worker processes: a parent killed so
// cannot stop its children. Trials used to go on training to the end (this
// test's sweep case fails without the tie); workers ended only when they
// next wrote a log line into the dead parent's pipe (SIGPIPE; ~4 s here,
// the length of a task on a busy GPU). The kernel's parent-death signal
// (internal/childproc) now ends both at once.
func TestKilledParentEndsItsChildren(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trials and workers")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the parent-death signal is Linux's")
	}
	tests := []struct {
		name     string
		args     func(t *testing.T) []string
		children int
		caches   int // worker cache directories to wait for before the kill
	}{
		{"sweep", func(t *testing.T) []string {
			file := tinySweep(t, "orphans", "  grpo.lr: [1.0e-4, 1.0e-3]", "")
			// Trials long enough to outlive the sweep by far.
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			long := strings.Replace(string(b), "steps: 1}]", "steps: 1000}]", 1)
			if long == string(b) {
				t.Fatalf("no one-step schedule in %s:\n%s", file, b)
			}
			if err := os.WriteFile(file, []byte(long), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{"sweep", "--config", file, "--run-dir", t.TempDir(), "--poll", "500ms"}
		}, 2, 0},
		{"train --workers", func(t *testing.T) []string {
			return []string{"train", "--config", filepath.Join("..", "..", "configs", "tiny.yaml"),
				"--set", "run.base=" + filepath.Join("..", "..", "base", "tiny"), "--set", "run.threads=1",
				"--eval-rows", "0", "--workers", "rollout=1,reward=1,learner=1", "--run-dir", t.TempDir(), "--run", "r"}
		}, 3, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			p := startProc(t, tt.name, []string{"TMPDIR=" + tmp}, tt.args(t)...)
			pid := p.cmd.Process.Pid
			var kids []int
			deadline := time.Now().Add(2 * time.Minute)
			caches := func() []string {
				m, _ := filepath.Glob(filepath.Join(tmp, "thinkgen-worker-*"))
				return m
			}
			for len(kids) < tt.children || len(caches()) < tt.caches {
				select {
				case err := <-p.done:
					t.Fatalf("%s ended (%v) before it started %d children:\n%s", tt.name, err, tt.children, p.log)
				case <-time.After(100 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					p.kill()
					t.Fatalf("%s started %d children (%d worker caches) in 2 minutes, want %d (%d)", tt.name, len(kids), len(caches()), tt.children, tt.caches)
				}
				kids = childrenOf(pid)
			}
			// The children are ours: whatever the outcome, none is left.
			t.Cleanup(func() {
				for _, k := range kids {
					syscall.Kill(k, syscall.SIGKILL)
				}
			})
			p.kill()
			killed := time.Now()
			deadline = time.Now().Add(time.Minute)
			for time.Now().Before(deadline) && slices.ContainsFunc(kids, running) {
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("%d children of the killed %s ended in %v", len(kids), tt.name, time.Since(killed).Round(time.Millisecond))
			for _, k := range kids {
				if running(k) {
					t.Errorf("child %d of the killed %s still runs a minute later", k, tt.name)
				}
			}
			// A worker ends through its own shutdown, removing its cache (its
			// last log lines go into the dead parent's pipe).
			if left := caches(); len(left) > 0 {
				t.Errorf("the ended children left %v", left)
			}
		})
	}
}
