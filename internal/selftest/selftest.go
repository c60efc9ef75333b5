// Package selftest checks the libtorch toolchain end to end: it trains a
// small network with gotch autograd and the project's AdamW (package optim,
// the optimiser every trainer uses), saves and reloads it with gotch's
// VarStore, and
// measures whether tensor and process memory stay flat over many steps.
//
// It is what `thinkgen selftest` and `make run` run on a machine before any
// real training, and what the toolchain tests assert on.
package selftest

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/optim"
)

// Options configure a self-test run. The zero value of a field means the
// default in parentheses.
type Options struct {
	// Steps of training (1000). The memory figures compare step Warmup with
	// the last step.
	Steps int
	// Warmup steps before the memory baseline is taken (100).
	Warmup int
	// TargetLoss the training loss must fall below (0.01).
	TargetLoss float64
	// Hidden width of the network (64).
	Hidden int
	// LR of AdamW (3e-3).
	LR float64
	// Seed of the data and of libtorch's generator (1).
	Seed int64
	// Dir receives the checkpoint; empty means a temporary directory that is
	// removed afterwards.
	Dir string
	// Progress, if set, is called after every step.
	Progress func(step int, loss float64)
}

func (o *Options) defaults() {
	o.Steps = cmp.Or(o.Steps, 1000)
	o.Warmup = cmp.Or(o.Warmup, 100)
	o.TargetLoss = cmp.Or(o.TargetLoss, 0.01)
	o.Hidden = cmp.Or(o.Hidden, 64)
	o.LR = cmp.Or(o.LR, 3e-3)
	o.Seed = cmp.Or(o.Seed, 1)
}

// Result holds what a self-test measured.
type Result struct {
	Steps         int
	InitialLoss   float64
	FinalLoss     float64
	StepsToTarget int // first step whose loss was below TargetLoss; 0 if none
	// LiveTensorsBefore/After count gotch tensors alive after the warm-up
	// step and after the last step.
	LiveTensorsBefore, LiveTensorsAfter int
	// RSSBefore/After are the process's resident set sizes at the same points.
	RSSBefore, RSSAfter int64
	// RSS holds the resident set size sampled every SampleEvery steps from the
	// warm-up on; RSSSlope fits a line through it.
	RSS []Sample
	// CheckpointBytes is the size of the saved checkpoint.
	CheckpointBytes int64
	// ReloadMaxDiff is max |f(x) - f'(x)| between the trained network and the
	// one reloaded from its checkpoint; 0 means bit-identical.
	ReloadMaxDiff float64
	Elapsed       time.Duration
}

// Sample is one measurement at a step.
type Sample struct {
	Step  int
	Bytes int64
}

