#!/usr/bin/env bash
# pretrain-tiny-base.sh DIR [FLAG...] — the recipe of base/tiny, on two CPU cores:
# the supervised stages of configs/tiny.yaml (seed 1; the MLLM warm-up
# gives a quarter of each batch to text-only questions about all 71 facts,
# pretrain.warmup.facts — FACTS=0 reproduces the shipped v3, which was
# trained without them), then
# stage 2 (DiT) continued twice on fresh rows with `pretrain --from`
# (1,000 steps of seed 2, then 2,000 of seed 3, lr 5e-4 with its own warm-up
# and cosine decay), then stage 3 (fine-tune, 200 steps) on the result (that
# was v2), then stage 3 twice more with `condition: mixed` — the DiT reads
# the pipeline's own context on every other row (300 steps of seed 4 at
# 2e-4, then 400 of seed 7 at 1e-4). The base is
# DIR/v3/runs/pretrain-tiny/pretrain/finetune/final. Each command resumes
# after a kill; about 2.5 hours on two idle cores.
#
# The shipped weights followed this recipe with one deviation: the first
# continuation was started as a 3,000-step schedule, stopped at step 179
# and resumed from its step-100 checkpoint as a 1,000-step schedule, so its
# first 100 learning rates differ slightly (cosine over 3,000 steps instead
# of 1,000); the script reproduces the recipe, not those bytes.
#
# FLAGs after DIR go to every command: base/tiny-vl is this recipe with
# the Qwen3-VL vision tower of configs/tiny-vl.yaml,
#   scripts/pretrain-tiny-base.sh DIR --config configs/tiny-vl.yaml
set -euo pipefail
dir=${1:?usage: pretrain-tiny-base.sh DIR [FLAG...]}
shift
bin=${THINKGEN_BIN:-bin/thinkgen}
cfg=configs/tiny.yaml
export OMP_WAIT_POLICY=PASSIVE
final() { echo "$dir/$1/runs/pretrain-tiny/pretrain/$2/final"; }
only_dit=(--set pretrain.warmup.steps=0 --set pretrain.align.steps=0 --set pretrain.dit.lr=5e-4)

"$bin" pretrain --config "$cfg" "$@" --set run.name=pretrain-tiny --run-dir "$dir/v1" --seed 1 --set pretrain.finetune.steps=0 \
	--set pretrain.warmup.facts="${FACTS:-0.25}" --eval-rows 0
"$bin" pretrain --config "$cfg" "$@" --set run.name=pretrain-tiny --run-dir "$dir/c2" --seed 2 --from "$(final v1 dit)" "${only_dit[@]}" \
	--set pretrain.dit.steps=1000 --set pretrain.finetune.steps=0 --eval-rows 0
"$bin" pretrain --config "$cfg" "$@" --set run.name=pretrain-tiny --run-dir "$dir/c3" --seed 3 --from "$(final c2 dit)" "${only_dit[@]}" \
	--set pretrain.dit.steps=2000 --eval-rows 50
only_ft=(--set pretrain.warmup.steps=0 --set pretrain.align.steps=0 --set pretrain.dit.steps=0 --set pretrain.finetune.condition=mixed)
"$bin" pretrain --config "$cfg" "$@" --set run.name=pretrain-tiny --run-dir "$dir/m1" --seed 4 --from "$(final c3 finetune)" "${only_ft[@]}" \
	--set pretrain.finetune.steps=300 --eval-rows 0
"$bin" pretrain --config "$cfg" "$@" --set run.name=pretrain-tiny --run-dir "$dir/v3" --seed 7 --from "$(final m1 finetune)" "${only_ft[@]}" \
	--set pretrain.finetune.steps=400 --set pretrain.finetune.lr=1e-4 --eval-rows 0
echo "base: $(final v3 finetune)"
