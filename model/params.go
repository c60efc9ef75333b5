package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"unsafe"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// InitKind says how a parameter starts.
type InitKind int

// Parameter initialisations.
const (
	InitNormal  InitKind = iota // N(0, Std²)
	InitOnes                    // all ones (norm weights)
	InitZeros                   // all zeros (biases, zero-initialised gates)
	InitUniform                 // U(−Std, Std)
)

// Spec names one parameter of a module and its shape. Modules list their
// Specs from the config alone, so parameter counts are known without
// allocating anything (thinkgen model info) and building a module is
// allocating its Specs.
type Spec struct {
	Name  string
	Shape []int64
	Init  InitKind
	Std   float64
}

// Numel is the number of elements of the parameter.
func (s Spec) Numel() int64 {
	n := int64(1)
	for _, d := range s.Shape {
		n *= d
	}
	return n
}

// CountParams sums the elements of specs.
func CountParams(specs []Spec) int64 {
	var n int64
	for _, s := range specs {
		n += s.Numel()
	}
	return n
}

// Params owns the leaf tensors of one module, in the order of its Specs.
// Tensors share one dtype (float32 unless ToDType changed it) and live on
// one device. Params is not safe for concurrent use; all methods must run
// inside libtorch.Run.
type Params struct {
	specs  []Spec
	byName map[string]*ts.Tensor
	list   []*ts.Tensor
	device gotch.Device
	dtype  gotch.DType
}

// NewParams allocates specs on dev and initialises them from seed with Go's
// PCG generator, so that a module's initial weights depend on the seed alone
// (not on libtorch's global generator or the order modules are built in).
// The tensors require grad.
func NewParams(specs []Spec, dev gotch.Device, seed uint64) (*Params, error) {
	p := &Params{specs: specs, byName: make(map[string]*ts.Tensor, len(specs)), device: dev, dtype: gotch.Float}
	for i, s := range specs {
		if _, dup := p.byName[s.Name]; dup {
			p.Drop()
			return nil, fmt.Errorf("model: duplicate parameter name %q", s.Name)
		}
		r := rand.New(rand.NewPCG(seed, uint64(i)+0x9e3779b97f4a7c15))
		data := make([]float32, s.Numel())
		switch s.Init {
		case InitNormal:
			for j := range data {
				data[j] = float32(r.NormFloat64() * s.Std)
			}
		case InitOnes:
			for j := range data {
				data[j] = 1
			}
		case InitZeros:
		case InitUniform:
			for j := range data {
				data[j] = float32((2*r.Float64() - 1) * s.Std)
			}
		}
		t := ts.MustOfSlice(data).MustView(s.Shape, true)
		if dev != gotch.CPU {
			t = t.MustTo(dev, true)
		}
		t.MustRequiresGrad_(true)
		p.byName[s.Name] = t
		p.list = append(p.list, t)
	}
	return p, nil
}

// Get returns the parameter called name; it panics on an unknown name,
// which is a programming error inside this package.
func (p *Params) Get(name string) *ts.Tensor {
	t, ok := p.byName[name]
	if !ok {
		panic(fmt.Sprintf("model: no parameter %q", name))
	}
	return t
}

// Lookup returns the parameter called name, if any.
func (p *Params) Lookup(name string) (*ts.Tensor, bool) {
	t, ok := p.byName[name]
	return t, ok
}

// Specs returns the specs the parameters were built from.
func (p *Params) Specs() []Spec { return p.specs }

// Tensors returns the parameters in spec order.
func (p *Params) Tensors() []*ts.Tensor { return p.list }

// Count returns the number of scalar parameters.
func (p *Params) Count() int64 { return CountParams(p.specs) }

// DType is the dtype the parameters are held (and the module computes) in.
func (p *Params) DType() gotch.DType { return p.dtype }

// Device is the device the parameters live on.
func (p *Params) Device() gotch.Device { return p.device }

// ToDType converts every parameter to dt (rounding to nearest), keeping
// names, order and requires-grad. It must run before an optimiser or a
// forward pass holds the old tensors.
func (p *Params) ToDType(dt gotch.DType) {
	if dt == p.dtype {
		return
	}
	libtorch.NoGrad(func() {
		for i, t := range p.list {
			grad := t.MustRequiresGrad()
			c := t.MustTotype(dt, true)
			c.MustRequiresGrad_(grad)
			p.list[i] = c
			p.byName[p.specs[i].Name] = c
		}
	})
	p.dtype = dt
}

// Bytes is the memory the parameters hold.
func (p *Params) Bytes() int64 {
	var n int64
	for _, t := range p.list {
		n += int64(t.Numel()) * int64(t.DType().Size())
	}
	return n
}

// SetRequiresGrad freezes (false) or unfreezes (true) every parameter.
func (p *Params) SetRequiresGrad(b bool) {
	for _, t := range p.list {
		t.MustRequiresGrad_(b)
	}
}

// Drop frees every parameter.
func (p *Params) Drop() {
	for _, t := range p.list {
		t.MustDrop()
	}
	p.list = nil
	p.byName = map[string]*ts.Tensor{}
}

// float32s copies a float32 tensor's values out (any device, any layout).
func float32s(t *ts.Tensor) []float32 {
	c := t.MustDetach(false).MustTo(gotch.CPU, true).MustContiguous(true)
	defer c.MustDrop()
	if c.DType() != gotch.Float {
		f := c.MustTotype(gotch.Float, false)
		defer f.MustDrop()
		c = f
	}
	n := int(c.Numel())
	out := make([]float32, n)
	if n > 0 {
		copy(out, unsafe.Slice((*float32)(c.MustDataPtr()), n))
	}
	return out
}

// setFloat32s overwrites a parameter's values in place (outside autograd).
func setFloat32s(dst *ts.Tensor, data []float32, shape []int64) {
	src := ts.MustOfSlice(data).MustView(shape, true)
	if dst.MustDevice().IsCuda() {
		src = src.MustTo(dst.MustDevice(), true)
	}
	libtorch.NoGrad(func() { dst.Copy_(src) })
	src.MustDrop()
}

// maxAbsDiff returns max |a-b| of two same-shaped tensors.
func maxAbsDiff(a, b *ts.Tensor) float64 {
	var d float64
	libtorch.NoGrad(func() {
		x := a.MustSub(b, false).MustAbs(true).MustMax(true)
		d = x.Float64Values(true)[0]
	})
	if math.IsNaN(d) {
		return math.Inf(1)
	}
	return d
}