// RSSSlope is the least-squares slope of the sampled resident set size, in
// bytes per step. A fitted slope is steadier than the difference of two
// samples: the allocator's page caching moves single samples by megabytes.
func (r *Result) RSSSlope() float64 {
	n := float64(len(r.RSS))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, s := range r.RSS {
		x, y := float64(s.Step), float64(s.Bytes)
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

// sampleEvery is the interval of RSS samples, in steps.
const sampleEvery = 50

// mlp is a 2 → h → h → 1 tanh network with explicit parameters.
type mlp struct {
	w1, b1, w2, b2, w3, b3 *ts.Tensor
}

func newMLP(vs *nn.VarStore, hidden int64) *mlp {
	root := vs.Root()
	// One Sub per layer, each made fresh from the root: gotch's sibling paths
	// can alias each other's names (see GOTCH.md).
	layer := func(name string, in, out int64) (*ts.Tensor, *ts.Tensor) {
		p := root.Sub(name)
		bound := 1 / math.Sqrt(float64(in))
		w := p.MustNewVar("weight", []int64{out, in}, nn.NewUniformInit(-bound, bound))
		b := p.MustNewVar("bias", []int64{out}, nn.NewUniformInit(-bound, bound))
		return w, b
	}
	m := &mlp{}
	m.w1, m.b1 = layer("l1", 2, hidden)
	m.w2, m.b2 = layer("l2", hidden, hidden)
	m.w3, m.b3 = layer("l3", hidden, 1)
	return m
}

// forward returns f(x) for x of shape [N, 2]; the result has shape [N, 1].
func (m *mlp) forward(x *ts.Tensor) *ts.Tensor {
	h := ts.MustLinear(x, m.w1, m.b1).MustTanh(true)
	h2 := ts.MustLinear(h, m.w2, m.b2).MustTanh(true)
	h.MustDrop()
	y := ts.MustLinear(h2, m.w3, m.b3)
	h2.MustDrop()
	return y
}

// dataset returns n points of the target f(x) = sin(3 x0) cos(2 x1), x in
// [-1, 1]^2, drawn from a seeded Go source.
func dataset(n int, seed int64) (x, y *ts.Tensor) {
	r := rand.New(rand.NewPCG(uint64(seed), 0x7468696e6b67656e))
	xs := make([]float32, 2*n)
	ys := make([]float32, n)
	for i := 0; i < n; i++ {
		a, b := 2*r.Float64()-1, 2*r.Float64()-1
		xs[2*i], xs[2*i+1] = float32(a), float32(b)
		ys[i] = float32(math.Sin(3*a) * math.Cos(2*b))
	}
	x = ts.MustOfSlice(xs).MustView([]int64{int64(n), 2}, true)
	y = ts.MustOfSlice(ys).MustView([]int64{int64(n), 1}, true)
	return x, y
}

// Train runs the self-test. All libtorch work happens on one locked thread.
func Train(ctx context.Context, o Options) (*Result, error) {
	o.defaults()
	if o.Warmup >= o.Steps {
		return nil, fmt.Errorf("selftest: warmup (%d) must be less than steps (%d)", o.Warmup, o.Steps)
	}
	dir := o.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "thinkgen-selftest-")
		if err != nil {
			return nil, fmt.Errorf("selftest: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	res := &Result{Steps: o.Steps}
	start := time.Now()
	err := libtorch.Run(func() error { return train(ctx, o, dir, res) })
	res.Elapsed = time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("selftest: %w", err)
	}
	return res, nil
}

func train(ctx context.Context, o Options, dir string, res *Result) error {
	libtorch.ManualSeed(o.Seed)
	vs := nn.NewVarStore(gotch.CPU)
	defer vs.Destroy()
	net := newMLP(vs, int64(o.Hidden))
	opt := optim.New(vs.TrainableVariables(), optim.Config{WeightDecay: 0.01})
	defer opt.Drop()
	x, y := dataset(256, o.Seed)
	defer x.MustDrop()
	defer y.MustDrop()

	for step := 1; step <= o.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		pred := net.forward(x)
		loss := pred.MustMseLoss(y, int64(ts.ReductionMean), true)
		opt.ZeroGrad()
		loss.MustBackward()
		opt.ClipGradNorm(1.0)
		opt.Step(o.LR)
		l := loss.Float64Values(true)[0]

		if step == 1 {
			res.InitialLoss = l
		}
		if res.StepsToTarget == 0 && l < o.TargetLoss {
			res.StepsToTarget = step
		}
		res.FinalLoss = l
		if step == o.Warmup {
			res.LiveTensorsBefore, res.RSSBefore = libtorch.LiveTensors(), libtorch.RSS()
		}
		if step >= o.Warmup && (step-o.Warmup)%sampleEvery == 0 {
			res.RSS = append(res.RSS, Sample{Step: step, Bytes: libtorch.RSS()})
		}
		if o.Progress != nil {
			o.Progress(step, l)
		}
	}
	res.LiveTensorsAfter, res.RSSAfter = libtorch.LiveTensors(), libtorch.RSS()

	// Save, reload into a differently initialised copy, compare outputs.
	path := filepath.Join(dir, "selftest.ckpt")
	if err := vs.Save(path); err != nil {
		return fmt.Errorf("save checkpoint %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil {
		res.CheckpointBytes = fi.Size()
	}
	libtorch.ManualSeed(o.Seed + 1)
	vs2 := nn.NewVarStore(gotch.CPU)
	defer vs2.Destroy()
	net2 := newMLP(vs2, int64(o.Hidden))
	if err := vs2.Load(path); err != nil {
		return fmt.Errorf("load checkpoint %s: %w", path, err)
	}
	var diff float64
	ts.NoGrad(func() {
		a, b := net.forward(x), net2.forward(x)
		d := a.MustSub(b, true).MustAbs(true).MustMax(true)
		diff = d.Float64Values(true)[0]
		b.MustDrop()
	})
	res.ReloadMaxDiff = diff
	return nil
}
