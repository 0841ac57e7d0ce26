#!/usr/bin/env bash
# GPU check, one H100/H200, from a fresh checkout, against an 8-minute deadline:
#   bash benchmarks/gpu_check.sh [gpu_check.json]
# Installs TensorFlow with CUDA and the project when TensorFlow sees no GPU,
# then runs benchmarks/gpu_check.py (step speed, FLOP utilisation, memory at
# 64^3 batch 64 in float32 / mixed precision / XLA; a ~4 minute full-width
# 32^3 training on ../shared/data/modelnet10_vox32.npz; its features against
# the random-weight floor) against a deadline of 8 minutes from the start.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
out="${1:-gpu_check.json}"
export TF_CPP_MIN_LOG_LEVEL=2
if ! python -c "import tensorflow as tf, sys; sys.exit(0 if tf.config.list_physical_devices('GPU') else 1)" 2>/dev/null; then
  pip install -q "tensorflow[and-cuda]" -e .
elif ! python -c "import enhancer_gan" 2>/dev/null; then
  pip install -q -e .
fi
# 8 minutes in all, 20 s kept for the JSON and exit.
deadline=$((start + 460))
left=$((deadline - $(date +%s)))
timeout $((left + 15)) python benchmarks/gpu_check.py --output="$out" --deadline="$deadline" \
  --train_seconds=240
echo "gpu_check: $(( $(date +%s) - start )) s; $out"
