package learner_test

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/learner"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/optim"
)

// dtypeStep is one Step of a fresh learner in a model.dtype: the trained
// parameters' gradients (after the clip), their float32 master weights
// before and after the update, and the metrics.
type dtypeStep struct {
	grads, before, after []float64
	metrics              map[string]float64
}

func stepInDType(in rankInput, dtype string) (dtypeStep, error) {
	var out dtypeStep
	c := ranksConfig()
	c.Model.DType = dtype
	err := withLearner(c, nil, func(l *learner.Learner) error {
		var err error
		out.before = masters(l, in.Phase)
		if out.metrics, err = l.Step(in.Phase, in.Seed, in.Rolls, in.Rews); err != nil {
			return err
		}
		out.after = masters(l, in.Phase)
		for _, ps := range trainedParams(l, in.Phase) {
			for _, p := range ps.Tensors() {
				out.grads = append(out.grads, p.MustGrad(false).Float64Values(true)...)
			}
		}
		return nil
	})
	return out, err
}

// masters returns the float32 weights the phase's optimiser updates: its
// masters of half-precision parameters, the parameters themselves when
// they are float32.
func masters(l *learner.Learner, phase config.Phase) []float64 {
	opt := l.Optimizers()[1].Opt // "dit": connector and DiT
	if phase == config.PhaseMLLMGRPO {
		opt = l.Optimizers()[0].Opt
	}
	state, _ := opt.State()
	var out []float64
	i := 0
	for _, ps := range trainedParams(l, phase) {
		for _, p := range ps.Tensors() {
			if w, ok := state[fmt.Sprintf("w.%d", i)]; ok {
				out = append(out, w.Float64Values(false)...)
			} else {
				out = append(out, p.Float64Values(false)...)
			}
			i++
		}
	}
	return out
}

// TestBFloat16StepTracksFloat32: one GRPO and one FlowGRPO step of a
// bfloat16 learner against the same step in float32, from the same
// weights and rollouts. bfloat16 keeps 8 significant bits (a relative
// rounding of 2⁻⁹ ≈ 0.002 per value); the gradients go through a few
// layers of rounded matmuls and sums, so their relative L2 error is
// expected at a few percent (measured 0.5–0.7%, asserted < 3%), and the losses (computed in float32 from
// log-probs or velocities of the bfloat16 models) to agree to ~1e-2. The
// first AdamW step moves every weight by ±lr·sign(gradient), so the
// update is compared by direction (cosine) rather than element-wise.
func TestBFloat16StepTracksFloat32(t *testing.T) {
	cases := []struct {
		phase   config.Phase
		metrics []string
	}{
		{config.PhaseMLLMGRPO, []string{"loss/total", "loss/pg", "loss/ratio_mean"}},
		{config.PhaseDiTGRPO, []string{"loss/total", "loss/policy", "loss/ratio_mean"}},
	}
	for _, c := range cases {
		t.Run(string(c.phase), func(t *testing.T) {
			in := ranksInput(t, c.phase)
			f32, err := stepInDType(in, "float32")
			if err != nil {
				t.Fatal(err)
			}
			bf16, err := stepInDType(in, "bfloat16")
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range c.metrics {
				d := math.Abs(bf16.metrics[k] - f32.metrics[k])
				t.Logf("%s: float32 %.6g bfloat16 %.6g (|Δ| %.2g)", k, f32.metrics[k], bf16.metrics[k], d)
				if d > 1e-2*math.Max(1, math.Abs(f32.metrics[k])) {
					t.Errorf("%s: bfloat16 %g, float32 %g", k, bf16.metrics[k], f32.metrics[k])
				}
			}
			ge := relL2(bf16.grads, f32.grads)
			du, dw := diff(bf16.after, bf16.before), diff(f32.after, f32.before)
			cs := cosine(du, dw)
			t.Logf("gradient relative L2 error %.3g, update cosine %.4f, %d weights", ge, cs, len(du))
			if ge > 0.03 {
				t.Errorf("bfloat16 gradients differ from float32 by %.3g (relative L2, > 0.03)", ge)
			}
			if cs < 0.98 {
				t.Errorf("bfloat16 update has cosine %.4f with float32's (< 0.98)", cs)
			}
		})
	}
}

