package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/task"
)

// gangExec stands in for the learner workers of a gang (the controller's
// side of it is what is tested; cmd/thinkgen's TestTrainLearnerRanksEqualOne
// runs real ranks): fail says how rank r of epoch e ends; a rank that
// neither fails nor succeeds waits, as in a collective, until withdrawn.
type gangExec struct {
	mu   sync.Mutex
	seen []task.Task
	// fail returns the rank's error, errWait to wait for withdrawal, nil
	// for success.
	fail func(rank, epoch int) error
}

var errWait = errors.New("wait in a collective")

func (x *gangExec) Do(ctx context.Context, t task.Task) (task.Result, error) {
	x.mu.Lock()
	x.seen = append(x.seen, t)
	x.mu.Unlock()
	rv := t.Rendezvous
	switch err := x.fail(rv.Rank, rv.Epoch); {
	case errors.Is(err, errWait):
		select {
		case <-ctx.Done():
			return task.Result{}, ctx.Err()
		case <-time.After(time.Minute):
			return task.Result{}, errors.New("never withdrawn")
		}
	case err != nil:
		return task.Result{}, err
	}
	res := task.Result{Metrics: map[string]float64{"loss/total": 0.5, "learn/rank": float64(rv.Rank)}}
	if rv.Rank == 0 {
		res.Outputs = []storage.Object{{Key: fmt.Sprintf("runs/r/checkpoints/000001/epoch-%d", rv.Epoch)}}
	}
	return res, nil
}

func gangController(x *gangExec, progress *strings.Builder) *Controller {
	port := 0
	return &Controller{o: Options{Run: "r", Exec: x, Progress: progress, LearnerRanks: 2, GangAttempts: 3,
		CollectiveTimeout: time.Second, Rendezvous: func() (string, error) {
			port++
			return fmt.Sprintf("127.0.0.1:%d", 40000+port), nil
		}}}
}

// TestGangReformsAfterARankFails: rank 1 of the first group dies while
// rank 0 waits in a collective; the controller withdraws rank 0 and forms
// the group again at a new address and epoch, and rank 0's result of the
// second group is the learn's.
func TestGangReformsAfterARankFails(t *testing.T) {
	x := &gangExec{fail: func(rank, epoch int) error {
		switch {
		case epoch == 1 && rank == 1:
			return errors.New("worker died")
		case epoch == 1:
			return errWait
		}
		return nil
	}}
	var progress strings.Builder
	c := gangController(x, &progress)
	learn := task.Task{Run: "r", Step: 1, Epoch: 1, Kind: task.Learn, ID: "learn", Phase: "mllm-grpo",
		Inputs: []storage.Object{{Key: "runs/r/steps/000001/rollout/r0-a1.arrow"}}}
	metrics := map[string]float64{}
	out, err := c.runGang(context.Background(), learn, metrics)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || len(out[0].Outputs) != 1 || out[0].Outputs[0].Key != "runs/r/checkpoints/000001/epoch-2" || metrics["learn/rank"] != 0 {
		t.Fatalf("gang result %+v, metrics %v: want rank 0's of epoch 2", out, metrics)
	}
	if len(x.seen) != 4 {
		t.Fatalf("%d rank tasks ran, want 2 groups of 2", len(x.seen))
	}
	addrs := map[int]string{}
	for _, s := range x.seen {
		rv := s.Rendezvous
		if s.ID != fmt.Sprintf("learn.%d", rv.Rank) || rv.World != 2 || s.Attempt != rv.Epoch || rv.TimeoutMS != 1000 {
			t.Errorf("rank task %s: rendezvous %+v", s, *rv)
		}
		if a, ok := addrs[rv.Epoch]; ok && a != rv.Addr {
			t.Errorf("epoch %d at %s and %s", rv.Epoch, a, rv.Addr)
		}
		addrs[rv.Epoch] = rv.Addr
	}
	if addrs[1] == addrs[2] || len(addrs) != 2 {
		t.Errorf("groups formed at %v, want a new address for epoch 2", addrs)
	}
	if p := progress.String(); !strings.Contains(p, "worker died") || !strings.Contains(p, "form the group again") || strings.Contains(p, "canceled") {
		t.Errorf("progress %q: want the dead rank's error and no withdrawal noise", p)
	}
}

// TestGangGivesUp: a gang whose ranks keep failing fails the learn after
// GangAttempts groups, naming the failing rank; a fatal error stops at once.
func TestGangGivesUp(t *testing.T) {
	for _, tt := range []struct {
		name   string
		err    error
		groups int
	}{
		{"retryable", errors.New("rendezvous timed out"), 3},
		{"fatal", fmt.Errorf("%w: NaN loss", task.ErrFatal), 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			x := &gangExec{fail: func(rank, epoch int) error {
				if rank == 1 {
					return tt.err
				}
				return errWait
			}}
			var progress strings.Builder
			c := gangController(x, &progress)
			learn := task.Task{Run: "r", Step: 4, Epoch: 1, Kind: task.Learn, ID: "learn", Phase: "mllm-grpo",
				Inputs: []storage.Object{{Key: "runs/r/steps/000004/rollout/r0-a1.arrow"}}}
			_, err := c.runGang(context.Background(), learn, map[string]float64{})
			if err == nil || !strings.Contains(err.Error(), "learn.1") || !strings.Contains(err.Error(), tt.err.Error()) {
				t.Fatalf("error %v, want one naming rank learn.1 and %q", err, tt.err)
			}
			if len(x.seen) != 2*tt.groups {
				t.Errorf("%d rank tasks, want %d groups of 2", len(x.seen), tt.groups)
			}
		})
	}
}

// hangingStore is a store whose writes of the run lease hang, once hang
// is set, until their context ends, as an unreachable S3 endpoint's
// retries do.
type hangingStore struct {
	storage.Store
	hang *atomic.Bool
}

func (s hangingStore) Replace(ctx context.Context, key string, body io.ReadSeeker, etag string) (string, error) {
	if s.hang.Load() && strings.HasSuffix(key, "lease.json") {
		<-ctx.Done()
		return "", ctx.Err()
	}
	return s.Store.Replace(ctx, key, body, etag)
}

// TestCloseGivesUpOnAHungStore: a controller stopping while its store no
// longer answers gives its lease up within releaseTimeout, with an error,
// instead of waiting on the store.
func TestCloseGivesUpOnAHungStore(t *testing.T) {
	local, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := hangingStore{Store: local, hang: new(atomic.Bool)}
	held, err := runs.AcquireLease(context.Background(), st, "r", "test", time.Minute, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	st.hang.Store(true)
	c := &Controller{o: Options{Run: "r", Store: st}, lease: held}
	start := time.Now()
	err = c.Close(context.Background())
	if took := time.Since(start); err == nil || took > releaseTimeout+2*time.Second {
		t.Fatalf("Close on a hung store: %v after %v, want an error within %v", err, took, releaseTimeout)
	}
}
