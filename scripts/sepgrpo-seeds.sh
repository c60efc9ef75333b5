#!/usr/bin/env bash
# sepgrpo-seeds.sh CONFIG STORE_DIR SEED... — runs `thinkgen train` once per
# seed (run sepgrpo-seed<N>) and prints, per evaluated version and mode, the
# mean and spread (min–max) over the seeds of each scenario's held-out score,
# then the per-seed gains of stage 4 (thinking-mode reasoning, composition)
# and stage 5 (text, composition). Runs that already finished are reused.
# THINKGEN_TRAIN_FLAGS adds flags to every `thinkgen train` (e.g.
# "--set run.threads=1 --eval-rows 50").
set -euo pipefail
read -r -a extra <<<"${THINKGEN_TRAIN_FLAGS:-}"
cfg=$1 store=$2
shift 2
bin=${THINKGEN_BIN:-bin/thinkgen}
for seed in "$@"; do
	run=sepgrpo-seed$seed
	if [[ -f $store/runs/$run/run.json ]] && grep -q '"committed": *\([1-9]\)' "$store/runs/$run/run.json"; then
		echo "== $run exists; resuming (a finished run only re-prints its table)" >&2
		"$bin" train --config "$cfg" --run-dir "$store" --run "$run" --resume --seed "$seed" "${extra[@]}" >&2
	else
		echo "== $run" >&2
		"$bin" train --config "$cfg" --run-dir "$store" --run "$run" --seed "$seed" "${extra[@]}" >&2
	fi
done
python3 - "$store" "$@" <<'EOF'
import json, os, re, sys, statistics
store, seeds = sys.argv[1], sys.argv[2:]
scen = ["composition", "reasoning", "text", "editing", "reflection"]
# A version's held-out scores are runs/<run>/eval/<version>.json
# (storage/runs: EvalKey, ParseEvalKey); the -rows, -id and grid objects
# beside them are not.
score_file = re.compile(r"^(\d+)\.json$")
def load(seed):
    d = os.path.join(store, "runs", f"sepgrpo-seed{seed}", "eval")
    out = {}
    for f in sorted(os.listdir(d)):
        if k := score_file.match(f):
            out[int(k[1])] = {m: {s["scenario"]: s["score"] for s in sums} for m, sums in json.load(open(os.path.join(d, f))).items()}
    return out
runs = {s: load(s) for s in seeds}
versions = sorted(set.intersection(*(set(r) for r in runs.values())))
print(f"held-out scores over seeds {', '.join(seeds)}: mean [min–max]")
print("version  mode    " + "  ".join(f"{s:>20}" for s in scen))
for v in versions:
    for mode in ("direct", "think"):
        cells = []
        for s in scen:
            xs = [runs[k][v][mode].get(s, float("nan")) for k in seeds]
            cells.append(f"{statistics.mean(xs):.3f} [{min(xs):.3f}–{max(xs):.3f}]")
        print(f"{v:>7}  {mode:<6}  " + "  ".join(f"{c:>20}" for c in cells))
if len(versions) >= 3:
    b, s4, s5 = versions[0], versions[1], versions[-1]
    def gains(v0, v1, mode, s):
        return [runs[k][v1][mode][s] - runs[k][v0][mode][s] for k in seeds]
    for label, v0, v1, mode, s in [("stage 4 reasoning (think)", b, s4, "think", "reasoning"),
                                   ("stage 4 composition (think)", b, s4, "think", "composition"),
                                   ("stage 4 composition (direct)", b, s4, "direct", "composition"),
                                   ("stage 5 text (think)", s4, s5, "think", "text"),
                                   ("stage 5 composition (think)", s4, s5, "think", "composition")]:
        g = gains(v0, v1, mode, s)
        print(f"{label:<30} gain mean {statistics.mean(g):+.3f}  per seed " + " ".join(f"{x:+.3f}" for x in g))
EOF
