package optim

import (
	"math"
	"testing"
)

func TestScheduledLR(t *testing.T) {
	tests := []struct {
		name         string
		i, n, warmup int
		cosine       bool
		want         float64
	}{
		{"no warm-up, constant", 0, 10, 0, false, 1},
		{"constant after the warm-up", 9, 10, 4, false, 1},
		{"first warm-up step", 0, 10, 4, false, 0.25},
		{"last warm-up step", 3, 10, 4, true, 1},
		{"cosine starts at the base", 4, 10, 4, true, 1},
		{"cosine half way", 5, 6, 4, true, 0.55},
		{"cosine without warm-up, last step", 4, 5, 0, true, 0.1 + 0.9*0.5*(1+math.Cos(math.Pi*4/5))},
	}
	for _, tt := range tests {
		if got := ScheduledLR(1, tt.i, tt.n, tt.warmup, tt.cosine); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("%s: ScheduledLR(1, %d, %d, %d, %v) = %g, want %g", tt.name, tt.i, tt.n, tt.warmup, tt.cosine, got, tt.want)
		}
	}
}
