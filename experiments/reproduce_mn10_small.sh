#!/usr/bin/env bash
# docs/RESULTS.md from a clean checkout: the paper's Tables 1-2 scaled to
# 2 CPU cores on the real ModelNet10 at 32^3, for the paper's training recipe
# and the recipes that the screen (experiments/screen_recipes.sh, scored on a
# validation split by experiments/feature_curve.py) picked, each on 3 seeds
# against the random-weight floor of the same seed; and the best recipe with
# and without the enhancer.
#
#   bash experiments/reproduce_mn10_small.sh                 # defaults below
#   SEEDS="0 1" ROWS="paper augment" bash experiments/reproduce_mn10_small.sh
#
# For each seed: train every recipe of ROWS (unlabelled, ModelNet10 train
# split, experiments/configs/mn10_small.cfg, STEPS steps), and BEST again with
# --use_enhancer=false; then Table 1 (linear SVM, C by 3-fold CV on train) and
# Table 2 (retrieval mAP) on the TEST split with --random_baseline, and the
# generation metrics (COV/MMD/1-NNA, 256 samples against 256 test shapes) of
# every row and of the untrained generator. Then recipe_table.py (mean ± std,
# paired differences with 95% intervals), the validation curves of every run
# and a sheet of samples.
#
# Every step is resumable: a finished training run (its last checkpoint
# exists) is skipped, an unfinished one resumed; finished features and tables
# are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=experiments/recipes.sh
source experiments/recipes.sh

SEEDS="${SEEDS:-0 1 2}"
STEPS="${STEPS:-300}"
ROWS="${ROWS:-paper gate_0.8}"           # recipes compared on every seed
BEST="${BEST:-gate_0.8}"                 # mn10_small.cfg's recipe: also without the enhancer
DATA="${DATA:-../shared/data/modelnet10_vox32.npz}"
RUNS="${RUNS:-runs/recipes}"
CACHE="${CACHE:-data_cache/mn10_vox32}"
RESULTS="${RESULTS:-results/mn10_small}"
EXTRA="${EXTRA:-}"                        # more training flags (tests: tiny width, batch)
CURVES="${CURVES:-1}"                     # 0: no validation curves (they cost ~4 min a run)
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

train() {  # train <recipe> <seed> <run_dir> [extra flags...]
    local recipe="$1" seed="$2" run_dir="$3"
    shift 3
    if [ -f "$run_dir/checkpoints/ckpt-$STEPS.index" ]; then
        echo "$run_dir: finished (ckpt-$STEPS); not resumed"
        return
    fi
    local extra
    extra=$(recipe_flags "$recipe")
    # shellcheck disable=SC2086
    python experiments/train.py --flagfile=experiments/configs/mn10_small.cfg \
        --data_dir="$DATA" --cache_dir="$CACHE" --seed="$seed" --num_steps="$STEPS" \
        --checkpoint_every=50 --max_checkpoints=20 --sample_every="$STEPS" \
        --run_dir="$run_dir" $extra $EXTRA "$@"
}

generation() {  # generation <run_dir> <output> [--random_init]
    [ -f "$2" ] || python tools/evaluate_generation.py --run_dir="$1" --reference=archive \
        --data_dir="$DATA" --split=test --num_samples=256 --max_reference=256 \
        --output="$2" "${@:3}"
}

dirs=()
all_runs=()
for seed in $SEEDS; do
    start=$(date +%s)
    runs=""
    for recipe in $ROWS; do
        train "$recipe" "$seed" "$RUNS/${recipe}_s$seed"
        runs="$runs,$recipe:$RUNS/${recipe}_s$seed"
        all_runs+=("$RUNS/${recipe}_s$seed")
    done
    train "$BEST" "$seed" "$RUNS/${BEST}_noenh_s$seed" --use_enhancer=false
    runs="${runs#,},${BEST}_no_enhancer:$RUNS/${BEST}_noenh_s$seed"
    all_runs+=("$RUNS/${BEST}_noenh_s$seed")
    echo "seed $seed: training took $(( $(date +%s) - start )) s"

    out="$RESULTS/seed$seed"
    [ -f "$out/table1.json" ] || python experiments/table1.py --runs="$runs" --random_baseline \
        --dataset=archive --data_dir="$DATA" --results_dir="$out" --noprogress
    [ -f "$out/table2.json" ] || python experiments/table2.py --runs="$runs" --random_baseline \
        --dataset=archive --data_dir="$DATA" --results_dir="$out" --noprogress
    IFS=, read -ra specs <<< "$runs"
    for spec in "${specs[@]}"; do
        generation "${spec#*:}" "$out/generation_${spec%%:*}.json"
    done
    generation "$RUNS/${BEST}_s$seed" "$out/generation_random_init.json" --random_init
    dirs+=("$out")
done

python experiments/recipe_table.py --results_dirs="$(IFS=,; echo "${dirs[*]}")" \
    --output="$RESULTS/recipes.md" --overwrite
if [ "$CURVES" = 1 ]; then
    python experiments/feature_curve.py --run_dirs="$(IFS=,; echo "${all_runs[*]}")" \
        --data_dir="$DATA" --cache_dir="$CACHE" --output_dir="$RESULTS/curves"
fi
first="${SEEDS%% *}"
python tools/generate.py --run_dir="$RUNS/${BEST}_s$first" --num_samples=16 \
    --output_dir="$RESULTS/samples" --overwrite
echo "Done: $RESULTS/recipes.md, $RESULTS/seed*/, $RESULTS/curves/, $RESULTS/samples/"
