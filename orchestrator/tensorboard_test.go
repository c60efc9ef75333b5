package orchestrator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/internal/tfevents"
	"github.com/thinkgen/thinkgen/internal/tfevents/tfeventstest"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
)

// checkStepEvents checks a run's TensorBoard event files: one per
// committed step, named events.out.tfevents.<start>.<step>.<host> in step
// order, each holding the step's metrics shard as scalars (same names,
// values as float32, the shard's time); and, with the test venv, that
// TensorBoard's own reader sees one point per step for every tag. It
// returns the events by step.
func checkStepEvents(t *testing.T, st *storage.Local, run string, steps int) map[int]tfevents.Event {
	t.Helper()
	ctx := context.Background()
	rs, err := runs.ReadState(ctx, st, run)
	if err != nil {
		t.Fatal(err)
	}
	h, err := runs.ReadHistory(ctx, st, run, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	objs, err := st.List(ctx, runs.TensorBoardPrefix(run))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != steps {
		t.Fatalf("run %s: %d event files, want one per committed step (%d)", run, len(objs), steps)
	}
	host, _ := os.Hostname()
	byStep := map[int]tfevents.Event{}
	for i, o := range objs {
		name := path.Base(o.Key)
		want := fmt.Sprintf("%s%010d.%06d.", tfevents.FilePrefix, rs.Started.Unix(), i+1)
		if !strings.HasPrefix(name, want) || !strings.Contains(name, host) {
			t.Errorf("run %s: event file %d is %s, want %s<host %s>", run, i, name, want, host)
		}
		f, err := os.Open(filepath.Join(st.Dir(), filepath.FromSlash(o.Key)))
		if err != nil {
			t.Fatal(err)
		}
		events, err := tfevents.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", o.Key, err)
		}
		if len(events) != 2 || events[0].FileVersion != tfevents.FileVersion || events[1].Step != int64(i+1) {
			t.Fatalf("%s: events %+v, want the file version then step %d", o.Key, events, i+1)
		}
		e := events[1]
		byStep[i+1] = e
		if len(e.Scalars) < 10 {
			t.Errorf("%s: only %d scalars", o.Key, len(e.Scalars))
		}
		for _, s := range e.Scalars {
			v, ok := h.Values[s.Tag]
			if !ok || !tfeventstest.Same(s.Value, float64(float32(v[i]))) {
				t.Errorf("%s: %s = %v, the metrics shard has %v", o.Key, s.Tag, s.Value, v)
			}
		}
		if n := len(h.Values) - len(e.Scalars); n > 0 {
			// A metric no step logged (NaN in the history) is fine; one
			// the step logged must be there.
			for tag, v := range h.Values {
				if !math.IsNaN(v[i]) && !hasTag(e, tag) {
					t.Errorf("%s: no scalar %s", o.Key, tag)
				}
			}
		}
	}
	t.Run("tensorboard reads them", func(t *testing.T) {
		l := tfeventstest.Read(t, filepath.Join(st.Dir(), filepath.FromSlash(runs.TensorBoardPrefix(run))))
		if len(l.Files) != steps {
			t.Errorf("TensorBoard sees %d event files, want %d", len(l.Files), steps)
		}
		for _, tag := range []string{"reward/mean", "loss/kl", "time/step_s", "learn/grad_norm"} {
			ps := l.Scalars[tag]
			if len(ps) != steps {
				t.Errorf("%s: TensorBoard has %d points, want %d: %v", tag, len(ps), steps, ps)
				continue
			}
			for i, p := range ps {
				e := byStep[i+1]
				if p.Step != int64(i+1) || p.WallTime != e.WallTime || !tfeventstest.Same(scalar(e, tag), p.Value) {
					t.Errorf("%s point %d: TensorBoard read %+v, the file has step %d %v at %v", tag, i, p, e.Step, scalar(e, tag), e.WallTime)
				}
			}
		}
	})
	return byStep
}

func hasTag(e tfevents.Event, tag string) bool {
	for _, s := range e.Scalars {
		if s.Tag == tag {
			return true
		}
	}
	return false
}

func scalar(e tfevents.Event, tag string) float32 {
	for _, s := range e.Scalars {
		if s.Tag == tag {
			return s.Value
		}
	}
	return float32(math.NaN())
}

// rewindRunState makes run.json say that no step is committed, as a kill
// between step 1's manifest and its run.json would have left it.
func rewindRunState(t *testing.T, st storage.Store, run string) {
	t.Helper()
	ctx := context.Background()
	rs, err := runs.ReadState(ctx, st, run)
	if err != nil {
		t.Fatal(err)
	}
	rs.Committed, rs.PolicyVersion, rs.Phase, rs.Seeds, rs.Kept = 0, 0, "", nil, []int{0}
	b, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, runs.StateKey(run), strings.NewReader(string(b))); err != nil {
		t.Fatal(err)
	}
}

// staleEventsKey is the key another host would have given step's event file.
func staleEventsKey(t *testing.T, st storage.Store, run string, step int) string {
	rs, err := runs.ReadState(context.Background(), st, run)
	if err != nil {
		t.Fatal(err)
	}
	return runs.TensorBoardPrefix(run) + tfevents.FilePrefix + strconv.FormatInt(rs.Started.Unix(), 10) + fmt.Sprintf(".%06d.zz-otherhost", step)
}
