package model

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// Connector is ThinkGen's VGI-refine connector: K learnable prepadding
// states (width 2H) are put before the instruction's last-two-layer states
// [L, 2H], and the sequence goes through RMSNorm(2H) → Linear(2H → D_dit).
type Connector struct {
	In, Out, Prepad int
	Eps             float64
	P               *Params
	dev             gotch.Device
}

// ConnectorSpecs lists the connector's parameters for MLLM hidden size h.
func ConnectorSpecs(h, dDiT, prepad int) []Spec {
	in := int64(2 * h)
	specs := []Spec{}
	if prepad > 0 {
		specs = append(specs, Spec{Name: "prepad", Shape: []int64{int64(prepad), in}, Std: 0.02})
	}
	return append(specs,
		Spec{Name: "norm.weight", Shape: []int64{in}, Init: InitOnes},
		Spec{Name: "proj.weight", Shape: []int64{int64(dDiT), in}, Std: 0.02},
		Spec{Name: "proj.bias", Shape: []int64{int64(dDiT)}, Init: InitZeros},
	)
}

// NewConnector builds a connector from MLLM hidden size h to DiT width dDiT.
func NewConnector(h, dDiT, prepad int, eps float64, dev gotch.Device, seed uint64) (*Connector, error) {
	p, err := NewParams(ConnectorSpecs(h, dDiT, prepad), dev, seed)
	if err != nil {
		return nil, err
	}
	return &Connector{In: 2 * h, Out: dDiT, Prepad: prepad, Eps: eps, P: p, dev: dev}, nil
}

// Condition is the text condition of the DiT: per sample a sequence of
// D-wide states, padded to the longest; the caller drops Tokens.
type Condition struct {
	Tokens *ts.Tensor // [B, Lmax, D]
	Lens   []int      // valid length of each sample
}

// Drop frees the tokens.
func (c *Condition) Drop() { c.Tokens.MustDrop() }

// Forward maps each sample's instruction states [L_i, 2H] (L_i may be 0) to
// a Condition of K + L_i tokens per sample.
func (c *Connector) Forward(states []*ts.Tensor) (*Condition, error) {
	var s libtorch.Scope
	defer s.Close()
	lens := make([]int, len(states))
	maxLen := 0
	rows := make([]*ts.Tensor, len(states))
	for i, st := range states {
		sz := st.MustSize()
		if len(sz) != 2 || sz[1] != int64(c.In) {
			return nil, fmt.Errorf("model: connector input %d has shape %v, want [L %d]", i, sz, c.In)
		}
		seq := asDType(&s, st, c.P.DType())
		if c.Prepad > 0 {
			seq = s.Add(ts.MustCat([]*ts.Tensor{c.P.Get("prepad"), seq}, 0))
		}
		lens[i] = int(sz[0]) + c.Prepad
		maxLen = max(maxLen, lens[i])
		rows[i] = seq
	}
	if maxLen == 0 {
		// Every condition is empty (no prepadding, empty instructions: the
		// unconditional branch of guidance without prepadding): one padding
		// slot, which the DiT masks out (Lens stay 0).
		maxLen = 1
	}
	padded := make([]*ts.Tensor, len(rows))
	for i, r := range rows {
		if lens[i] < maxLen {
			z := s.Add(ts.MustZeros([]int64{int64(maxLen - lens[i]), int64(c.In)}, c.P.DType(), c.dev))
			r = s.Add(ts.MustCat([]*ts.Tensor{r, z}, 0))
		}
		padded[i] = r
	}
	x := s.Add(ts.MustStack(padded, 0)) // [B, Lmax, 2H]
	n := rmsNorm(&s, x, c.P.Get("norm.weight"), c.Eps)
	out := ts.MustLinear(n, c.P.Get("proj.weight"), c.P.Get("proj.bias"))
	return &Condition{Tokens: out, Lens: lens}, nil
}
