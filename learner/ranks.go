package learner

import (
	"fmt"
	"sort"

	"github.com/thinkgen/thinkgen/dist"
)

// SetGroup makes the learner one rank of a data-parallel group (nil: a
// single learner, the default). Every rank holds the same policy and
// optimiser state and receives the same rollouts and rewards; of each
// mini-batch a rank trains on its 1/N share (consecutive samples, in the
// mini-batch's fixed order), and the ranks' gradients are all-reduced in
// buckets before the gradient clip and the update, so every rank takes the
// identical step — the one a single learner takes on the whole mini-batch.
//
// The losses are normalised over the ranks (see package dist): GRPO's
// token-mean by the mini-batch's real tokens over all ranks, FlowGRPO's
// and AWM's sample-means by its samples over all ranks. The step's metrics
// are the same means over the whole mini-batch on every rank. Every rank
// must call Step with the same arguments; a mini-batch smaller than the
// group is refused. The learner does not own the group.
//
// With optim.zero 1 and more than one rank, SetGroup also shards the
// optimisers (ZeRO-1): each rank keeps the AdamW state of about 1/N of the
// parameters (optim.Partition), updates those and broadcasts them. Call
// SetGroup before LoadOptimizers: the states held before are dropped.
func (l *Learner) SetGroup(g *dist.Group) {
	l.group = g
	l.shard()
}

// balanceRanks reorders the samples of each of the miniBatches
// mini-batches of a GRPO step in place so that the ranks' consecutive
// shares (rankShare) cost alike: a rank's forward pads its sequences to
// the longest, so the samples are dealt to the ranks longest first, in
// snake order (0, 1, …, N−1, N−1, …, 0, …), each rank taking as many as
// its share holds. Every rank computes the same order from the same
// samples; the step's sums do not depend on it. Nothing without a group.
func (l *Learner) balanceRanks(samples []sample, miniBatches int) {
	if l.group == nil || l.group.World() < 2 {
		return
	}
	n := l.group.World()
	cost := func(s sample) int { return len(s.row.TokenIDs) + len(s.row.Prompt) }
	for _, c := range chunks(len(samples), miniBatches) {
		mb := samples[c[0]:c[1]]
		if len(mb) < n {
			continue // rankShare refuses it
		}
		order := make([]int, len(mb))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return cost(mb[order[a]]) > cost(mb[order[b]]) })
		room := make([]int, n)
		for r, sh := range chunks(len(mb), n) {
			room[r] = sh[1] - sh[0]
		}
		shares := make([][]sample, n)
		for i, k := range order {
			r := i % n
			if (i/n)%2 == 1 {
				r = n - 1 - r
			}
			for room[r] == 0 {
				r = (r + 1) % n
			}
			room[r]--
			shares[r] = append(shares[r], mb[k])
		}
		out := mb[:0:0]
		for _, sh := range shares {
			out = append(out, sh...)
		}
		copy(mb, out)
	}
}

// rankShare returns this rank's consecutive share of a mini-batch (the
// whole mini-batch without a group).
func (l *Learner) rankShare(mb []sample) ([]sample, error) {
	if l.group == nil {
		return mb, nil
	}
	n := l.group.World()
	if len(mb) < n {
		return nil, fmt.Errorf("learner: a mini-batch of %d samples cannot be shared by %d learner ranks (fewer mini-batches, or fewer ranks)", len(mb), n)
	}
	c := chunks(len(mb), n)[l.group.Rank()]
	return mb[c[0]:c[1]], nil
}

// globalGRPO turns this rank's token-mean statistics into the mini-batch's
// over every rank and returns the factor that scales this rank's loss to
// its share of the global token-mean: its tokens over all ranks' tokens.
func (l *Learner) globalGRPO(st GRPOStats) (GRPOStats, float64, error) {
	if l.group == nil {
		return st, 1, nil
	}
	local := st.Tokens
	means := []*float64{&st.Loss, &st.PGLoss, &st.KL, &st.RatioMean, &st.ClipFracLow, &st.ClipFracHigh, &st.DualClipFrac, &st.Entropy, &st.ProxRatioMean, &st.WeightMean, &st.WeightCapped}
	sums := []float64{local}
	for _, m := range means {
		sums = append(sums, *m*local)
	}
	sums, err := l.group.SumFloat64s(sums)
	if err != nil {
		return st, 0, fmt.Errorf("learner: summing GRPO token counts over the ranks: %w", err)
	}
	total := sums[0]
	for i, m := range means {
		*m = sums[i+1] / total
	}
	st.Tokens = total
	return st, local / total, nil
}

// globalFlow sums this rank's FlowGRPO statistics over the ranks: each
// rank's are already weighted by its samples over the mini-batch's.
func (l *Learner) globalFlow(st FlowStats) (FlowStats, error) {
	if l.group == nil {
		return st, nil
	}
	terms := []*float64{&st.Loss, &st.PolicyLoss, &st.KL, &st.RatioMean, &st.ClipFrac, &st.DualClipFrac, &st.ApproxKL, &st.AdvClampedFrac}
	sums := make([]float64, len(terms))
	for i, m := range terms {
		sums[i] = *m
	}
	sums, err := l.group.SumFloat64s(sums)
	if err != nil {
		return st, fmt.Errorf("learner: summing FlowGRPO statistics over the ranks: %w", err)
	}
	for i, m := range terms {
		*m = sums[i]
	}
	return st, nil
}

// allReduceGrads sums the gradients of p's parameters over the ranks
// (nothing without a group). Under ZeRO-2 a rank released the gradients
// of the parameters it does not own after the last update, and this
// backward may not have reached all of them: those get zero gradients
// first, as every rank must pass every parameter.
func (l *Learner) allReduceGrads(p *phaseOpt) error {
	if l.group == nil {
		return nil
	}
	if l.zero2(p) {
		p.opt.DefineGrads()
	}
	if err := l.group.AllReduceGrads(p.params, dist.BucketBytes); err != nil {
		return fmt.Errorf("learner: %w", err)
	}
	return nil
}
