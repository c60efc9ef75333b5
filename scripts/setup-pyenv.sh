#!/usr/bin/env bash
# setup-pyenv.sh creates (once) the test-only Python virtualenv from
# scripts/requirements-test.txt under $THINKGEN_CACHE (~/.cache/thinkgen) and
# prints the path of its python. The venv's name carries a hash of the
# requirements, so a change of pins makes a new one and a warm machine
# reuses the old in well under a second. torch==2.1.0 comes from the wheel
# scripts/setup-libtorch.sh already cached; its nvidia-* dependencies (~2.5
# GB, needed only to import it) are downloaded once.
#
# `setup-pyenv.sh vl` does the same for scripts/requirements-vl.txt: a second
# venv (venv-vl-<hash>) with torch 2.2.2 and transformers 4.57.6 for the
# Qwen3-VL parity tests (model/qwen3vl_parity_test.go reads its python from
# THINKGEN_VL_PYTHON). Measured on a machine without it (2 cores, the pip
# cache empty, scripts/setup-libtorch.sh's CUDA 12.1 wheels in place): 5 min
# 37 s and 2.11 GB of wheels downloaded (torch 2.2.2 0.76 GB, cuDNN 8.9
# 0.73 GB, Triton 0.17 GB, NCCL 0.17 GB, cuFFT 0.12 GB, the rest smaller;
# the sizes of the same wheels fetched again with pip download). cuBLAS,
# cuSOLVER, cuSPARSE, CUPTI and the CUDA runtime (0.75 GB) came from that
# cache, so a machine without it downloads 2.86 GB. 5.1 GB on disk.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export THINKGEN_CACHE=${THINKGEN_CACHE:-$HOME/.cache/thinkgen}
mode=${1:-test}
case $mode in
test)
	req=$root/scripts/requirements-test.txt
	prefix=venv
	check='import torch, transformers, diffusers, peft, pyarrow, safetensors, tensorboard; assert torch.__version__.startswith("2.1.0"), torch.__version__'
	;;
vl)
	req=$root/scripts/requirements-vl.txt
	prefix=venv-vl
	check='import torch, safetensors; from transformers import Qwen3VLForConditionalGeneration; assert torch.__version__.startswith("2.2.2"), torch.__version__'
	;;
*)
	printf 'setup-pyenv: unknown mode %q (want test or vl)\n' "$mode" >&2
	exit 2
	;;
esac
hash=$(sha256sum "$req" | cut -c1-12)
venv=$THINKGEN_CACHE/$prefix-$hash
log() { printf 'setup-pyenv: %s\n' "$*" >&2; }

if [[ ! -f $venv/.complete ]]; then
	rm -rf "$venv"
	log "creating $venv (once; downloads torch's CUDA dependency wheels, ~2.5 GB)"
	python3 -m venv "$venv"
	"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
		--cache-dir "$THINKGEN_CACHE/pip" -r <(sed "s|\${THINKGEN_CACHE}|$THINKGEN_CACHE|g" "$req") >&2
	"$venv/bin/python" -c "$check" >&2
	touch "$venv/.complete"
fi
echo "$venv/bin/python"
