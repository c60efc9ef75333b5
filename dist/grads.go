package dist

import (
	"fmt"

	"github.com/sugarme/gotch/ts"
)

// BucketBytes is the default gradient bucket of AllReduceGrads: 25 MiB,
// PyTorch DDP's default bucket_cap_mb.
const BucketBytes = 25 << 20

// AllReduceGrads sums the gradients of params over the ranks, in place,
// in buckets of about bucketBytes (≤ 0: BucketBytes): each bucket is one
// flat buffer and one collective, so the extra memory is one bucket, not a
// copy of every gradient. Parameters that do not require grad are skipped;
// every other one must have a gradient (the optimiser defines them all).
// Every rank passes the same parameters in the same order. Gradients are
// summed, not averaged: scale each rank's loss first (see the package
// doc). gotch has no backward hooks, so the buckets travel after backward
// rather than overlapping it.
func (g *Group) AllReduceGrads(params []*ts.Tensor, bucketBytes int64) error {
	if bucketBytes <= 0 {
		bucketBytes = BucketBytes
	}
	var bucket []*ts.Tensor
	var size int64
	defer func() {
		for _, t := range bucket {
			t.MustDrop()
		}
	}()
	flush := func() error {
		err := g.AllReduceSum(bucket)
		for _, t := range bucket {
			t.MustDrop()
		}
		bucket, size = bucket[:0], 0
		if err != nil {
			return fmt.Errorf("dist: gradient bucket: %w", err)
		}
		return nil
	}
	for i, p := range params {
		if p == nil {
			return fmt.Errorf("dist: gradient all-reduce: parameter %d is missing", i)
		}
		if !p.MustRequiresGrad() {
			continue
		}
		grad := p.MustGrad(false)
		if !grad.MustDefined() {
			grad.MustDrop()
			return fmt.Errorf("dist: gradient all-reduce: parameter %d (shape %v) has no gradient", i, p.MustSize())
		}
		bucket = append(bucket, grad)
		size += int64(grad.Numel() * grad.DType().Size())
		if size >= bucketBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if len(bucket) > 0 {
		return flush()
	}
	return nil
}

// SumFloat64s returns the element-wise sum of xs over the ranks (for
// token counts and metrics); every rank passes as many values.
func (g *Group) SumFloat64s(xs []float64) ([]float64, error) {
	if len(xs) == 0 {
		return nil, nil
	}
	t := ts.MustOfSlice(append([]float64(nil), xs...))
	defer t.MustDrop()
	if err := g.AllReduceSum([]*ts.Tensor{t}); err != nil {
		return nil, err
	}
	return t.Float64Values(false), nil
}
