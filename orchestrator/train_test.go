package orchestrator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/curves"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/testmodel"
	"github.com/thinkgen/thinkgen/internal/tfevents"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/orchestrator"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/storage/storagetest"

	"github.com/thinkgen/thinkgen/worker"
)

// smallConfig is a SepGRPO run small enough for a test: one GRPO step and
// one FlowGRPO step on a few prompts, with models of a few thousand
// parameters.
func smallConfig(t *testing.T) *config.Config {
	t.Helper()
	c := config.Default()
	c.Model.Connector.Prepad = 2
	return smallConfigFrom(t, c)
}

// smallConfigFrom shrinks c (keeping its connector section) and saves a
// freshly initialised base bundle for it.
func smallConfigFrom(t *testing.T, c *config.Config) *config.Config {
	t.Helper()
	m := &c.Model.MLLM
	m.Hidden, m.Layers, m.Heads, m.KVHeads, m.HeadDim, m.FFN, m.MaxSeqLen = 32, 2, 2, 1, 16, 64, 256
	d := &c.Model.DiT
	d.Hidden, d.Layers, d.Heads, d.KVHeads, d.FFN, d.RefinerLayers, d.ImageSize = 48, 1, 2, 1, 64, 1, 32
	c.Run.Threads = 1
	c.Data.TrainSize = 50
	c.GRPO.PromptsPerStep, c.GRPO.Group, c.GRPO.MaxNewTokens, c.GRPO.ImageSteps = 3, 3, 12, 2
	c.GRPO.LR = 1e-3
	c.FlowGRPO.PromptsPerStep, c.FlowGRPO.Group, c.FlowGRPO.Steps, c.FlowGRPO.LR = 2, 3, 3, 1e-3
	c.FlowGRPO.ClipEps = 0.2
	c.Sampling.DiTSteps, c.Sampling.MaxNewTokens = 4, 12
	c.Schedule = config.Schedule{Cycles: 1, Phases: []config.PhaseSpec{{Phase: config.PhaseMLLMGRPO, Steps: 1}, {Phase: config.PhaseDiTGRPO, Steps: 1}}}
	c.Run.Base = filepath.Join(t.TempDir(), "base")
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	err := testmodel.SaveBase(c, c.Run.Base, 7)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func train(t *testing.T, c *config.Config, st storage.Store, run string, resume bool, stopAfter int) ([]orchestrator.StepReport, error) {
	t.Helper()
	w, err := worker.New(worker.Options{Config: c, Store: st, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var log bytes.Buffer
	defer func() { t.Log(log.String()) }()
	return orchestrator.Train(context.Background(), orchestrator.Options{
		Config: c, Store: st, Run: run, Exec: w, Resume: resume, StopAfter: stopAfter,
		Checkpoints: checkpoint.Versions{Store: st, Base: c.Run.Base}, Progress: &log, RolloutTasks: 2,
	})
}

func TestTrainEmbeddedEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two steps")
	}
	c := smallConfig(t)
	st := storagetest.Local(t)
	ctx := context.Background()
	reps, err := train(t, c, st, "e2e", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 2 {
		t.Fatalf("%d steps committed, want 2", len(reps))
	}
	for i, r := range reps {
		// The first mini-batch sees the policy that sampled: ratio 1.
		if got := r.Metrics["loss/ratio_first"]; math.Abs(got-1) > 1e-4 {
			t.Errorf("step %d (%s): first-mini-batch ratio %.6f, want 1", i+1, r.Plan.Phase, got)
		}
		for _, k := range []string{"reward/mean", "adv/zero_std_ratio", "loss/kl", "learn/grad_norm", "time/rollout_s", "time/learn_s"} {
			if _, ok := r.Metrics[k]; !ok {
				t.Errorf("step %d: no metric %s", i+1, k)
			}
		}
		m, err := storage.ReadManifest(ctx, st, storage.StepManifestKey("e2e", i+1))
		if err != nil {
			t.Fatalf("step %d manifest: %v", i+1, err)
		}
		var kinds []string
		for _, o := range m.Objects {
			kinds = append(kinds, filepath.Base(filepath.Dir(o.Key)))
		}
		// Two rollout shards, two reward shards, one metrics shard.
		if got := strings.Join(kinds, ","); got != "metrics,reward,reward,rollout,rollout" {
			t.Errorf("step %d manifest holds %s", i+1, got)
		}
	}
	rs, err := runs.ReadState(ctx, st, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	if rs.Committed != 2 || rs.PolicyVersion != 2 {
		t.Errorf("run state committed %d version %d, want 2 2", rs.Committed, rs.PolicyVersion)
	}
	// Rollout shards carry what the reward worker and the learner need.
	m, _ := storage.ReadManifest(ctx, st, storage.StepManifestKey("e2e", 2))
	for _, o := range m.Objects {
		if !strings.Contains(o.Key, "/rollout/") {
			continue
		}
		rd, err := shards.Open(ctx, st, m, o.Key, shards.Rollout, shards.ReadOptions{}, "")
		if err != nil {
			t.Fatal(err)
		}
		var r shards.RolloutRow
		if err := rd.Read(&r); err != nil {
			t.Fatal(err)
		}
		rd.Close()
		if r.Phase != "dit-grpo" || len(r.SDELatents) != c.FlowGRPO.Steps+1 || len(r.SDELogProbs) != c.FlowGRPO.Steps || r.Spec == "" || len(r.ImagePNG) == 0 {
			t.Errorf("dit rollout row: phase %s, %d latents, %d log-probs, spec %q, %d image bytes", r.Phase, len(r.SDELatents), len(r.SDELogProbs), r.Spec, len(r.ImagePNG))
		}
	}
	h, err := runs.ReadHistory(ctx, st, "e2e", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Steps) != 2 || len(h.Values["reward/mean"]) != 2 || h.Phases[0] != "mllm-grpo" || h.Phases[1] != "dit-grpo" {
		t.Errorf("history: steps %v phases %v reward %v", h.Steps, h.Phases, h.Values["reward/mean"])
	}
	if err := curves.Write(filepath.Join(t.TempDir(), "curves.png"), h); err != nil {
		t.Error(err)
	}
	checkStepEvents(t, st, "e2e", 2)
	// A second start of the same run without --resume is refused.
	if _, err := train(t, c, st, "e2e", false, 0); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("restarting an existing run: %v, want a refusal naming --resume", err)
	}
}

// TestResumeEqualsUninterrupted kills a run (StopAfter) after its first
// step, resumes it with a fresh worker, and compares its final checkpoint
// with that of an uninterrupted run of the same seed.
func TestResumeEqualsUninterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("trains four steps")
	}
	c := smallConfig(t)
	st := wholeAndStopped(t, c, "whole", "killed")
	// As if killed between step 1's manifest and its run.json, with an
	// event file of step 1 left by another host: the resume repairs the
	// step's commit and its event file.
	rewindRunState(t, st, "killed")
	stale := staleEventsKey(t, st, "killed", 1)
	if err := st.Put(context.Background(), stale, strings.NewReader("left by another host")); err != nil {
		t.Fatal(err)
	}
	if reps, err := train(t, c, st, "killed", true, 0); err != nil || len(reps) != 1 {
		t.Fatalf("resumed half: %d steps, %v", len(reps), err)
	}
	ctx := context.Background()
	// One point per step in each run, the same values (times aside).
	whole, killed := checkStepEvents(t, st, "whole", 2), checkStepEvents(t, st, "killed", 2)
	for step := 1; step <= 2; step++ {
		for _, tag := range []string{"reward/mean", "loss/kl", "learn/grad_norm", "adv/zero_std_ratio"} {
			if a, b := scalar(whole[step], tag), scalar(killed[step], tag); a != b {
				t.Errorf("step %d %s: %v uninterrupted, %v resumed", step, tag, a, b)
			}
		}
	}
	sameCheckpoint(ctx, t, st, "whole", "killed", 2)
}

