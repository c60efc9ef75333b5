package learner_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/dist"
	"github.com/thinkgen/thinkgen/internal/childproc"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/testmodel"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/learner"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/rollout"
	"github.com/thinkgen/thinkgen/shards"
)

// The ranks of TestDataParallelStepMatchesOneLearner are the test binary
// itself, told its part by these variables.
const (
	envRanksDir  = "THINKGEN_LEARNER_RANKS_DIR"
	envRanksRank = "THINKGEN_LEARNER_RANKS_RANK"
	envRanksAddr = "THINKGEN_LEARNER_RANKS_ADDR"
)

// rankStep is what one learner saw and did in one Step, read back for the
// comparison: the trained model's gradients (after the clip) and
// parameters (after the update), and the step's metrics.
type rankStep struct {
	Grads   [][]float64
	Params  [][]float64
	Metrics map[string]float64
}

// rankInput is one Step's arguments, shared by every learner.
type rankInput struct {
	Phase config.Phase
	Seed  uint64
	Rolls []shards.RolloutRow
	Rews  []shards.RewardRow
}

// ranksConfig is the small configuration every learner of the test uses:
// MiniBatches 1, so the gradients after Step are the whole step's.
func ranksConfig() *config.Config {
	c := config.Default()
	testmodel.Shrink(c)
	c.GRPO.Group, c.GRPO.MaxNewTokens, c.GRPO.MiniBatches, c.GRPO.Epochs = 2, 8, 1, 1
	f := &c.FlowGRPO
	f.Group, f.Steps, f.TimestepFraction, f.MiniBatches, f.CFG = 2, 4, 0.5, 1, 1
	return c
}

// trainedParams are the parameters the phase trains: the model's LoRA
// adapters when it has them.
func trainedParams(l *learner.Learner, phase config.Phase) []*model.Params {
	b := l.Policy()
	if phase == config.PhaseMLLMGRPO {
		if b.MLLM.Adapters != nil {
			return []*model.Params{b.MLLM.Adapters.P}
		}
		return []*model.Params{b.MLLM.P}
	}
	if b.DiT.Adapters != nil {
		return []*model.Params{b.DiT.Adapters.P}
	}
	return []*model.Params{b.Connector.P, b.DiT.P}
}

// withLearner runs fn inside libtorch.Run (one thread) on a fresh learner
// of c (seed 3), made a rank of g when g is not nil.
func withLearner(c *config.Config, g *dist.Group, fn func(*learner.Learner) error) error {
	return withLearnerOf(func() (*learner.Learner, error) { return newLearner(c) }, g, fn)
}

// withLearnerOf is withLearner on the learner mk makes.
func withLearnerOf(mk func() (*learner.Learner, error), g *dist.Group, fn func(*learner.Learner) error) error {
	return libtorch.Run(func() error {
		if err := libtorch.SetThreads(1); err != nil {
			return err
		}
		l, err := mk()
		if err != nil {
			return err
		}
		defer l.Close()
		if g != nil {
			l.SetGroup(g)
		}
		return fn(l)
	})
}

// stepLearner runs one Step on a fresh learner (seed 3), as one rank of g
// when g is not nil, and returns what it saw.
func stepLearner(in rankInput, g *dist.Group) (rankStep, error) {
	return stepLearnerWith(ranksConfig(), in, g)
}

// stepLearnerWith is stepLearner with configuration c.
func stepLearnerWith(c *config.Config, in rankInput, g *dist.Group) (rankStep, error) {
	var out rankStep
	err := withLearner(c, g, func(l *learner.Learner) (err error) {
		if out.Metrics, err = l.Step(in.Phase, in.Seed, in.Rolls, in.Rews); err != nil {
			return err
		}
		for _, ps := range trainedParams(l, in.Phase) {
			for _, p := range ps.Tensors() {
				out.Params = append(out.Params, p.Float64Values(false))
				out.Grads = append(out.Grads, p.MustGrad(false).Float64Values(true))
			}
		}
		return nil
	})
	return out, err
}

