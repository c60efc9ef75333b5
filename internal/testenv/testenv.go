// Package testenv gives tests what `make test` provides: the test-only
// Python venv (scripts/setup-pyenv.sh) through THINKGEN_PYTHON, the
// Qwen3-VL reference venv (scripts/setup-pyenv.sh vl) through
// THINKGEN_VL_PYTHON, the
// OpenAI client's small venv (scripts/setup-toolenv.sh openai) through
// THINKGEN_OPENAI_PYTHON, the MLflow venv (scripts/setup-toolenv.sh mlflow)
// through THINKGEN_MLFLOW_PYTHON, a local Ray head (scripts/ray.sh) through
// THINKGEN_RAY_ADDRESS, the
// kube-apiserver and etcd binaries for envtest (scripts/kube-assets.sh)
// through KUBEBUILDER_ASSETS, and a Chromium for headless rendering
// (scripts/chromium.sh) through THINKGEN_CHROMIUM. Outside
// `make test` a test that needs it is skipped with a message saying how to
// provide it; under CI (CI=true) it fails instead, so that CI can never pass
// by skipping.
package testenv

import (
	"os"
	"testing"
)

// MLflowPython returns the python of the MLflow venv
// (scripts/setup-toolenv.sh mlflow), which runs `mlflow server` and MLflow's
// client (THINKGEN_MLFLOW_PYTHON).
func MLflowPython(t testing.TB) string {
	t.Helper()
	return need(t, "THINKGEN_MLFLOW_PYTHON", "set it to the python that `bash scripts/setup-toolenv.sh mlflow` prints", "the MLflow tracking test")
}

// Python returns the venv's python interpreter (THINKGEN_PYTHON).
func Python(t testing.TB) string {
	t.Helper()
	return need(t, "THINKGEN_PYTHON", "set it to the python that `bash scripts/setup-pyenv.sh` prints", "the Python reference tests")
}

// VLPython returns the python of the second test venv, whose newer torch
// and transformers hold the Qwen3-VL reference (THINKGEN_VL_PYTHON,
// printed by `bash scripts/setup-pyenv.sh vl`).
func VLPython(t testing.TB) string {
	t.Helper()
	return need(t, "THINKGEN_VL_PYTHON", "set it to the python that `bash scripts/setup-pyenv.sh vl` prints", "the Qwen3-VL reference tests")
}

// OpenAIPython returns the python of the small venv holding the official
// OpenAI client (THINKGEN_OPENAI_PYTHON, printed by `bash
// scripts/setup-toolenv.sh openai`).
func OpenAIPython(t testing.TB) string {
	t.Helper()
	return need(t, "THINKGEN_OPENAI_PYTHON", "set it to the python that `bash scripts/setup-toolenv.sh openai` prints", "the OpenAI client test of thinkgen serve")
}

// RayAddress returns the URL of a local Ray head's dashboard, whose Job
// Submission API the test may use (THINKGEN_RAY_ADDRESS, set by
// `bash scripts/ray.sh run CMD`).
func RayAddress(t testing.TB) string {
	t.Helper()
	return need(t, "THINKGEN_RAY_ADDRESS", "`bash scripts/ray.sh run go test ./cluster/` (starts a local Ray head and stops it after)", "the Ray tests")
}

// KubeAssets returns the directory of the kube-apiserver and etcd binaries
// that controller-runtime's envtest runs (KUBEBUILDER_ASSETS, printed by
// `bash scripts/kube-assets.sh`).
func KubeAssets(t testing.TB) string {
	t.Helper()
	return need(t, "KUBEBUILDER_ASSETS", "set it to the directory that `bash scripts/kube-assets.sh` prints (kube-apiserver and etcd for envtest)", "the Kubernetes API tests")
}

// Chromium returns the path of a Chromium binary that renders pages
// headless (THINKGEN_CHROMIUM, printed by `bash scripts/chromium.sh`, which
// installs Debian's chromium package once).
func Chromium(t testing.TB) string {
	t.Helper()
	return need(t, "THINKGEN_CHROMIUM", "set it to the path that `bash scripts/chromium.sh` prints (it installs Debian's chromium once, as root)", "the report rendering test")
}

// need returns the environment variable env, or skips the test saying how
// to provide it — or, under CI, fails it: CI must run what.
func need(t testing.TB, env, how, what string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		msg := env + " is not set: run `make test`, or " + how
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI must run " + what + ")")
		}
		t.Skip(msg)
	}
	return v
}
