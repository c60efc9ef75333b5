#!/usr/bin/env bash
# setup-toolenv.sh NAME creates (once) a small test-only Python virtualenv
# from scripts/requirements-NAME.txt under $THINKGEN_CACHE
# (~/.cache/thinkgen) and prints the path of its python. The venv's name
# carries a hash of the requirements, so a change of pins makes a new one
# and a warm machine reuses the old in well under a second. These venvs are
# apart from the large test venv of scripts/setup-pyenv.sh, so pinning a
# tool never rebuilds that one. NAME is one of:
#   mlflow  `mlflow server` and MLflow's client, for the tracking test
#           (THINKGEN_MLFLOW_PYTHON; tracking/mlflow, cmd/thinkgen)
#   openai  the official openai client, for the test of `thinkgen serve`
#           (THINKGEN_OPENAI_PYTHON; cmd/thinkgen/testdata/openai_client.py)
#   ray     Ray, whose head scripts/ray.sh runs for the cluster tests
set -euo pipefail
name=${1:?usage: setup-toolenv.sh mlflow|openai|ray}
case $name in
mlflow) check='import mlflow, mlflow.server; from mlflow.tracking import MlflowClient' ;;
openai) check='import openai; from openai import OpenAI' ;;
ray) check='import ray, ray.dashboard.modules.job.job_head' ;;
*)
	echo "setup-toolenv: unknown venv $name (mlflow, openai or ray)" >&2
	exit 2
	;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
export THINKGEN_CACHE=${THINKGEN_CACHE:-$HOME/.cache/thinkgen}
req=$root/scripts/requirements-$name.txt
hash=$(sha256sum "$req" | cut -c1-12)
venv=$THINKGEN_CACHE/venv-$name-$hash
log() { printf 'setup-toolenv %s: %s\n' "$name" "$*" >&2; }

if [[ ! -f $venv/.complete ]]; then
	rm -rf "$venv"
	log "creating $venv (once)"
	python3 -m venv "$venv"
	"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
		--cache-dir "$THINKGEN_CACHE/pip" -r "$req" >&2
	"$venv/bin/python" -c "$check" >&2
	touch "$venv/.complete"
fi
echo "$venv/bin/python"
