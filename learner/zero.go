package learner

import (
	"fmt"
	"maps"
	"slices"

	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/dist"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/optim"
)

// phaseOpt is one phase's optimiser with the parameters it updates and,
// under ZeRO-1, which rank owns each parameter's state (nil: every rank
// owns every parameter's).
type phaseOpt struct {
	name   string
	opt    *optim.AdamW
	params []*ts.Tensor
	owner  []int
}

// opts are the learner's optimisers in a fixed order: the order of their
// collectives and of their files.
func (l *Learner) opts() []*phaseOpt { return []*phaseOpt{l.mllm, l.dit} }

// shard rebuilds the optimisers as this rank's ZeRO-1 shards when the
// configuration asks for it and the group has more than one rank, unless
// they already are this rank's shards of a group of that size. The state
// they held is dropped: shard before loading a checkpoint's.
func (l *Learner) shard() {
	if l.group == nil || l.group.World() < 2 || l.cfg.Optim.Zero < 1 {
		return
	}
	as := [2]int{l.group.Rank(), l.group.World()}
	if l.mllm.owner != nil && l.shardedAs == as {
		return
	}
	l.shardedAs = as
	for _, p := range l.opts() {
		p.opt.Drop()
		p.owner = optim.Partition(p.params, l.group.World())
		p.opt = optim.NewShard(p.params, l.optimConfig(), optim.Owned(p.owner, l.group.Rank()))
	}
}

// update applies the optimiser's step; under ZeRO-1 each rank updates the
// parameters it owns and then broadcasts them, one coalesced broadcast
// per rank, so that every rank holds the whole updated model. (Gloo has
// no reduce-scatter, and the gradients are already all-reduced, so every
// rank holds them all; a NCCL build could reduce-scatter them instead.)
// Under ZeRO-2 a rank first releases the gradients of the parameters it
// does not own — reduced, unscaled and clipped, they have served — so
// until the next backward reaches them it holds about 1/N of the
// gradients.
func (l *Learner) update(p *phaseOpt, lr float64) error {
	if l.zero2(p) {
		var others []*ts.Tensor
		for i, o := range p.owner {
			if o != l.group.Rank() {
				others = append(others, p.params[i])
			}
		}
		if err := dist.ReleaseGrads(others); err != nil {
			return fmt.Errorf("learner: ZeRO-2: releasing the %s gradients other ranks update: %w", p.name, err)
		}
	}
	p.opt.Step(lr)
	if p.owner == nil {
		return nil
	}
	var err error
	libtorch.NoGrad(func() {
		for r := range l.group.World() {
			var mine []*ts.Tensor
			for i, o := range p.owner {
				if o == r {
					mine = append(mine, p.params[i])
				}
			}
			if err = l.group.Broadcast(mine, r); err != nil {
				err = fmt.Errorf("learner: ZeRO-1: broadcasting the %s parameters rank %d updated: %w", p.name, r, err)
				return
			}
		}
	})
	return err
}

// zero2 reports whether p's gradients are sharded (optim.zero 2 on a
// group of more than one rank).
func (l *Learner) zero2(p *phaseOpt) bool {
	return p.owner != nil && l.cfg.Optim.Zero >= 2
}

// OptimizerBytes is the bytes of optimiser state this rank holds.
func (l *Learner) OptimizerBytes() int64 {
	var n int64
	for _, p := range l.opts() {
		n += p.opt.Bytes()
	}
	return n
}

// Optimizers returns this rank's optimisers (under ZeRO-1, its shards).
func (l *Learner) Optimizers() []checkpoint.Optimizer {
	var out []checkpoint.Optimizer
	for _, p := range l.opts() {
		out = append(out, checkpoint.Optimizer{Name: p.name, Opt: p.opt})
	}
	return out
}

// GatherOptimizers returns the optimiser states to save with a version:
// on a ZeRO-1 group's rank 0, every rank's shard, which it gathers from
// the others (every rank must call GatherOptimizers then, in step). The
// returned release frees the gathered copies; the other ranks get no
// states (and save nothing).
func (l *Learner) GatherOptimizers() (opts []checkpoint.Optimizer, release func(), err error) {
	var gathered []*ts.Tensor
	release = func() {
		for _, t := range gathered {
			t.MustDrop()
		}
	}
	for _, p := range l.opts() {
		o := checkpoint.Optimizer{Name: p.name, Opt: p.opt}
		if p.owner != nil {
			var got []*ts.Tensor
			o.Shards, got, err = l.gatherShards(p)
			gathered = append(gathered, got...)
			if err != nil {
				release()
				return nil, func() {}, err
			}
		}
		opts = append(opts, o)
	}
	if l.group != nil && l.group.Rank() != 0 {
		release()
		return nil, func() {}, nil
	}
	return opts, release, nil
}

// gatherShards collects every rank's state of p on rank 0 (a broadcast
// from each rank in turn), as the shards of a checkpoint. It returns the
// tensors it allocated for the caller to drop.
func (l *Learner) gatherShards(p *phaseOpt) ([]checkpoint.Shard, []*ts.Tensor, error) {
	shards := make([]checkpoint.Shard, l.group.World())
	var made []*ts.Tensor
	for r := range shards {
		sh := checkpoint.Shard{State: map[string]*ts.Tensor{}}
		var names []string
		for i, o := range p.owner {
			if o != r {
				continue
			}
			sh.Params = append(sh.Params, i)
			st := p.opt.StateOf(i)
			if st == nil {
				st = p.opt.StateLike(i)
				for _, t := range st {
					made = append(made, t)
				}
			}
			for _, n := range slices.Sorted(maps.Keys(st)) {
				sh.State[n] = st[n]
				names = append(names, n)
			}
		}
		list := make([]*ts.Tensor, len(names))
		for k, n := range names {
			list[k] = sh.State[n]
		}
		if err := l.group.Broadcast(list, r); err != nil {
			return nil, made, fmt.Errorf("learner: ZeRO-1: gathering rank %d's %s optimiser shard: %w", r, p.name, err)
		}
		shards[r] = sh
	}
	return shards, made, nil
}
