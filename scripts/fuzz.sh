#!/usr/bin/env bash
# fuzz.sh runs every fuzz target for a bounded number of inputs, one after
# the other, and fails on the first input that panics, breaks an invariant
# or allocates past the target's cap. A failing input is written to the
# package's testdata/fuzz/<Target>/ so that plain `go test` replays it from
# then on. `make test` calls it.
#
# Budgets are counts (-fuzztime Nx), each about 5 s of inputs on two idle
# cores, not durations: with a duration, Go 1.26's coordinator can fail a
# target with a bare "context deadline exceeded" when a starved worker is
# mid-input at the deadline (go.dev/issue/75804, fixed in Go 1.27), which
# reports a failure where no input failed. FUZZTIME (a count such as 1000x,
# or a duration) overrides every target's budget.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-}

# package target budget, one per untrusted parser.
targets=(
	"./datasets FuzzReadIPC 40000x"
	"./tokenizer FuzzLoadHF 2000x"
	"./storage FuzzDecodeManifest 20000x"
	"./reward FuzzScoreRequest 30000x"
	"./controlapi FuzzRequestBodies 20000x"
	"./serve FuzzRequestBodies 15000x"
	"./model FuzzSafetensors 10000x"
)
for t in "${targets[@]}"; do
	read -r pkg name budget <<<"$t"
	budget=${FUZZTIME:-$budget}
	echo "fuzz: $name ($pkg, $budget)"
	$GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$budget" "$pkg"
done
