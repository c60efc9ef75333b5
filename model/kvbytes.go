package model

import "github.com/sugarme/gotch/ts"

// Bytes is the memory the cache's key and value tensors hold: numel ×
// element size summed over every layer.
func (c *KVCache) Bytes() int64 {
	var n int64
	for _, list := range [][]*ts.Tensor{c.k, c.v} {
		for _, t := range list {
			n += int64(t.Numel()) * int64(t.DType().Size())
		}
	}
	return n
}
