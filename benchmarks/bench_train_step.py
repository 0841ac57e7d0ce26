"""Benchmark: the full training step (GE, DE, GM, DM; one D update, two G updates).

  python benchmarks/bench_train_step.py                 # 32^3 and 64^3, batch 8 and 64, XLA
  python benchmarks/bench_train_step.py --profile --resolutions=64 --batch_size=4 --noxla_compare
  python benchmarks/bench_train_step.py --features --batch_size=32   # DM's shape features
  python benchmarks/bench_train_step.py --quick [--profile | --features]   # tiny (smoke test)

Per config, cheapest first: a trainer on one fixed batch (common.train_step_setup), one
warm-up step, `--steps` timed steps between two Conv3D peaks. FLOPs: `train_step_flops`
(backward = 2 x forward). `--xla_compare`: a small step (32^3, batch 4, width 1/8) with
and without XLA (`--jit_compile=auto`: XLA only with a GPU). `--profile`, on the last
config: every multiply-add layer ALONE (forward + input and weight gradients, its real
input shape), step vs layers alone = step's rate / the layers' (1: nothing lost around
them), and one step under TensorFlow's profiler, self-time by op kind (all threads).
`--features`: the project's FeatureExtractor on a fresh DM instead (FLOPs: DM's convs).

Last line: `train_step_vs_conv_peak=<ratio>` of the last config; with --profile
`step_vs_layers_alone=<ratio>`; with --features `features_vs_conv_peak=<ratio>`.
"""

from __future__ import annotations

import gc
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository on sys.path)
from absl import app, flags  # noqa: E402

flags.DEFINE_list("resolutions", ["32", "64"], "Voxel resolutions to measure (32, 64).")
flags.DEFINE_list("batch_size", ["8", "64"], "Batch sizes to measure.")
flags.DEFINE_integer("steps", 2, "Timed steps (or feature calls) per config, after a warm-up.")
flags.DEFINE_float("width", 1.0, "ModelConfig.width_multiplier (1 = the paper).")
flags.DEFINE_integer("image_size", 128, "GE/DE image side.")
flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"], "XLA for the step.")
flags.DEFINE_bool("xla_compare", True, "Also time a small step with XLA.")
flags.DEFINE_bool("profile", False, "Profile the last config: layers alone, ops by kind.")
flags.DEFINE_bool("features", False, "Time DM's feature extraction instead of the step.")
flags.DEFINE_integer("repeats", 3, "Timed calls of each peak kernel and profiled layer.")
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script end to end in seconds.")
FLAGS = flags.FLAGS

# Op types by kind (after dropping the _Mkl/_MklNative/Resource prefixes); the rest is "other".
OP_KINDS = {
    "convolution": ("Conv2D", "Conv3D", "DepthwiseConv"),
    "matmul": ("MatMul", "BatchMatMul"),
    "batch norm": ("FusedBatchNorm", "BatchNorm", "Moments", "SquaredDifference", "Rsqrt"),
    "activation": ("Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu"),
    "Adam update": ("ApplyAdam", "AssignAddVariableOp", "AssignSubVariableOp", "Sqrt", "RealDiv"),
    "reshuffle (pad, slice, transpose, concat)": (
        *("Pad", "Slice", "StridedSlice", "Transpose", "ConcatV2", "Pack", "Unpack", "Reshape"),
    ),
    "gradient sums (AddN)": ("AddN",),
    "idle": ("IDLE",),
}


def measure_step(res, batch, width, image, jit, steps, small, repeats, profile=False) -> dict:
    """Times one config's step between two peak measurements; a row of figures."""
    import keras

    setup = common.train_step_setup(res, batch, width, image, jit)
    setup.step()  # traces
    timing, peaks = common.peaks_around(
        lambda: common.time_calls(setup.step, repeats=steps, warmup=0), small, repeats
    )
    rate = setup.flops / timing.median / 1e9
    row = {
        "res": res,
        "batch": batch,
        "width": width,
        "xla": jit,
        "s/step": timing.median,
        "spread": timing.spread,
        "samples/s": batch / timing.median,
        "TFLOP/step": setup.flops / 1e12,
        "GFLOP/s": rate,
        "conv3d GFLOP/s": peaks["conv"],
        "vs conv": rate / peaks["conv"],
        "vs conv(cpu-s)": setup.flops / timing.cpu_median / 1e9 / peaks["conv_per_cpu_second"],
        "peak RSS GiB": common.max_rss_gib(),
        "finite": common.finite(setup.losses),
        "_peak": peaks["conv_name"],
    }
    if profile:
        row["_profile"] = profile_step(setup, rate, small, repeats)
    keras.backend.clear_session()  # free this config's trainer before the next
    gc.collect()
    return row


