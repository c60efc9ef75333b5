#!/usr/bin/env bash
# cuda-compile-check.sh proves, on a machine without a GPU or a CUDA
# toolkit, that the dist package's ProcessGroupNCCL half (the cuda build
# tag: dist/nccl.go, the THINKGEN_NCCL parts of dist/shim.cc) compiles and
# links against libtorch 2.1.0's CUDA libraries. Nothing runs: no binary of
# it can start here (see "What it links" below).
#
#   bash scripts/cuda-compile-check.sh     (or: make cuda-check)
#
# 1. Downloads (once, into $THINKGEN_CACHE/wheels, default
#    ~/.cache/thinkgen/wheels) the PyPI wheels that hold what the headers
#    need: torch==2.1.0 (the CUDA 12.1 build; scripts/setup-libtorch.sh
#    fetches it too), and at the versions torch 2.1.0 pins
#    nvidia-nccl-cu12 2.18.1 (nccl.h), nvidia-cuda-runtime-cu12 12.1.105
#    (cuda_runtime.h, libcudart), nvidia-cublas-cu12 12.1.3.1,
#    nvidia-cusparse-cu12 12.1.0.106 and nvidia-cusolver-cu12 11.4.5.107
#    (ATen/cuda/CUDAContext.h includes cublas_v2.h, cusparse.h and
#    cusolverDn.h); nvidia-cuda-nvcc-cu12 12.1.105 for crt/host_config.h,
#    which cuda_runtime.h includes. cuda_fp16.hpp includes <nv/target>,
#    which no cu12 CCCL wheel for CUDA 12.1-12.4 ships; it comes from
#    nvidia-cuda-cccl-cu12 12.9.27 (only nv/: three files of
#    preprocessor macros that select host or device code).
# 2. Assembles (once, stamped) a CUDA libtorch tree in
#    $THINKGEN_CACHE/libtorch-cuda-2.1.0: include/ (the wheel's
#    torch/include), lib/ (libtorch, libtorch_cuda, libc10_cuda,
#    libtorch_cpu, libc10, libgomp, libcudart.so.12) and cuda/include (the
#    nvidia wheels' headers). third_party/libtorch is not touched.
# 3. Builds the dist package's test binary with -tags cuda, pointing cgo at
#    that tree (CGO_CXXFLAGS, CGO_LDFLAGS), and checks that the binary
#    needs libtorch_cuda.so and calls ProcessGroupNCCL's constructor.
#
# What it links: the test binary is linked for real against libtorch_cuda,
# libc10_cuda, libtorch_cpu, libc10 and libcudart. The libraries that
# libtorch_cuda.so itself names as NEEDED but that are not unpacked
# (libnccl, libcudnn, libcublas, libcublasLt, libcusparse, libcufft,
# libcurand, libnvToolsExt: several GB) are not looked at: the link uses
# -Wl,--allow-shlib-undefined, so symbols those libraries would supply to
# libtorch_cuda.so are not checked. The binary therefore cannot start
# here, and ProcessGroupNCCL is never constructed: running it needs a GPU.
#
# Cold: 0.96 GB of wheels besides scripts/setup-libtorch.sh's, a 1.2 GB
# tree, and a C++ build of gotch and the shim with these cgo flags (minutes
# on 2 cores); warm (wheels, tree and Go build cache kept) about 15 s.
# Progress goes to stderr.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${THINKGEN_CACHE:-$HOME/.cache/thinkgen}
wheels=$cache/wheels
tree=$cache/libtorch-cuda-2.1.0

log() { printf 'cuda-compile-check: %s\n' "$*" >&2; }

# name==version and the file pip saves it as.
specs=(
	"torch==2.1.0 torch-2.1.0-cp311-cp311-manylinux1_x86_64.whl"
	"nvidia-cuda-runtime-cu12==12.1.105 nvidia_cuda_runtime_cu12-12.1.105-py3-none-manylinux1_x86_64.whl"
	"nvidia-nccl-cu12==2.18.1 nvidia_nccl_cu12-2.18.1-py3-none-manylinux1_x86_64.whl"
	"nvidia-cublas-cu12==12.1.3.1 nvidia_cublas_cu12-12.1.3.1-py3-none-manylinux1_x86_64.whl"
	"nvidia-cusparse-cu12==12.1.0.106 nvidia_cusparse_cu12-12.1.0.106-py3-none-manylinux1_x86_64.whl"
	"nvidia-cusolver-cu12==11.4.5.107 nvidia_cusolver_cu12-11.4.5.107-py3-none-manylinux1_x86_64.whl"
	"nvidia-cuda-nvcc-cu12==12.1.105 nvidia_cuda_nvcc_cu12-12.1.105-py3-none-manylinux1_x86_64.whl"
	"nvidia-cuda-cccl-cu12==12.9.27 nvidia_cuda_cccl_cu12-12.9.27-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
)