func diff(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

func relL2(got, want []float64) float64 {
	var d, n float64
	for i := range want {
		d += (got[i] - want[i]) * (got[i] - want[i])
		n += want[i] * want[i]
	}
	return math.Sqrt(d / n)
}

func cosine(a, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	return ab / math.Sqrt(aa*bb)
}

// TestLossScale drives float16's dynamic loss scale on float32 models: a
// power-of-two scale is undone exactly (the step equals the unscaled one
// bit for bit), and a scale that overflows skips the step, leaves the
// weights alone, halves the scale and says so in the metrics.
func TestLossScale(t *testing.T) {
	in := ranksInput(t, config.PhaseMLLMGRPO)
	plain, err := stepInDType(in, "float32")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		scale      float64
		skipped    float64
		want       []float64 // the weights after the step
		scaleAfter float64
	}{
		{"exact", 1024, 0, plain.after, 1024},
		{"overflow", 1e39, 1, plain.before, 5e38},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var after []float64
			var m map[string]float64
			err := withLearner(ranksConfig(), nil, func(l *learner.Learner) error {
				var err error
				learner.SetLossScale(l, &optim.LossScale{Scale: c.scale, Interval: 2000})
				if m, err = l.Step(in.Phase, in.Seed, in.Rolls, in.Rews); err != nil {
					return err
				}
				after = masters(l, in.Phase)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if m["learn/skipped_steps"] != c.skipped || m["learn/loss_scale"] != c.scaleAfter {
				t.Errorf("metrics skipped_steps %g loss_scale %g, want %g and %g", m["learn/skipped_steps"], m["learn/loss_scale"], c.skipped, c.scaleAfter)
			}
			for i := range after {
				if after[i] != c.want[i] {
					t.Fatalf("weight %d = %g, want %g", i, after[i], c.want[i])
				}
			}
		})
	}
}

// TestMeasureMixedPrecisionMemory reports, for float32 and bfloat16, the
// bytes a learner of configs/tiny.yaml holds (policy and reference
// weights, the policy's gradients, both optimisers' masters and moments:
// tensor sizes, exact) and the peak resident-set growth of one GRPO learn
// step of the small test models. It only runs with THINKGEN_MEASURE_DP=1
// and reports; the figures are in BENCHMARKS.md.
func TestMeasureMixedPrecisionMemory(t *testing.T) {
	if os.Getenv(envMeasure) == "" {
		t.Skip("set " + envMeasure + "=1 to measure")
	}
	tiny, err := config.Load("../configs/tiny.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	in := ranksInput(t, config.PhaseMLLMGRPO)
	for _, dt := range []string{"float32", "bfloat16"} {
		tiny.Model.DType = dt
		err := withLearner(tiny, nil, func(l *learner.Learner) error {
			var weights, refWeights, grads, opt int64
			for _, p := range []*model.Params{l.Policy().MLLM.P, l.Policy().Connector.P, l.Policy().DiT.P} {
				weights += p.Bytes()
				for _, x := range p.Tensors() {
					g := x.MustGrad(false)
					grads += int64(g.Numel()) * int64(g.DType().Size())
					g.MustDrop()
				}
			}
			for _, p := range []*model.Params{l.Ref().MLLM.P, l.Ref().Connector.P, l.Ref().DiT.P} {
				refWeights += p.Bytes()
			}
			for _, o := range l.Optimizers() {
				opt += o.Opt.Bytes()
			}
			t.Logf("%s tiny.yaml learner: policy %d B, reference %d B, gradients %d B, optimisers %d B, total %d B",
				dt, weights, refWeights, grads, opt, weights+refWeights+grads+opt)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		small := ranksConfig()
		small.Model.DType = dt
		small.GRPO.Epochs, small.GRPO.MiniBatches = 1, 1
		err = withLearner(small, nil, func(l *learner.Learner) error {
			if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
				return fmt.Errorf("reset the peak RSS: %w", err)
			}
			before := libtorch.RSS()
			if _, err := l.Step(in.Phase, in.Seed, in.Rolls, in.Rews); err != nil {
				return err
			}
			t.Logf("%s GRPO learn step (test models): peak RSS growth %d B", dt, peakRSS(t)-before)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// peakRSS reads the process's peak resident set size (VmHWM) in bytes.
func peakRSS(t *testing.T) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
