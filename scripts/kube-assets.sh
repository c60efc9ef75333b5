#!/usr/bin/env bash
# kube-assets.sh builds (once) the two binaries controller-runtime's envtest
# runs — kube-apiserver and etcd — and prints the directory that holds them,
# for KUBEBUILDER_ASSETS:
#
#   KUBEBUILDER_ASSETS=$(bash scripts/kube-assets.sh) go test ./cluster/kuberay/ ./charts/...
#
# Nothing is downloaded but Go modules (through the Go module proxy):
#   - kube-apiserver: a scratch module that requires k8s.io/kubernetes
#     v$K8S_VERSION and replaces every staging repository its go.mod
#     replaces (k8s.io/api, k8s.io/apiserver, …) with the published
#     v0.<minor>.<patch> of the same release, then `go build
#     k8s.io/kubernetes/cmd/kube-apiserver`;
#   - etcd: an etcd binary already on PATH (Debian's etcd-server) if there is
#     one, else a scratch module requiring go.etcd.io/etcd/server/v3
#     v$ETCD_VERSION, whose root package is etcd's main.
# Both builds run under `nice -n 19` so that they never slow a training job.
# Cache: ${THINKGEN_CACHE:-~/.cache/thinkgen}/kube-$K8S_VERSION/. Progress
# goes to stderr; stdout is only the directory.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.34.1}
ETCD_VERSION=${ETCD_VERSION:-3.6.4}
GO=${GO:-go}
cache=${THINKGEN_CACHE:-$HOME/.cache/thinkgen}
dir=$cache/kube-$K8S_VERSION

log() { echo "kube-assets: $*" >&2; }

works() { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

if works "$dir/kube-apiserver" && works "$dir/etcd"; then
	echo "$dir"
	exit 0
fi
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0

if ! works "$dir/kube-apiserver"; then
	start=$(date +%s)
	log "building kube-apiserver v$K8S_VERSION (first time only; several minutes of CPU at nice 19)"
	mkdir -p "$work/apiserver"
	cd "$work/apiserver"
	"$GO" mod init thinkgen.invalid/kube-assets/apiserver >/dev/null 2>&1
	kdir=$(nice -n 19 "$GO" mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -f "$kdir/go.mod" ] || { log "cannot find k8s.io/kubernetes@v$K8S_VERSION in the module cache"; exit 1; }
	staging=$(awk '$2 == "=>" && $3 ~ /^\.\/staging\/src\// {print $1}' "$kdir/go.mod")
	[ -n "$staging" ] || { log "no staging replace lines in $kdir/go.mod"; exit 1; }
	{
		echo
		echo "require k8s.io/kubernetes v$K8S_VERSION"
		echo
		for m in $staging; do
			echo "replace $m => $m v0.${K8S_VERSION#1.}"
		done
	} >>go.mod
	nice -n 19 "$GO" mod tidy -e >/dev/null 2>&1 || true
	nice -n 19 "$GO" get "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" >&2
	nice -n 19 "$GO" build -trimpath -ldflags='-s -w' -o "$dir/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
	mv "$dir/kube-apiserver.tmp" "$dir/kube-apiserver"
	log "kube-apiserver built in $(($(date +%s) - start)) s"
fi

if ! works "$dir/etcd"; then
	if sys=$(command -v etcd) && works "$sys"; then
		log "using $sys"
		ln -sf "$sys" "$dir/etcd"
	else
		start=$(date +%s)
		log "building etcd v$ETCD_VERSION (first time only)"
		mkdir -p "$work/etcd"
		cd "$work/etcd"
		"$GO" mod init thinkgen.invalid/kube-assets/etcd >/dev/null 2>&1
		nice -n 19 "$GO" get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2
		nice -n 19 "$GO" build -trimpath -ldflags='-s -w' -o "$dir/etcd.tmp" go.etcd.io/etcd/server/v3
		mv "$dir/etcd.tmp" "$dir/etcd"
		log "etcd built in $(($(date +%s) - start)) s"
	fi
fi

works "$dir/kube-apiserver" && works "$dir/etcd" || { log "built binaries do not run"; exit 1; }
echo "$dir"