def measure_features(res, batch, width, steps, small, repeats) -> dict:
    """FeatureExtractor on a fresh DM, 2 batches of random grids per timed call, between peaks."""
    import keras
    import numpy as np

    from enhancer_gan.config import ModelConfig
    from enhancer_gan.evaluation.features import FeatureExtractor
    from enhancer_gan.models import VoxelDiscriminator
    from enhancer_gan.models.flops import layer_macs

    keras.utils.set_random_seed(0)
    dm = VoxelDiscriminator(ModelConfig(resolution=res, width_multiplier=width, use_enhancer=False))
    dm(keras.KerasTensor((1, res, res, res, 1)))
    extractor, out = FeatureExtractor(dm, batch_size=batch), []
    grids = np.random.default_rng(0).random((2 * batch, res, res, res), dtype=np.float32) < 0.1
    extractor(grids[:batch])  # traces
    timing, peaks = common.peaks_around(
        lambda: common.time_calls(lambda: out.append(extractor(grids)), steps, 0), small, repeats
    )
    flops = 2 * sum(layer_macs(getattr(dm, name)) for name in dm.layer_names) * len(grids)
    keras.backend.clear_session()
    return {
        "res": res,
        "width": width,
        "batch": batch,
        "features": extractor.size,
        "s/call": timing.median,
        "shapes/s": len(grids) / timing.median,
        "GFLOP/shape": flops / len(grids) / 1e9,
        "GFLOP/s": flops / timing.median / 1e9,
        "conv3d GFLOP/s": peaks["conv"],
        "vs conv": flops / timing.median / 1e9 / peaks["conv"],
        "vs conv(cpu-s)": flops / timing.cpu_median / 1e9 / peaks["conv_per_cpu_second"],
        "peak RSS GiB": common.max_rss_gib(),
        "ok": out[-1].shape == (len(grids), extractor.size) and bool(np.isfinite(out[-1]).all()),
        "_peak": peaks["conv_name"],
    }


def profile_step(setup, step_rate, small, repeats) -> float:
    """Prints the layers-alone and op-kind tables; returns step vs layers alone."""
    rows, peaks = common.peaks_around(lambda: layer_rows(setup, repeats), small, repeats)
    seconds = sum(r["_seconds"] for r in rows)
    for r in rows:
        r["vs conv"], r["share of time"] = r["GFLOP/s"] / peaks["conv"], r["_seconds"] / seconds
    common.print_table("layers alone, forward + input and weight gradients", rows)
    layers_rate = sum(r["_flops"] for r in rows) / seconds / 1e9
    summary = {
        "step GFLOP/s (model count)": step_rate,
        "layers-alone GFLOP/s": layers_rate,
        f"peak GFLOP/s ({peaks['conv_name']})": peaks["conv"],
        "layers alone vs peak": layers_rate / peaks["conv"],
        "step vs layers alone": step_rate / layers_rate,
    }
    common.print_table("the step against its layers", [summary])
    op_stats(setup.step)
    return step_rate / layers_rate


def layer_rows(setup, repeats: int) -> list[dict]:
    """Forward + backward time and rate of every MAC-bearing layer, alone, on its input shape."""
    import tensorflow as tf

    from enhancer_gan.models.flops import _sublayers, layer_macs

    batch, rows = setup.train_config.batch_size, []
    for model in (*setup.trainer.networks.generators, *setup.trainer.networks.discriminators):
        for layer in (x for x in _sublayers(model) if layer_macs(x)):
            shape = [batch, *layer.get_build_config()["input_shape"][1:]]
            x = tf.random.stateless_uniform(shape, seed=[1, 2], minval=-1.0, maxval=1.0)

            @tf.function(jit_compile=False)
            def fwd_bwd(x, layer=layer):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    loss = tf.reduce_sum(layer(x, training=True) ** 2)
                grads = tape.gradient(loss, [x, *layer.trainable_weights])
                return tf.add_n([tf.reduce_sum(g) for g in grads if g is not None])

            t = common.time_calls(lambda f=fwd_bwd, x=x: f(x).numpy(), repeats=repeats)
            flops = 2 * 3 * layer_macs(layer) * batch  # forward + input and weight grads
            rows.append(
                {
                    "layer": f"{model.name}/{layer.name} ({type(layer).__name__})",
                    "input": "x".join(str(d) for d in shape[1:]),
                    "s (fwd+bwd)": t.median,
                    "GFLOP/s": flops / t.median / 1e9,
                    "_flops": flops,
                    "_seconds": t.median,
                }
            )
    return rows


