#!/usr/bin/env bash
# docs/RESULTS.md#generation from a clean checkout, on the built-in data (no
# download): README command 1 (experiments/configs/demo.cfg) on 3 seeds, and
# the paper's per-category generation (Figure 3) at small scale, one
# generator per category (experiments/configs/demo_gen_<category>.cfg).
#
#   bash experiments/reproduce_generation.sh            # everything below
#   PART=demo SEEDS="0" bash experiments/reproduce_generation.sh
#   PART=categories CATEGORIES="chair car" bash experiments/reproduce_generation.sh
#
# For each run: train (resumed if its run folder holds checkpoints), then the
# generation report of experiments/compare_sampling.py (64 samples against
# the held-out split, read like the training grids, beside 64 training grids
# as the ceiling; every sampling mode, and the last iterate beside the weight
# average) into $RESULTS, with the sheet of samples. Categories also get an
# interpolation sheet (tools/generate.py --interpolate). A run whose result
# file exists is skipped, so committed results are never recomputed; delete
# the file to redo it. Then the tables (experiments/generation_table.py).
# Wall time on 2 cores: about 5 min per demo seed, 3 min per category.
set -euo pipefail
cd "$(dirname "$0")/.."

PART="${PART:-all}"                     # demo, categories or all
SEEDS="${SEEDS:-0 1 2}"
CATEGORIES="${CATEGORIES:-airplane car chair table sofa}"
RUNS="${RUNS:-runs/generation}"
RESULTS="${RESULTS:-docs/results_generation}"
EXTRA="${EXTRA:-}"                      # more training flags (tests: tiny width, steps)
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
mkdir -p "$RESULTS"
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

one_run() {  # one_run <preset> <name> [extra flags...]
    local preset="$1" name="$2"
    shift 2
    local out="$RESULTS/$name.json" run_dir="$RUNS/$name"
    if [ -f "$out" ]; then
        echo "$out: done; skipped"
        return
    fi
    local start
    start=$(date +%s)
    # shellcheck disable=SC2086
    python experiments/train.py --flagfile="experiments/configs/$preset.cfg" \
        --run_dir="$run_dir" --noevaluate_generation "$@" $EXTRA
    local seconds=$(($(date +%s) - start))
    python experiments/compare_sampling.py --run_dirs="$run_dir" --output="$out.tmp"
    python - "$out.tmp" "$out" "$seconds" "$COMMIT" <<'EOF'
import json, sys
reports = json.load(open(sys.argv[1]))
for r in reports:
    r["train_seconds"], r["commit"] = int(sys.argv[3]), sys.argv[4]
json.dump(reports, open(sys.argv[2], "w"), indent=1)
EOF
    rm -f "$out.tmp"
    cp "$(ls "$run_dir"/samples/step_*.png | tail -1)" "$RESULTS/${name}_samples.png"
}

if [ "$PART" = demo ] || [ "$PART" = all ]; then
    for seed in $SEEDS; do
        one_run demo "demo_s$seed" --seed="$seed"
    done
    # shellcheck disable=SC2046
    python experiments/generation_table.py $(for s in $SEEDS; do echo "$RESULTS/demo_s$s.json"; done) \
        > "$RESULTS/demo_table.md"
fi
if [ "$PART" = categories ] || [ "$PART" = all ]; then
    for cat in $CATEGORIES; do
        one_run "demo_gen_$cat" "gen_$cat"
        [ -f "$RESULTS/gen_${cat}_interpolation.png" ] || {
            python tools/generate.py --run_dir="$RUNS/gen_$cat" --interpolate --num_samples=8 \
                --output_dir="$RUNS/gen_$cat/interpolation" --overwrite
            cp "$RUNS/gen_$cat/interpolation/sheet.png" "$RESULTS/gen_${cat}_interpolation.png"
        }
    done
    # shellcheck disable=SC2046
    python experiments/generation_table.py --by=category \
        $(for c in $CATEGORIES; do echo "$RESULTS/gen_$c.json"; done) > "$RESULTS/categories_table.md"
fi
echo "Results in $RESULTS"