// wholeAndStopped trains run whole to its end and run stopped for one step
// (as a kill would stop it), in a new store it returns.
func wholeAndStopped(t *testing.T, c *config.Config, whole, stopped string) *storage.Local {
	t.Helper()
	st := storagetest.Local(t)
	if _, err := train(t, c, st, whole, false, 0); err != nil {
		t.Fatal(err)
	}
	if reps, err := train(t, c, st, stopped, false, 1); err != nil || len(reps) != 1 {
		t.Fatalf("run %s, stopped after one step: %d steps, %v", stopped, len(reps), err)
	}
	return st
}

// sameCheckpoint checks that version v of runs a and b (an uninterrupted
// and a resumed run) hold the same weights and optimiser states, byte for
// byte.
func sameCheckpoint(ctx context.Context, t *testing.T, st storage.Store, a, b string, v int) {
	t.Helper()
	dir := t.TempDir()
	da, err := checkpoint.Fetch(ctx, st, a, v, dir)
	if err != nil {
		t.Fatal(err)
	}
	db, err := checkpoint.Fetch(ctx, st, b, v, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"bundle/mllm.safetensors", "bundle/dit.safetensors", "bundle/connector.safetensors", "optim-mllm.safetensors", "optim-dit.safetensors"} {
		x, err1 := os.ReadFile(filepath.Join(da, f))
		y, err2 := os.ReadFile(filepath.Join(db, f))
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("version %d %s differs between run %s and run %s", v, f, a, b)
		}
	}
}

