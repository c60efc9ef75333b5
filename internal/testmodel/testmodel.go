// Package testmodel gives tests model shapes small enough to build, sample
// and train in a second on one core, and base checkpoints of such shapes.
package testmodel

import (
	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
)

// Shrink sets c's MLLM and DiT to the tests' small shapes (an MLLM of
// hidden 32 in 2 layers, a DiT of hidden 48 in 1 layer) and the
// connector's prepadding to 2; the other sections are left alone.
func Shrink(c *config.Config) {
	m := &c.Model.MLLM
	m.Hidden, m.Layers, m.Heads, m.KVHeads, m.HeadDim, m.FFN = 32, 2, 2, 1, 16, 64
	d := &c.Model.DiT
	d.Hidden, d.Layers, d.Heads, d.KVHeads, d.FFN, d.RefinerLayers = 48, 1, 2, 1, 64, 1
	c.Model.Connector.Prepad = 2
}

// SaveBase saves a fresh bundle of c's shapes, its weights drawn from seed,
// in dir as version 0: a base checkpoint that run.base can name.
func SaveBase(c *config.Config, dir string, seed uint64) error {
	return libtorch.Run(func() error {
		tok, err := model.TokenizerFor(c.Model.MLLM)
		if err != nil {
			return err
		}
		b, err := model.NewBundle(c, tok, gotch.CPU, seed)
		if err != nil {
			return err
		}
		defer b.Drop()
		return b.Save(dir, 0, c)
	})
}
