"""Benchmark: the project's train step and features against plain Keras, and against PyTorch.

  python benchmarks/bench_vs_plain.py                        # 32^3, batch 4, full width
  python benchmarks/bench_vs_plain.py --torch --resolution=64   # needs pip install -e ".[bench]"
  python benchmarks/bench_vs_plain.py --quick [--torch]      # tiny, seconds (smoke test)

Timed interleaved on one fixed batch: `GanTrainer.train_step`; with `--legacy` the same
with Keras's BatchNormalization(synchronized=True) (before the fused batch norm); the
functional stock-layer networks and tf.function step of benchmarks/plain_keras.py; with
`--torch` those networks translated to PyTorch (benchmarks/torch_mirror.py; all cores,
oneDNN, channels_last(_3d), which beat contiguous in every idle run). Then DM's features
(inference mode, layers 2-4 pooled to 4^3) on the same grids. Parameter counts are
printed (`params <net> res=<r> ours=<n> plain=<n> [torch=<n>]`) and must be equal.

Last line: `step_vs_plain=<project step time / plain Keras's>` (< 1: the project is
faster), or with --torch `tf_vs_torch=<PyTorch's step time / the project's>` (> 1: faster).
"""

from __future__ import annotations

import contextlib
import os
import sys
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository on sys.path)
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("resolution", 32, "Voxel resolution (32 or 64).")
flags.DEFINE_integer("batch_size", 4, "Batch size of every step.")
flags.DEFINE_float("width", 1.0, "ModelConfig.width_multiplier (1 = the paper).")
flags.DEFINE_integer("image_size", 128, "GE/DE image side.")
flags.DEFINE_integer("repeats", 2, "Timed steps per side (interleaved), after two warm-ups.")
flags.DEFINE_integer("feature_batches", 2, "Batches of feature extraction per timed call.")
flags.DEFINE_bool("legacy", True, "Also time the step with the old batch norm (see above).")
flags.DEFINE_bool("torch", False, "Also time the same step and features in PyTorch.")
flags.DEFINE_enum("torch_memory_format", "channels_last", ["channels_last", "contiguous"], "")
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script end to end in seconds.")
FLAGS = flags.FLAGS


def legacy_batch_norm() -> contextlib.ExitStack:
    """Networks built inside use Keras's BatchNormalization(synchronized=True), as before."""
    import keras

    from enhancer_gan.models import enhancer, latent, voxel

    def old(name):
        init = keras.initializers.RandomNormal(mean=1.0, stddev=0.02)
        return keras.layers.BatchNormalization(synchronized=True, gamma_initializer=init, name=name)

    stack = contextlib.ExitStack()
    for module in (voxel, enhancer, latent):
        stack.enter_context(mock.patch.object(module, "batch_norm", old))
    return stack


def torch_sides(plain_nets, ours, grids, fmt):
    """(step fn, features fn, {network: parameter count}) of the PyTorch translation."""
    import numpy as np
    import torch
    from torch_mirror import TorchStep, torch_module, torch_pooled_features

    nets = {n: torch_module(m) for n, m in plain_nets.items()}  # the plain weights, copied
    step = TorchStep(nets, ours.train_config.generator_steps_per_discriminator_step, fmt)
    feed = step.inputs(*(ours.batch[k].numpy() for k in ("voxels", "image", "z")))
    dm, b = nets["voxel_discriminator"], ours.train_config.batch_size

    def features():
        dm.eval()
        with torch.inference_mode():
            out = []
            for s in range(0, len(grids), b):
                x = step.tensor(grids[s : s + b, ..., None].astype(np.float32))
                out.append(torch_pooled_features(dm(x)[:-1]).numpy())
        dm.train()
        return np.concatenate(out)

    counts = {n: sum(p.numel() for p in m.parameters()) for n, m in nets.items()}
    return lambda: step(*feed), features, counts