// TestAsyncResumeEqualsUninterrupted trains three GRPO steps and one
// FlowGRPO step with run.max_staleness k = 1 and 2, uninterrupted and
// stopped after step 1 (with step 2 sampling ahead) then resumed: both
// end with the same checkpoint, and every step's rows are at most k
// versions old — exactly as old as the plan says.
func TestAsyncResumeEqualsUninterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("trains sixteen steps")
	}
	ctx := context.Background()
	for _, k := range []int{1, 2} {
		t.Run(fmt.Sprintf("k=%d", k), func(t *testing.T) {
			c := smallConfig(t)
			c.Run.MaxStaleness = k
			c.Schedule.Phases = []config.PhaseSpec{{Phase: config.PhaseMLLMGRPO, Steps: 3}, {Phase: config.PhaseDiTGRPO, Steps: 1}}
			st := wholeAndStopped(t, c, "whole", "stopped")
			if reps, err := train(t, c, st, "stopped", true, 0); err != nil || len(reps) != 3 {
				t.Fatalf("resumed: %d steps, %v", len(reps), err)
			}
			sameCheckpoint(ctx, t, st, "whole", "stopped", 4)
			// Step s samples with max(s − 1 − k, 0) in the GRPO block; the
			// DiT block's step 4 with version 3, which ended that block.
			whole, stopped := checkStepEvents(t, st, "whole", 4), checkStepEvents(t, st, "stopped", 4)
			for step := 1; step <= 4; step++ {
				want := float32(step - 1 - max(step-1-k, 0))
				if step == 4 {
					want = 0
				}
				for _, e := range []tfevents.Event{whole[step], stopped[step]} {
					if got := scalar(e, "staleness/max"); got != want || got > float32(k) {
						t.Errorf("step %d: staleness/max %v, want %v", step, got, want)
					}
				}
				if a, b := scalar(whole[step], "reward/mean"), scalar(stopped[step], "reward/mean"); a != b {
					t.Errorf("step %d reward/mean: %v uninterrupted, %v resumed", step, a, b)
				}
			}
		})
	}
}

// TestTrainAblations runs the paper's two connector ablations end to end:
// no prepadding states, and ALL states instead of those after </think>.
func TestTrainAblations(t *testing.T) {
	if testing.Short() {
		t.Skip("trains")
	}
	for _, tt := range []struct {
		name   string
		prepad int
		states string
	}{
		{"no prepadding", 0, config.StatesCut},
		{"all states", 2, config.StatesAll},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			c.Model.Connector.Prepad, c.Model.Connector.States = tt.prepad, tt.states
			c = smallConfigFrom(t, c)
			st := storagetest.Local(t)
			reps, err := train(t, c, st, "ablation", false, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(reps) != 2 {
				t.Fatalf("%d steps", len(reps))
			}
		})
	}
}

// TestNaNStopsTheRun: a policy whose DiT holds a NaN weight passes the GRPO
// step (the DiT is frozen there and only draws) but makes the FlowGRPO loss
// NaN; the run stops at that step, says which step and which term, and
// keeps the last good checkpoint.
func TestNaNStopsTheRun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains")
	}
	c := smallConfig(t)
	err := libtorch.Run(func() error {
		b, _, err := model.LoadBundle(c.Run.Base, gotch.CPU)
		if err != nil {
			return err
		}
		defer b.Drop()
		libtorch.NoGrad(func() { b.DiT.P.Tensors()[0].MustFill_(ts.FloatScalar(math.NaN())) })
		return b.Save(c.Run.Base, 0, c)
	})
	if err != nil {
		t.Fatal(err)
	}
	st := storagetest.Local(t)
	reps, err := train(t, c, st, "nan", false, 0)
	if err == nil {
		t.Fatal("a NaN loss did not stop the run")
	}
	for _, w := range []string{"step 2 (dit-grpo)", "FlowGRPO", "NaN"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
	if len(reps) != 1 {
		t.Errorf("%d steps committed, want 1", len(reps))
	}
	// The fatal error was not retried: one learn attempt.
	ctx := context.Background()
	rs, err := runs.ReadState(ctx, st, "nan")
	if err != nil || rs.Committed != 1 {
		t.Fatalf("run state %+v, %v: want step 1 committed", rs, err)
	}
	if _, err := checkpoint.Fetch(ctx, st, "nan", 1, t.TempDir()); err != nil {
		t.Errorf("the last good checkpoint is gone: %v", err)
	}
	if _, err := storage.ReadManifest(ctx, st, storage.StepManifestKey("nan", 2)); err == nil {
		t.Error("the NaN step was committed")
	}
}

