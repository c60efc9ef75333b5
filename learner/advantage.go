package learner

import (
	"fmt"
	"math"

	"github.com/thinkgen/thinkgen/shards"
)

// GroupStat is the reward statistics of one group, as GroupAdvantages
// reports them for each sample (the statistics of the sample's group).
type GroupStat struct {
	Size int
	Mean float64
	Std  float64 // unbiased or population, as asked; 0 for a zero-std or size-1 group
}

// AdvantageStats summarises one call of GroupAdvantages.
type AdvantageStats struct {
	Groups        int     // distinct group ids
	ZeroStdGroups int     // groups whose rewards are all equal, size-1 groups included
	ZeroStdRatio  float64 // ZeroStdGroups / Groups (0 when there are no groups)
	// Mean, Std (population), Min and Max are over the advantages of all
	// samples; all 0 when there are none.
	Mean, Std, Min, Max float64
}

// GroupAdvantages returns the group-relative advantage of each sample,
//
//	A_i = (R_i − mean_g) / (std_g + eps)
//
// where g is the sample's group id (groups[i]; the ids need not be
// contiguous or sorted), and the per-sample statistics of its group.
// unbiased picks the std: with n−1 in the denominator (torch.std, as EasyR1
// and verl compute it) or with n (np.std, as flow_grpo computes it); the
// learner uses eps = 1e-6 for GRPO and 1e-4 for FlowGRPO
// (docs/algorithms.md §1).
//
// A group whose rewards are all equal (compared exactly, so that rounding in
// the mean cannot leave a residue) carries no signal: its members get
// advantage exactly 0 and it is counted in ZeroStdGroups. A group of one
// sample is treated the same way (verl instead gives it mean 0 and std 1).
//
// It fails on mismatched lengths, a negative or non-finite eps, or a
// non-finite reward.
func GroupAdvantages(rewards []float64, groups []int64, unbiased bool, eps float64) (adv []float64, group []GroupStat, stats AdvantageStats, err error) {
	if len(rewards) != len(groups) {
		return nil, nil, stats, fmt.Errorf("learner: advantages: %d rewards for %d group ids", len(rewards), len(groups))
	}
	if eps < 0 || math.IsNaN(eps) || math.IsInf(eps, 0) {
		return nil, nil, stats, fmt.Errorf("learner: advantages: eps must be finite and ≥ 0, got %g", eps)
	}
	members := make(map[int64][]int)
	var order []int64
	for i, r := range rewards {
		if math.IsNaN(r) || math.IsInf(r, 0) {
			return nil, nil, stats, fmt.Errorf("learner: advantages: reward %d (group %d) is %g", i, groups[i], r)
		}
		g := groups[i]
		if _, ok := members[g]; !ok {
			order = append(order, g)
		}
		members[g] = append(members[g], i)
	}
	adv = make([]float64, len(rewards))
	group = make([]GroupStat, len(rewards))
	for _, g := range order {
		idx := members[g]
		st := GroupStat{Size: len(idx)}
		sum := 0.0
		equal := true
		for _, i := range idx {
			sum += rewards[i]
			equal = equal && rewards[i] == rewards[idx[0]]
		}
		st.Mean = sum / float64(len(idx))
		if equal {
			st.Mean = rewards[idx[0]]
			stats.ZeroStdGroups++
		} else {
			ss := 0.0
			for _, i := range idx {
				d := rewards[i] - st.Mean
				ss += d * d
			}
			n := float64(len(idx))
			if unbiased {
				n--
			}
			st.Std = math.Sqrt(ss / n)
			for _, i := range idx {
				adv[i] = (rewards[i] - st.Mean) / (st.Std + eps)
			}
		}
		for _, i := range idx {
			group[i] = st
		}
	}
	stats.Groups = len(order)
	if stats.Groups > 0 {
		stats.ZeroStdRatio = float64(stats.ZeroStdGroups) / float64(stats.Groups)
	}
	stats.Mean, stats.Std, stats.Min, stats.Max = summarize(adv)
	return adv, group, stats, nil
}

// summarize returns the mean, population std, min and max of xs (all 0 for
// an empty slice).
func summarize(xs []float64) (mean, std, lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0, 0
	}
	lo, hi = xs[0], xs[0]
	for _, x := range xs {
		mean += x
		lo = min(lo, x)
		hi = max(hi, x)
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		std += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(std / float64(len(xs))), lo, hi
}

// AdvantageRows computes GroupAdvantages over reward rows (grouped by
// GroupID; one row per sample, so the caller keeps one attempt of each) and
// returns one advantage row per reward row, in the same order, carrying its
// run, step, group, sample index and reward.
func AdvantageRows(rows []shards.RewardRow, unbiased bool, eps float64) ([]shards.AdvantageRow, AdvantageStats, error) {
	rewards := make([]float64, len(rows))
	groups := make([]int64, len(rows))
	seen := make(map[[2]int64]int, len(rows))
	for i, r := range rows {
		key := [2]int64{r.GroupID, int64(r.SampleIndex)}
		if j, dup := seen[key]; dup {
			return nil, AdvantageStats{}, fmt.Errorf("learner: advantages: reward rows %d and %d are both group %d sample %d", j, i, r.GroupID, r.SampleIndex)
		}
		seen[key] = i
		rewards[i] = float64(r.Reward)
		groups[i] = r.GroupID
	}
	adv, group, stats, err := GroupAdvantages(rewards, groups, unbiased, eps)
	if err != nil {
		return nil, stats, err
	}
	out := make([]shards.AdvantageRow, len(rows))
	for i, r := range rows {
		out[i] = shards.AdvantageRow{
			Run: r.Run, Step: r.Step, GroupID: r.GroupID, SampleIndex: r.SampleIndex,
			Reward:    r.Reward,
			GroupMean: float32(group[i].Mean), GroupStd: float32(group[i].Std),
			Advantage: float32(adv[i]),
		}
	}
	return out, stats, nil
}
