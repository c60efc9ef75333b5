package learner

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

func run(t *testing.T, fn func() error) {
	t.Helper()
	if err := libtorch.Run(fn); err != nil {
		t.Fatal(err)
	}
}

// runScoped is run with a scope that frees the tensors fn adds to it once
// fn returns.
func runScoped(t *testing.T, fn func(s *libtorch.Scope) error) {
	t.Helper()
	run(t, func() error {
		var s libtorch.Scope
		defer s.Close()
		return fn(&s)
	})
}

// checkRejected checks that a loss refused its input with an error
// containing want and returned no loss.
func checkRejected(t *testing.T, name string, loss *ts.Tensor, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: err = %v, want one containing %q", name, err, want)
	}
	if loss != nil {
		t.Errorf("%s: got a loss with the error", name)
	}
}

// f32 rounds x to float32 and back: the references work on exactly the
// values the float32 tensors hold.
func f32(x float64) float64 { return float64(float32(x)) }

// matrix uploads rows as a float32 [len(rows), len(rows[0])] tensor.
func matrix(rows [][]float64) *ts.Tensor {
	var flat []float32
	for _, r := range rows {
		for _, x := range r {
			flat = append(flat, float32(x))
		}
	}
	return ts.MustOfSlice(flat).MustView([]int64{int64(len(rows)), int64(len(rows[0]))}, true)
}

// grpoRef is an independent float64, loop-based reference of GRPOLoss,
// with the gradient d loss / d logp derived by hand:
//
//	L = Σ mask·(pg + β·k3) / N
//	pg = −r·A when the clip is not active (r = exp(logp − old), dr/dlogp = r),
//	     so dpg/dlogp = −r·A; when the clip is active pg is a constant, 0.
//	     The clip is active iff A > 0 and r > 1+εh, or A < 0 and r < 1−εl.
//	     The dual clip (c > 0): for A < 0 and pg > −c·A, pg = −c·A, a
//	     constant, so dpg/dlogp = 0 there too.
//	k3 = exp(d) − d − 1 with d = ref − logp, dd/dlogp = −1, so
//	     dk3/dlogp = −(exp(d) − 1) = 1 − exp(d); 0 where k3 is clamped at 10.
//	dL/dlogp = mask·(dpg/dlogp + β·dk3/dlogp) / N.
type grpoRef struct {
	loss, pg, kl, ratio, low, high, dual, ent, tokens float64
	grad                                              [][]float64
}

func referenceGRPO(logp, old, ref, mask, ent [][]float64, adv []float64, c GRPOConfig) grpoRef {
	var o grpoRef
	for b := range logp {
		for t := range logp[b] {
			o.tokens += mask[b][t]
		}
	}
	o.grad = make([][]float64, len(logp))
	for b := range logp {
		o.grad[b] = make([]float64, len(logp[b]))
		a := adv[b]
		for t := range logp[b] {
			m := mask[b][t]
			lp, od := f32(logp[b][t]), f32(old[b][t])
			r := math.Exp(lp - od)
			rc := math.Min(math.Max(r, 1-c.EpsLow), 1+c.EpsHigh)
			pg := -math.Min(r*a, rc*a)
			clipped := (a > 0 && r > 1+c.EpsHigh) || (a < 0 && r < 1-c.EpsLow)
			dual := c.ClipRatioC > 0 && a < 0 && pg > -a*c.ClipRatioC
			if dual {
				pg = -a * c.ClipRatioC
				o.dual += m
			}
			g := 0.0
			if !clipped && !dual {
				g = -r * a
			}
			k3 := 0.0
			if ref != nil {
				d := f32(ref[b][t]) - lp
				k3 = math.Exp(d) - d - 1
				if k3 > 10 {
					k3 = 10
				} else {
					g += c.Beta * (1 - math.Exp(d))
				}
			}
			o.loss += m * (pg + c.Beta*k3)
			o.pg += m * pg
			o.kl += m * k3
			o.ratio += m * r
			if a < 0 && r < 1-c.EpsLow {
				o.low += m
			}
			if a > 0 && r > 1+c.EpsHigh {
				o.high += m
			}
			if ent != nil {
				o.ent += m * f32(ent[b][t])
			}
			o.grad[b][t] = m * g / o.tokens
		}
	}
	for _, p := range []*float64{&o.loss, &o.pg, &o.kl, &o.ratio, &o.low, &o.high, &o.dual, &o.ent} {
		*p /= o.tokens
	}
	return o
}