// TestTrainFromShippedBase starts a short run from base/tiny, the shipped
// base checkpoint, with the tiny configuration: its models load, its
// configuration matches configs/tiny.yaml's model section, and a trained
// base gives rewards with signal (groups whose samples differ), which a
// freshly initialised one does not.
func TestTrainFromShippedBase(t *testing.T) {
	if testing.Short() {
		t.Skip("trains")
	}
	c, err := config.Load(filepath.Join("..", "configs", "tiny.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Run.Base = filepath.Join("..", "base", "tiny")
	c.Run.Threads = 1
	c.GRPO.PromptsPerStep, c.GRPO.Group = 10, 4
	c.FlowGRPO.PromptsPerStep, c.FlowGRPO.Group, c.FlowGRPO.Steps = 2, 3, 4
	c.Schedule = config.Schedule{Cycles: 1, Phases: []config.PhaseSpec{{Phase: config.PhaseMLLMGRPO, Steps: 1}, {Phase: config.PhaseDiTGRPO, Steps: 1}}}
	st := storagetest.Local(t)
	reps, err := train(t, c, st, "from-base", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 2 {
		t.Fatalf("%d steps", len(reps))
	}
	m := reps[0].Metrics
	if m["reward/mean"] <= 0 || m["adv/zero_std_ratio"] >= 1 {
		t.Errorf("GRPO step from the shipped base: reward mean %.3f, zero-std ratio %.2f — want rewards with signal", m["reward/mean"], m["adv/zero_std_ratio"])
	}
	for i, r := range reps {
		if got := r.Metrics["loss/ratio_first"]; math.Abs(got-1) > 1e-4 {
			t.Errorf("step %d: ratio₀ %.6f", i+1, got)
		}
	}
	checkStepEvents(t, st, "from-base", 2)
}

// TestTrainMemoryIsFlat runs four SepGRPO cycles (3 GRPO + 3 FlowGRPO steps
// each) through one worker and checks that what one cycle leaves behind
// does not grow over the next three: the live tensors exactly, and the
// bytes allocated and not freed (C heap, where libtorch keeps tensor
// storage, plus Go's heap) within a small margin — every rollout, reward
// and learn step frees what it creates. The resident set is logged but
// only bounded loosely: under CI's parallel load glibc opens arenas for new
// threads and keeps them fragmented (measured: RSS +44 MiB over three
// cycles at a constant tensor count), which is not something we leak.
func TestTrainMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("24 steps")
	}
	c := smallConfig(t)
	c.Schedule = config.Schedule{Cycles: 4, Phases: []config.PhaseSpec{{Phase: config.PhaseMLLMGRPO, Steps: 3}, {Phase: config.PhaseDiTGRPO, Steps: 3}}}
	st := storagetest.Local(t)
	w, err := worker.New(worker.Options{Config: c, Store: st, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var tensors [5]int
	var rss, held [5]int64
	for cycle := 1; cycle <= 4; cycle++ {
		_, err := orchestrator.Train(context.Background(), orchestrator.Options{
			Config: c, Store: st, Run: "mem", Exec: w, Resume: cycle > 1, StopAfter: 6,
			Checkpoints: checkpoint.Versions{Store: st, Base: c.Run.Base}, Progress: io.Discard, RolloutTasks: 2,
		})
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		rss[cycle] = libtorch.RSS() // collects Go's garbage first
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		tensors[cycle] = libtorch.LiveTensors()
		cheap := libtorch.CHeapInUse()
		held[cycle] = cheap + int64(ms.HeapInuse)
		t.Logf("after cycle %d: %d live tensors, C heap in use %.1f MiB, Go heap in use %.1f MiB, RSS %.1f MiB", cycle, tensors[cycle], mib(cheap), mib(int64(ms.HeapInuse)), mib(rss[cycle]))
	}
	if tensors[4] != tensors[1] {
		t.Errorf("live tensors grew from %d after the first cycle to %d after the fourth", tensors[1], tensors[4])
	}
	// One leaked activation of the small models per step is tens of KiB;
	// a leaked batch of them, or a rollout's images, is MiBs per cycle.
	if grow := held[4] - held[1]; grow > 2<<20 {
		t.Errorf("allocated memory grew %.2f MiB (%.1f → %.1f MiB) over three cycles", mib(grow), mib(held[1]), mib(held[4]))
	}
	if grow := rss[4] - rss[1]; grow > rss[1]/2 {
		t.Errorf("RSS grew %.1f MiB (%.1f → %.1f MiB) over three cycles", mib(grow), mib(rss[1]), mib(rss[4]))
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
