// Package testenv gives tests what `make test` provides: the test-only
// Python venv (scripts/setup-pyenv.sh) through THINKGEN_PYTHON, a local
// Ray head (scripts/ray.sh) through THINKGEN_RAY_ADDRESS, and the
// kube-apiserver and etcd binaries for envtest (scripts/kube-assets.sh)
// through KUBEBUILDER_ASSETS. Outside
// `make test` a test that needs it is skipped with a message saying how to
// provide it; under CI (CI=true) it fails instead, so that CI can never pass
// by skipping.
package testenv

import (
	"os"
	"testing"
)

// Python returns the venv's python interpreter (THINKGEN_PYTHON).
func Python(t testing.TB) string {
	t.Helper()
	py := os.Getenv("THINKGEN_PYTHON")
	if py == "" {
		const msg = "THINKGEN_PYTHON is not set: run `make test`, or set it to the python that `bash scripts/setup-pyenv.sh` prints"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI must run the Python reference tests)")
		}
		t.Skip(msg)
	}
	return py
}

// RayAddress returns the URL of a local Ray head's dashboard, whose Job
// Submission API the test may use (THINKGEN_RAY_ADDRESS, set by
// `bash scripts/ray.sh run CMD`).
func RayAddress(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("THINKGEN_RAY_ADDRESS")
	if addr == "" {
		const msg = "THINKGEN_RAY_ADDRESS is not set: run `make test`, or `bash scripts/ray.sh run go test ./cluster/` (starts a local Ray head and stops it after)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI must run the Ray tests)")
		}
		t.Skip(msg)
	}
	return addr
}

// KubeAssets returns the directory of the kube-apiserver and etcd binaries
// that controller-runtime's envtest runs (KUBEBUILDER_ASSETS, printed by
// `bash scripts/kube-assets.sh`). Unset, the test is skipped, or fails
// under CI.
func KubeAssets(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		const msg = "KUBEBUILDER_ASSETS is not set: run `make test`, or set it to the directory that `bash scripts/kube-assets.sh` prints (kube-apiserver and etcd for envtest)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI must run the Kubernetes API tests)")
		}
		t.Skip(msg)
	}
	return dir
}
