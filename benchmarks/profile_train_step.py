"""Profile by layer: where the training step's time goes, and what limits it.

  python benchmarks/profile_train_step.py                       # 64^3, batch 8, full width
  python benchmarks/profile_train_step.py --resolution=32 --batch_size=8
  python benchmarks/profile_train_step.py --quick               # tiny, seconds (smoke test)

`bench_train_step.py` reports the step's GFLOP/s against a large stride-1
Conv3D measured in the same process. This script asks why the ratio is what
it is: it times every layer that does multiply-adds (Dense, Conv2D/3D and
their transposes, in GE, DE, GM and DM) ALONE, forward and backward (input
and weight gradients), on its real input shape at the step's batch size, and
reports each layer's GFLOP/s and its ratio to the same-run Conv3D peak. Then:

  layers-alone rate = sum of the layers' FLOPs / sum of their times

and the full step measured in the same process. If the step's rate is close
to the layers-alone rate, the step wastes nothing around its layers
(retracing, host round trips, casts, copies); the gap to the Conv3D peak is
then the kernels' own: oneDNN runs stride-2 and transposed 3D convolutions,
and their gradients, well below a stride-1 Conv3D.

Then one more step under TensorFlow's profiler (`--op_stats`), its ops'
self-time summed by kind: convolutions (and the matmuls of the rewritten
layers, `enhancer_gan/models/strided.py`), batch norm, activations, the Adam
update, the overlap-add and space-to-depth reshuffles, the rest. Self-times
are CPU time summed over concurrent ops, so the shares are of the step's
CPU time, not its wall time.

Last line: `step_vs_layers_alone=<ratio>` (1.0 = no overhead around the layers).
"""

from __future__ import annotations

