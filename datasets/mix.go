package datasets

import (
	"fmt"
	"math"
	"sort"
)

// ScenarioCycle turns a scenario mix (data.mix, grpo.mix, flow_grpo.mix:
// a weight per scenario) into the cycle Options.Scenarios takes: each
// scenario with a positive weight, repeated in proportion to its weight
// (the smallest weight counts once; at most 100 entries per scenario),
// interleaved so that consecutive rows differ. A mix with no positive
// weight gives an empty cycle.
func ScenarioCycle(mix map[string]float64) []string {
	if len(mix) == 0 {
		return nil
	}
	least := math.Inf(1)
	for _, v := range mix {
		if v > 0 && v < least {
			least = v
		}
	}
	var out []string
	for _, sc := range AllScenarios {
		if v := mix[sc]; v > 0 {
			for range min(100, max(1, int(math.Round(v/least)))) {
				out = append(out, sc)
			}
		}
	}
	// Interleave so that consecutive prompts differ: row i takes entry
	// i mod len, and a step's prompts are consecutive rows.
	sort.SliceStable(out, func(i, j int) bool { return rank(out, i) < rank(out, j) })
	return out
}

// rank is the occurrence number of out[i] among equal entries before it.
func rank(out []string, i int) int {
	n := 0
	for j := 0; j < i; j++ {
		if out[j] == out[i] {
			n++
		}
	}
	return n
}

// Rows returns the rows of the split at the indices idx, in their order.
func Rows(opts Options, idx []int64) ([]Row, error) {
	opts, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	rows := make([]Row, len(idx))
	enc := newPNGEncoder()
	for i, k := range idx {
		r, err := generateRow(opts, int(k), enc)
		if err != nil {
			return nil, fmt.Errorf("%s row %d: %w", opts.Split, k, err)
		}
		rows[i] = r
	}
	return rows, nil
}
