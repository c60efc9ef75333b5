#!/usr/bin/env bash
# setup-libtorch.sh prepares the native toolchain that gotch needs, without
# touching anything outside the repository and ~/.cache/thinkgen:
#
#   1. CPU (default): download the PyPI wheel torch==2.1.0 (cp311, manylinux
#      x86_64) and the two small CUDA runtime wheels that libtorch_cpu.so names
#      as NEEDED (libcudart, libcupti: its profiler links them even on CPU)
#      once into $THINKGEN_CACHE/wheels, then unpack torch/include and the few
#      libraries a CPU build loads into third_party/libtorch.
#      CUDA: DEVICE=cuda LIBTORCH=/path/to/libtorch uses that libtorch instead
#      (a directory with include/ and lib/, e.g. the libtorch zip or a torch
#      wheel's torch/ folder).
#   2. Copy github.com/sugarme/gotch@v0.9.1 from the Go module cache into
#      third_party/gotch (never editing the cache) and write its libtch/lib.go
#      for the chosen device, with the pre-C++11 ABI flag where the libtorch
#      needs it and an rpath so binaries run without LD_LIBRARY_PATH.
#   3. In that copy, turn gotch's log.Fatal calls (every Must* helper ends in
#      one) into log.Panic: a libtorch error then unwinds the calling goroutine,
#      runs its defers and can be recovered into an ordinary error at the
#      boundary of the model code, instead of exiting the whole process.
#   4. Fix two leaks of gotch's generated ops (GOTCH.md §1, gotch #102/#115):
#      the out-pointer block each op mallocs is freed when the op returns (and
#      sized for the 7 outputs the widest op writes, where upstream mallocs 0
#      bytes), and an in-place op frees the tensor handle it replaces.
#      Float64Values drops its temporary copy (upstream left the drop
#      commented out, so every read of a value leaked a tensor).
#   5. Shrink the 100 kB Go array gotch hangs on every tensor (to make the
#      garbage collector run its finalizers sooner) to 1 kB: thinkgen drops
#      its tensors explicitly, and zeroing 100 kB per op was 16% of the CPU
#      time of KV-cache generation (measured with pprof).
#
# Both steps leave a stamp and are skipped when nothing changed, so a warm
# machine runs this in well under a second.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${THINKGEN_CACHE:-$HOME/.cache/thinkgen}
device=${DEVICE:-cpu}
torch_version=2.1.0
gotch_version=v0.9.1
# _GLIBCXX_USE_CXX11_ABI of the libtorch in use: the PyPI wheels are built with
# the old ABI (0); libtorch zips named "cxx11-abi" need 1.
abi=${TORCH_CXX11_ABI:-0}

third=$root/third_party
lt=$third/libtorch
gotch=$third/gotch

log() { printf 'setup-libtorch: %s\n' "$*" >&2; }

case $device in
cpu | cuda) ;;
*)
	log "DEVICE must be cpu or cuda, got '$device'"
	exit 2
	;;
esac

# --- 1. libtorch ----------------------------------------------------------------
wheel_dir=$cache/wheels
torch_wheel=$wheel_dir/torch-$torch_version-cp311-cp311-manylinux1_x86_64.whl
cudart_wheel=$wheel_dir/nvidia_cuda_runtime_cu12-12.1.105-py3-none-manylinux1_x86_64.whl
cupti_wheel=$wheel_dir/nvidia_cuda_cupti_cu12-12.1.105-py3-none-manylinux1_x86_64.whl

fetch_wheels() {
	mkdir -p "$wheel_dir"
	if [[ -f $torch_wheel && -f $cudart_wheel && -f $cupti_wheel ]]; then
		return
	fi
	log "downloading torch==$torch_version and its CUDA runtime wheels into $wheel_dir (about 690 MB, once)"
	local py=python3
	command -v "$py" >/dev/null || {
		log "python3 with pip is needed to download the torch wheel"
		exit 1
	}
	"$py" -m pip download --quiet --no-deps --only-binary=:all: \
		--python-version 3.11 --implementation cp --platform manylinux1_x86_64 \
		-d "$wheel_dir" \
		"torch==$torch_version" nvidia-cuda-runtime-cu12==12.1.105 nvidia-cuda-cupti-cu12==12.1.105
}

unpack_cpu() {
	local stamp=$lt/.stamp want="wheel torch==$torch_version cpu"
	if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
		return
	fi
	fetch_wheels
	log "unpacking torch/include and the CPU libraries into $lt"
	local tmp
	tmp=$(mktemp -d "$third/.unpack.XXXXXX")
	trap 'rm -rf "$tmp"' RETURN
	unzip -q -o "$torch_wheel" 'torch/include/*' 'torch/lib/libc10.so' \
		'torch/lib/libtorch_cpu.so' 'torch/lib/libgomp-*.so.1' -d "$tmp"
	unzip -q -o -j "$cudart_wheel" 'nvidia/cuda_runtime/lib/libcudart.so.12' -d "$tmp/torch/lib"
	unzip -q -o -j "$cupti_wheel" 'nvidia/cuda_cupti/lib/libcupti.so.12' -d "$tmp/torch/lib"
	rm -rf "$lt"
	mv "$tmp/torch" "$lt"
	echo "$want" >"$stamp"
}

