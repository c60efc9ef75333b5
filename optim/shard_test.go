package optim_test

import (
	"slices"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/optim"
)

func TestPartitionBalancesElements(t *testing.T) {
	tests := []struct {
		sizes []int64
		n     int
		want  []int
	}{
		{[]int64{4, 3, 2, 1}, 1, []int{0, 0, 0, 0}},
		{[]int64{4, 3, 2, 1}, 2, []int{0, 1, 1, 0}},
		{[]int64{1, 8, 1, 1, 1}, 2, []int{1, 0, 1, 1, 1}},
		{[]int64{5, 5, 5}, 3, []int{0, 1, 2}},
		{[]int64{2, 2}, 4, []int{0, 1}},
	}
	for _, tt := range tests {
		var params []*ts.Tensor
		for _, s := range tt.sizes {
			params = append(params, ts.MustZeros([]int64{s}, gotch.Float, gotch.CPU))
		}
		got := optim.Partition(params, tt.n)
		for _, p := range params {
			p.MustDrop()
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Partition(%v, %d) = %v, want %v", tt.sizes, tt.n, got, tt.want)
		}
		owned := optim.Owned(got, 0)
		for i := range got {
			if owned[i] != (got[i] == 0) {
				t.Errorf("Owned(%v, 0)[%d] = %v", got, i, owned[i])
			}
		}
	}
}
