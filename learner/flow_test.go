package learner

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// flowRef is an independent float64 reference of FlowGRPOLoss with
// hand-derived gradients:
//
//	L = (1/B) Σ_b max(−A·r, −A·clip(r)) + β/(B·D·2σ²) Σ_b Σ_k (μ_bk − μref_bk)²
//	dL/dlogp_b = −A·r/B where the clip is not active (dr/dlogp = r), else 0;
//	             the clip is active iff A > 0 and r > 1+ε, or A < 0 and r < 1−ε
//	dL/dμ_bk  = β·(μ_bk − μref_bk)/(B·D·σ²)
type flowRef struct {
	loss, policy, kl, ratio, clipFrac, dual, approxKL, clamped float64
	gLogp                                                      []float64
	gMean                                                      [][]float64
}

func referenceFlow(logp, old []float64, mean, ref [][]float64, sigma float64, adv []float64, c FlowConfig) flowRef {
	var o flowRef
	n := float64(len(logp))
	o.gLogp = make([]float64, len(logp))
	for b := range logp {
		a := adv[b]
		if c.AdvClamp > 0 && math.Abs(a) > c.AdvClamp {
			a = math.Copysign(c.AdvClamp, a)
			o.clamped += 1 / n
		}
		lr := f32(logp[b]) - f32(old[b])
		r := math.Exp(lr)
		rc := math.Min(math.Max(r, 1-c.ClipRange), 1+c.ClipRange)
		pg := math.Max(-a*r, -a*rc)
		dual := c.ClipRatioC > 0 && a < 0 && pg > -a*c.ClipRatioC
		if dual { // the dual clip: a constant, no gradient
			pg = -a * c.ClipRatioC
			o.dual += 1 / n
		}
		o.policy += pg / n
		o.ratio += r / n
		o.approxKL += 0.5 * lr * lr / n
		if math.Abs(r-1) > c.ClipRange {
			o.clipFrac += 1 / n
		}
		if !((a > 0 && r > 1+c.ClipRange) || (a < 0 && r < 1-c.ClipRange) || dual) {
			o.gLogp[b] = -a * r / n
		}
	}
	if ref != nil {
		o.gMean = make([][]float64, len(mean))
		for b := range mean {
			d := float64(len(mean[b]))
			o.gMean[b] = make([]float64, len(mean[b]))
			for k := range mean[b] {
				diff := f32(mean[b][k]) - f32(ref[b][k])
				o.kl += diff * diff / d / (2 * sigma * sigma) / n
				o.gMean[b][k] = c.Beta * diff / (n * d * sigma * sigma)
			}
		}
	}
	o.loss = o.policy + c.Beta*o.kl
	return o
}

// latent returns B deterministic [2, 2, 2] latents, flattened per sample.
func latent(b int, scale, phase float64) [][]float64 {
	out := make([][]float64, b)
	for i := range out {
		out[i] = make([]float64, 8)
		for k := range out[i] {
			out[i][k] = scale * math.Sin(float64(8*i+k)+phase)
		}
	}
	return out
}

func latentTensor(x [][]float64) *ts.Tensor {
	return matrix(x).MustView([]int64{int64(len(x)), 2, 2, 2}, true)
}

func vector(x []float64) *ts.Tensor {
	f := make([]float32, len(x))
	for i := range x {
		f[i] = float32(x[i])
	}
	return ts.MustOfSlice(f)
}

func addVec(x []float64, d []float64) []float64 {
	out := make([]float64, len(x))
	for i := range x {
		out[i] = x[i] + d[i]
	}
	return out
}

var (
	flowLogp = []float64{-1.31, -0.87, -1.02, -1.55}
	flowMean = latent(4, 0.5, 1)
	flowRefM = latent(4, 0.45, 1.2)
	sigmaT   = 0.7 * math.Sqrt(0.6/0.4) // a = 0.7 at σ = 0.6
)

