#!/bin/sh
# fakeworker.sh stands in for `thinkgen worker` in the Ray placer tests: it
# prints its arguments and whether the worker token arrived (its length,
# never its value), then sleeps like a worker waiting for tasks.
echo "fakeworker args: $*"
if [ -n "${THINKGEN_WORKER_TOKEN:-}" ]; then
	echo "fakeworker token: set (${#THINKGEN_WORKER_TOKEN} bytes)"
else
	echo "fakeworker token: missing"
fi
exec sleep "${FAKEWORKER_SLEEP:-30}"
