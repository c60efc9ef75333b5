package runs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/thinkgen/thinkgen/storage"
)

// Lease is runs/<run>/lease.json: which controller holds the run, until
// when, and the run's epoch. One controller at a time drives a run: it
// takes the lease when it opens the run, renews it while it runs and
// gives it up when it stops. A controller that takes the run over (a
// released or expired lease) increments the epoch, which every key it and
// its tasks write carries, so no key is ever written twice. The lease is
// never deleted: the epoch only grows.
type Lease struct {
	// Holder names the controller: host/pid/nonce.
	Holder   string    `json:"holder"`
	Epoch    int       `json:"epoch"`
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
}

// LeaseKey is the key of a run's lease.
func LeaseKey(run string) string { return storage.RunPrefix(run) + "lease.json" }

// ErrLeaseLost means a renewal found the lease taken over by another
// controller (or changed under it): the holder must stop writing.
var ErrLeaseLost = errors.New("run lease lost")

// HeldError refuses a run that another controller holds.
type HeldError struct {
	Run   string
	Lease Lease
	Now   time.Time
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("run %s is held by controller %s (epoch %d) until %s (%s from now): another controller is running it; stop it, or wait for its lease to expire",
		e.Run, e.Lease.Holder, e.Lease.Epoch, e.Lease.Expires.UTC().Format(time.RFC3339), e.Lease.Expires.Sub(e.Now).Round(time.Second))
}

// NewHolder returns a name for a controller of this process:
// host/pid/random.
func NewHolder() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", strings.ReplaceAll(host, "/", "_"), os.Getpid(), hex.EncodeToString(b[:]))
}

// holderGone reports whether holder names a process of this host that no
// longer exists (a controller that was killed): its lease need not be
// waited out.
func holderGone(holder string) bool {
	parts := strings.Split(holder, "/")
	host, err := os.Hostname()
	if len(parts) != 3 || err != nil || parts[0] != strings.ReplaceAll(host, "/", "_") {
		return false
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// Held is a lease this process holds.
type Held struct {
	st   storage.Store
	run  string
	ttl  time.Duration
	now  func() time.Time
	rev  string // lease.json's version as last written
	curr Lease
}

// AcquireLease takes the lease of run for holder, for ttl from now(): a
// run without a lease gets epoch 1; a lease released, expired or held by a
// process of this host that is gone is taken over with the next epoch; a
// lease held by a live controller is refused with a *HeldError. Of racing
// acquirers exactly one wins (conditional writes).
func AcquireLease(ctx context.Context, st storage.Store, run, holder string, ttl time.Duration, now func() time.Time) (*Held, error) {
	for try := 0; try < 3; try++ {
		old, rev, err := readLease(ctx, st, run)
		if err != nil && !errors.Is(err, storage.ErrNotExist) {
			return nil, err
		}
		t := now()
		if err == nil && t.Before(old.Expires) && !holderGone(old.Holder) {
			return nil, &HeldError{Run: run, Lease: old, Now: t}
		}
		h := &Held{st: st, run: run, ttl: ttl, now: now, rev: rev,
			curr: Lease{Holder: holder, Epoch: old.Epoch + 1, Acquired: t.UTC(), Expires: t.Add(ttl).UTC()}}
		err = h.write(ctx)
		if errors.Is(err, storage.ErrChanged) {
			continue // another acquirer wrote first: look again
		}
		if err != nil {
			return nil, err
		}
		return h, nil
	}
	return nil, fmt.Errorf("acquire the lease of run %s: it keeps changing under this controller", run)
}

// readLease reads a run's lease and its version.
func readLease(ctx context.Context, st storage.Store, run string) (Lease, string, error) {
	info, err := st.Stat(ctx, LeaseKey(run))
	if err != nil {
		return Lease{}, "", err
	}
	rc, err := st.Get(ctx, LeaseKey(run))
	if err != nil {
		return Lease{}, "", err
	}
	defer rc.Close()
	var l Lease
	data, err := io.ReadAll(io.LimitReader(rc, 1<<16))
	if err == nil {
		err = json.Unmarshal(data, &l)
	}
	if err != nil {
		return Lease{}, "", fmt.Errorf("read %s: %w", LeaseKey(run), err)
	}
	// If the lease changed between the Stat and the Get, the version is
	// stale and the conditional write that follows fails, as it should.
	return l, info.ETag, nil
}

// ReadLease reads a run's lease (an error wrapping storage.ErrNotExist for
// a run that never had one).
func ReadLease(ctx context.Context, st storage.Store, run string) (Lease, error) {
	l, _, err := readLease(ctx, st, run)
	return l, err
}

func (h *Held) write(ctx context.Context) error {
	data, err := json.MarshalIndent(h.curr, "", "  ")
	if err != nil {
		return err
	}
	rev, err := h.st.Replace(ctx, LeaseKey(h.run), bytes.NewReader(append(data, '\n')), h.rev)
	if err != nil {
		return fmt.Errorf("write the lease of run %s: %w", h.run, err)
	}
	h.rev = rev
	return nil
}

// Epoch is the run's epoch under this lease.
func (h *Held) Epoch() int { return h.curr.Epoch }

// Lease is the lease as last written.
func (h *Held) Lease() Lease { return h.curr }

// Renew extends the lease to ttl from now. It fails with an error wrapping
// ErrLeaseLost when another controller wrote the lease since (took the
// run over): the caller must stop. A lease that expired but that nobody
// took over is still this holder's: taking it would have changed it.
func (h *Held) Renew(ctx context.Context) error {
	t := h.now()
	next := *h
	next.curr.Expires = t.Add(h.ttl).UTC()
	err := next.write(ctx)
	if errors.Is(err, storage.ErrChanged) {
		msg := "changed"
		if l, err := ReadLease(ctx, h.st, h.run); err == nil {
			msg = fmt.Sprintf("taken by %s (epoch %d)", l.Holder, l.Epoch)
		}
		return fmt.Errorf("run %s: lease of epoch %d %s: %w", h.run, h.curr.Epoch, msg, ErrLeaseLost)
	}
	if err != nil {
		return err
	}
	*h = next
	return nil
}

// Release gives the lease up (it expires now; the epoch stays), so the
// next controller need not wait for it.
func (h *Held) Release(ctx context.Context) error {
	next := *h
	next.curr.Expires = h.now().UTC()
	if err := next.write(ctx); err != nil {
		return err
	}
	*h = next
	return nil
}