var flowLossTests = []struct {
	name     string
	old      []float64
	adv      []float64
	ref      [][]float64
	cfg      FlowConfig
	clipFrac float64 // counted by hand
	dual     float64
	clamped  float64
	policy   float64 // by hand, NaN when not worked out
}{
	{
		// r = 1 for all: policy = −mean(A) = −(0.8 − 0.5 + 0.3 + 0.2)/4 = −0.2.
		name: "on-policy", old: flowLogp, adv: []float64{0.8, -0.5, 0.3, 0.2}, ref: flowRefM,
		cfg: FlowConfig{ClipRange: 1e-4, AdvClamp: 5, Beta: 0.04}, policy: -0.2,
	},
	{
		// Log-ratios 0.2, −0.2, 0.05, −0.2 with A = +1, −1, +0.5, +1 and ε = 0.1:
		// r = 1.2214 (A > 0: clipped), 0.8187 (A < 0: clipped), 1.0513 (inside),
		// 0.8187 (A > 0: max picks −A·r, not clipped). |r − 1| > ε: 3 of 4.
		// policy = (−1.1 + 0.9 − 0.5·1.0513 − 0.8187)/4.
		name: "clipping", old: addVec(flowLogp, []float64{-0.2, 0.2, -0.05, 0.2}), adv: []float64{1, -1, 0.5, 1}, ref: flowRefM,
		cfg: FlowConfig{ClipRange: 0.1, AdvClamp: 5, Beta: 0.04}, clipFrac: 3.0 / 4,
		policy: (-1.1 + 0.9 - 0.5*math.Exp(0.05) - math.Exp(-0.2)) / 4,
	},
	{
		// A = 7, −6, 2, 5 clamped to ±5: 2 of 4 clamped (5 itself is not);
		// on-policy policy = −(5 − 5 + 2 + 5)/4 = −7/4.
		name: "advantage clamp", old: flowLogp, adv: []float64{7, -6, 2, 5}, ref: flowRefM,
		cfg: FlowConfig{ClipRange: 1e-4, AdvClamp: 5, Beta: 0.04}, clamped: 2.0 / 4, policy: -7.0 / 4,
	},
	{
		// Log-ratios ln 5, ln 2, ln 4, 0 with A = −1, −1, +1, −0.5 and c = 3:
		// r = 5 with A < 0 is capped at 3 (dual); r = 2 < 3 keeps −A·r = 2;
		// r = 4 with A > 0 is the high clip, −1.1; r = 1 gives 0.5.
		// policy = (3 + 2 − 1.1 + 0.5)/4; dual: 1 of 4.
		name: "dual clip", old: addVec(flowLogp, []float64{-math.Log(5), -math.Log(2), -math.Log(4), 0}), adv: []float64{-1, -1, 1, -0.5},
		ref: flowRefM, cfg: FlowConfig{ClipRange: 0.1, AdvClamp: 5, Beta: 0.04, ClipRatioC: 3},
		clipFrac: 3.0 / 4, dual: 1.0 / 4, policy: (3 + 2 - 1.1 + 0.5) / 4,
	},
	{
		// AdvClamp 0 leaves A alone: −(7 − 6 + 2 + 5)/4 = −2.
		name: "no clamp", old: flowLogp, adv: []float64{7, -6, 2, 5}, ref: flowRefM,
		cfg: FlowConfig{ClipRange: 1e-4, Beta: 0.04}, policy: -2,
	},
	{
		name: "beta 0 without reference", old: addVec(flowLogp, []float64{0.01, -0.02, 0, 0.03}), adv: []float64{0.5, -0.5, 1, -1},
		cfg: FlowConfig{ClipRange: 0.1, AdvClamp: 5}, policy: math.NaN(),
	},
}