// figure is one named value of a loss evaluation and what it should be.
type figure struct {
	name      string
	got, want float64
}

// checkFigures reports every figure further than tol from its want.
func checkFigures(t *testing.T, tol float64, figs []figure) {
	t.Helper()
	for _, f := range figs {
		if math.Abs(f.got-f.want) > tol {
			t.Errorf("%s = %.9g, want %.9g", f.name, f.got, f.want)
		}
	}
}

// shift returns x + d elementwise.
func shift(x [][]float64, d [][]float64) [][]float64 {
	out := make([][]float64, len(x))
	for i := range x {
		out[i] = make([]float64, len(x[i]))
		for j := range x[i] {
			out[i][j] = x[i][j] + d[i][j]
		}
	}
	return out
}

var (
	// B = 2 completions of T = 3 tokens; the last token of the second is padding.
	tinyLogp = [][]float64{{-0.7, -1.3, -0.2}, {-2.1, -0.4, -5.0}}
	tinyMask = [][]float64{{1, 1, 1}, {1, 1, 0}}
	tinyRef  = [][]float64{{-0.9, -1.0, -0.25}, {-1.8, -0.6, -1.0}}
	tinyEnt  = [][]float64{{1.2, 0.8, 0.3}, {2.0, 0.5, 9.0}}
	grpoCfg  = GRPOConfig{EpsLow: 0.2, EpsHigh: 0.3, Beta: 0.01}
)