mkdir -p "$third"
if [[ $device == cpu && -z ${LIBTORCH:-} ]]; then
	unpack_cpu
	libtorch=$lt
else
	if [[ -z ${LIBTORCH:-} ]]; then
		log "DEVICE=cuda needs LIBTORCH=/path/to/libtorch (a directory with include/ and lib/)"
		exit 2
	fi
	src=$(cd "$LIBTORCH" && pwd)
	for d in include lib; do
		[[ -d $src/$d ]] || {
			log "LIBTORCH=$src has no $d/ directory"
			exit 2
		}
	done
	# third_party/libtorch always names the libtorch in use, so every cgo flag
	# in the tree (gotch's and internal/libtorch's) points at one place.
	if [[ $(readlink "$lt" 2>/dev/null) != "$src" ]]; then
		rm -rf "$lt"
		ln -s "$src" "$lt"
	fi
	libtorch=$lt
fi

# --- 2. patched gotch -------------------------------------------------------------
gotch_src=$(cd "$root" && go mod download -json "github.com/sugarme/gotch@$gotch_version" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d $gotch_src ]] || {
	log "could not download github.com/sugarme/gotch@$gotch_version"
	exit 1
}

libs="-ltorch_cpu -lc10"
if [[ $device == cuda ]]; then
	# --no-as-needed keeps libtorch_cuda linked although no symbol of it is
	# referenced directly; without it CUDA reports unavailable (gotch #74, #78).
	libs="-Wl,--no-as-needed -ltorch -ltorch_cuda -lc10_cuda -ltorch_cpu -lc10 -Wl,--as-needed"
fi

lib_go=$(
	cat <<EOF
// Code generated by scripts/setup-libtorch.sh for DEVICE=$device; DO NOT EDIT.

package libtch

// #cgo LDFLAGS: -lstdc++ $libs -L$libtorch/lib -Wl,-rpath,$libtorch/lib
// #cgo CFLAGS: -I\${SRCDIR} -O3 -Wall -Wno-unused-variable -Wno-deprecated-declarations -g -Wno-sign-compare -Wno-unused-function
// #cgo CFLAGS: -D_GLIBCXX_USE_CXX11_ABI=$abi
// #cgo CXXFLAGS: -std=c++17 -D_GLIBCXX_USE_CXX11_ABI=$abi -I\${SRCDIR} -g -O3 -Wno-deprecated-declarations
// #cgo CXXFLAGS: -I$libtorch/include -I$libtorch/include/torch/csrc/api/include
import "C"
EOF
)

stamp=$gotch/.stamp
want="gotch $gotch_version $device $libtorch abi=$abi patch=panic-v1,leaks-v2,bigstruct-v1"
if [[ -f $stamp && $(cat "$stamp") == "$want" && -f $gotch/libtch/lib.go ]]; then
	exit 0
fi
log "writing patched gotch $gotch_version ($device) into $gotch"
rm -rf "$gotch"
cp -r "$gotch_src" "$gotch"
chmod -R u+w "$gotch"
printf '%s\n' "$lib_go" >"$gotch/libtch/lib.go"
find "$gotch" -name '*.go' -not -path '*/example/*' -not -path '*/vision/*' -print0 |
	xargs -0 sed -i -e 's/\blog\.Fatalf(/log.Panicf(/g' -e 's/\blog\.Fatal(/log.Panic(/g'
gen=$gotch/ts/tensor-generated.go
sed -i \
	-e 's/^\( *\)ptr := (\*lib\.Ctensor)(unsafe\.Pointer(C\.malloc(0)))$/\1ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(8)))\n\1defer C.free(unsafe.Pointer(ptr))/' \
	-e 's/^\( *\)ctensorPtr0 := (\*lib\.Ctensor)(unsafe\.Pointer(C\.malloc(0)))$/\1ctensorPtr0 := (*lib.Ctensor)(unsafe.Pointer(C.malloc(64)))\n\1defer C.free(unsafe.Pointer(ctensorPtr0))/' \
	-e 's/^\( *\)ts\.ctensor = \*ptr$/\1lib.AtFree(ts.ctensor)\n\1ts.ctensor = *ptr/' \
	"$gen"
sed -i -e 's|^\t// float64Ts\.MustDrop()$|\tfloat64Ts.MustDrop()|' "$gotch/ts/tensor.go"
grep -q '^	float64Ts.MustDrop()$' "$gotch/ts/tensor.go" || {
	log "patch of $gotch/ts/tensor.go (Float64Values) did not apply"
	exit 1
}
sed -i -e 's|^\tlots \[1e5\]byte.*$|\tlots [1 << 10]byte // thinkgen: 1 kB instead of 100 kB (scripts/setup-libtorch.sh)|' "$gotch/ts/tensor.go"
grep -q 'lots \[1 << 10\]byte' "$gotch/ts/tensor.go" || {
	log "patch of $gotch/ts/tensor.go (bigStruct) did not apply"
	exit 1
}
if grep -q 'C.malloc(0)' "$gen"; then
	log "patch of $gen left a C.malloc(0) behind"
	exit 1
fi
echo "$want" >"$stamp"
