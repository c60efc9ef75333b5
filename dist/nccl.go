//go:build cuda

package dist

// Built with the cuda tag (DEVICE=cuda make build), the shim compiles
// ProcessGroupNCCL too, against the CUDA libtorch in third_party/libtorch.
// It needs the CUDA toolkit's headers and NCCL's (c10d's NCCL headers
// include nccl.h, cuda_runtime.h, cublas_v2.h, cusparse.h and
// cusolverDn.h, and those <nv/target>): /usr/local/cuda/include is
// searched; set CGO_CXXFLAGS=-I<dir> for others.
//
// scripts/cuda-compile-check.sh (make cuda-check) compiles this path and
// links the package's test binary against libtorch 2.1.0's CUDA libraries
// from PyPI wheels. It has never run: the project's machines have no GPU.

// #cgo CXXFLAGS: -DTHINKGEN_NCCL -DUSE_C10D_NCCL -DUSE_CUDA -I/usr/local/cuda/include
// #cgo LDFLAGS: -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed
import "C"
