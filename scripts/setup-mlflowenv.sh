#!/usr/bin/env bash
# setup-mlflowenv.sh creates (once) the test-only Python virtualenv from
# scripts/requirements-mlflow.txt under $THINKGEN_CACHE (~/.cache/thinkgen)
# and prints the path of its python. The venv's name carries a hash of the
# requirements, so a change of pins makes a new one and a warm machine
# reuses the old in well under a second. It is separate from the large test
# venv of scripts/setup-pyenv.sh, so pinning MLflow never rebuilds that one.
# The tests that need it read the path from THINKGEN_MLFLOW_PYTHON and run
# `python -m mlflow server` and the MLflow client with it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export THINKGEN_CACHE=${THINKGEN_CACHE:-$HOME/.cache/thinkgen}
req=$root/scripts/requirements-mlflow.txt
hash=$(sha256sum "$req" | cut -c1-12)
venv=$THINKGEN_CACHE/venv-mlflow-$hash
log() { printf 'setup-mlflowenv: %s\n' "$*" >&2; }

if [[ ! -f $venv/.complete ]]; then
	rm -rf "$venv"
	log "creating $venv (once)"
	python3 -m venv "$venv"
	"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
		--cache-dir "$THINKGEN_CACHE/pip" -r "$req" >&2
	"$venv/bin/python" -c 'import mlflow, mlflow.server; from mlflow.tracking import MlflowClient' >&2
	touch "$venv/.complete"
fi
echo "$venv/bin/python"
