"""Benchmark: shape-feature extraction with DM (57,344-d features per grid).

  python benchmarks/bench_features.py                       # 32^3 and 64^3, width 1, batch 32
  python benchmarks/bench_features.py --resolutions=64 --batch_size=64
  python benchmarks/bench_features.py --quick               # tiny, seconds (smoke test)

The project's code path: `enhancer_gan.evaluation.features.FeatureExtractor`
(what `extract_dataset_features` / tools/extract_features.py run, batch 32
by default) on a freshly initialised DM (`VoxelDiscriminator`, weights do
not change the cost), random occupancy grids [N, R, R, R] bool as the
voxel cache gives them. Per resolution: one untimed call (tracing), then
`--repeats` timed calls over `--batches` batches of `--batch_size` grids
each (bool -> float32 per batch, DM in inference mode, conv layers 2-4
max-pooled to 4^3 and concatenated, features copied back to numpy).

FLOPs: `enhancer_gan.models.flops.layer_macs` summed over DM's conv layers
(all of them run: the first feeds the feature layers), 2 FLOPs per MAC; the
logit layer (pruned from the traced graph, 32 K MACs), bias, batch norm,
activations and pooling are not counted. The achieved GFLOP/s are divided
by the rate of a large Conv3D (`common.conv3d_peak`, DM's costliest kind of
layer at stride 1) measured in the same process just before and just after
the timed calls, so a machine shared with other jobs slows both sides.

Peak memory: the resident set sampled while each config runs (and the
process's ru_maxrss); 32^3 runs first, so 64^3 sets the process peak.

Last line: `features_vs_conv_peak=<ratio>` of the 64^3 config (of the
largest resolution measured when 64 is not).
"""

from __future__ import annotations

import gc
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository on sys.path)
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_list("resolutions", ["32", "64"], "Voxel resolutions to measure (32, 64).")
flags.DEFINE_integer("batch_size", 32, "FeatureExtractor batch (extract.py's default: 32).")
flags.DEFINE_integer("batches", 2, "Batches per timed call.")
flags.DEFINE_integer("repeats", 2, "Timed calls per resolution (after one tracing call).")
flags.DEFINE_float("width", 1.0, "ModelConfig.width_multiplier (1 = the paper, 57,344-d).")
flags.DEFINE_float("occupancy", 0.1, "Fraction of occupied voxels of the random grids.")
flags.DEFINE_integer("peak_repeats", 3, "Timed calls of the Conv3D peak per measurement.")
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script end to end in seconds.")
FLAGS = flags.FLAGS


def build_dm(resolution: int, width: float):
    """A built DM (weights created by one symbolic call, as build_networks does)."""
    import keras

    from enhancer_gan.config import ModelConfig
    from enhancer_gan.models import VoxelDiscriminator

    keras.utils.set_random_seed(0)
    config = ModelConfig(resolution=resolution, width_multiplier=width, use_enhancer=False)
    dm = VoxelDiscriminator(config)
    dm(keras.KerasTensor((1, resolution, resolution, resolution, 1)))
    return dm


def feature_macs(dm) -> int:
    """Per-grid MACs of DM's conv layers (the work feature extraction needs)."""
    from enhancer_gan.models.flops import layer_macs

    return sum(layer_macs(getattr(dm, name)) for name in dm.layer_names)


def peak_now(small: bool, repeats: int):
    if small:
        return common.conv3d_peak(batch=2, side=8, channels=32, repeats=repeats)
    return common.conv3d_peak(repeats=repeats)