import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository on sys.path)
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("resolution", 64, "Voxel resolution (32 or 64).")
flags.DEFINE_integer("batch_size", 8, "Batch size of the layers and the step.")
flags.DEFINE_float("width", 1.0, "ModelConfig.width_multiplier.")
flags.DEFINE_integer("image_size", 128, "GE/DE image side.")
flags.DEFINE_integer("repeats", 3, "Timed calls per layer (after one warm-up).")
flags.DEFINE_integer("steps", 2, "Timed train steps (after one warm-up).")
flags.DEFINE_bool("op_stats", True, "Profile one more step and print its time by op kind.")
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script end to end in seconds.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import keras

    from enhancer_gan.config import ModelConfig, TrainConfig
    from enhancer_gan.models.flops import train_step_flops
    from enhancer_gan.training.trainer import GanTrainer

    if FLAGS.quick:
        res, batch, width, image, repeats, steps = 32, 2, 0.0625, 32, 1, 1
    else:
        res, batch, width = FLAGS.resolution, FLAGS.batch_size, FLAGS.width
        image, repeats, steps = FLAGS.image_size, FLAGS.repeats, FLAGS.steps
    common.print_machine()
    keras.utils.set_random_seed(0)
    model_config = ModelConfig(resolution=res, width_multiplier=width, image_size=image)
    train_config = TrainConfig(batch_size=batch, jit_compile=False)
    n_g = train_config.generator_steps_per_discriminator_step
    trainer = GanTrainer(model_config, train_config)
    data = common.synthetic_batch(batch, res, image, model_config.latent_dim, 1 + n_g)

    def step():
        float(trainer.train_step(data)["loss/voxel_discriminator"])

    small = FLAGS.quick
    peak = (
        common.conv3d_peak(batch=2, side=8, channels=32, repeats=2)
        if small
        else common.conv3d_peak(repeats=3)
    )
    timing = common.time_calls(step, repeats=steps, warmup=1)
    step_flops = train_step_flops(model_config, trainer.networks, n_g)["train_step_flops"] * batch
    rows = common.layer_rows(trainer.networks, batch, repeats, peak.gflops)
    peak_after = (
        common.conv3d_peak(batch=2, side=8, channels=32, repeats=2)
        if small
        else common.conv3d_peak(repeats=3)
    )
    conv = (peak.gflops + peak_after.gflops) / 2
    for r in rows:
        r["vs conv"] = r["GFLOP/s"] / conv

    total_flops = sum(r["_flops"] for r in rows)
    total_seconds = sum(r["_seconds"] for r in rows)
    for r in rows:
        r["share of time"] = r["_seconds"] / total_seconds
    common.print_table(
        f"layers alone, forward + backward, batch {batch} ({peak.name}: {conv:.1f} GFLOP/s)",
        [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
    )
    by_kind: dict[str, list[float]] = {}
    for r in rows:
        kind = r["layer"].split()[0] + (" s1" if r["strides"] in ("(1, 1, 1)", "(1, 1)") else "")
        acc = by_kind.setdefault(kind, [0.0, 0.0])
        acc[0] += r["_flops"]
        acc[1] += r["_seconds"]
    common.print_table(
        "by layer kind",
        [
            {
                "kind": k,
                "GFLOP": f / 1e9,
                "s": s,
                "GFLOP/s": f / s / 1e9,
                "vs conv": f / s / 1e9 / conv,
                "share of time": s / total_seconds,
            }
            for k, (f, s) in sorted(by_kind.items(), key=lambda kv: -kv[1][1])
        ],
    )
    layers_rate = total_flops / total_seconds / 1e9
    step_rate = step_flops / timing.median / 1e9
    common.print_table(
        "the step against its layers",
        [
            {
                "config": f"{res}^3, batch {batch}, width {width:g}",
                "step s": timing.median,
                "step GFLOP/s (model count)": step_rate,
                "layers-alone GFLOP/s": layers_rate,
                "conv3d peak GFLOP/s": conv,
                "step vs peak": step_rate / conv,
                "layers alone vs peak": layers_rate / conv,
                "step vs layers alone": step_rate / layers_rate,
            }
        ],
    )
    if FLAGS.op_stats:
        op_kinds(step)
    ratio = step_rate / layers_rate if math.isfinite(layers_rate) and layers_rate else float("nan")
    common.final_line("step_vs_layers_alone", ratio)


# Op types by kind; anything not listed is "other".
OP_KINDS = {
    "convolution": ("Conv2D", "Conv3D", "DepthwiseConv"),
    "matmul": ("MatMul", "BatchMatMul", "_MklMatMul", "_MklNativeMatMul"),
    "batch norm": ("FusedBatchNorm", "BatchNorm", "Moments", "SquaredDifference", "Rsqrt"),
    "activation": ("Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu"),
    "Adam update": ("ApplyAdam", "AssignAddVariableOp", "AssignSubVariableOp", "Sqrt", "RealDiv"),
    "reshuffle (pad, slice, transpose, concat)": (
        "Pad",
        "Slice",
        "StridedSlice",
        "Transpose",
        "ConcatV2",
        "Pack",
        "Unpack",
        "Reshape",
    ),
    "gradient sums (AddN)": ("AddN",),
    "idle": ("IDLE",),
}


def _kind(op_type: str) -> str:
    name = op_type.replace("_MklNative", "").replace("_Mkl", "").replace("Resource", "")
    for kind, prefixes in OP_KINDS.items():
        if any(name.startswith(p) for p in prefixes):
            return kind
    return "other element-wise and small ops"


def op_kinds(step) -> None:
    """One step under tf.profiler; self-time by op kind (see the module docstring)."""
    import glob
    import json
    import tempfile

    import tensorflow as tf

    try:  # TensorFlow's own converter (the one TensorBoard's profile plugin uses)
        from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin
    except ImportError as e:
        print(f"\n(op statistics skipped: {e})")
        return
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        step()
        tf.profiler.experimental.stop()
        paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        data, ok = plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    if not ok or not data:
        print("\n(op statistics skipped: the profiler wrote no op table)")
        return
    table = json.loads(data)
    table = table[0] if isinstance(table, list) else table
    cols = [c["id"] for c in table["cols"]]
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    for row in table["rows"]:
        cell = dict(zip(cols, (c.get("v") for c in row["c"])))
        kind = _kind(str(cell["type"]))
        totals[kind] = totals.get(kind, 0.0) + float(cell["total_self_time"]) / 1e6
        counts[kind] = counts.get(kind, 0) + int(cell["occurrences"])
    everything = sum(totals.values())
    common.print_table(
        "one step under the profiler: self-time by op kind (CPU seconds over all threads)",
        [
            {"kind": k, "ops run": counts[k], "s": v, "share": v / everything}
            for k, v in sorted(totals.items(), key=lambda kv: -kv[1])
        ],
    )
    inside = sum(totals.get(k, 0.0) for k in ("convolution", "matmul"))
    print(f"\nratio op_share_outside_conv_and_matmul={1 - inside / everything:.4f}")


if __name__ == "__main__":
    app.run(main)