func TestFlowGRPOLoss(t *testing.T) {
	for _, tc := range flowLossTests {
		t.Run(tc.name, func(t *testing.T) {
			runScoped(t, func(s *libtorch.Scope) error {
				logp := s.Add(vector(flowLogp))
				logp.MustRequiresGrad_(true)
				in := FlowInput{LogProb: logp, OldLogProb: s.Add(vector(tc.old)), Advantages: tc.adv, SigmaT: sigmaT}
				var mean *ts.Tensor
				if tc.ref != nil {
					mean = s.Add(latentTensor(flowMean))
					mean.MustRequiresGrad_(true)
					in.Mean, in.RefMean = mean, s.Add(latentTensor(tc.ref))
				}
				loss, st, err := FlowGRPOLoss(in, tc.cfg)
				if err != nil {
					return err
				}
				s.Add(loss)
				want := referenceFlow(flowLogp, tc.old, flowMean, tc.ref, sigmaT, tc.adv, tc.cfg)
				checks := []struct {
					name      string
					got, want float64
				}{
					{"Loss", st.Loss, want.loss}, {"loss tensor", loss.Float64Values()[0], want.loss},
					{"PolicyLoss", st.PolicyLoss, want.policy}, {"KL", st.KL, want.kl},
					{"RatioMean", st.RatioMean, want.ratio}, {"ClipFrac", st.ClipFrac, want.clipFrac},
					{"ApproxKL", st.ApproxKL, want.approxKL}, {"AdvClampedFrac", st.AdvClampedFrac, want.clamped},
					{"ClipFrac by hand", st.ClipFrac, tc.clipFrac}, {"AdvClampedFrac by hand", st.AdvClampedFrac, tc.clamped},
					{"DualClipFrac", st.DualClipFrac, want.dual}, {"DualClipFrac by hand", st.DualClipFrac, tc.dual},
				}
				if !math.IsNaN(tc.policy) {
					checks = append(checks, struct {
						name      string
						got, want float64
					}{"PolicyLoss by hand", st.PolicyLoss, tc.policy})
				}
				for _, f := range checks {
					if math.Abs(f.got-f.want) > 1e-6 {
						t.Errorf("%s = %.9g, want %.9g", f.name, f.got, f.want)
					}
				}
				if tc.ref != nil && !(st.KL > 0) {
					t.Errorf("KL = %g with different means, want > 0", st.KL)
				}
				if tc.ref == nil && st.KL != 0 {
					t.Errorf("KL = %g without a reference, want 0", st.KL)
				}
				loss.MustBackward()
				g := s.Add(logp.MustGrad(false)).Float64Values()
				for b := range g {
					if math.Abs(g[b]-want.gLogp[b]) > 1e-6 || (want.gLogp[b] == 0 && g[b] != 0) {
						t.Errorf("dL/dlogp[%d] = %.9g, want %.9g", b, g[b], want.gLogp[b])
					}
				}
				if mean != nil {
					gm := s.Add(mean.MustGrad(false)).Float64Values()
					for b := range want.gMean {
						for k := range want.gMean[b] {
							if got := gm[b*8+k]; math.Abs(got-want.gMean[b][k]) > 1e-5*math.Abs(want.gMean[b][k])+1e-10 {
								t.Errorf("dL/dμ[%d][%d] = %.9g, want %.9g", b, k, got, want.gMean[b][k])
							}
						}
					}
				}
				return nil
			})
		})
	}
}

func TestFlowGRPOOnPolicyRatioIsOne(t *testing.T) {
	runScoped(t, func(s *libtorch.Scope) error {
		logp := s.Add(vector(flowLogp))
		in := FlowInput{LogProb: logp, OldLogProb: logp, Advantages: []float64{1, -1, 2, -2}}
		loss, st, err := FlowGRPOLoss(in, FlowConfig{ClipRange: 1e-4})
		if err != nil {
			return err
		}
		loss.MustDrop()
		if st.RatioMean != 1 || st.ClipFrac != 0 || st.ApproxKL != 0 {
			t.Errorf("on-policy: ratio mean %v (want exactly 1), clip fraction %v, approx KL %v", st.RatioMean, st.ClipFrac, st.ApproxKL)
		}
		return nil
	})
}

