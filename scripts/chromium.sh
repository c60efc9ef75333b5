#!/usr/bin/env bash
# chromium.sh installs (once) Debian's chromium package, for the test that
# renders a run's HTML report in headless Chromium, and prints the path of
# the browser binary:
#
#   THINKGEN_CHROMIUM=$(bash scripts/chromium.sh) go test ./report/ ./cmd/thinkgen/ -run Report
#
# When a working chromium (or chromium-browser) is already on PATH it only
# prints its path (well under a second). Otherwise it runs
# `apt-get update` and `apt-get install --no-install-recommends chromium`,
# which needs root (or passwordless sudo) and the Debian package mirror.
# Progress goes to stderr; stdout is only the path.
set -euo pipefail

log() { echo "chromium.sh: $*" >&2; }

works() { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

find_chromium() {
	local c p
	for c in chromium chromium-browser; do
		if p=$(command -v "$c") && works "$p"; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

if p=$(find_chromium); then
	echo "$p"
	exit 0
fi

as_root=()
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		as_root=(sudo -n)
	else
		log "chromium is not installed and installing it needs root: run 'apt-get install chromium' as root, or set THINKGEN_CHROMIUM to a Chromium binary"
		exit 1
	fi
fi
command -v apt-get >/dev/null 2>&1 || {
	log "chromium is not installed and there is no apt-get: install Chromium and set THINKGEN_CHROMIUM to its binary"
	exit 1
}
start=$(date +%s)
log "installing Debian's chromium package (first time only)"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >&2
"${as_root[@]}" nice -n 19 apt-get install -y -qq --no-install-recommends chromium >&2
p=$(find_chromium) || { log "chromium was installed but does not run"; exit 1; }
log "installed $("$p" --version 2>/dev/null) in $(($(date +%s) - start)) s"
echo "$p"
