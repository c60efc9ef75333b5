package libtorch

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/sugarme/gotch/ts"
)

// Run calls fn on a new goroutine locked to one OS thread and waits for it.
//
// libtorch keeps grad mode and its last-error slot per OS thread, and gotch
// reads the error in a second cgo call after each op; a goroutine that moved
// between threads would lose both. All torch work therefore happens inside
// Run. The thread is never unlocked, so the Go runtime discards it (and any
// grad-mode state fn left on it) when fn returns.
//
// The gotch copy this project builds panics where upstream calls log.Fatal
// (see scripts/setup-libtorch.sh), so a failing Must* op unwinds fn, runs
// its defers, and comes back from Run as an error.
func Run(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("libtorch: %s", cleanPanic(r))
			}
		}()
		done <- fn()
	}()
	return <-done
}

// cleanPanic turns a recovered gotch panic into one line: gotch's errors end
// in a newline and may carry a C++ stack trace after the message.
func cleanPanic(r any) string {
	msg := strings.TrimSpace(fmt.Sprint(r))
	if i := strings.Index(msg, "\nException raised from"); i >= 0 {
		msg = msg[:i]
	}
	return strings.Join(strings.Fields(msg), " ")
}

// Scope owns temporary tensors and drops them together. gotch tensors are
// C++ handles that Go's garbage collector frees late or never; code that
// makes temporaries in a loop adds them to a Scope and closes it each turn.
// A Scope is not safe for concurrent use.
type Scope struct {
	tensors []*ts.Tensor
}

// Add records t to be dropped by Close and returns it.
func (s *Scope) Add(t *ts.Tensor) *ts.Tensor {
	s.tensors = append(s.tensors, t)
	return t
}

// Close drops every recorded tensor; the Scope can be reused afterwards.
func (s *Scope) Close() {
	for _, t := range s.tensors {
		t.MustDrop()
	}
	s.tensors = s.tensors[:0]
}

// BackwardSum back-propagates the sum of the scalar tensors terms (one
// backward however many there are; none, no backward). It drops the sums
// it makes, not the terms.
func BackwardSum(terms []*ts.Tensor) {
	if len(terms) == 0 {
		return
	}
	var s Scope
	defer s.Close()
	total := terms[0]
	for _, t := range terms[1:] {
		total = s.Add(total.MustAdd(t, false))
	}
	total.MustBackward()
}

// LiveTensors returns the number of gotch tensors that exist now (created and
// not yet dropped). Call it only when no other goroutine is creating tensors.
func LiveTensors() int { return len(ts.ExistingTensors) }

// RSS returns the process's resident set size in bytes (Linux; 0 elsewhere).
// It first returns freed Go heap and the C heap's free pages to the OS:
// gotch hangs a Go allocation on every tensor, and glibc keeps freed
// tensor storage in its arenas, so without this the figure moves with the
// garbage collector's timing and the allocator's caching rather than with
// what libtorch holds.
func RSS() int64 {
	debug.FreeOSMemory()
	ReleaseFreeMemory()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}