func TestFlowGRPOLossRejectsBadInput(t *testing.T) {
	runScoped(t, func(s *libtorch.Scope) error {
		logp := s.Add(vector(flowLogp))
		mean := s.Add(latentTensor(flowMean))
		ok := FlowInput{LogProb: logp, OldLogProb: logp, Mean: mean, RefMean: mean, SigmaT: 0.5, Advantages: []float64{1, 2, 3, 4}}
		cfg := FlowConfig{ClipRange: 1e-4, AdvClamp: 5, Beta: 0.04}
		tests := []struct {
			name string
			edit func(in *FlowInput, c *FlowConfig)
			want string
		}{
			{"clip 0", func(in *FlowInput, c *FlowConfig) { c.ClipRange = 0 }, "clip_range"},
			{"negative clamp", func(in *FlowInput, c *FlowConfig) { c.AdvClamp = -1 }, "adv_clamp"},
			{"negative beta", func(in *FlowInput, c *FlowConfig) { c.Beta = -1 }, "beta"},
			{"no LogProb", func(in *FlowInput, c *FlowConfig) { in.LogProb = nil }, "LogProb is missing"},
			{"2-D LogProb", func(in *FlowInput, c *FlowConfig) { in.LogProb = s.Add(logp.MustView([]int64{2, 2}, false)) }, "LogProb has shape [2 2]"},
			{"OldLogProb shape", func(in *FlowInput, c *FlowConfig) { in.OldLogProb = s.Add(vector([]float64{1, 2})) }, "OldLogProb has shape [2], want [4]"},
			{"advantages count", func(in *FlowInput, c *FlowConfig) { in.Advantages = []float64{1} }, "1 values for a batch of 4"},
			{"advantage Inf", func(in *FlowInput, c *FlowConfig) { in.Advantages = []float64{1, 2, math.Inf(1), 4} }, "Advantages[2]"},
			{"Mean missing", func(in *FlowInput, c *FlowConfig) { in.Mean = nil }, "Mean is missing"},
			{"RefMean missing", func(in *FlowInput, c *FlowConfig) { in.RefMean = nil }, "RefMean is missing (Beta = 0.04)"},
			{"RefMean shape", func(in *FlowInput, c *FlowConfig) { in.RefMean = s.Add(mean.MustView([]int64{4, 8}, false)) }, "RefMean has shape [4 8], want [4 2 2 2]"},
			{"Mean batch", func(in *FlowInput, c *FlowConfig) { in.Mean = s.Add(mean.MustView([]int64{2, 16}, false)) }, "Mean has shape [2 16], want [4, ...]"},
			{"SigmaT 0", func(in *FlowInput, c *FlowConfig) { in.SigmaT = 0 }, "SigmaT"},
		}
		for _, tc := range tests {
			in, c := ok, cfg
			tc.edit(&in, &c)
			loss, _, err := FlowGRPOLoss(in, c)
			checkRejected(t, tc.name, loss, err, tc.want)
		}
		return nil
	})
}

func TestFlowGRPOLossNonFinite(t *testing.T) {
	runScoped(t, func(s *libtorch.Scope) error {
		logp := s.Add(vector(flowLogp))
		mean := s.Add(latentTensor(flowMean))
		bad := s.Add(mean.MustMulScalar(ts.FloatScalar(math.Inf(1)), false))
		in := FlowInput{LogProb: logp, OldLogProb: logp, Mean: mean, RefMean: bad, SigmaT: 0.5, Advantages: []float64{1, 2, 3, 4}}
		loss, st, err := FlowGRPOLoss(in, FlowConfig{ClipRange: 1e-4, Beta: 0.04})
		if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "KL term") || loss != nil {
			t.Errorf("infinite reference mean: loss %v, err = %v; want ErrNonFinite naming the KL term", loss, err)
		}
		if st.PolicyLoss != -2.5 {
			t.Errorf("policy term = %g alongside the error, want −mean(A) = −2.5", st.PolicyLoss)
		}
		return nil
	})
}
