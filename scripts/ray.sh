#!/usr/bin/env bash
# ray.sh runs a throwaway local Ray head for the cluster package's tests.
#
#   scripts/ray.sh start        create the venv once, start the head, print the env file's path
#   scripts/ray.sh env          print the env file (KEY=value lines, for `set -a; . file`)
#   scripts/ray.sh envfile      print the env file's path
#   scripts/ray.sh stop         stop that head (only its processes) and remove its state
#   scripts/ray.sh run CMD...   start, run CMD with the env set, stop (trap) and exit with CMD's code
#
# Ray comes from PyPI, pinned in scripts/requirements-ray.txt, into a venv
# under $THINKGEN_CACHE (~/.cache/thinkgen/venv-ray-<hash of that file>)
# that `scripts/setup-toolenv.sh ray` creates once (~1.5 min) and reuses
# while the pins are unchanged. The head
# listens on 127.0.0.1 only, on free ports, with its own temp dir under
# $STATE, 2 CPUs and one custom resource "thinkgen_test" (4 units) for the
# tests of entrypoint_resources. The env file sets THINKGEN_RAY_ADDRESS to
# the dashboard's URL (the Job Submission API).
#
# `ray stop` would kill every Ray on the machine, so it is never used: the
# head is started in a session of its own (setsid), whose id is recorded,
# and stop signals the processes of that session only. Job entrypoints run
# in sessions of their own, but Ray's per-job watcher kills each one within
# a second once its supervisor is gone; stop waits for that.
set -euo pipefail
# shellcheck source=scripts/testserver.sh
. "$(dirname "${BASH_SOURCE[0]}")/testserver.sh"

root=$(cd "$(dirname "$0")/.." && pwd)
# Short: Ray's unix socket paths live under it (108-byte limit).
STATE=${THINKGEN_RAY_STATE:-${TMPDIR:-/tmp}/thinkgen-ray-$(id -u)}
ENVFILE=$STATE/env

log() { printf 'ray.sh: %s\n' "$*" >&2; }

# session prints the recorded session id of the head, if any process of it
# is still alive.
session() {
	[[ -f $STATE/sid ]] || return 1
	local sid
	sid=$(cat "$STATE/sid")
	[[ -n $(pids "$sid") ]] && echo "$sid"
}

# pids lists the processes of session $1.
pids() {
	ps -e -o pid=,sid= | awk -v s="$1" '$2 == s && $1 != s { print $1 } $1 == s { print $1 }' | sort -u
}

start() {
	if session >/dev/null; then
		echo "$ENVFILE"
		return
	fi
	local python venv
	python=$(bash "$root/scripts/setup-toolenv.sh" ray)
	venv=$(dirname "$(dirname "$python")")
	rm -rf "$STATE"
	mkdir -p "$STATE/tmp"
	chmod 700 "$STATE"
	local gcs dash client agent agrpc metrics renv nm om
	read -r gcs dash client agent agrpc metrics renv nm om <<<"$(free_ports 9)"
	local t0=$SECONDS
	# setsid makes `ray start` the leader of a new session; the daemons it
	# spawns stay in it (Ray does not call setsid for them).
	RAY_USAGE_STATS_ENABLED=0 RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 setsid "$venv/bin/ray" start --head \
		--node-ip-address=127.0.0.1 --port="$gcs" \
		--include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port="$dash" \
		--ray-client-server-port="$client" --dashboard-agent-listen-port="$agent" \
		--dashboard-agent-grpc-port="$agrpc" --metrics-export-port="$metrics" \
		--runtime-env-agent-port="$renv" --node-manager-port="$nm" --object-manager-port="$om" \
		--num-cpus=2 --num-gpus=0 --resources='{"thinkgen_test": 4}' \
		--object-store-memory=100000000 --temp-dir="$STATE/tmp" --disable-usage-stats \
		>"$STATE/start.log" 2>&1 </dev/null &
	local leader=$!
	echo "$leader" >"$STATE/sid"
	if ! wait "$leader"; then
		log "ray start failed; its output:"
		cat "$STATE/start.log" >&2
		stop
		exit 1
	fi
	local url=http://127.0.0.1:$dash
	(
		umask 077
		printf 'THINKGEN_RAY_ADDRESS=%s\n' "$url" >"$ENVFILE"
	)
	for _ in $(seq 1 300); do
		# The Job API answers only once the dashboard's job module and the
		# head's agent are up; /api/version comes first, so the job list is
		# asked too.
		if curl -fs -o /dev/null "$url/api/version" && curl -fs -o /dev/null "$url/api/jobs/"; then
			log "Ray head is up at $url in $((SECONDS - t0)) s (session $leader, state $STATE)"
			echo "$ENVFILE"
			return
		fi
		sleep 0.2
	done
	log "the Ray Job API did not answer at $url within 60 s; ray start said:"
	cat "$STATE/start.log" >&2
	stop
	exit 1
}

stop() {
	local sid p left
	if sid=$(session); then
		# shellcheck disable=SC2046
		kill $(pids "$sid") 2>/dev/null || true
		# gcs_server, the raylet and the runtime env agent linger on SIGTERM;
		# a throwaway head needs no graceful shutdown past 3 s.
		for _ in $(seq 1 15); do
			[[ -z $(pids "$sid") ]] && break
			sleep 0.2
		done
		left=$(pids "$sid")
		if [[ -n $left ]]; then
			# shellcheck disable=SC2086
			kill -9 $left 2>/dev/null || true
		fi
		# Job entrypoints (own sessions) are killed by Ray's watchers within ~1 s.
		sleep 1.5
		log "stopped the Ray head (session $sid)"
	fi
	rm -rf "$STATE"
}

testserver_main session "$@"
