#!/usr/bin/env bash
# pretrain-tiny-base.sh DIR — the recipe of the shipped base/tiny (v2), on
# two CPU cores: the supervised stages of configs/tiny.yaml (seed 1), then
# stage 2 (DiT) continued twice on fresh rows with `pretrain --from`
# (1,000 steps of seed 2, then 2,000 of seed 3, lr 5e-4 with its own warm-up
# and cosine decay), then stage 3 (fine-tune, 200 steps) on the result.
# The base is DIR/c3/runs/pretrain-tiny/pretrain/finetune/final. Each
# command resumes after a kill; about 2 hours on two idle cores.
#
# The shipped weights followed this recipe with one deviation: the first
# continuation was started as a 3,000-step schedule, stopped at step 179
# and resumed from its step-100 checkpoint as a 1,000-step schedule, so its
# first 100 learning rates differ slightly (cosine over 3,000 steps instead
# of 1,000); the script reproduces the recipe, not those bytes.
set -euo pipefail
dir=${1:?usage: pretrain-tiny-base.sh DIR}
bin=${THINKGEN_BIN:-bin/thinkgen}
cfg=configs/tiny.yaml
export OMP_WAIT_POLICY=PASSIVE
final() { echo "$dir/$1/runs/pretrain-tiny/pretrain/$2/final"; }
only_dit=(--set pretrain.warmup.steps=0 --set pretrain.align.steps=0 --set pretrain.dit.lr=5e-4)

"$bin" pretrain --config "$cfg" --run-dir "$dir/v1" --seed 1 --set pretrain.finetune.steps=0 --eval-rows 0
"$bin" pretrain --config "$cfg" --run-dir "$dir/c2" --seed 2 --from "$(final v1 dit)" "${only_dit[@]}" \
	--set pretrain.dit.steps=1000 --set pretrain.finetune.steps=0 --eval-rows 0
"$bin" pretrain --config "$cfg" --run-dir "$dir/c3" --seed 3 --from "$(final c2 dit)" "${only_dit[@]}" \
	--set pretrain.dit.steps=2000 --eval-rows 50
echo "base: $(final c3 finetune)"
