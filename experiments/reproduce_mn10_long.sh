#!/usr/bin/env bash
# docs/RESULTS.md#long-protocol: the screen of training recipes at the long
# budget (experiments/configs/mn10_long.cfg: ModelNet10 train split at 32^3,
# 1/8 width, batch 32, 5,000 steps = 40 epochs, a checkpoint every 500), one
# seed, scored on a validation split carved from the train split (the test
# split is not read).
#
#   bash experiments/reproduce_mn10_long.sh                    # every row, seed 0
#   ROWS="r1_10 sn" COMMIT=1 bash experiments/reproduce_mn10_long.sh
#
# Per row: train (resumed where its checkpoints are), then
# experiments/feature_curve.py on every checkpoint and the random-weight floor
# of the same seed: SVM accuracy and retrieval mAP (raw, standardised,
# block-L2) on the validation part, the samples' COV/MMD/1-NNA and pieces
# beside the real-vs-real ceiling, DM's accuracy and D(real)/D(fake). The
# curve goes to $RESULTS/<row>_s<seed>.json and .png, with the commit (and
# machine) of every training start, read from the run's provenance.jsonl.
# A row whose result already holds the last step is skipped, so committed
# results are never recomputed; COMMIT=1 commits each row's result files the
# moment they are written (nothing else is committed).
#
# About 66 min of training (1.26 steps/s with R1 on a 2-core AMD EPYC; see
# docs/RESULTS.md for every row's wall time) and ~10 min of curve a row.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=experiments/recipes.sh
source experiments/recipes.sh

SEED="${SEED:-0}"
ROWS="${ROWS:-r1_10 paper sn mbstd rotation wgan_gp}"
STEPS="${STEPS:-5000}"
EVERY="${EVERY:-500}"
DATA="${DATA:-../shared/data/modelnet10_vox32.npz}"
RUNS="${RUNS:-runs/mn10_long}"
CACHE="${CACHE:-data_cache/mn10_vox32}"
RESULTS="${RESULTS:-docs/results_mn10_long/screen}"
SAMPLES="${SAMPLES:-128}"                 # samples scored per checkpoint
EXTRA="${EXTRA:-}"                        # more training flags (tests: tiny width, batch)
COMMIT="${COMMIT:-0}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

finished() {  # finished <result json>: true if it scored step $STEPS
    [ -f "$1" ] && python -c "import json,sys; c=json.load(open(sys.argv[1]))['checkpoints']; \
sys.exit(0 if c and c[-1]['step'] >= int(sys.argv[2]) else 1)" "$1" "$STEPS"
}

provenance() {  # provenance <run_dir>: one JSON line per training start
    local commit dirty cpu step=0
    commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
    dirty=false
    git diff --quiet HEAD -- enhancer_gan experiments 2>/dev/null || dirty=true
    cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
    last=$(ls "$1"/checkpoints/ckpt-*.index 2>/dev/null | sed 's/.*ckpt-\([0-9]*\).index/\1/' \
        | sort -n | tail -1 || true)
    step="${last:-0}"
    mkdir -p "$1"
    printf '{"commit": "%s", "dirty": %s, "date": "%s", "cpu": "%s", "cores": %s, "from_step": %s}\n' \
        "$commit" "$dirty" "$(date -u +%FT%TZ)" "$cpu" "$(nproc)" "$step" >> "$1/provenance.jsonl"
}

names=()
for row in $ROWS; do
    name="${row}_s$SEED"
    run_dir="$RUNS/$name"
    result="$RESULTS/$name.json"
    names+=("$run_dir")
    if finished "$result"; then
        echo "$name: result at step $STEPS in $result; skipped"
        continue
    fi
    flags_of_row=$(recipe_flags "$row")
    if [ ! -f "$run_dir/checkpoints/ckpt-$STEPS.index" ]; then
        provenance "$run_dir"
        start=$(date +%s)
        # shellcheck disable=SC2086
        python experiments/train.py --flagfile=experiments/configs/mn10_long.cfg \
            --data_dir="$DATA" --cache_dir="$CACHE" --seed="$SEED" --num_steps="$STEPS" \
            --checkpoint_every="$EVERY" --sample_every="$EVERY" --run_dir="$run_dir" \
            $flags_of_row $EXTRA
        echo "$name: trained in $(( $(date +%s) - start )) s" | tee -a "$run_dir/wall_time.txt"
    fi
    python experiments/feature_curve.py --run_dirs="$run_dir" --data_dir="$DATA" \
        --cache_dir="$CACHE" --output_dir="$RESULTS" --num_samples="$SAMPLES"
    mv "$RESULTS/summary.md" "$RESULTS/$name.md"
    files=("$RESULTS/$name".{json,png,md})
    sheet="$run_dir/samples/step_$(printf '%08d' "$STEPS").png"
    if [ -f "$sheet" ]; then
        cp "$sheet" "$RESULTS/${name}_samples.png"
        files+=("$RESULTS/${name}_samples.png")
    fi
    for kept in provenance.jsonl wall_time.txt; do
        if [ -f "$run_dir/$kept" ]; then
            cp "$run_dir/$kept" "$RESULTS/${name}_$kept"
            files+=("$RESULTS/${name}_$kept")
        fi
    done
    if [ "$COMMIT" = 1 ]; then
        git add "${files[@]}"
        git commit -q -m "mn10_long screen: $name scored at step $STEPS (curve, samples, game)" \
            -- "${files[@]}"
        echo "$name: committed ${files[*]}"
    fi
done
echo "Done: $RESULTS/<row>_s$SEED.json, .png, .md"