var grpoLossTests = []struct {
	name     string
	logp     [][]float64
	old      [][]float64
	ref      [][]float64
	ent      [][]float64
	adv      []float64
	cfg      GRPOConfig
	low      float64 // clip fractions counted by hand
	high     float64
	dual     float64
	onPolicy bool
}{
	{
		// old == logp: r = 1 everywhere, nothing clipped, pg = −A per token, so
		// PGLoss = −(3·0.5 + 2·(−1.2))/5 = −(1.5 − 2.4)/5 = 0.18.
		name: "on-policy", logp: tinyLogp, old: tinyLogp, ref: tinyRef, ent: tinyEnt,
		adv: []float64{0.5, -1.2}, cfg: grpoCfg, onPolicy: true,
	},
	{
		// Row 0 (A = +1) log-ratios 0.5, 0.1, −0.5: r = 1.6487 > 1.3 is clipped
		// (high); 1.105 is inside; 0.6065 < 0.8 with A > 0 is not clipped
		// (min picks r·A). Row 1 (A = +2): 0.4 → r = 1.4918 clipped (high);
		// 0 inside; the pad's 30 must be ignored. High: 2 of 5 tokens.
		name: "ratio above 1+eps_high with A > 0", logp: tinyLogp, ref: tinyRef,
		old: shift(tinyLogp, [][]float64{{-0.5, -0.1, 0.5}, {-0.4, 0, -30}}),
		adv: []float64{1, 2}, cfg: grpoCfg, high: 2.0 / 5,
	},
	{
		// Row 0 (A = −1) log-ratios −0.5, 0.5, −0.1: r = 0.6065 < 0.8 clipped
		// (low); 1.6487 > 1.3 with A < 0 is not clipped (min picks r·A);
		// 0.905 inside. Row 1 (A = −0.3): −1 → r = 0.3679 clipped (low); 0.1
		// inside. Low: 2 of 5 tokens.
		name: "ratio below 1-eps_low with A < 0", logp: tinyLogp, ref: tinyRef,
		old: shift(tinyLogp, [][]float64{{0.5, -0.5, 0.1}, {1, -0.1, 0}}),
		adv: []float64{-1, -0.3}, cfg: grpoCfg, low: 2.0 / 5,
	},
	{
		// The dual clip at c = 3. Row 0 (A = −1) log-ratios ln 12, 0.5, −0.1:
		// r = 12 gives −r·A = 12 > 3, capped at 3 (dual, gradient 0); 1.6487
		// stays below 3 (−r·A, not capped); 0.905 inside. Row 1 (A = +0.5):
		// ln 4.5 → r = 4.5 is the high clip (A > 0: the dual clip never
		// applies); 1.2 inside. Dual: 1 of 5, high: 1 of 5.
		name: "dual clip caps A < 0 above c", logp: tinyLogp, ref: tinyRef,
		old: shift(tinyLogp, [][]float64{{-math.Log(12), -0.5, 0.1}, {-math.Log(4.5), -math.Log(1.2), 0}}),
		adv: []float64{-1, 0.5}, cfg: GRPOConfig{EpsLow: 0.2, EpsHigh: 0.3, Beta: 0.01, ClipRatioC: 3}, high: 1.0 / 5, dual: 1.0 / 5,
	},
	{
		// Row 1 (A = −0.3): r = e^1.5 = 4.48 and e^1.2 = 3.32 both above c = 3:
		// capped at 0.9 each. Row 0 (A = −1): r = 0.6065 is the low clip, 2.5
		// and 1 below c. Dual: 2 of 5, low: 1 of 5.
		name: "dual clip on every ratio above c", logp: tinyLogp,
		old: shift(tinyLogp, [][]float64{{0.5, -math.Log(2.5), 0}, {-1.5, -1.2, 0}}),
		adv: []float64{-1, -0.3}, cfg: GRPOConfig{EpsLow: 0.2, EpsHigh: 0.3, ClipRatioC: 3}, low: 1.0 / 5, dual: 2.0 / 5,
	},
	{
		// No reference and Beta = 0: the loss is the policy term alone.
		name: "beta 0 without reference", logp: tinyLogp,
		old: shift(tinyLogp, [][]float64{{-0.2, 0.3, 0}, {0.05, -0.5, 0}}),
		adv: []float64{0.7, -0.4}, cfg: GRPOConfig{EpsLow: 0.2, EpsHigh: 0.3},
	},
	{
		// Token (0, 1): ref − logp = 3.5 → k3 = e^3.5 − 4.5 = 28.6 → clamped to 10,
		// so its KL gradient is 0 (its pg gradient is not: on-policy).
		name: "k3 clamped at 10", logp: tinyLogp, old: tinyLogp,
		ref: shift(tinyLogp, [][]float64{{0.1, 3.5, -0.3}, {0.2, 0, 0}}),
		adv: []float64{0.3, 0.6}, cfg: GRPOConfig{EpsLow: 0.2, EpsHigh: 0.3, Beta: 0.5}, onPolicy: true,
	},
}

