// Package testmodel gives tests model shapes small enough to build, sample
// and train in a second on one core.
package testmodel

import "github.com/thinkgen/thinkgen/config"

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
