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