func TestGRPOLoss(t *testing.T) {
	for _, tc := range grpoLossTests {
		t.Run(tc.name, func(t *testing.T) {
			runScoped(t, func(s *libtorch.Scope) error {
				logp := s.Add(matrix(tc.logp))
				logp.MustRequiresGrad_(true)
				in := GRPOInput{LogProbs: logp, OldLogProbs: s.Add(matrix(tc.old)), Mask: s.Add(matrix(tinyMask)), Advantages: tc.adv}
				if tc.ref != nil {
					in.RefLogProbs = s.Add(matrix(tc.ref))
				}
				if tc.ent != nil {
					in.Entropy = s.Add(matrix(tc.ent))
				}
				loss, st, err := GRPOLoss(in, tc.cfg)
				if err != nil {
					return err
				}
				s.Add(loss)
				want := referenceGRPO(tc.logp, tc.old, tc.ref, tinyMask, tc.ent, tc.adv, tc.cfg)
				checkFigures(t, 1e-6, []figure{
					{"Loss", st.Loss, want.loss}, {"loss tensor", loss.Float64Values()[0], want.loss},
					{"PGLoss", st.PGLoss, want.pg}, {"KL", st.KL, want.kl},
					{"RatioMean", st.RatioMean, want.ratio}, {"Entropy", st.Entropy, want.ent},
					{"ClipFracLow", st.ClipFracLow, want.low}, {"ClipFracHigh", st.ClipFracHigh, want.high},
					{"ClipFracLow by hand", st.ClipFracLow, tc.low}, {"ClipFracHigh by hand", st.ClipFracHigh, tc.high},
					{"DualClipFrac", st.DualClipFrac, want.dual}, {"DualClipFrac by hand", st.DualClipFrac, tc.dual},
					{"Tokens", st.Tokens, 5},
				})
				if tc.onPolicy {
					if st.RatioMean != 1 || st.ClipFracLow != 0 || st.ClipFracHigh != 0 {
						t.Errorf("on-policy: ratio mean %v (want exactly 1), clip fractions %v %v", st.RatioMean, st.ClipFracLow, st.ClipFracHigh)
					}
					// pg = −A per real token: −(3·A0 + 2·A1)/5.
					pg := -(3*tc.adv[0] + 2*tc.adv[1]) / 5
					if math.Abs(st.PGLoss-pg) > 1e-6 || math.Abs(st.Loss-(pg+tc.cfg.Beta*st.KL)) > 1e-6 {
						t.Errorf("on-policy: PGLoss %.9g Loss %.9g, want %.9g and PGLoss + β·KL = %.9g", st.PGLoss, st.Loss, pg, pg+tc.cfg.Beta*st.KL)
					}
				}
				loss.MustBackward()
				g := s.Add(logp.MustGrad(false))
				gv := g.Float64Values()
				for b := range tc.logp {
					for j := range tc.logp[b] {
						got := gv[b*len(tc.logp[b])+j]
						if math.Abs(got-want.grad[b][j]) > 1e-6 {
							t.Errorf("dL/dlogp[%d][%d] = %.9g, want %.9g", b, j, got, want.grad[b][j])
						}
						if tinyMask[b][j] == 0 && got != 0 {
							t.Errorf("dL/dlogp[%d][%d] = %g for padding, want 0", b, j, got)
						}
					}
				}
				return nil
			})
		})
	}
}

// grpoOutcome is one GRPOLoss evaluation: its loss, stats and d loss / d logp.
type grpoOutcome struct {
	loss float64
	st   GRPOStats
	grad []float64
}

// evalGRPO runs GRPOLoss on float32 inputs (ref and ent may be nil) and
// returns the loss, the stats and the gradient with respect to logp.
func evalGRPO(logp, old, ref, mask, ent [][]float64, adv []float64, c GRPOConfig) (grpoOutcome, error) {
	var o grpoOutcome
	var s libtorch.Scope
	defer s.Close()
	lp := s.Add(matrix(logp))
	lp.MustRequiresGrad_(true)
	in := GRPOInput{LogProbs: lp, OldLogProbs: s.Add(matrix(old)), Mask: s.Add(matrix(mask)), Advantages: adv}
	if ref != nil {
		in.RefLogProbs = s.Add(matrix(ref))
	}
	if ent != nil {
		in.Entropy = s.Add(matrix(ent))
	}
	loss, st, err := GRPOLoss(in, c)
	if err != nil {
		return o, err
	}
	s.Add(loss)
	o.loss, o.st = loss.Float64Values()[0], st
	loss.MustBackward()
	o.grad = s.Add(lp.MustGrad(false)).Float64Values()
	return o, nil
}

// TestGRPODualClipLargeCIsInert checks that a dual clip too large to bind
// leaves the loss, every statistic and the gradient bit for bit as without
// it, on every case of the table.
func TestGRPODualClipLargeCIsInert(t *testing.T) {
	for _, tc := range grpoLossTests {
		run(t, func() error {
			off, on := tc.cfg, tc.cfg
			off.ClipRatioC, on.ClipRatioC = 0, 1e30
			a, err := evalGRPO(tc.logp, tc.old, tc.ref, tinyMask, tc.ent, tc.adv, off)
			if err != nil {
				return err
			}
			b, err := evalGRPO(tc.logp, tc.old, tc.ref, tinyMask, tc.ent, tc.adv, on)
			if err != nil {
				return err
			}
			if a.loss != b.loss || a.st != b.st || !slices.Equal(a.grad, b.grad) {
				t.Errorf("%s: c = 1e30 gives loss %v stats %+v grad %v; without the dual clip %v %+v %v", tc.name, b.loss, b.st, b.grad, a.loss, a.st, a.grad)
			}
			return nil
		})
	}
}

