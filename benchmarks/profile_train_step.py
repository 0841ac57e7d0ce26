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
    ratio = step_rate / layers_rate if math.isfinite(layers_rate) and layers_rate else float("nan")
    common.final_line("step_vs_layers_alone", ratio)


if __name__ == "__main__":
    app.run(main)
