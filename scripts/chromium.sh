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

start=$(date +%s)
# shellcheck source=apt.sh
. "$(dirname "$0")/apt.sh"
apt_install chromium.sh chromium "run 'apt-get install chromium' as root, or set THINKGEN_CHROMIUM to a Chromium binary"
p=$(find_chromium) || { log "chromium was installed but does not run"; exit 1; }
log "installed $("$p" --version 2>/dev/null) in $(($(date +%s) - start)) s"
echo "$p"
