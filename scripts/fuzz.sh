#!/usr/bin/env bash
# fuzz.sh runs every fuzz target for a bounded time (FUZZTIME each,
# default 10s), one after the other, and fails on the first input that
# panics, breaks an invariant or allocates past the target's cap. A failing
# input is written to the package's testdata/fuzz/<Target>/ so that plain
# `go test` replays it from then on. `make test` calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}

# package:target, one per untrusted parser.
targets=(
	./datasets:FuzzReadIPC
	./tokenizer:FuzzLoadHF
	./storage:FuzzDecodeManifest
	./reward:FuzzScoreRequest
	./controlapi:FuzzRequestBodies
	./serve:FuzzRequestBodies
	./model:FuzzSafetensors
)
for t in "${targets[@]}"; do
	pkg=${t%%:*} name=${t##*:}
	echo "fuzz: $name ($pkg, $FUZZTIME)"
	$GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"
done
