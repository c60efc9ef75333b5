package model

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
)

// ParseDevice returns the device run.device names: cpu, cuda (device 0)
// or cuda:N.
func ParseDevice(name string) (gotch.Device, error) {
	switch {
	case name == "" || name == "cpu":
		return gotch.CPU, nil
	case name == "cuda":
		return gotch.CudaBuilder(0), nil
	case strings.HasPrefix(name, "cuda:"):
		n, err := strconv.ParseUint(strings.TrimPrefix(name, "cuda:"), 10, 31)
		if err == nil {
			return gotch.CudaBuilder(uint(n)), nil
		}
	}
	return gotch.CPU, fmt.Errorf("run.device %q: want cpu, cuda or cuda:N", name)
}

// ParseDType returns the dtype model.dtype names for a model on dev.
// float16 is refused on the CPU: libtorch 2.1 has no float16 matrix
// multiply there ("addmm_impl_cpu_" not implemented for 'Half').
func ParseDType(name string, dev gotch.Device) (gotch.DType, error) {
	switch name {
	case "", "float32":
		return gotch.Float, nil
	case "bfloat16":
		return gotch.BFloat16, nil
	case "float16":
		if !dev.IsCuda() {
			return gotch.Float, fmt.Errorf("model.dtype float16: libtorch has no float16 matrix multiply on the CPU; use bfloat16 or float32 there")
		}
		return gotch.Half, nil
	}
	return gotch.Float, fmt.Errorf("model.dtype %q: want float32, bfloat16 or float16", name)
}

// Placement is where a run's models live and the dtype they compute in:
// run.device and model.dtype.
type Placement struct {
	Device gotch.Device
	DType  gotch.DType
}

// PlacementOf reads run.device and model.dtype of cfg.
func PlacementOf(cfg *config.Config) (Placement, error) {
	dev, err := ParseDevice(cfg.Run.Device)
	if err != nil {
		return Placement{}, err
	}
	dt, err := ParseDType(cfg.Model.DType, dev)
	if err != nil {
		return Placement{}, err
	}
	return Placement{Device: dev, DType: dt}, nil
}

// ToDType converts the bundle's three modules to dt (see Params.ToDType).
func (b *Bundle) ToDType(dt gotch.DType) {
	for _, p := range []*Params{b.MLLM.P, b.Connector.P, b.DiT.P} {
		p.ToDType(dt)
	}
	for _, p := range b.adapterFiles() {
		p.ToDType(dt)
	}
}

// SameDevice reports whether a and b name the same device (gotch spells
// the CPU of a tensor's Device differently from gotch.CPU).
func SameDevice(a, b gotch.Device) bool {
	if !a.IsCuda() || !b.IsCuda() {
		return a.IsCuda() == b.IsCuda()
	}
	return a.Value == b.Value
}
