# testserver.sh is sourced by the scripts that run a throwaway server for
# the tests (scripts/minio.sh, scripts/ray.sh): it holds what they share,
# their command line and the choice of free ports. The sourcing script
# defines log, start (which prints the env file's path), stop, a check
# that its server is up, and ENVFILE; it may define private_state, which
# `run` calls first so that the server it starts is its own.

# free_ports prints $1 distinct free TCP ports on 127.0.0.1.
free_ports() {
	python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# testserver_main UP ARGS... runs the command ARGS (start, stop, env,
# envfile or run CMD...) of the script, whose server is up when the
# command UP succeeds.
testserver_main() {
	local up=$1
	shift
	case ${1:-} in
	start) start ;;
	stop) stop ;;
	env)
		"$up" >/dev/null || {
			log "not running (scripts/$(basename "$0") start)"
			exit 1
		}
		cat "$ENVFILE"
		;;
	envfile) echo "$ENVFILE" ;;
	run)
		shift
		[[ $# -gt 0 ]] || {
			log "run needs a command"
			exit 2
		}
		if declare -F private_state >/dev/null; then
			private_state
		fi
		start >/dev/null
		trap stop EXIT
		set -a
		# shellcheck disable=SC1090
		. "$ENVFILE"
		set +a
		"$@"
		;;
	*)
		echo "usage: $0 start|stop|env|envfile|run CMD..." >&2
		exit 2
		;;
	esac
}
