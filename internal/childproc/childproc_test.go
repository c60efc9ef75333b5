package childproc

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a parent process: it starts
// `sleep 300` (tied with Start when the value is "tied"), churns through
// goroutines that lock and discard OS threads as libtorch.Run does, prints
// the child's PID and waits to be killed.
const helperEnv = "CHILDPROC_TEST_PARENT"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(parent(mode))
	}
	os.Exit(m.Run())
}

func parent(mode string) int {
	cmd := exec.Command("sleep", "300")
	var err error
	if mode == "tied" {
		_, err = Start(cmd, syscall.SIGKILL)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := 0; i < 50; i++ {
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(done)
		}()
		<-done
	}
	fmt.Println(cmd.Process.Pid)
	time.Sleep(5 * time.Minute)
	return 0
}

// alive reports whether pid runs (a zombie, killed and not yet reaped by
// whoever adopted it, does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

func TestChildDiesWithItsParent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the parent-death signal is Linux's")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mode      string
		wantAlive bool
	}{
		{"tied", false},
		{"plain", true}, // the control: without Start the child is orphaned
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			p := exec.Command(self, "-test.run=^$")
			p.Env = append(os.Environ(), helperEnv+"="+tt.mode)
			p.Stderr = os.Stderr
			out, err := p.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil {
				p.Process.Kill()
				p.Wait()
				t.Fatalf("read the child's pid: %v", err)
			}
			child, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil {
				t.Fatalf("child pid %q: %v", line, err)
			}
			// The child is ours (our helper started it): end it whatever happens.
			t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })
			if !alive(child) {
				t.Fatalf("child %d died before its parent (threads were discarded after it started)", child)
			}
			p.Process.Kill()
			p.Wait()
			wait := 5 * time.Second
			if tt.wantAlive {
				wait = time.Second
			}
			deadline := time.Now().Add(wait)
			for alive(child) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if got := alive(child); got != tt.wantAlive {
				t.Errorf("child %d alive %v after its parent was killed, want %v", child, got, tt.wantAlive)
			}
		})
	}
}
