package learner_test

import (
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/dist"
	"github.com/thinkgen/thinkgen/learner"
	"github.com/thinkgen/thinkgen/rollout"
)

// envMeasure turns on TestMeasureDataParallelGRPO (BENCHMARKS.md); its
// ranks also get envRanksDir, envRanksRank and envRanksAddr, and
// envMeasureAlone when they are to step on their own.
const (
	envMeasure      = "THINKGEN_MEASURE_DP"
	envMeasureAlone = "THINKGEN_MEASURE_DP_ALONE"
	envMeasureZero  = "THINKGEN_MEASURE_DP_ZERO"  // the ranks shard the optimiser (optim.zero 1)
	envMeasureSteps = "THINKGEN_MEASURE_DP_STEPS" // steps timed per arm (default 3)
)

// measured is what one learner process timed.
type measured struct {
	Steps     []time.Duration // learner.Step, one GRPO step each
	AllReduce []time.Duration // AllReduceGrads of the MLLM's gradients (ranks only)
	GradBytes int64
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestMeasureDataParallelGRPO times, in one run on configs/tiny.yaml, a
// GRPO learn step of one learner process on one thread, the same step
// shared by two learner ranks of one thread each, and the all-reduce of
// the MLLM's gradients between the two ranks. It only runs with
// THINKGEN_MEASURE_DP=1 and reports; the figures are in BENCHMARKS.md.
func TestMeasureDataParallelGRPO(t *testing.T) {
	if os.Getenv(envMeasure) == "" {
		t.Skip("set " + envMeasure + "=1 to measure")
	}
	steps, reduces := 3, 20
	if n, err := strconv.Atoi(os.Getenv(envMeasureSteps)); err == nil && n > 0 {
		steps = n // the ranks read it too
	}
	c, err := config.Load("../configs/tiny.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv(envRanksDir); dir != "" {
		g, in := joinRank(t, 2, 5*time.Minute)
		var m measured
		var err error
		if os.Getenv(envMeasureZero) != "" {
			c.Optim.Zero = 1
		}
		if os.Getenv(envMeasureAlone) != "" {
			m, err = measure(c, in, g, false, steps, 0)
		} else {
			m, err = measure(c, in, g, true, steps, reduces)
		}
		if err != nil {
			t.Fatal(err)
		}
		writeJSON(t, dir, rankFile(g.Rank()), m)
		return
	}

	rows, err := datasets.Generate(datasets.Options{Seed: 5, Split: datasets.Train}, 0, c.GRPO.PromptsPerStep)
	if err != nil {
		t.Fatal(err)
	}
	in := rankInput{Phase: config.PhaseMLLMGRPO, Seed: 17}
	err = withLearner(c, nil, func(l *learner.Learner) error {
		ids := make([]int64, len(rows))
		for i := range ids {
			ids[i] = int64(i)
		}
		req := rollout.Request{Run: "r", Step: 1, Task: "r0", Attempt: 1, Phase: in.Phase, Rows: rows, GroupIDs: ids, Seed: in.Seed,
			Settings: rollout.SettingsFor(c, in.Phase, in.Seed)}
		in.Rolls, _, err = rollout.MLLM(l.Policy(), req, gotch.CPU)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	in.Rews = spreadRewards(in.Rolls)
	tokens := 0
	for _, r := range in.Rolls {
		tokens += len(r.TokenIDs)
	}

	one, err := measure(c, in, nil, false, steps, 0)
	if err != nil {
		t.Fatal(err)
	}

	dir, wait := startRanks(t, "TestMeasureDataParallelGRPO", in, 2, "-test.timeout=30m")
	wait()
	two := readRanks[measured](t, dir, 2)
	// The same with the optimiser sharded (ZeRO-1): each rank updates
	// half of the parameters.
	t.Setenv(envMeasureZero, "1")
	dir, wait = startRanks(t, "TestMeasureDataParallelGRPO", in, 2, "-test.timeout=30m")
	wait()
	zero := readRanks[measured](t, dir, 2)
	os.Unsetenv(envMeasureZero)
	// Contention: two independent one-thread learners, each taking the
	// whole step at the same time (they meet only at a barrier before each
	// step), against one alone: what two busy processes cost each other
	// on this machine without exchanging a byte.
	t.Setenv(envMeasureAlone, "1")
	dir, wait = startRanks(t, "TestMeasureDataParallelGRPO", in, 2, "-test.timeout=30m")
	wait()
	pair := readRanks[measured](t, dir, 2)
	stepOne := median(one.Steps)
	stepTwo := max(median(two[0].Steps), median(two[1].Steps))
	reduce := max(median(two[0].AllReduce), median(two[1].AllReduce))
	samples := float64(len(in.Rolls))
	t.Logf("GRPO learn step of configs/tiny.yaml: %d samples, %d completion tokens, %d mini-batches", len(in.Rolls), tokens, c.GRPO.MiniBatches)
	t.Logf("1 rank × 1 thread:  step %v (median of %d: %v), %.1f samples/s", stepOne.Round(time.Millisecond), steps, one.Steps, samples/stepOne.Seconds())
	t.Logf("2 ranks × 1 thread: step %v (slower rank's median; rank 0 %v, rank 1 %v), %.1f samples/s, speed-up %.2f×",
		stepTwo.Round(time.Millisecond), two[0].Steps, two[1].Steps, samples/stepTwo.Seconds(), stepOne.Seconds()/stepTwo.Seconds())
	stepZero := max(median(zero[0].Steps), median(zero[1].Steps))
	t.Logf("2 ranks × 1 thread, ZeRO-1: step %v (slower rank's median; rank 0 %v, rank 1 %v), speed-up %.2f×",
		stepZero.Round(time.Millisecond), zero[0].Steps, zero[1].Steps, stepOne.Seconds()/stepZero.Seconds())
	stepPair := max(median(pair[0].Steps), median(pair[1].Steps))
	t.Logf("2 independent processes × 1 thread, each the whole step at once: step %v (slower's median; %v, %v), %.2f× one process's alone",
		stepPair.Round(time.Millisecond), pair[0].Steps, pair[1].Steps, stepPair.Seconds()/stepOne.Seconds())
	t.Logf("all-reduce of the MLLM's gradients (%d bytes) between the 2 ranks: %v (median of %d), %.3f%% of the 1-rank step, %.3f%% of the 2-rank step (%d per step: one per mini-batch)",
		two[0].GradBytes, reduce, reduces, 100*reduce.Seconds()/stepOne.Seconds(), 100*float64(c.GRPO.MiniBatches)*reduce.Seconds()/stepTwo.Seconds(), c.GRPO.MiniBatches)
}

// measure times steps GRPO steps of a fresh learner and then reduces
// all-reduces of its MLLM's gradients. The learner is a rank of g when
// rank is set; otherwise g (if any) only lines the processes' steps up.
func measure(c *config.Config, in rankInput, g *dist.Group, rank bool, steps, reduces int) (measured, error) {
	var m measured
	group := g
	if !rank {
		group = nil
	}
	err := withLearner(c, group, func(l *learner.Learner) error {
		for range steps {
			if g != nil {
				if err := g.Barrier(); err != nil {
					return err
				}
			}
			start := time.Now()
			if _, err := l.Step(in.Phase, in.Seed, in.Rolls, in.Rews); err != nil {
				return err
			}
			m.Steps = append(m.Steps, time.Since(start).Round(time.Millisecond))
		}
		params := l.Policy().MLLM.P.Tensors()
		for _, p := range params {
			m.GradBytes += int64(p.Numel() * p.DType().Size())
		}
		for range reduces {
			if err := g.Barrier(); err != nil {
				return err
			}
			start := time.Now()
			if err := g.AllReduceGrads(params, dist.BucketBytes); err != nil {
				return err
			}
			m.AllReduce = append(m.AllReduce, time.Since(start))
		}
		return nil
	})
	return m, err
}
