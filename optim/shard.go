package optim

import (
	"sort"

	"github.com/sugarme/gotch/ts"
)

// Partition assigns each parameter to one of n ranks so that each rank's
// share of the elements is as close to 1/n as whole parameters allow: the
// largest parameter first, each to the rank holding the fewest elements so
// far (the lowest rank on a tie). It returns owner[i] for parameter i;
// every rank computes the same assignment from the same parameters.
func Partition(params []*ts.Tensor, n int) []int {
	n = max(1, n)
	order := make([]int, len(params))
	for i := range order {
		order[i] = i
	}
	sizes := make([]int64, len(params))
	for i, p := range params {
		sizes[i] = int64(p.Numel())
	}
	sort.SliceStable(order, func(a, b int) bool { return sizes[order[a]] > sizes[order[b]] })
	load := make([]int64, n)
	owner := make([]int, len(params))
	for _, i := range order {
		r := 0
		for k := 1; k < n; k++ {
			if load[k] < load[r] {
				r = k
			}
		}
		owner[i] = r
		load[r] += sizes[i]
	}
	return owner
}

// Owned turns an assignment into the owned mask of rank r, for NewShard.
func Owned(owner []int, r int) []bool {
	out := make([]bool, len(owner))
	for i, o := range owner {
		out[i] = o == r
	}
	return out
}
