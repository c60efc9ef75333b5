package worker

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/storage"
)

// pulls downloads checkpoint versions into the worker's cache, one
// download per version at a time whoever asks (a task, or the prefetch of
// asynchronous runs), and prefetches the version after the one the
// rollout tasks sample with.
type pulls struct {
	mu       sync.Mutex
	inflight map[string]chan struct{}
	stop     context.CancelFunc // the running prefetch, or nil
	done     chan struct{}      // closed when it has returned
}

// pollEvery is how often a prefetch looks for the next version's
// manifest; prefetchFor bounds how long it looks.
const (
	pollEvery   = 500 * time.Millisecond
	prefetchFor = 10 * time.Minute
)

// fetch makes sure version v of run is in the cache.
func (w *Worker) fetch(ctx context.Context, run string, v int) error {
	key := fmt.Sprintf("%s/%d", run, v)
	p := &w.pulls
	for {
		p.mu.Lock()
		if p.inflight == nil {
			p.inflight = map[string]chan struct{}{}
		}
		ch, busy := p.inflight[key]
		if !busy {
			ch = make(chan struct{})
			p.inflight[key] = ch
			p.mu.Unlock()
			defer func() {
				p.mu.Lock()
				delete(p.inflight, key)
				p.mu.Unlock()
				close(ch)
			}()
			_, err := checkpoint.Fetch(ctx, w.store, run, v, filepath.Join(w.cacheDir, "checkpoints"))
			return err
		}
		p.mu.Unlock()
		select {
		case <-ch: // the other download is over: look again (the cache has it unless it failed)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// prefetch starts downloading version v of run in the background as soon
// as it is committed (its manifest exists), so that the weight pull of the
// next version overlaps the rollouts of this one. It replaces a prefetch
// still running.
func (w *Worker) prefetch(run string, v int) {
	w.stopPrefetch()
	ctx, cancel := context.WithTimeout(context.Background(), prefetchFor)
	done := make(chan struct{})
	w.pulls.stop, w.pulls.done = cancel, done
	go func() {
		defer close(done)
		tick := time.NewTicker(pollEvery)
		defer tick.Stop()
		for {
			_, err := storage.ReadManifest(ctx, w.store, storage.CheckpointManifestKey(run, v))
			if err == nil {
				w.fetch(ctx, run, v) // a failure is the task's to see when it loads v
				return
			}
			if !errors.Is(err, storage.ErrNotExist) {
				return
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
}

// stopPrefetch cancels the running prefetch and waits for it.
func (w *Worker) stopPrefetch() {
	if w.pulls.stop != nil {
		w.pulls.stop()
		<-w.pulls.done
		w.pulls.stop, w.pulls.done = nil, nil
	}
}