// ranksInput makes one step's rollouts of the phase with a fresh policy,
// and rewards that differ within every group.
func ranksInput(t *testing.T, phase config.Phase) rankInput {
	t.Helper()
	rows, err := datasets.Generate(datasets.Options{Seed: 2, Split: datasets.Train}, 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	in := rankInput{Phase: phase, Seed: 11}
	c := ranksConfig()
	err = withLearner(c, nil, func(l *learner.Learner) (err error) {
		req := rollout.Request{Run: "r", Step: 1, Task: "r0", Attempt: 1, Phase: phase, Rows: rows, GroupIDs: []int64{0, 1, 2, 3}, Seed: in.Seed,
			Settings: rollout.SettingsFor(c, phase, in.Seed)}
		if phase == config.PhaseMLLMGRPO {
			in.Rolls, _, err = rollout.MLLM(l.Policy(), req, gotch.CPU)
		} else {
			in.Rolls, _, err = rollout.DiT(l.Policy(), req, gotch.CPU)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	in.Rews = spreadRewards(in.Rolls)
	return in
}

// spreadRewards rewards the rollouts with values in [0, 1] that differ
// within every group of up to 7 samples.
func spreadRewards(rolls []shards.RolloutRow) []shards.RewardRow {
	var rews []shards.RewardRow
	for _, r := range rolls {
		reward := float32((int(r.GroupID)*3+int(r.SampleIndex)*5)%7) / 6
		rews = append(rews, shards.RewardRow{GroupID: r.GroupID, SampleIndex: r.SampleIndex, Scenario: r.Scenario, Reward: reward})
	}
	return rews
}

// TestDataParallelStepMatchesOneLearner: two learner ranks, each training
// on half of the mini-batch with the gradients all-reduced through a Gloo
// group, hold the gradients (and take the update, and report the metrics)
// of one learner on the whole mini-batch, within 1e-6: for GRPO's
// token-mean and FlowGRPO's sample-mean alike.
func TestDataParallelStepMatchesOneLearner(t *testing.T) {
	if dir := os.Getenv(envRanksDir); dir != "" {
		g, in := joinRank(t, 2, 2*time.Minute)
		out, err := stepLearner(in, g)
		if err != nil {
			t.Fatal(err)
		}
		writeJSON(t, dir, rankFile(g.Rank()), out)
		return
	}
	eachPhaseOnTwoRanks(t, "TestDataParallelStepMatchesOneLearner", func(t *testing.T, in rankInput, dir string, wait func()) {
		one, err := stepLearner(in, nil)
		wait()
		if err != nil {
			t.Fatal(err)
		}
		got := readRanks[rankStep](t, dir, 2)
		if len(one.Metrics) == 0 || one.Metrics["learn/grad_norm"] == 0 {
			t.Fatalf("one learner's step has no gradient (metrics %v): the comparison would be empty", one.Metrics)
		}
		for r := range got {
			compareValues(t, fmt.Sprintf("rank %d gradient", r), got[r].Grads, one.Grads, 1e-6)
			compareValues(t, fmt.Sprintf("rank %d parameter", r), got[r].Params, one.Params, 1e-6)
			for k, want := range one.Metrics {
				if v, ok := got[r].Metrics[k]; !ok || math.Abs(v-want) > 1e-6*max(1, math.Abs(want)) {
					t.Errorf("rank %d metric %s = %v, one learner %v", r, k, v, want)
				}
			}
		}
		// The ranks hold bit-identical gradients: they all-reduced them.
		compareValues(t, "rank 1 vs rank 0 gradient", got[1].Grads, got[0].Grads, 0)
		compareValues(t, "rank 1 vs rank 0 parameter", got[1].Params, got[0].Params, 0)
		t.Logf("grad norm %.6g, loss %.6g over %d samples", one.Metrics["learn/grad_norm"], one.Metrics["loss/total"], len(in.Rolls))
	})
}

// eachPhaseOnTwoRanks runs fn for GRPO and FlowGRPO with the phase's
// input, which two ranks (startRanks) running test read from dir.
func eachPhaseOnTwoRanks(t *testing.T, test string, fn func(t *testing.T, in rankInput, dir string, wait func())) {
	if testing.Short() {
		t.Skip("trains in three processes")
	}
	for _, phase := range []config.Phase{config.PhaseMLLMGRPO, config.PhaseDiTGRPO} {
		t.Run(string(phase), func(t *testing.T) {
			in := ranksInput(t, phase)
			dir, wait := startRanks(t, test, in, 2)
			fn(t, in, dir, wait)
		})
	}
}

// startRanks starts n processes of the test binary running test (with
// args) as the ranks of a group at a free loopback address, each told its
// rank and dir, where it finds in (joinRank); the returned wait fails the
// test when a rank fails.
func startRanks(t *testing.T, test string, in rankInput, n int, args ...string) (dir string, wait func()) {
	t.Helper()
	dir = t.TempDir()
	writeJSON(t, dir, "input.json", in)
	addr := testutil.FreeAddr(t)
	var ranks []*exec.Cmd
	var outs []*strings.Builder
	for r := range n {
		c := exec.Command(os.Args[0], append([]string{"-test.run=^" + test + "$", "-test.count=1"}, args...)...)
		c.Env = append(os.Environ(), envRanksDir+"="+dir, envRanksRank+"="+strconv.Itoa(r), envRanksAddr+"="+addr,
			"OMP_NUM_THREADS=1", "OMP_WAIT_POLICY=PASSIVE")
		out := &strings.Builder{}
		c.Stdout, c.Stderr = out, out
		release, err := childproc.Start(c, syscall.SIGKILL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(release)
		ranks, outs = append(ranks, c), append(outs, out)
	}
	return dir, func() {
		t.Helper()
		for r, c := range ranks {
			if err := c.Wait(); err != nil {
				t.Fatalf("rank %d: %v\n%s", r, err, outs[r])
			}
		}
	}
}

// joinRank is a rank of startRanks: it joins the group of world ranks
// with the collective timeout and returns it with the input.
func joinRank(t *testing.T, world int, timeout time.Duration) (*dist.Group, rankInput) {
	t.Helper()
	var in rankInput
	testutil.ReadJSON(t, filepath.Join(os.Getenv(envRanksDir), "input.json"), &in)
	r, err := strconv.Atoi(os.Getenv(envRanksRank))
	if err != nil {
		t.Fatal(err)
	}
	g, err := dist.New(dist.Config{Addr: os.Getenv(envRanksAddr), World: world, Rank: r, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g, in
}

// readRanks reads the results the n ranks of startRanks wrote to dir
// (writeJSON(t, dir, rankFile(rank), result)).
func readRanks[T any](t *testing.T, dir string, n int) []T {
	t.Helper()
	out := make([]T, n)
	for r := range out {
		testutil.ReadJSON(t, filepath.Join(dir, rankFile(r)), &out[r])
	}
	return out
}

// writeJSON writes v as JSON to dir/name.
func writeJSON(t *testing.T, dir, name string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// rankFile is the file rank r of startRanks writes its result to.
func rankFile(r int) string { return fmt.Sprintf("rank-%d.json", r) }

// compareValues fails the test at the first of got's values further than
// tol from want's.
func compareValues(t *testing.T, what string, got, want [][]float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d tensors, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, [2]int{}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s %d: %d values, want %d", what, i, len(got[i]), len(want[i]))
		}
		for j := range want[i] {
			if d := math.Abs(got[i][j] - want[i][j]); d > worst || math.IsNaN(d) {
				worst, at = d, [2]int{i, j}
			}
		}
	}
	if worst > tol || math.IsNaN(worst) {
		t.Errorf("%s: tensor %d value %d is %v, want %v (differs by %.3g, tolerance %g)",
			what, at[0], at[1], got[at[0]][at[1]], want[at[0]][at[1]], worst, tol)
	}
}