// TestGRPOPaddingCannotPoison puts NaN and infinities in every padded
// position (log-probs, old and reference log-probs, entropy): the loss,
// the statistics and the gradient must equal those of clean padding, bit
// for bit, and the padding's gradient must be exactly 0.
func TestGRPOPaddingCannotPoison(t *testing.T) {
	poison := func(x [][]float64, v float64) [][]float64 {
		out := shift(x, [][]float64{{0, 0, 0}, {0, 0, 0}})
		out[1][2] = v
		return out
	}
	old := shift(tinyLogp, [][]float64{{-0.4, 0.2, -math.Log(12)}, {0.3, -0.1, 0}})
	for _, c := range []GRPOConfig{grpoCfg, {EpsLow: 0.2, EpsHigh: 0.3, Beta: 0.01, ClipRatioC: 3}} {
		run(t, func() error {
			clean, err := evalGRPO(tinyLogp, old, tinyRef, tinyMask, tinyEnt, []float64{-1, 0.5}, c)
			if err != nil {
				return err
			}
			bad, err := evalGRPO(poison(tinyLogp, math.NaN()), poison(old, math.Inf(-1)), poison(tinyRef, math.Inf(1)),
				tinyMask, poison(tinyEnt, math.NaN()), []float64{-1, 0.5}, c)
			if err != nil {
				return fmt.Errorf("poisoned padding: %w", err)
			}
			if clean.loss != bad.loss || clean.st != bad.st || !slices.Equal(clean.grad, bad.grad) || bad.grad[5] != 0 {
				t.Errorf("c = %g: poisoned padding gives loss %v stats %+v grad %v, clean %v %+v %v", c.ClipRatioC, bad.loss, bad.st, bad.grad, clean.loss, clean.st, clean.grad)
			}
			return nil
		})
	}
}

// TestGRPOClippedGradientIsZero checks the clipped tokens' policy gradient
// alone: with Beta = 0 it must be exactly zero, elsewhere −r·A/N.
func TestGRPOClippedGradientIsZero(t *testing.T) {
	runScoped(t, func(s *libtorch.Scope) error {
		logp := s.Add(matrix(tinyLogp))
		logp.MustRequiresGrad_(true)
		lr := [][]float64{{0.5, -0.5, 0.1}, {-0.5, 0.5, 0}} // r = 1.65, 0.61, 1.11 | 0.61, 1.65
		in := GRPOInput{
			LogProbs: logp, OldLogProbs: s.Add(matrix(shift(tinyLogp, [][]float64{{-0.5, 0.5, -0.1}, {0.5, -0.5, 0}}))),
			Mask: s.Add(matrix(tinyMask)), Advantages: []float64{1, -1},
		}
		loss, _, err := GRPOLoss(in, GRPOConfig{EpsLow: 0.2, EpsHigh: 0.3})
		if err != nil {
			return err
		}
		s.Add(loss)
		loss.MustBackward()
		g := s.Add(logp.MustGrad(false)).Float64Values()
		// Row 0, A = +1: r = 1.65 clipped → 0; r = 0.61 → −0.61/5; r = 1.11 → −1.11/5.
		// Row 1, A = −1: r = 0.61 clipped → 0; r = 1.65 → +1.65/5; pad → 0.
		want := []float64{0, -math.Exp(f32(tinyLogp[0][1])-f32(tinyLogp[0][1]-lr[0][1])) / 5, -math.Exp(f32(tinyLogp[0][2])-f32(tinyLogp[0][2]-lr[0][2])) / 5,
			0, math.Exp(f32(tinyLogp[1][1])-f32(tinyLogp[1][1]-lr[1][1])) / 5, 0}
		for i := range want {
			if math.Abs(g[i]-want[i]) > 1e-6 || (want[i] == 0 && g[i] != 0) {
				t.Errorf("grad[%d] = %.9g, want %.9g", i, g[i], want[i])
			}
		}
		return nil
	})
}

