#!/usr/bin/env bash
# minio.sh runs a throwaway MinIO server for the storage tests.
#
#   scripts/minio.sh start        build MinIO once (pinned), start it, print the env file's path
#   scripts/minio.sh env          print the env file (KEY=value lines, for `set -a; . file`)
#   scripts/minio.sh envfile      print the env file's path
#   scripts/minio.sh stop         stop the server by its PID and remove its data
#   scripts/minio.sh run CMD...   start a private server, run CMD with the env set, stop it (trap)
#                                 and exit with CMD's code; concurrent `run`s do not share a server
#
# The server is built from source once with `go install` into
# $THINKGEN_CACHE/bin (~2-3 min on 2 cores) and reused while the pin below
# is unchanged. MinIO is AGPL: it only ever runs as this separate process;
# no thinkgen code imports it. It listens on 127.0.0.1 on a free port with
# a temporary data directory and freshly generated credentials, which are
# written only to the env file (mode 0600), never printed by `start`.
#
# The env file sets THINKGEN_TEST_S3_ENDPOINT, THINKGEN_TEST_S3_ACCESS_KEY,
# THINKGEN_TEST_S3_SECRET_KEY, THINKGEN_TEST_S3_BUCKET (an existing bucket;
# the Go tests make their own bucket per test) and THINKGEN_TEST_MINIO_BIN
# (the server binary, for the fault test that runs and kills its own).
set -euo pipefail
# shellcheck source=scripts/testserver.sh
. "$(dirname "${BASH_SOURCE[0]}")/testserver.sh"

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
CACHE=${THINKGEN_CACHE:-$HOME/.cache/thinkgen}
BIN=$CACHE/bin/minio
STATE=${THINKGEN_MINIO_STATE:-${TMPDIR:-/tmp}/thinkgen-minio-$(id -u)}
ENVFILE=$STATE/env
BUCKET=thinkgen-test

log() { printf 'minio.sh: %s\n' "$*" >&2; }

build() {
	if [[ -x $BIN && "$(cat "$BIN.version" 2>/dev/null)" == "$MINIO_VERSION" ]]; then
		return
	fi
	log "building MinIO $MINIO_VERSION into $CACHE/bin (once, ~2-3 min)"
	mkdir -p "$CACHE/bin"
	# Outside any module, so the project's go.mod is neither read nor changed.
	(cd / && GOBIN=$CACHE/bin GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION")
	echo "$MINIO_VERSION" >"$BIN.version"
}

running() {
	[[ -f $STATE/pid ]] || return 1
	local pid
	pid=$(cat "$STATE/pid")
	[[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "^$BIN server"
}

start() {
	if running; then
		echo "$ENVFILE"
		return
	fi
	build
	rm -rf "$STATE"
	mkdir -p "$STATE/data"
	chmod 700 "$STATE"
	local port cport user pass code
	read -r port cport <<<"$(free_ports 2)"
	user=tg$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	pass=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
	(
		umask 077
		printf 'THINKGEN_TEST_S3_ENDPOINT=127.0.0.1:%s\nTHINKGEN_TEST_S3_ACCESS_KEY=%s\nTHINKGEN_TEST_S3_SECRET_KEY=%s\nTHINKGEN_TEST_S3_BUCKET=%s\nTHINKGEN_TEST_MINIO_BIN=%s\n' \
			"$port" "$user" "$pass" "$BUCKET" "$BIN" >"$ENVFILE"
		printf 'user = "%s:%s"\n' "$user" "$pass" >"$STATE/curl.cfg"
	)
	MINIO_ROOT_USER=$user MINIO_ROOT_PASSWORD=$pass MINIO_BROWSER=off MINIO_UPDATE=off \
		setsid "$BIN" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$cport" "$STATE/data" \
		>"$STATE/log" 2>&1 </dev/null &
	echo $! >"$STATE/pid"
	local url=http://127.0.0.1:$port
	for _ in $(seq 1 150); do
		# Live comes before the object layer is ready: the bucket PUT is
		# retried until it succeeds (200, or 409 once it exists).
		if curl -fs -o /dev/null "$url/minio/health/live"; then
			code=$(curl -s -o /dev/null -w '%{http_code}' -K "$STATE/curl.cfg" --aws-sigv4 "aws:amz:us-east-1:s3" -X PUT "$url/$BUCKET" || true)
			if [[ $code == 200 || $code == 409 ]]; then
				log "MinIO is up at 127.0.0.1:$port (pid $(cat "$STATE/pid"), data $STATE/data)"
				echo "$ENVFILE"
				return
			fi
		fi
		if ! running; then
			log "MinIO exited; its log:"
			cat "$STATE/log" >&2
			exit 1
		fi
		sleep 0.2
	done
	log "MinIO did not become ready (bucket $BUCKET) within 30 s; its log:"
	cat "$STATE/log" >&2
	stop
	exit 1
}

stop() {
	if running; then
		local pid
		pid=$(cat "$STATE/pid")
		kill "$pid"
		for _ in $(seq 1 50); do
			[[ -d /proc/$pid ]] || break
			sleep 0.2
		done
		[[ -d /proc/$pid ]] && kill -9 "$pid"
		log "stopped MinIO (pid $pid)"
	fi
	rm -rf "$STATE"
}

# private_state gives `run` a state directory of its own (unless
# THINKGEN_MINIO_STATE names one), so that another `run` neither reuses
# its server nor stops it.
private_state() {
	if [[ -z ${THINKGEN_MINIO_STATE:-} ]]; then
		STATE=$(mktemp -d "${TMPDIR:-/tmp}/thinkgen-minio-run.XXXXXX")
		ENVFILE=$STATE/env
	fi
}

testserver_main running "$@"
