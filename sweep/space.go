package sweep

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Trial is one point of the search space: a training run of its own.
type Trial struct {
	// Index counts trials from 1, in the order of the space's expansion.
	Index int `json:"index"`
	// Name is the run's name: <sweep>-t<index, 3 digits>.
	Name string `json:"name"`
	// Overrides are the trial's values of the space's keys, in the order
	// of the space.
	Overrides []Override `json:"overrides"`
}

// Describe lists the trial's overrides, "k=v k=v".
func (t Trial) Describe() string {
	parts := make([]string, len(t.Overrides))
	for i, o := range t.Overrides {
		parts[i] = o.String()
	}
	return strings.Join(parts, " ")
}

// TrialName is the run name of a sweep's trial.
func TrialName(sweep string, index int) string {
	return fmt.Sprintf("%s-t%03d", sweep, index)
}

// Points returns the parameter's points: its values, or the points of its
// range (a stepped range from min up to max, a counted one evenly spaced
// with both ends, a log range evenly spaced in log space). Range points are
// rounded to 6 significant digits (integers for an Int key) so that trial
// names and --set values stay readable.
func (p Param) Points() []string {
	if p.Range == nil {
		return p.Values
	}
	r := p.Range
	var xs []float64
	switch {
	case r.Step > 0:
		// Up to max, with a tolerance for the step's rounding error.
		n := int(math.Floor((r.Max-r.Min)/r.Step + 1e-9))
		for i := 0; i <= n; i++ {
			xs = append(xs, r.Min+float64(i)*r.Step)
		}
	case r.Count == 1:
		xs = []float64{r.Min}
	default:
		for i := 0; i < r.Count; i++ {
			f := float64(i) / float64(r.Count-1)
			if p.Log {
				xs = append(xs, math.Exp(math.Log(r.Min)+f*(math.Log(r.Max)-math.Log(r.Min))))
			} else {
				xs = append(xs, r.Min+f*(r.Max-r.Min))
			}
		}
	}
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		s := p.format(x)
		if len(out) > 0 && out[len(out)-1] == s {
			continue // integer rounding merged two points
		}
		out = append(out, s)
	}
	return out
}

// sample draws one value of the parameter for the random method.
func (p Param) sample(rng *rand.Rand) string {
	r := p.Range
	switch {
	case r == nil || r.Step > 0 || r.Count == 1:
		pts := p.Points()
		return pts[rng.IntN(len(pts))]
	case p.Log:
		lo, hi := math.Log(r.Min), math.Log(r.Max)
		return p.format(math.Exp(lo + rng.Float64()*(hi-lo)))
	default:
		return p.format(r.Min + rng.Float64()*(r.Max-r.Min))
	}
}

func (p Param) format(x float64) string {
	if p.Int {
		return strconv.FormatInt(int64(math.Round(x)), 10)
	}
	x, _ = strconv.ParseFloat(strconv.FormatFloat(x, 'g', 6, 64), 64)
	return strconv.FormatFloat(x, 'g', -1, 64)
}

// Expand returns the sweep's trials: the grid's product (the last
// parameter varies fastest), or Trials random draws from a generator
// seeded with Seed (the same seed gives the same trials).
func (s *Spec) Expand() []Trial {
	var points [][]Override
	switch s.Method {
	case Random:
		rng := rand.New(rand.NewPCG(uint64(s.Seed), 0x5eed5eed))
		for i := 0; i < s.Trials; i++ {
			ov := make([]Override, len(s.Params))
			for j, p := range s.Params {
				ov[j] = Override{Key: p.Key, Value: p.sample(rng)}
			}
			points = append(points, ov)
		}
	default:
		points = [][]Override{nil}
		for _, p := range s.Params {
			var next [][]Override
			for _, prefix := range points {
				for _, v := range p.Points() {
					ov := append(append([]Override(nil), prefix...), Override{Key: p.Key, Value: v})
					next = append(next, ov)
				}
			}
			points = next
		}
	}
	trials := make([]Trial, len(points))
	for i, ov := range points {
		trials[i] = Trial{Index: i + 1, Name: TrialName(s.Name, i+1), Overrides: ov}
	}
	return trials
}
