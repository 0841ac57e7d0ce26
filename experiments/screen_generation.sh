#!/usr/bin/env bash
# The recipe screen behind experiments/configs/demo.cfg (docs/RESULTS.md#generation):
# README command 1's data and networks, seed 0, each recipe trained and its
# samples scored against the held-out split beside the ceiling.
#
#   bash experiments/screen_generation.sh                      # every row below
#   ROWS="paper r1_10" bash experiments/screen_generation.sh
#
# Rows start from demo.cfg with the paper's recipe (--r1_gamma=0
# --generator_ema=0, 1000 steps) and add their flags; the demo_* rows go back
# to demo.cfg's own recipe and add one candidate. A row whose result file
# exists is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-runs/screen_generation}"
RESULTS="${RESULTS:-docs/results_generation/screen}"
EXTRA="${EXTRA:-}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
PAPER="--r1_gamma=0 --generator_ema=0 --num_steps=1000"
DEMO="--r1_gamma=10 --generator_ema=0.99 --num_steps=1500"

flags_of() {
    case "$1" in
        paper) echo "" ;;
        r1_10) echo "--r1_gamma=10" ;;
        r1_30) echo "--r1_gamma=30" ;;
        r1_10_steps1500) echo "--r1_gamma=10 --num_steps=1500" ;;
        r1_10_ema) echo "--r1_gamma=10 --generator_ema=0.99" ;;
        augment) echo "--discriminator_augment" ;;
        # demo.cfg's own recipe (R1 10, weight average, 1500 steps) plus one
        # candidate of the long screen (docs/DESIGN.md#candidates).
        demo_mbstd) echo "$DEMO --dm_minibatch_std" ;;
        demo_sn) echo "$DEMO --dm_spectral_norm" ;;
        demo_rotation) echo "$DEMO --rotation_weight=1" ;;
        # ... or GM's resize-convolutions against speckle (docs/DESIGN.md#gm-upsample).
        demo_resize) echo "$DEMO --gm_upsample=resize" ;;
        demo_resize_last) echo "$DEMO --gm_upsample=resize_last" ;;
        # ... or a total-variation penalty on GM's grids (the data's TV is about 0.05).
        demo_tv2) echo "$DEMO --voxel_tv_weight=2" ;;
        demo_tv10) echo "$DEMO --voxel_tv_weight=10" ;;
        demo_tv30) echo "$DEMO --voxel_tv_weight=30" ;;
        *) echo "unknown row $1" >&2; exit 2 ;;
    esac
}

ROWS="${ROWS:-paper r1_10 r1_30 r1_10_steps1500 r1_10_ema}"
mkdir -p "$RESULTS"
for row in $ROWS; do
    extra=$(flags_of "$row")
    out="$RESULTS/$row.json"
    [ -f "$out" ] && { echo "$out: done; skipped"; continue; }
    start=$(date +%s)
    # shellcheck disable=SC2086
    python experiments/train.py --flagfile=experiments/configs/demo.cfg \
        --run_dir="$RUNS/$row" --noevaluate_generation $PAPER $extra $EXTRA
    echo "$row: trained in $(($(date +%s) - start)) s"
    python experiments/compare_sampling.py --run_dirs="$RUNS/$row" --modes=recalibrated \
        --noboth_weights --output="$out"
done
# shellcheck disable=SC2046
python experiments/generation_table.py $(for r in $ROWS; do echo "$RESULTS/$r.json"; done)
