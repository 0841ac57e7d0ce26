#!/usr/bin/env bash
# docs/RESULTS.md#long-protocol: ModelNet10 at the long budget
# (experiments/configs/mn10_long.cfg: the train split at 32^3, 1/8 width,
# batch 32, 5,000 steps = 40 epochs, a checkpoint every 500), in two parts.
#
#   bash experiments/reproduce_mn10_long.sh                    # PART=screen, seed 0
#   ROWS="r1_10 sn" COMMIT=1 bash experiments/reproduce_mn10_long.sh
#   PART=claims WINNER=r1_10 COMMIT=1 bash experiments/reproduce_mn10_long.sh
#
# PART=screen (one seed, the validation split carved from the train split; the
# test split is not read). Per row of ROWS: train (resumed where its
# checkpoints are), then experiments/feature_curve.py on every checkpoint and
# the random-weight floor of the same seed: SVM accuracy and retrieval mAP
# (raw, standardised, block-L2) on the validation part, the samples'
# COV/MMD/1-NNA and pieces beside the real-vs-real ceiling, DM's accuracy and
# D(real)/D(fake). The curve goes to $RESULTS/<row>_s<seed>.json and .png,
# with the commit (and machine) of every training start, read from the run's
# provenance.jsonl. A row whose result already holds the last step is skipped.
#
# PART=claims (the paper's claims, TEST split, reported once): for each seed
# of SEEDS, the paper's recipe and WINNER, each with and without the enhancer,
# and WINNER with the enhancer on GE's layers of LAYERS (Table 3) on the first
# seed. Each run is scored the moment it is trained, on its own, beside the
# floor of its seed: Table 1 (linear SVM, C by 3-fold CV on train, with its
# test predictions for McNemar) and Table 2 (raw, standardised and block-L2
# mAP) with --random_baseline, and its samples' COV/MMD against 256 test
# grids, into $CLAIMS/seed<seed>/<run>/; then experiments/recipe_table.py over
# the seeds (mean ± std, paired differences with 95% intervals, McNemar)
# writes $CLAIMS/claims.md. A run whose table2.json is there is skipped.
# (Runs without the enhancer start DM from other random draws of the same
# seed, GE not being built: their folders show that floor; claims.md keeps
# the first folder's, with the enhancer.)
#
# Both parts: COMMIT=1 commits each run's small result files (never features
# or checkpoints) the moment they are written, and nothing else, so an
# hour-long run outlives the machine.
#
# Wall time on a 2-core AMD EPYC (docs/RESULTS.md has every run's): about
# 66 min of training a run with R1 (1.26 steps/s), twice that with the
# rotation loss, ~5 min of curve or tables. The claims are 14 runs: ~17 h.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=experiments/recipes.sh
source experiments/recipes.sh

PART="${PART:-screen}"
SEED="${SEED:-0}"                         # screen
ROWS="${ROWS:-r1_10 paper sn mbstd rotation wgan_gp}"
SEEDS="${SEEDS:-0 1 2}"                   # claims
WINNER="${WINNER:-r1_10}"
LAYERS="${LAYERS:-2 3}"
STEPS="${STEPS:-5000}"
EVERY="${EVERY:-500}"
DATA="${DATA:-../shared/data/modelnet10_vox32.npz}"
RUNS="${RUNS:-runs/mn10_long}"
CACHE="${CACHE:-data_cache/mn10_vox32}"
RESULTS="${RESULTS:-docs/results_mn10_long/screen}"
CLAIMS="${CLAIMS:-docs/results_mn10_long/claims}"
SAMPLES="${SAMPLES:-128}"                 # samples scored per checkpoint (claims: 256)
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

train() {  # train <recipe> <seed> <run_dir> [more flags]: unless its last checkpoint is there
    local recipe="$1" seed="$2" run_dir="$3" flags_of_row start
    shift 3
    flags_of_row=$(recipe_flags "$recipe")
    [ -f "$run_dir/checkpoints/ckpt-$STEPS.index" ] && return
    provenance "$run_dir"
    start=$(date +%s)
    # shellcheck disable=SC2086
    python experiments/train.py --flagfile=experiments/configs/mn10_long.cfg \
        --data_dir="$DATA" --cache_dir="$CACHE" --seed="$seed" --num_steps="$STEPS" \
        --checkpoint_every="$EVERY" --sample_every="$EVERY" --run_dir="$run_dir" \
        $flags_of_row $EXTRA "$@"
    echo "$(basename "$run_dir"): trained in $(( $(date +%s) - start )) s" \
        | tee -a "$run_dir/wall_time.txt"
}

