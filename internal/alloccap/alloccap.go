// Package alloccap lets tests and fuzz targets assert that a call
// allocates no more than a stated number of bytes, however hostile its
// input: the bytes are measured with runtime.ReadMemStats around the call.
package alloccap

import (
	"runtime"
	"testing"
)

// Bytes returns the bytes f allocated on the heap (freed or not).
// Allocations by other goroutines running meanwhile count too, so callers
// state caps with room to spare.
func Bytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Check runs f and fails t if it allocated more than limit bytes.
func Check(t testing.TB, limit uint64, f func()) {
	t.Helper()
	if n := Bytes(f); n > limit {
		t.Fatalf("allocated %d bytes, cap %d", n, limit)
	}
}