def measure(resolution, width, batch_size, batches, repeats, occupancy, small_peak, peak_repeats):
    import keras

    from enhancer_gan.evaluation.features import FeatureExtractor

    n = batch_size * batches
    rng = np.random.default_rng(0)
    grids = rng.random((n, resolution, resolution, resolution), dtype=np.float32) < occupancy
    with common.RssSampler() as memory:
        dm = build_dm(resolution, width)
        extractor = FeatureExtractor(dm, batch_size=batch_size)
        macs = feature_macs(dm)
        extractor(grids[:batch_size])  # traces
        conv_before = peak_now(small_peak, peak_repeats)
        outputs = []
        timing = common.time_calls(
            lambda: outputs.append(extractor(grids)), repeats=repeats, warmup=0
        )
        conv_after = peak_now(small_peak, peak_repeats)
    feats = outputs[-1]
    ok = feats.shape == (n, extractor.size) and bool(np.isfinite(feats).all())
    conv = (conv_before.gflops + conv_after.gflops) / 2
    conv_cpu = (conv_before.gflops_per_cpu_second + conv_after.gflops_per_cpu_second) / 2
    flops = 2 * macs * n
    achieved = flops / timing.median / 1e9
    achieved_cpu = flops / timing.cpu_median / 1e9
    keras.backend.clear_session()
    gc.collect()
    return {
        "res": resolution,
        "width": width,
        "batch": batch_size,
        "grids/call": n,
        "features": extractor.size,
        "s/call": timing.median,
        "spread": timing.spread,
        "shapes/s": n / timing.median,
        "GFLOP/shape": 2 * macs / 1e9,
        "GFLOP/s": achieved,
        "conv3d GFLOP/s": conv,
        "conv before/after": f"{conv_before.gflops:.0f}/{conv_after.gflops:.0f}",
        "vs conv": achieved / conv,
        "cpu-s/call": timing.cpu_median,
        "vs conv(cpu-s)": achieved_cpu / conv_cpu,
        "peak RSS GiB": common.gib(memory.peak_bytes),
        "RSS rise GiB": common.gib(memory.rise_bytes),
        "ok": ok,
        "_conv_name": conv_before.name,
    }


def main(argv):
    del argv
    import tensorflow as tf

    from enhancer_gan.errors import ConfigError

    if FLAGS.quick:
        resolutions = [32, 64]
        width, batch_size, batches, repeats, peak_repeats = 1 / 16, 2, 1, 1, 2
    else:
        try:
            resolutions = sorted(int(r) for r in FLAGS.resolutions)
        except ValueError as e:
            raise ConfigError(f"--resolutions must be integers: {e}") from None
        width, batch_size, batches = FLAGS.width, FLAGS.batch_size, FLAGS.batches
        repeats, peak_repeats = FLAGS.repeats, FLAGS.peak_repeats
    for name, value in (("batch_size", batch_size), ("batches", batches), ("repeats", repeats)):
        if value < 1:
            raise ConfigError(f"--{name} must be positive, got {value}")
    common.print_machine()
    print(
        f"tensorflow {tf.__version__}, GPU visible: {bool(tf.config.list_physical_devices('GPU'))}, "
        f"intra-op threads: {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}"
    )

    rows = []
    for resolution in resolutions:  # cheapest first: the last sets the process peak
        print(f"measuring {resolution}^3, batch {batch_size} ...", flush=True)
        rows.append(
            measure(
                resolution,
                width,
                batch_size,
                batches,
                repeats,
                FLAGS.occupancy,
                FLAGS.quick,
                peak_repeats,
            )
        )
    print(f"\npeak: {rows[0]['_conv_name']}")
    common.print_table(
        "feature extraction (FeatureExtractor: DM conv layers 2-4 max-pooled to 4^3)",
        [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
    )
    if not all(r["ok"] for r in rows):
        raise AssertionError("features of the wrong shape or not finite")
    headline = next((r for r in rows if r["res"] == 64), rows[-1])
    print(
        f"\nprocess peak RSS (ru_maxrss): {common.gib(common.max_rss_bytes()):.2f} GiB; "
        f"headline config: {headline['res']}^3, batch {headline['batch']}, "
        f"{headline['shapes/s']:.3g} shapes/s, {headline['GFLOP/s']:.1f} GFLOP/s "
        f"vs Conv3D {headline['conv3d GFLOP/s']:.1f} GFLOP/s"
    )
    common.final_line("features_vs_conv_peak", headline["vs conv"])


if __name__ == "__main__":
    app.run(main)
