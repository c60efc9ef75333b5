// Package childproc starts child processes that do not outlive this one.
//
// A trial of a local sweep or a worker of `thinkgen train --workers` is a
// child process; when its parent is killed with SIGKILL it cannot pass the
// signal on, and the child goes on training (or polling a controller that
// is gone) holding cores and memory. On Linux the kernel can send the child
// a signal when its parent dies (prctl PR_SET_PDEATHSIG). The kernel ties
// that signal to the thread that forked the child, not the process, and
// this program discards threads: every libtorch call runs on a goroutine
// locked to a thread that the Go runtime ends when the call returns
// (internal/libtorch). Start therefore forks from a goroutine that holds its
// own locked thread until the caller releases it, after the child has been
// waited for.
package childproc

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// Start starts cmd so that it receives sig if this process dies before it
// (on systems without a parent-death signal it only starts cmd). Call
// release once cmd.Wait has returned; until then a goroutine and an OS
// thread are held for the child.
func Start(cmd *exec.Cmd, sig syscall.Signal) (release func(), err error) {
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		// Never unlocked: the thread ends with this goroutine, after the
		// child it forked has been waited for.
		runtime.LockOSThread()
		setParentDeathSignal(cmd, sig)
		err := cmd.Start()
		started <- err
		if err != nil {
			return
		}
		<-done
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return sync.OnceFunc(func() { close(done) }), nil
}
