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

start=$(date +%s)
# shellcheck source=apt.sh
. "$(dirname "$0")/apt.sh"
apt_install gloo.sh libgloo-dev "install gloo's headers (Debian's libgloo-dev, as root) into /usr/include/gloo"
have_headers || {
	log "libgloo-dev was installed but /usr/include/gloo lacks the headers the shim needs"
	exit 1
}
log "installed libgloo-dev in $(($(date +%s) - start)) s"
