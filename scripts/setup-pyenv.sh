#!/usr/bin/env bash
# setup-pyenv.sh creates (once) the test-only Python virtualenv from
# scripts/requirements-test.txt under $THINKGEN_CACHE (~/.cache/thinkgen) and
# prints the path of its python. The venv's name carries a hash of the
# requirements, so a change of pins makes a new one and a warm machine
# reuses the old in well under a second. torch==2.1.0 comes from the wheel
# scripts/setup-libtorch.sh already cached; its nvidia-* dependencies (~2.5
# GB, needed only to import it) are downloaded once.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export THINKGEN_CACHE=${THINKGEN_CACHE:-$HOME/.cache/thinkgen}
req=$root/scripts/requirements-test.txt
hash=$(sha256sum "$req" | cut -c1-12)
venv=$THINKGEN_CACHE/venv-$hash
log() { printf 'setup-pyenv: %s\n' "$*" >&2; }

if [[ ! -f $venv/.complete ]]; then
	rm -rf "$venv"
	log "creating $venv (once; downloads torch's CUDA dependency wheels, ~2.5 GB)"
	python3 -m venv "$venv"
	"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
		--cache-dir "$THINKGEN_CACHE/pip" -r <(sed "s|\${THINKGEN_CACHE}|$THINKGEN_CACHE|g" "$req") >&2
	"$venv/bin/python" -c 'import torch, transformers, diffusers, peft, pyarrow, safetensors, tensorboard; assert torch.__version__.startswith("2.1.0"), torch.__version__' >&2
	touch "$venv/.complete"
fi
echo "$venv/bin/python"
