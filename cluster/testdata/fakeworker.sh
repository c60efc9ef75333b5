#!/bin/sh
# fakeworker.sh stands in for `thinkgen worker` in the Ray placer tests: it
# prints its arguments and whether the worker token arrived through the
# file its job names (its length, never its value), then sleeps like a
# worker waiting for tasks.
echo "fakeworker args: $*"
if [ -r "${THINKGEN_WORKER_TOKEN_FILE:-}" ]; then
	echo "fakeworker token: set ($(wc -c < "$THINKGEN_WORKER_TOKEN_FILE" | tr -d ' ') bytes)"
else
	echo "fakeworker token: missing"
fi
exec sleep "${FAKEWORKER_SLEEP:-30}"
