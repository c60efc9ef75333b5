#!/usr/bin/env bash
# gloo.sh installs (once) Debian's libgloo-dev, the gloo headers that the
# dist package's C++ shim compiles against. The torch wheel ships c10d's
# headers (ProcessGroupGloo.hpp includes gloo's) and exports
# ProcessGroupGloo from libtorch_cpu.so, but ships no gloo headers; only
# the headers are used, the code is libtorch's own copy of gloo.
#
#   bash scripts/gloo.sh     (run by `make setup`, so by build and test)
#
# When the headers are already there it returns at once (a file test).
# Otherwise it runs `apt-get update` and `apt-get install
# --no-install-recommends libgloo-dev`, which needs root (or passwordless
# sudo) and the Debian package mirror. Progress goes to stderr.
set -euo pipefail

log() { echo "gloo.sh: $*" >&2; }

# gloo/config.h is the header every gloo header includes first; the shim
# needs the rendezvous and transport headers too.
have_headers() {
	[ -f /usr/include/gloo/config.h ] &&
		[ -f /usr/include/gloo/rendezvous/store.h ] &&
		[ -f /usr/include/gloo/transport/tcp/device.h ]
}

if have_headers; then
	exit 0
fi

as_root=()
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		as_root=(sudo -n)
	else
		log "the gloo headers are missing and installing them needs root: run 'apt-get install libgloo-dev' as root"
		exit 1
	fi
fi
command -v apt-get >/dev/null 2>&1 || {
	log "the gloo headers are missing and there is no apt-get: install gloo's headers (Debian's libgloo-dev) into /usr/include/gloo"
	exit 1
}
start=$(date +%s)
log "installing Debian's libgloo-dev (first time only)"
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt-get (e.g. scripts/chromium.sh) instead of failing.
lock=(-o DPkg::Lock::Timeout=600)
"${as_root[@]}" apt-get "${lock[@]}" update -qq >&2
"${as_root[@]}" nice -n 19 apt-get "${lock[@]}" install -y -qq --no-install-recommends libgloo-dev >&2
have_headers || {
	log "libgloo-dev was installed but /usr/include/gloo lacks the headers the shim needs"
	exit 1
}
log "installed libgloo-dev in $(($(date +%s) - start)) s"
