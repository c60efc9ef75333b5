package learner

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/sugarme/gotch/ts"
)

// ErrNonFinite is wrapped by the loss functions' error when a term of the
// loss is NaN or infinite; the message names the term. The step must not be
// applied.
var ErrNonFinite = errors.New("learner: non-finite loss")

// checkShape returns an error naming the tensor when t is missing or its
// shape is not want.
func checkShape(name string, t *ts.Tensor, want []int64) error {
	if t == nil {
		return fmt.Errorf("learner: %s is missing", name)
	}
	if got := t.MustSize(); !slices.Equal(got, want) {
		return fmt.Errorf("learner: %s has shape %v, want %v", name, got, want)
	}
	return nil
}

// vectorLike uploads xs as a tensor of the given shape with like's dtype
// and device; the caller drops it.
func vectorLike(xs []float64, shape []int64, like *ts.Tensor) *ts.Tensor {
	return ts.MustOfSlice(slices.Clone(xs)).
		MustTotype(like.DType(), true).
		MustTo(like.MustDevice(), true).
		MustView(shape, true)
}

// finite reports whether x is neither NaN nor infinite.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// clampAdvantages checks that every advantage is finite (naming the first
// that is not, as "<loss> Advantages[i]") and clamps them to ±clamp (0: no
// clamp); it returns the clamped copy and the share that was clamped.
func clampAdvantages(loss string, advs []float64, clamp float64) ([]float64, float64, error) {
	out := make([]float64, len(advs))
	clamped := 0
	for i, a := range advs {
		if !finite(a) {
			return nil, 0, fmt.Errorf("learner: %s Advantages[%d] is %g", loss, i, a)
		}
		if clamp > 0 && (a > clamp || a < -clamp) {
			a = max(-clamp, min(clamp, a))
			clamped++
		}
		out[i] = a
	}
	return out, float64(clamped) / float64(len(advs)), nil
}

// term is one named figure of a loss evaluation.
type term struct {
	name string
	v    float64
}

// firstNonFinite returns the first term that is NaN or infinite.
func firstNonFinite(terms ...term) (term, bool) {
	for _, t := range terms {
		if !finite(t.v) {
			return t, true
		}
	}
	return term{}, false
}
