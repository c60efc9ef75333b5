package learner

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/optim"
)

// newLossScale returns the dynamic loss scale a float16 policy trains with
// (float16's 5 exponent bits flush small gradients to zero without it), or
// nil for bfloat16 and float32, whose range is float32's.
func newLossScale(dt gotch.DType) *optim.LossScale {
	if dt == gotch.Half {
		return optim.NewLossScale()
	}
	return nil
}

// gradScale is the factor losses are multiplied by before backward: the
// loss scale, or 1.
func (l *Learner) gradScale() float64 {
	if l.lossScale == nil {
		return 1
	}
	return l.lossScale.Scale
}

// unscale divides the gradients of a phase's parameters (all of them, so
// that every rank of a sharded optimiser decides alike) by the loss scale
// and reports whether the optimiser may step: false when they overflowed,
// in which case the step is skipped (counted in learn/skipped_steps) and
// the scale backs off.
func (l *Learner) unscale(params []*ts.Tensor) bool {
	if l.lossScale == nil {
		return true
	}
	if l.lossScale.Update(optim.ScaleGrads(params, 1/l.lossScale.Scale)) {
		return true
	}
	l.skipped++
	return false
}

// scaleMetrics adds the loss scale's figures to a step's metrics: the
// scale after the step and the optimiser steps it skipped.
func (l *Learner) scaleMetrics(m map[string]float64, skippedBefore int) {
	if l.lossScale == nil || m == nil {
		return
	}
	m["learn/loss_scale"] = l.lossScale.Scale
	m["learn/skipped_steps"] = float64(l.skipped - skippedBefore)
}
