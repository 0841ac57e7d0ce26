#!/usr/bin/env bash
# Screening of training recipes for docs/RESULTS.md (section "The screen
# (seed 0, validation split)"): every recipe on ONE seed at the small protocol (ModelNet10 train
# split at 32^3, 1/8 width, batch 32, STEPS steps, a checkpoint every EVERY
# steps). Recipes are scored afterwards on a validation split carved from the
# train split by experiments/feature_curve.py; the test split is not touched.
#
#   bash experiments/screen_recipes.sh                      # all recipes, seed 0
#   RECIPES="paper d_lr_1e-5" SEED=1 bash experiments/screen_recipes.sh
#
# Resumable: a finished run is resumed at its last step (nothing to do).
set -euo pipefail
cd "$(dirname "$0")/.."

SEED="${SEED:-0}"
STEPS="${STEPS:-300}"
EVERY="${EVERY:-50}"
DATA="${DATA:-../shared/data/modelnet10_vox32.npz}"
RUNS="${RUNS:-runs/recipes}"
CACHE="${CACHE:-data_cache/mn10_vox32}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

# shellcheck source=experiments/recipes.sh
source experiments/recipes.sh
# The order of docs/RESULTS.md's screen (the first eight were run there).
ORDER="paper d_lr_1e-5 gate_0.8 3dgan noise_0.2 augment augment+d_lr_1e-5 r1_10"
ORDER="$ORDER augment+noise smooth_0.9 d_lr_1e-5+noise d_lr_1e-5+r1 all"
RECIPES="${RECIPES:-$ORDER}"

for name in $RECIPES; do
    flags_of_recipe=$(recipe_flags "$name")
    start=$(date +%s)
    # shellcheck disable=SC2086
    python experiments/train.py --flagfile=experiments/configs/mn10_small.cfg \
        --data_dir="$DATA" --cache_dir="$CACHE" --seed="$SEED" --num_steps="$STEPS" \
        --checkpoint_every="$EVERY" --max_checkpoints=20 --sample_every="$STEPS" \
        --run_dir="$RUNS/${name}_s$SEED" $flags_of_recipe "$@"
    echo "recipe $name seed $SEED: $(( $(date +%s) - start )) s"
done
