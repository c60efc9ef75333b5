package optim

// LossScale is the dynamic loss scale of float16 training: the loss is
// multiplied by Scale before backward so that small gradients do not
// flush to zero in float16, and the gradients are divided by it before the
// step (AdamW.ScaleGrads). A step whose unscaled gradients are not finite
// overflowed: it is skipped and the scale halves. After Interval
// consecutive good steps the scale doubles. (torch.cuda.amp.GradScaler's
// policy, with its defaults.)
type LossScale struct {
	Scale    float64
	Interval int
	good     int
}

// NewLossScale returns a scale starting at 2¹⁶ that grows every 2000 good
// steps.
func NewLossScale() *LossScale { return &LossScale{Scale: 1 << 16, Interval: 2000} }

// Update records whether the step's gradients were finite and adjusts the
// scale; it returns false when the step must be skipped.
func (s *LossScale) Update(finite bool) (step bool) {
	if !finite {
		s.Scale /= 2
		s.good = 0
		return false
	}
	s.good++
	if s.good >= s.Interval {
		s.Scale *= 2
		s.good = 0
	}
	return true
}
