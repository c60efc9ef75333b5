package model

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// LoRA is one model's low-rank adapters (config.Adapter), as PEFT defines
// them: for each targeted linear weight "<module>.weight" of shape
// [out, in], P holds "<module>.lora_A.weight" [rank, in] and
// "<module>.lora_B.weight" [out, rank], and the adapted layer computes
// x·Wᵀ + alpha/rank·(x·Aᵀ)·Bᵀ. A new adapter's B is zero, so it changes
// nothing until trained.
type LoRA struct {
	Rank    int
	Alpha   float64
	Targets []string
	P       *Params
}

// Scale is alpha/rank, the factor of the adapters' term.
func (l *LoRA) Scale() float64 { return l.Alpha / float64(l.Rank) }

// LoRASpecs lists the adapter parameters of a with rank a.Rank for the
// linear weights among base whose module a.Targets names (all of
// allTargets when a.Targets is empty): a module "…​.q_proj" is targeted by
// "q_proj", as PEFT matches target_modules by name suffix. A is drawn
// from U(−1/√in, 1/√in) (PEFT's Kaiming-uniform with a = √5), B is zero.
func LoRASpecs(base []Spec, a config.Adapter, allTargets []string) []Spec {
	targets := a.Targets
	if len(targets) == 0 {
		targets = allTargets
	}
	var out []Spec
	for _, s := range base {
		mod, ok := strings.CutSuffix(s.Name, ".weight")
		if !ok || len(s.Shape) != 2 || !slices.ContainsFunc(targets, func(t string) bool { return strings.HasSuffix(mod, "."+t) }) {
			continue
		}
		r, outDim, in := int64(a.Rank), s.Shape[0], s.Shape[1]
		out = append(out,
			Spec{Name: mod + ".lora_A.weight", Shape: []int64{r, in}, Init: InitUniform, Std: 1 / math.Sqrt(float64(in))},
			Spec{Name: mod + ".lora_B.weight", Shape: []int64{outDim, r}, Init: InitZeros})
	}
	return out
}

// NewLoRA builds adapters of a for base on base's device and dtype, drawn
// from seed; nil (and no error) when a.Rank is 0.
func NewLoRA(base *Params, a config.Adapter, allTargets []string, seed uint64) (*LoRA, error) {
	if a.Rank == 0 {
		return nil, nil
	}
	specs := LoRASpecs(base.Specs(), a, allTargets)
	if len(specs) == 0 {
		return nil, fmt.Errorf("model: LoRA targets %v match no linear weight", a.Targets)
	}
	p, err := NewParams(specs, base.Device(), seed)
	if err != nil {
		return nil, err
	}
	if base.DType() != gotch.Float {
		p.ToDType(base.DType())
	}
	return &LoRA{Rank: a.Rank, Alpha: a.Alpha, Targets: a.Targets, P: p}, nil
}

// Drop frees the adapters (nothing on nil).
func (l *LoRA) Drop() {
	if l != nil {
		l.P.Drop()
	}
}

// linear returns x·Wᵀ for the weight name of p, plus the adapters' term
// when l has adapters for it (on a nil LoRA, x·Wᵀ).
func (l *LoRA) linear(s *libtorch.Scope, p *Params, x *ts.Tensor, name string) *ts.Tensor {
	y := linear(s, x, p.Get(name), nil)
	if l == nil {
		return y
	}
	mod := strings.TrimSuffix(name, ".weight")
	a, ok := l.P.Lookup(mod + ".lora_A.weight")
	if !ok {
		return y
	}
	d := linear(s, linear(s, x, a, nil), l.P.Get(mod+".lora_B.weight"), nil)
	return s.Add(y.MustAdd(s.Add(d.MustMulScalar(ts.FloatScalar(l.Scale()), false)), false))
}

// Merged returns base's weights with the adapters folded in, W + scale·B·A,
// by name, as float32 copies the caller drops (the weights without an
// adapter are not included).
func (l *LoRA) Merged(base *Params) map[string]*ts.Tensor {
	out := map[string]*ts.Tensor{}
	libtorch.NoGrad(func() {
		for _, sp := range l.P.Specs() {
			mod, ok := strings.CutSuffix(sp.Name, ".lora_A.weight")
			if !ok {
				continue
			}
			a := l.P.Get(sp.Name).MustTotype(gotch.Float, false)
			b := l.P.Get(mod+".lora_B.weight").MustTotype(gotch.Float, false)
			ba := b.MustMatmul(a, true).MustMulScalar(ts.FloatScalar(l.Scale()), true)
			a.MustDrop()
			w := base.Get(mod+".weight").MustTotype(gotch.Float, false)
			out[mod+".weight"] = w.MustAdd(ba, true)
			ba.MustDrop()
		}
	})
	return out
}

// trainable is a model's parameters as its forward uses them: with its
// LoRA adapters, and recording into a Recompute when one is set. MLLM and
// DiT embed it.
type trainable struct {
	P *Params
	// Adapters are the model's LoRA adapters, applied in every forward
	// (nil: none).
	Adapters *LoRA
	rec      *Recompute // nil: layers keep their activations for backward
}

// lin is x·Wᵀ for the weight name of P, with its adapter's term.
func (t *trainable) lin(s *libtorch.Scope, x *ts.Tensor, name string) *ts.Tensor {
	return t.Adapters.linear(s, t.P, x, name)
}

// drop frees the parameters and the adapters.
func (t *trainable) drop() {
	t.P.Drop()
	t.Adapters.Drop()
}

// viewOf returns a copy of *m that change altered: a view sharing m's
// weights (MLLM.WithoutAdapters, DiT.Recording, …).
func viewOf[T any](m *T, change func(*T)) *T {
	v := *m
	change(&v)
	return &v
}
