package learner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/dist"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/learner"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/storage"
)

// zeroRun is what a learner saw over two Steps on the same input: the
// trained parameters after each and the optimiser bytes it held.
type zeroRun struct {
	Params [2][][]float64
	Bytes  int64
}

// zeroConfig is ranksConfig with ZeRO-1.
func zeroConfig() *config.Config {
	c := ranksConfig()
	c.Optim.Zero = 1
	return c
}

// trainTwice runs two Steps of in on l; between them, when save is set,
// it gathers the optimiser states and rank 0 (or a single learner) saves
// version 1 of run "r" in the store at dir/store.
func trainTwice(l *learner.Learner, in rankInput, g *dist.Group, save string) (zeroRun, error) {
	var out zeroRun
	for k := range out.Params {
		if k == 1 && save != "" {
			if err := saveVersion(l, save); err != nil {
				return out, err
			}
		}
		if _, err := l.Step(in.Phase, in.Seed+uint64(k), in.Rolls, in.Rews); err != nil {
			return out, err
		}
		if k == 0 {
			out.Bytes = l.OptimizerBytes()
		}
		for _, ps := range trainedParams(l, in.Phase) {
			for _, p := range ps.Tensors() {
				out.Params[k] = append(out.Params[k], p.Float64Values(false))
			}
		}
	}
	return out, nil
}

func saveVersion(l *learner.Learner, dir string) error {
	opts, release, err := l.GatherOptimizers()
	if err != nil {
		return err
	}
	defer release()
	if opts == nil {
		return nil // not rank 0
	}
	st, err := storage.NewLocal(filepath.Join(dir, "store"))
	if err != nil {
		return err
	}
	_, err = checkpoint.Save(context.Background(), st, "r", 1, "e1-a1", l.Policy(), zeroConfig(), opts, dir)
	return err
}

// TestZeroShardsOptimizer: two ZeRO-1 ranks each hold about half of the
// optimiser state, take the steps of one unsharded learner within 1e-6,
// and save a sharded checkpoint from which one learner continues exactly
// as the two ranks did; a checkpoint missing a shard is refused by name.
func TestZeroShardsOptimizer(t *testing.T) {
	if dir := os.Getenv(envRanksDir); dir != "" {
		runZeroRank(t, dir)
		return
	}
	eachPhaseOnTwoRanks(t, "TestZeroShardsOptimizer", func(t *testing.T, in rankInput, dir string, wait func()) {
		var one zeroRun
		err := withLearner(zeroConfig(), nil, func(l *learner.Learner) (err error) {
			one, err = trainTwice(l, in, nil, "")
			return err
		})
		wait()
		if err != nil {
			t.Fatal(err)
		}
		got := readRanks[zeroRun](t, dir, 2)
		for r := range got {
			for k := range got[r].Params {
				compareValues(t, fmt.Sprintf("rank %d step %d parameter", r, k+1), got[r].Params[k], one.Params[k], 1e-6)
			}
			share := float64(got[r].Bytes) / float64(one.Bytes)
			t.Logf("rank %d holds %d optimiser bytes, %.3f of one learner's %d", r, got[r].Bytes, share, one.Bytes)
			if share < 0.4 || share > 0.6 {
				t.Errorf("rank %d holds %.3f of the optimiser state, want about 1/2", r, share)
			}
		}
		if sum := got[0].Bytes + got[1].Bytes; sum != one.Bytes {
			t.Errorf("the ranks hold %d optimiser bytes together, one learner %d", sum, one.Bytes)
		}
		// One learner resumes the ranks' sharded version 1 and takes
		// their second step.
		vdir, err := checkpoint.Fetch(context.Background(), mustLocal(t, filepath.Join(dir, "store")), "r", 1, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		var resumed zeroRun
		err = withLearnerOf(func() (*learner.Learner, error) { return loadLearner(vdir) }, nil, func(l *learner.Learner) (err error) {
			resumed, err = trainTwice(l, rankInput{Phase: in.Phase, Seed: in.Seed + 1, Rolls: in.Rolls, Rews: in.Rews}, nil, "")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		compareValues(t, "resumed by one learner, step 2 parameter", resumed.Params[0], got[0].Params[1], 1e-6)

		// A missing shard is refused by name.
		shard := "optim-mllm.shard-1-of-2.safetensors"
		if err := os.Remove(filepath.Join(vdir, shard)); err != nil {
			t.Fatal(err)
		}
		err = libtorch.Run(func() error {
			l, err := loadLearner(vdir)
			if err == nil {
				l.Close()
			}
			return err
		})
		if err == nil || !strings.Contains(err.Error(), shard) {
			t.Fatalf("loading a checkpoint without %s: error %v, want one naming it", shard, err)
		}
	})
}

func mustLocal(t *testing.T, dir string) storage.Store {
	t.Helper()
	st, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// loadLearner is one learner over the fetched version directory vdir
// (policy and optimiser states) and a fresh reference (seed 3, as
// newLearner's).
func loadLearner(vdir string) (*learner.Learner, error) {
	c := zeroConfig()
	policy, _, err := model.LoadBundle(filepath.Join(vdir, "bundle"), gotch.CPU)
	if err != nil {
		return nil, err
	}
	ref, err := model.NewBundle(c, policy.Tok, gotch.CPU, 3)
	if err != nil {
		policy.Drop()
		return nil, err
	}
	l := learner.New(c, policy, ref, 1)
	if err := l.LoadOptimizers(vdir); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// runZeroRank is one rank of TestZeroShardsOptimizer.
func runZeroRank(t *testing.T, dir string) {
	g, in := joinRank(t, 2, 2*time.Minute)
	var out zeroRun
	err := withLearner(zeroConfig(), g, func(l *learner.Learner) (err error) {
		out, err = trainTwice(l, in, g, dir)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	writeJSON(t, dir, rankFile(g.Rank()), out)
}
