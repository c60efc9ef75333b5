package alloccap

import "testing"

var sink []byte

func TestBytes(t *testing.T) {
	for _, n := range []int{1 << 20, 8 << 20} {
		got := Bytes(func() { sink = make([]byte, n) })
		if got < uint64(n) || got > uint64(n)+1<<20 {
			t.Errorf("make([]byte, %d) measured as %d bytes", n, got)
		}
	}
}
