#!/usr/bin/env bash
# docs/RESULTS.md from a clean checkout: the paper's Tables 1-2 (and 3, with
# LAYERS=1,2,3) scaled to 2 CPU cores on the real ModelNet10 at 32^3.
#
#   bash experiments/reproduce_mn10_small.sh                 # defaults below
#   SEEDS="0 1 2" STEPS=600 bash experiments/reproduce_mn10_small.sh
#
# For each seed: train without labels on the ModelNet10 train split (the
# enhancer's views come from the project's renderer) with the enhancer
# (GE layer 1) and without; then Table 1 (linear SVM) and Table 2 (retrieval
# mAP, Figure 4) on the test split with the randomly initialised DM of the
# same architecture and seed as the floor. Then the mean and spread over
# seeds (paired differences by seed, 95% t-interval), retrieval under three feature scalings
# (feature_diagnostics.py), a sheet of generated shapes and the
# generation-quality metrics of the first seed's enhancer run.
#
# Every step is resumable: a finished training run is resumed at its last
# step (nothing to do), finished features are reused, and finished tables are
# kept (delete a results folder to redo it).
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS="${SEEDS:-0 1 2}"
STEPS="${STEPS:-600}"
LAYERS="${LAYERS:-1}"                     # 1,2,3 adds Table 3's variants
DATA="${DATA:-../shared/data/modelnet10_vox32.npz}"
RUNS="${RUNS:-runs/mn10_small}"
RESULTS="${RESULTS:-results/mn10_small}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

train() {  # train <run_dir> [extra flags...]
    local run_dir="$1"
    shift
    python experiments/train.py --flagfile=experiments/configs/mn10_small.cfg \
        --data_dir="$DATA" --num_steps="$STEPS" --run_dir="$run_dir" "$@"
}

dirs=()
for seed in $SEEDS; do
    start=$(date +%s)
    train "$RUNS/enhancer_s$seed" --seed="$seed"
    train "$RUNS/no_enhancer_s$seed" --seed="$seed" --use_enhancer=false
    runs="with_enhancer:$RUNS/enhancer_s$seed,without_enhancer:$RUNS/no_enhancer_s$seed"
    for layer in ${LAYERS//,/ }; do
        [ "$layer" = 1 ] && continue
        train "$RUNS/layer${layer}_s$seed" --seed="$seed" --enhancer_layer="$layer"
    done
    echo "seed $seed: training took $(( $(date +%s) - start )) s"

    out="$RESULTS/seed$seed"
    [ -f "$out/table1.json" ] || python experiments/table1.py --runs="$runs" --random_baseline \
        --dataset=archive --data_dir="$DATA" --results_dir="$out" --noprogress
    [ -f "$out/table2.json" ] || python experiments/table2.py --runs="$runs" --random_baseline \
        --dataset=archive --data_dir="$DATA" --results_dir="$out" --noprogress
    if [ "$LAYERS" != 1 ]; then
        t3="none:$RUNS/no_enhancer_s$seed,layer1:$RUNS/enhancer_s$seed"
        for layer in ${LAYERS//,/ }; do
            [ "$layer" = 1 ] || t3="$t3,layer$layer:$RUNS/layer${layer}_s$seed"
        done
        [ -f "$out/table3.json" ] || python experiments/table3.py --runs="$t3" \
            --dataset=archive --data_dir="$DATA" --results_dir="$out" --noprogress
    fi
    dirs+=("$out")
done

tables=table1,table2
[ "$LAYERS" = 1 ] || tables=table1,table2,table3
python experiments/summarize_seeds.py --results_dirs="$(IFS=,; echo "${dirs[*]}")" \
    --tables="$tables" --output="$RESULTS/summary.md" --overwrite \
    --title="ModelNet10 at 32^3, seeds $SEEDS, $STEPS steps"

python experiments/feature_diagnostics.py --results_dirs="$(IFS=,; echo "${dirs[*]}")" \
    --output="$RESULTS/diagnostics.md" --overwrite

first="${SEEDS%% *}"
python tools/generate.py --run_dir="$RUNS/enhancer_s$first" --num_samples=16 \
    --output_dir="$RESULTS/samples" --overwrite
python tools/evaluate_generation.py --run_dir="$RUNS/enhancer_s$first" \
    --reference=archive --data_dir="$DATA" --split=test --num_samples=128 \
    --max_reference=256 --output="$RESULTS/generation.json" --overwrite
python tools/evaluate_generation.py --run_dir="$RUNS/enhancer_s$first" --random_init \
    --reference=archive --data_dir="$DATA" --split=test --num_samples=128 \
    --max_reference=256 --output="$RESULTS/generation_random_init.json" --overwrite
echo "Done: $RESULTS/summary.md, $RESULTS/seed*/, $RESULTS/samples/, $RESULTS/generation.json"