keep() {  # keep <run_dir> <dest prefix>: copies the run's provenance and wall time; prints them
    for kept in provenance.jsonl wall_time.txt; do
        if [ -f "$1/$kept" ]; then
            cp "$1/$kept" "$2$kept"
            echo "$2$kept"
        fi
    done
}

commit() {  # commit <message> <files...>: with COMMIT=1, commits exactly those files
    [ "$COMMIT" = 1 ] || return 0
    local message="$1"
    shift
    git add -- "$@"
    git commit -q -m "$message" -- "$@"
    echo "committed $*"
}

screen() {
    local row name run_dir result sheet files
    for row in $ROWS; do
        name="${row}_s$SEED"
        run_dir="$RUNS/$name"
        result="$RESULTS/$name.json"
        if finished "$result"; then
            echo "$name: result at step $STEPS in $result; skipped"
            continue
        fi
        train "$row" "$SEED" "$run_dir"
        python experiments/feature_curve.py --run_dirs="$run_dir" --data_dir="$DATA" \
            --cache_dir="$CACHE" --output_dir="$RESULTS" --num_samples="$SAMPLES"
        mv "$RESULTS/summary.md" "$RESULTS/$name.md"
        files=("$RESULTS/$name".{json,png,md})
        sheet="$run_dir/samples/step_$(printf '%08d' "$STEPS").png"
        if [ -f "$sheet" ]; then
            cp "$sheet" "$RESULTS/${name}_samples.png"
            files+=("$RESULTS/${name}_samples.png")
        fi
        mapfile -t -O "${#files[@]}" files < <(keep "$run_dir" "$RESULTS/${name}_")
        commit "mn10_long screen: $name scored at step $STEPS (curve, samples, game)" "${files[@]}"
    done
    echo "Done: $RESULTS/<row>_s$SEED.json, .png, .md"
}

score_run() {  # score_run <label> <recipe> <seed> [training flags]: train, tables, commit
    local label="$1" recipe="$2" seed="$3" run_dir out files
    shift 3
    run_dir="$RUNS/claims/${label}_s$seed"
    out="$CLAIMS/seed$seed/$label"
    if [ -f "$out/table2.json" ]; then
        echo "$label (seed $seed): scored in $out; skipped"
        return
    fi
    train "$recipe" "$seed" "$run_dir" "$@"
    for table in table1 table2; do
        python "experiments/$table.py" --runs="$label:$run_dir" --random_baseline \
            --dataset=archive --data_dir="$DATA" --results_dir="$out" --noprogress --overwrite
    done
    files=("$out"/table1.{json,md} "$out"/table2.{json,md} "$out"/predictions/*.npz)
    if [ "$SAMPLES" -gt 0 ]; then
        python tools/evaluate_generation.py --run_dir="$run_dir" --reference=archive \
            --data_dir="$DATA" --split=test --num_samples="$(( SAMPLES * 2 ))" \
            --max_reference=256 --output="$out/generation_$label.json" --overwrite
        files+=("$out/generation_$label.json")
    fi
    mapfile -t -O "${#files[@]}" files < <(keep "$run_dir" "$out/")
    commit "mn10_long claims: $label seed $seed on the test split (tables 1-2, samples)" \
        "${files[@]}"
}

claims() {
    local seed recipe layer dirs=() first="${SEEDS%% *}" recipes="paper"
    [ "$WINNER" = paper ] || recipes="paper $WINNER"
    for seed in $SEEDS; do
        for recipe in $recipes; do
            score_run "$recipe" "$recipe" "$seed"
            score_run "${recipe}_noenh" "$recipe" "$seed" --use_enhancer=false
        done
        if [ "$seed" = "$first" ]; then
            for layer in $LAYERS; do
                score_run "${WINNER}_layer$layer" "$WINNER" "$seed" --enhancer_layer="$layer"
            done
        fi
        dirs+=("$CLAIMS/seed$seed")
    done
    python experiments/recipe_table.py --results_dirs="$(IFS=,; echo "${dirs[*]}")" \
        --reference=paper --output="$CLAIMS/claims.md" --overwrite
    commit "mn10_long claims: the table over seeds ${SEEDS// /, }" "$CLAIMS"/claims.{md,json}
    echo "Done: $CLAIMS/claims.md"
}

case "$PART" in
    screen) screen ;;
    claims) claims ;;
    *) echo "PART must be screen or claims, got $PART" >&2; exit 2 ;;
esac