func TestGRPOLossRejectsBadInput(t *testing.T) {
	runScoped(t, func(s *libtorch.Scope) error {
		logp := s.Add(matrix(tinyLogp))
		ok := GRPOInput{LogProbs: logp, OldLogProbs: logp, RefLogProbs: logp, Mask: s.Add(matrix(tinyMask)), Advantages: []float64{1, 2}}
		short := s.Add(matrix([][]float64{{1, 2}, {3, 4}}))
		tests := []struct {
			name string
			edit func(in *GRPOInput, c *GRPOConfig)
			want string
		}{
			{"eps_low 0", func(in *GRPOInput, c *GRPOConfig) { c.EpsLow = 0 }, "eps_low"},
			{"eps_high negative", func(in *GRPOInput, c *GRPOConfig) { c.EpsHigh = -0.1 }, "eps_high"},
			{"beta NaN", func(in *GRPOInput, c *GRPOConfig) { c.Beta = math.NaN() }, "beta"},
			{"clip_ratio_c 1", func(in *GRPOInput, c *GRPOConfig) { c.ClipRatioC = 1 }, "clip_ratio_c must be > 1"},
			{"clip_ratio_c NaN", func(in *GRPOInput, c *GRPOConfig) { c.ClipRatioC = math.NaN() }, "clip_ratio_c"},
			{"no LogProbs", func(in *GRPOInput, c *GRPOConfig) { in.LogProbs = nil }, "LogProbs is missing"},
			{"1-D LogProbs", func(in *GRPOInput, c *GRPOConfig) { in.LogProbs = s.Add(logp.MustView([]int64{6}, false)) }, "LogProbs has shape [6]"},
			{"OldLogProbs shape", func(in *GRPOInput, c *GRPOConfig) { in.OldLogProbs = short }, "OldLogProbs has shape [2 2], want [2 3]"},
			{"Mask missing", func(in *GRPOInput, c *GRPOConfig) { in.Mask = nil }, "Mask is missing"},
			{"Entropy shape", func(in *GRPOInput, c *GRPOConfig) { in.Entropy = short }, "Entropy has shape"},
			{"RefLogProbs needed", func(in *GRPOInput, c *GRPOConfig) { in.RefLogProbs = nil }, "RefLogProbs is missing (Beta = 0.01"},
			{"advantages count", func(in *GRPOInput, c *GRPOConfig) { in.Advantages = []float64{1} }, "1 values for a batch of 2"},
			{"advantage NaN", func(in *GRPOInput, c *GRPOConfig) { in.Advantages = []float64{1, math.NaN()} }, "Advantages[1]"},
			{"empty mask", func(in *GRPOInput, c *GRPOConfig) {
				in.Mask = s.Add(matrix([][]float64{{0, 0, 0}, {0, 0, 0}}))
			}, "no real tokens"},
		}
		for _, tc := range tests {
			in, c := ok, grpoCfg
			tc.edit(&in, &c)
			loss, _, err := GRPOLoss(in, c)
			checkRejected(t, tc.name, loss, err, tc.want)
		}
		return nil
	})
}

func TestGRPOLossNonFinite(t *testing.T) {
	runScoped(t, func(s *libtorch.Scope) error {
		bad := s.Add(matrix([][]float64{{-0.7, math.NaN(), -0.2}, {-2.1, -0.4, -5.0}}))
		in := GRPOInput{LogProbs: bad, OldLogProbs: s.Add(matrix(tinyLogp)), Mask: s.Add(matrix(tinyMask)), Advantages: []float64{1, 2}}
		loss, _, err := GRPOLoss(in, GRPOConfig{EpsLow: 0.2, EpsHigh: 0.3})
		if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "policy-gradient term") || loss != nil {
			t.Errorf("NaN log-prob: loss %v, err = %v; want ErrNonFinite naming the policy-gradient term", loss, err)
		}
		return nil
	})
}
