package runs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/storage/storagetest"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestLease: the first controller gets epoch 1; a second is refused with
// a message naming the holder and the expiry while the lease is live; a
// released or expired lease is taken over with the next epoch, and the
// old holder's renewal then fails with ErrLeaseLost.
func TestLease(t *testing.T) {
	ctx := context.Background()
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		c := &clock{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		a, err := runs.AcquireLease(ctx, s, "r", "host-a/1/aa", time.Minute, c.now)
		if err != nil || a.Epoch() != 1 {
			t.Fatalf("first acquire: epoch %v, %v", a, err)
		}
		c.t = c.t.Add(30 * time.Second)
		_, err = runs.AcquireLease(ctx, s, "r", "host-b/2/bb", time.Minute, c.now)
		var held *runs.HeldError
		if !errors.As(err, &held) || !strings.Contains(err.Error(), "host-a/1/aa") || !strings.Contains(err.Error(), "2026-01-02T03:05:05Z") || !strings.Contains(err.Error(), "30s from now") {
			t.Fatalf("second controller: %v, want a HeldError naming host-a/1/aa and 03:05:05 (30s from now)", err)
		}
		if err := a.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		if l, err := runs.ReadLease(ctx, s, "r"); err != nil || !l.Expires.Equal(c.t.Add(time.Minute)) {
			t.Fatalf("renewed lease %+v, %v", l, err)
		}

		// Expired (a controller that stopped renewing): taken over.
		c.t = c.t.Add(61 * time.Second)
		b, err := runs.AcquireLease(ctx, s, "r", "host-b/2/bb", time.Minute, c.now)
		if err != nil || b.Epoch() != 2 {
			t.Fatalf("takeover of an expired lease: %v, %v", b, err)
		}
		if err := a.Renew(ctx); !errors.Is(err, runs.ErrLeaseLost) || !strings.Contains(err.Error(), "host-b/2/bb") {
			t.Fatalf("renewal by the old holder: %v, want ErrLeaseLost naming host-b/2/bb", err)
		}
		if err := a.Release(ctx); err == nil {
			t.Fatal("the old holder released a lease it lost")
		}
		// Released: the next controller need not wait.
		if err := b.Release(ctx); err != nil {
			t.Fatal(err)
		}
		c2, err := runs.AcquireLease(ctx, s, "r", "host-c/3/cc", time.Minute, c.now)
		if err != nil || c2.Epoch() != 3 {
			t.Fatalf("acquire after release: %v, %v", c2, err)
		}
	})
}

// TestLeaseOfAKilledController: a lease held by a process of this host
// that no longer exists (a SIGKILLed controller) is taken over at once.
func TestLeaseOfAKilledController(t *testing.T) {
	ctx := context.Background()
	s := storagetest.Local(t)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	host, _ := os.Hostname()
	now := time.Now
	dead := fmt.Sprintf("%s/%d/00", host, cmd.Process.Pid)
	if _, err := runs.AcquireLease(ctx, s, "r", dead, time.Hour, now); err != nil {
		t.Fatal(err)
	}
	l, err := runs.AcquireLease(ctx, s, "r", runs.NewHolder(), time.Hour, now)
	if err != nil || l.Epoch() != 2 {
		t.Fatalf("takeover from a dead process: %v, %v", l, err)
	}
	// This live process's lease is not taken over.
	if _, err := runs.AcquireLease(ctx, s, "r", "other/1/11", time.Hour, now); err == nil {
		t.Fatal("a live controller's lease was taken over")
	}
}

// TestWriteStateIsConditional: run.json is written only over the version
// the writer read; a second controller's state (read before the first
// wrote) is refused, and a new run is not written over an existing one.
func TestWriteStateIsConditional(t *testing.T) {
	ctx := context.Background()
	storagetest.Each(t, func(t *testing.T, s storage.Store) {
		if err := runs.WriteState(ctx, s, &runs.State{Version: runs.StateVersion, Run: "r", Steps: 4}); err != nil {
			t.Fatal(err)
		}
		if err := runs.WriteState(ctx, s, &runs.State{Version: runs.StateVersion, Run: "r", Steps: 9}); !errors.Is(err, storage.ErrChanged) {
			t.Fatalf("a new run.json over an existing one: %v, want ErrChanged", err)
		}
		first, err := runs.ReadState(ctx, s, "r")
		if err != nil {
			t.Fatal(err)
		}
		second, err := runs.ReadState(ctx, s, "r")
		if err != nil {
			t.Fatal(err)
		}
		first.Committed = 1
		if err := runs.WriteState(ctx, s, first); err != nil {
			t.Fatal(err)
		}
		first.Committed = 2 // its own successive writes go on
		if err := runs.WriteState(ctx, s, first); err != nil {
			t.Fatal(err)
		}
		second.Committed = 1
		if err := runs.WriteState(ctx, s, second); !errors.Is(err, storage.ErrChanged) || !strings.Contains(err.Error(), "another controller") {
			t.Fatalf("stale writer: %v, want ErrChanged", err)
		}
		if got, err := runs.ReadState(ctx, s, "r"); err != nil || got.Committed != 2 || got.Steps != 4 {
			t.Fatalf("run.json = %+v, %v; want the first controller's", got, err)
		}
	})
}
