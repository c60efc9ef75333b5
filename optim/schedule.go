package optim

import "math"

// CosineFloor is the share of the base rate that the cosine decay ends at.
const CosineFloor = 0.1

// ScheduledLR is the learning rate of step i (0-based) of n under a linear
// warm-up over the first warmup steps (step i of them at (i+1)/warmup of
// base), then, when cosine is set, a half cosine from base down to
// CosineFloor·base over the remaining steps; without it base.
func ScheduledLR(base float64, i, n, warmup int, cosine bool) float64 {
	if warmup > 0 && i < warmup {
		return base * float64(i+1) / float64(warmup)
	}
	if !cosine {
		return base
	}
	frac := float64(i-warmup) / math.Max(1, float64(n-warmup))
	return base * (CosineFloor + (1-CosineFloor)*0.5*(1+math.Cos(math.Pi*frac)))
}
