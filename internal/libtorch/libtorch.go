// Package libtorch reports on and controls the libtorch runtime that gotch
// links: its version, CPU thread pool, CUDA availability and global seed.
//
// gotch wraps these C entry points (they live in gotch's libtch object) but
// does not expose them from Go; this package declares them itself and
// resolves them at the final link. The version is taken from the headers of
// the libtorch the binary was built against (third_party/libtorch, prepared
// by scripts/setup-libtorch.sh), which are also the headers gotch compiled
// with.
package libtorch

// #cgo CFLAGS: -I${SRCDIR}/../../third_party/libtorch/include/torch/csrc/api/include
// #include <stdint.h>
// #include <malloc.h>
// #include <torch/version.h>
// int at_get_num_threads();
// void at_set_num_threads(int n_threads);
// int at_get_num_interop_threads();
// void at_manual_seed(int64_t seed);
// int atc_cuda_is_available();
// int atc_cuda_device_count();
// int atc_cudnn_is_available();
// int at_grad_set_enabled(int b);
// static const char* thinkgen_torch_version() { return TORCH_VERSION; }
import "C"

import (
	"fmt"

	// gotch's libtch object defines the C functions declared above.
	_ "github.com/sugarme/gotch/libtch"
)

// ReleaseFreeMemory returns the C heap's free pages to the OS (glibc's
// malloc_trim over every arena). libtorch allocates CPU tensor storage
// with malloc; glibc keeps what a step frees in its arenas, split around
// the blocks still in use, and a process whose steps allocate many large
// short-lived tensors (a FlowGRPO learn step at 64 trajectories) grew its
// resident set by gigabytes a step without holding more. Workers call it
// after every task, so the resident set stays near what the next task
// needs. It costs a walk over the free chunks (milliseconds).
func ReleaseFreeMemory() { C.malloc_trim(0) }

// CHeapInUse returns the bytes the C heap has handed out and not had back
// (glibc's mallinfo2: in-use chunks of every arena plus mmapped blocks).
// libtorch allocates CPU tensor storage with malloc, so unlike the resident
// set this figure does not move with how many arenas glibc opened for the
// threads that called into it or how fragmented they are: it grows only
// when something allocated is never freed.
func CHeapInUse() int64 {
	mi := C.mallinfo2()
	return int64(mi.uordblks) + int64(mi.hblkhd)
}

// Version returns the libtorch version, e.g. "2.1.0".
func Version() string { return C.GoString(C.thinkgen_torch_version()) }

// Threads returns the size of libtorch's intra-op CPU thread pool.
func Threads() int { return int(C.at_get_num_threads()) }

// InteropThreads returns the size of libtorch's inter-op thread pool.
func InteropThreads() int { return int(C.at_get_num_interop_threads()) }

// SetThreads sets the size of libtorch's intra-op CPU thread pool. Fixing it
// is required for bit-reproducible CPU runs.
func SetThreads(n int) error {
	if n < 1 {
		return fmt.Errorf("libtorch: thread count must be at least 1, got %d", n)
	}
	C.at_set_num_threads(C.int(n))
	return nil
}

// ManualSeed seeds libtorch's global random generator (torch::manual_seed).
// It is process-wide: code that needs per-request determinism should draw its
// noise in Go from its own seeded source instead.
func ManualSeed(seed int64) { C.at_manual_seed(C.int64_t(seed)) }

// CUDAAvailable reports whether libtorch sees a usable CUDA device.
func CUDAAvailable() bool { return C.atc_cuda_is_available() != 0 }

// CUDADeviceCount returns the number of CUDA devices libtorch sees.
func CUDADeviceCount() int { return int(C.atc_cuda_device_count()) }

// CuDNNAvailable reports whether libtorch can use cuDNN.
func CuDNNAvailable() bool { return C.atc_cudnn_is_available() != 0 }

// SetGradEnabled turns autograd on or off for the calling OS thread and
// returns the previous mode. (gotch's ts.GradSetEnabled reads the C int it
// gets back through an 8-byte pointer and so reports a garbage previous
// mode; this calls the same C function correctly.)
func SetGradEnabled(on bool) (prev bool) {
	b := C.int(0)
	if on {
		b = 1
	}
	return C.at_grad_set_enabled(b) == 1
}

// NoGrad runs fn with autograd off on the calling OS thread and restores the
// previous mode afterwards, also when fn panics (unlike ts.NoGrad, which
// always turns autograd back on). Call it inside Run.
func NoGrad(fn func()) {
	prev := SetGradEnabled(false)
	defer SetGradEnabled(prev)
	fn()
}
