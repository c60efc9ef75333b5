package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestSampleToken(t *testing.T) {
	logp := []float32{float32(math.Log(0.5)), float32(math.Log(0.3)), float32(math.Log(0.2))}
	tests := []struct {
		name   string
		temp   float64
		topP   float64
		banned []int
		want   map[int]float64 // expected frequencies
	}{
		{"greedy", 0, 1, nil, map[int]float64{0: 1}},
		{"greedy skips banned", 0, 1, []int{0}, map[int]float64{1: 1}},
		{"full distribution", 1, 1, nil, map[int]float64{0: 0.5, 1: 0.3, 2: 0.2}},
		{"top-p keeps the nucleus", 1, 0.6, nil, map[int]float64{0: 0.625, 1: 0.375}},
		{"banned renormalises", 1, 1, []int{1}, map[int]float64{0: 0.5 / 0.7, 2: 0.2 / 0.7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			const n = 20000
			count := map[int]int{}
			for i := 0; i < n; i++ {
				count[sampleToken(logp, tt.temp, tt.topP, r, tt.banned...)]++
			}
			for tok, c := range count {
				if _, ok := tt.want[tok]; !ok {
					t.Errorf("drew token %d %d times; it should never be drawn", tok, c)
				}
			}
			for tok, f := range tt.want {
				if got := float64(count[tok]) / n; math.Abs(got-f) > 0.015 {
					t.Errorf("token %d drawn with frequency %.3f, want %.3f", tok, got, f)
				}
			}
		})
	}
}
