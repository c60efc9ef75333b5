//go:build cuda

package dist

// Built with the cuda tag (DEVICE=cuda make build), the shim compiles
// ProcessGroupNCCL too, against the CUDA libtorch in third_party/libtorch.
// It needs the CUDA toolkit's headers and NCCL's (c10d's NCCL headers
// include cuda_runtime.h, cublas_v2.h and nccl.h): /usr/local/cuda/include
// is searched; set CGO_CXXFLAGS=-I<dir> for others. This path is untested:
// the project's machines have no GPU and no CUDA toolkit, so it has been
// neither compiled nor run.

// #cgo CXXFLAGS: -DTHINKGEN_NCCL -DUSE_C10D_NCCL -DUSE_CUDA -I/usr/local/cuda/include
// #cgo LDFLAGS: -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed
import "C"