def main(argv):
    del argv
    import numpy as np
    import plain_keras
    import tensorflow as tf

    from enhancer_gan.evaluation.features import FeatureExtractor

    if FLAGS.quick:
        res, batch, width, image, repeats, fbatches = 32, 2, 1 / 16, 32, 1, 1
    else:
        res, batch, width = FLAGS.resolution, FLAGS.batch_size, FLAGS.width
        image, repeats, fbatches = FLAGS.image_size, FLAGS.repeats, FLAGS.feature_batches
    common.print_machine()
    print(f"{res}^3, batch {batch}, width {width:g}, image {image}", flush=True)

    ours = common.train_step_setup(res, batch, width, image)
    steps = {"project": ours.step}
    if FLAGS.legacy:
        with legacy_batch_norm():
            steps["project (old BN)"] = common.train_step_setup(res, batch, width, image).step
    plain_nets = plain_keras.plain_networks(ours.model_config)
    plain = plain_keras.PlainStep(
        plain_nets, ours.train_config.generator_steps_per_discriminator_step
    )
    steps["plain keras"] = lambda: float(plain(ours.batch)["d_loss"])
    grids = np.random.default_rng(0).random((batch * fbatches, res, res, res)) < 0.2
    extractor = FeatureExtractor(ours.trainer.networks.voxel_discriminator, batch_size=batch)
    plain_fn = plain_keras.plain_feature_fn(plain_nets["voxel_discriminator"], batch, res)
    voxels = tf.constant(grids.astype(np.float32)[..., None])
    features = {
        "project": lambda: extractor(grids),
        "plain keras": lambda: np.concatenate(
            [plain_fn(voxels[s : s + batch]).numpy() for s in range(0, len(grids), batch)]
        ),
    }
    counts = {
        n: {"ours": common.n_params(getattr(ours.trainer.networks, n)), "plain": common.n_params(m)}
        for n, m in plain_nets.items()
    }
    if FLAGS.torch:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, mkldnn "
            f"{torch.backends.mkldnn.enabled}, {FLAGS.torch_memory_format}"
        )
        steps["torch"], features["torch"], torch_counts = torch_sides(
            plain_nets, ours, grids, FLAGS.torch_memory_format
        )
        for n, c in torch_counts.items():
            counts[n]["torch"] = c
    for n, c in counts.items():
        print(f"params {n} res={res} " + " ".join(f"{k}={v}" for k, v in c.items()))
    print(f"params_match={all(len(set(c.values())) == 1 for c in counts.values())}")

    for fn in (*steps.values(), *features.values()) * 2:  # warm-up: tracing, oneDNN primitives
        fn()
    sec = common.interleaved(steps, repeats)
    feat = common.interleaved(features, repeats)
    common.print_table(
        f"train step, {res}^3, batch {batch}, width {width:g} (interleaved, same process)",
        [{"step": k, "s/step": v, "vs project": v / sec["project"]} for k, v in sec.items()],
    )
    common.print_table(
        "DM features (inference mode, 3 layers pooled to 4^3)",
        [{"extractor": k, "s/call": v, "vs project": v / feat["project"]} for k, v in feat.items()],
    )
    traces = {"project": ours.trainer.train_step.experimental_get_tracing_count()}
    traces["plain keras"] = plain.step.experimental_get_tracing_count()
    print(f"traces of each step function over all its calls (1: Python ran once): {traces}")
    p = sec["project"]
    print(f"ratio step_project_over_plain={p / sec['plain keras']:.4g}")
    print(f"ratio features_project_over_plain={feat['project'] / feat['plain keras']:.4g}")
    if FLAGS.legacy:
        print(f"ratio step_project_over_old_bn={p / sec['project (old BN)']:.4g}")
    if not FLAGS.torch:
        common.final_line("step_vs_plain", p / sec["plain keras"])
        return
    print(f"ratio features_torch_over_ours={feat['torch'] / feat['project']:.4g}")
    common.final_line("tf_vs_torch", sec["torch"] / p)


if __name__ == "__main__":
    app.run(main)