# --- 1. wheels ----------------------------------------------------------------
mkdir -p "$wheels"
missing=()
for s in "${specs[@]}"; do
	[[ -f $wheels/${s#* } ]] || missing+=("${s%% *}")
done
if ((${#missing[@]})); then
	log "downloading ${missing[*]} into $wheels (once)"
	start=$(date +%s)
	python3 -m pip download --quiet --no-deps --only-binary=:all: \
		--python-version 3.11 --implementation cp \
		--platform manylinux1_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
		-d "$wheels" "${missing[@]}"
	log "downloaded in $(($(date +%s) - start)) s"
fi
for s in "${specs[@]}"; do
	[[ -f $wheels/${s#* } ]] || {
		log "pip did not save ${s#* } in $wheels"
		exit 1
	}
done
wheel() { # wheel NAME: the cached file of the spec named NAME
	local s
	for s in "${specs[@]}"; do
		if [[ ${s%%==*} == "$1" ]]; then
			echo "$wheels/${s#* }"
			return
		fi
	done
	log "no wheel spec named $1"
	exit 1
}

# --- 2. the CUDA libtorch tree --------------------------------------------------
want="torch 2.1.0 cuda tree v1: ${specs[*]}"
if [[ ! -f $tree/.stamp || $(cat "$tree/.stamp") != "$want" ]]; then
	log "assembling a CUDA libtorch tree in $tree"
	start=$(date +%s)
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/.cuda-tree.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	unzip -q -o "$(wheel torch)" 'torch/include/*' 'torch/lib/libtorch.so' \
		'torch/lib/libtorch_cuda.so' 'torch/lib/libc10_cuda.so' \
		'torch/lib/libtorch_cpu.so' 'torch/lib/libc10.so' 'torch/lib/libgomp-*.so.1' -d "$tmp"
	unzip -q -o -j "$(wheel nvidia-cuda-runtime-cu12)" 'nvidia/cuda_runtime/lib/libcudart.so.12' -d "$tmp/torch/lib"
	for n in nvidia-cuda-runtime-cu12 nvidia-nccl-cu12 nvidia-cublas-cu12 nvidia-cusparse-cu12 \
		nvidia-cusolver-cu12 nvidia-cuda-nvcc-cu12; do
		unzip -q -o "$(wheel "$n")" 'nvidia/*/include/*' -d "$tmp/nv"
	done
	unzip -q -o "$(wheel nvidia-cuda-cccl-cu12)" 'nvidia/cuda_cccl/include/nv/*' -d "$tmp/nv"
	mkdir -p "$tmp/torch/cuda/include"
	for d in "$tmp"/nv/nvidia/*/include; do
		cp -r "$d/." "$tmp/torch/cuda/include/"
	done
	find "$tmp/torch/cuda/include" -name '__init__.py' -delete
	rm -rf "$tree"
	mv "$tmp/torch" "$tree"
	rm -rf "$tmp"
	trap - EXIT
	echo "$want" >"$tree/.stamp"
	log "assembled in $(($(date +%s) - start)) s ($(du -sh "$tree" | cut -f1))"
fi

# --- 3. compile and link the cuda build of package dist -------------------------
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
start=$(date +%s)
log "building package dist with -tags cuda against $tree"
(
	cd "$root"
	CGO_CXXFLAGS="${CGO_CXXFLAGS:-} -I$tree/cuda/include" \
		CGO_LDFLAGS="${CGO_LDFLAGS:-} -L$tree/lib -Wl,-rpath-link,$tree/lib -Wl,--allow-shlib-undefined" \
		go test -tags cuda -c -o "$out/dist.test" ./dist/
)
bin=$out/dist.test
readelf -d "$bin" | grep -q 'NEEDED.*\[libtorch_cuda\.so\]' || {
	log "$bin does not need libtorch_cuda.so: the cuda flags of dist/nccl.go were not used"
	exit 1
}
ctor=$(nm -D --undefined-only "$bin" | grep -c '_ZN4c10d16ProcessGroupNCCLC1E' || true)
if ((ctor == 0)); then
	log "$bin does not call ProcessGroupNCCL's constructor: shim.cc was built without THINKGEN_NCCL"
	exit 1
fi
log "ok in $(($(date +%s) - start)) s: dist's test binary with -tags cuda compiles and links against libtorch_cuda.so and calls ProcessGroupNCCL (not run: no GPU here)"