def op_stats(step) -> None:
    """One step under tf.profiler; prints its ops' self-time by kind."""
    import glob
    import json
    import tempfile

    import tensorflow as tf

    # TensorFlow's own converter (the one TensorBoard's profile plugin uses).
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        step()
        tf.profiler.experimental.stop()
        paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        data, ok = plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    if not ok or not data:
        print("(op statistics skipped: the profiler wrote no op table)")
        return
    table = json.loads(data)
    table = table[0] if isinstance(table, list) else table
    cols = [c["id"] for c in table["cols"]]
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    for row in table["rows"]:
        cell = dict(zip(cols, (c.get("v") for c in row["c"])))
        name = str(cell["type"]).replace("_MklNative", "").replace("_Mkl", "")
        name = name.replace("Resource", "")
        kind = next((k for k, p in OP_KINDS.items() if name.startswith(p)), "other")
        seconds[kind] = seconds.get(kind, 0.0) + float(cell["total_self_time"]) / 1e6
        counts[kind] = counts.get(kind, 0) + int(cell["occurrences"])
    total = sum(seconds.values())
    common.print_table(
        "one step under the profiler: self-time by op kind (CPU seconds over all threads)",
        [
            {"kind": k, "ops run": counts[k], "s": v, "share": v / total}
            for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])
        ],
    )
    inside = seconds.get("convolution", 0.0) + seconds.get("matmul", 0.0)
    print(f"ratio op_share_outside_conv_and_matmul={1 - inside / total:.4f}")


def main(argv):
    del argv
    if FLAGS.quick:
        configs = [(32, 2), (64, 2)] if FLAGS.features else [(32, 2)]
        width, image, steps, repeats = 1 / 16, 32, 2, 2
    else:
        grid = [(int(r), int(b)) for r in FLAGS.resolutions for b in FLAGS.batch_size]
        configs = sorted(grid, key=lambda c: c[0] ** 3 * c[1])  # the costliest sets the peak RSS
        width, image, steps, repeats = FLAGS.width, FLAGS.image_size, FLAGS.steps, FLAGS.repeats
    gpu = common.gpu_visible()
    jit = gpu if FLAGS.jit_compile == "auto" else FLAGS.jit_compile == "true"
    common.print_machine()
    print(f"GPU visible: {gpu}; XLA for the step: {jit} (--jit_compile={FLAGS.jit_compile})")

    rows = []
    for i, (res, batch) in enumerate(configs):
        print(f"measuring {res}^3, batch {batch} ...", flush=True)
        if FLAGS.features:
            rows.append(measure_features(res, batch, width, steps, FLAGS.quick, repeats))
            continue
        profile = FLAGS.profile and i == len(configs) - 1
        rows.append(
            measure_step(res, batch, width, image, jit, steps, FLAGS.quick, repeats, profile)
        )
    what = (
        "feature extraction (FeatureExtractor)"
        if FLAGS.features
        else "train step (1 D + 2 G updates)"
    )
    common.print_table(f"{what}, peak: {rows[0]['_peak']}", rows)
    if FLAGS.features:
        if not all(r["ok"] for r in rows):
            raise AssertionError("features of the wrong shape or not finite")
        common.final_line("features_vs_conv_peak", rows[-1]["vs conv"])
        return

    if FLAGS.xla_compare:
        print("measuring the XLA comparison ...", flush=True)
        res, batch, w = (32, 2, 1 / 16) if FLAGS.quick else (32, 4, 0.125)
        compare = [measure_step(res, batch, w, image, j, steps, True, 2) for j in (False, True)]
        keys = ("res", "batch", "width", "xla", "s/step", "finite")
        common.print_table("train step, XLA off and on", [{k: r[k] for k in keys} for r in compare])
        print(f"XLA / default step time: {compare[1]['s/step'] / compare[0]['s/step']:.2f}")
    if FLAGS.profile:
        print(f"ratio train_step_vs_conv_peak={rows[-1]['vs conv']:.4g}")
        common.final_line("step_vs_layers_alone", rows[-1]["_profile"])
    else:
        common.final_line("train_step_vs_conv_peak", rows[-1]["vs conv"])


if __name__ == "__main__":
    app.run(main)
