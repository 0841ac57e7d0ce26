"""Benchmark: the project's train step against plain Keras and against its own layers.

  python benchmarks/bench_vs_plain.py                     # 32^3, batch 4, full width
  python benchmarks/bench_vs_plain.py --resolution=64 --batch=2
  python benchmarks/bench_vs_plain.py --quick             # tiny, seconds (smoke test)

Three ratios, all measured in this one process, interleaved (so a machine
shared with other jobs slows every side alike):

  step_vs_plain     the project's step time (`GanTrainer.train_step`) / the
                    same step in plain Keras (benchmarks/plain_keras.py:
                    functional models, stock BatchNormalization, one
                    tf.function; > 1: the project is slower)
  step_vs_layers    the project step's rate (model FLOPs / time) / the rate
                    of its MAC-bearing layers each timed alone forward and
                    backward (common.layer_rows, as profile_train_step.py);
                    1 = no time outside the layers; the same for plain Keras
  features          the project's FeatureExtractor time / plain Keras's
                    (DM in inference mode, 3 layers max-pooled to 4^3)

`--legacy` adds the project's step as it was before the batch-norm changes
(Keras's `BatchNormalization(synchronized=True)` on every replica count,
the unfused training pass), to measure what those changes gave in the same
run. Parameter counts of the project's and the plain networks are printed and
must be equal.

Last line: `step_vs_plain=<project step time / plain Keras step time>`.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository on sys.path)
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("resolution", 32, "Voxel resolution (32 or 64).")
flags.DEFINE_integer("batch", 4, "Batch size of every step and layer.")
flags.DEFINE_float("width", 1.0, "ModelConfig.width_multiplier (1 = the paper).")
flags.DEFINE_integer("image_size", 128, "GE/DE image side.")
flags.DEFINE_integer("repeats", 2, "Timed steps per side (interleaved), after one warm-up.")
flags.DEFINE_integer("layer_repeats", 1, "Timed calls per layer alone (after one warm-up).")
flags.DEFINE_bool("legacy", True, "Also time the step with the old batch norm (see above).")
flags.DEFINE_bool("layers", True, "Also time every layer alone (step_vs_layers).")
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script end to end in seconds.")
FLAGS = flags.FLAGS


@contextlib.contextmanager
def legacy_batch_norm():
    """Networks built inside use Keras's BatchNormalization(synchronized=True), as before."""
    import keras

    from enhancer_gan.models import enhancer, latent, voxel

    def old(name):
        return keras.layers.BatchNormalization(
            axis=-1,
            synchronized=True,
            gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=0.02),
            name=name,
        )

    saved = [(m, m.batch_norm) for m in (voxel, enhancer, latent)]
    try:
        for m, _ in saved:
            m.batch_norm = old
        yield
    finally:
        for m, f in saved:
            m.batch_norm = f


def n_params(model) -> int:
    return sum(int(math.prod(v.shape)) for v in model.trainable_variables)


def main(argv):
    del argv
    import keras
    import numpy as np
    import plain_keras
    import tensorflow as tf

    from enhancer_gan.config import ModelConfig, TrainConfig
    from enhancer_gan.evaluation.features import FeatureExtractor
    from enhancer_gan.models.flops import train_step_flops
    from enhancer_gan.training.trainer import GanTrainer

    if FLAGS.quick:
        res, batch, width, image, repeats, layer_repeats = 32, 2, 1 / 16, 32, 1, 1
    else:
        res, batch, width = FLAGS.resolution, FLAGS.batch, FLAGS.width
        image, repeats, layer_repeats = FLAGS.image_size, FLAGS.repeats, FLAGS.layer_repeats
    common.print_machine()
    print(
        f"tensorflow {tf.__version__}, keras {keras.__version__}; {res}^3, batch {batch}, "
        f"width {width:g}, image {image}",
        flush=True,
    )

    keras.utils.set_random_seed(0)
    model_config = ModelConfig(resolution=res, width_multiplier=width, image_size=image)
    train_config = TrainConfig(batch_size=batch, jit_compile=False)
    n_g = train_config.generator_steps_per_discriminator_step
    data = common.synthetic_batch(batch, res, image, model_config.latent_dim, 1 + n_g)

    trainers = {"project": GanTrainer(model_config, train_config)}
    if FLAGS.legacy:
        with legacy_batch_norm():
            trainers["project (old BN)"] = GanTrainer(model_config, train_config)
    plain_nets = plain_keras.plain_networks(model_config)
    plain = plain_keras.PlainStep(plain_nets, n_g)
    project_nets = trainers["project"].networks
    mismatch = []
    for name, net in plain_nets.items():
        ours, theirs = n_params(getattr(project_nets, name)), n_params(net)
        print(f"params {name} project={ours} plain={theirs}")
        if ours != theirs:
            mismatch.append(name)
    print(f"params_match={not mismatch}")

    fns = {}
    for name, trainer in trainers.items():
        fns[name] = lambda t=trainer: float(t.train_step(data)["loss/voxel_discriminator"])
    fns["plain keras"] = lambda: float(plain(data)["d_loss"])
    for fn in fns.values():  # warm-up: tracing
        fn()
    steps = common.interleaved(fns, repeats)

    # Features: the same random grids through the project's extractor and plain Keras.
    rng = np.random.default_rng(0)
    grids = rng.random((batch, res, res, res)) < 0.2
    extractor = FeatureExtractor(project_nets.voxel_discriminator, batch_size=batch)
    plain_features = plain_keras.plain_feature_fn(plain_nets["voxel_discriminator"], batch, res)
    feature_fns = {
        "project": lambda: extractor(grids),
        "plain keras": lambda: plain_features(
            tf.constant(grids.astype(np.float32)[..., None])
        ).numpy(),
    }
    for fn in feature_fns.values():
        fn()
    features = common.interleaved(feature_fns, repeats)

    flops = train_step_flops(model_config, project_nets, n_g)["train_step_flops"] * batch
    layers_rate = float("nan")
    if FLAGS.layers:
        rows = common.layer_rows(project_nets, batch, layer_repeats, 1.0)
        layers_rate = sum(r["_flops"] for r in rows) / sum(r["_seconds"] for r in rows)
        # The steps again right after the layers, so load drifts show.
        after = common.interleaved(fns, 1)
        steps = {k: statistics.median([steps[k], after[k]]) for k in steps}

    table = []
    for name, sec in steps.items():
        rate = flops / sec
        table.append(
            {
                "step": name,
                "s/step": sec,
                "vs plain keras": sec / steps["plain keras"],
                "GFLOP/s (model)": rate / 1e9,
                "layers-alone GFLOP/s": layers_rate / 1e9,
                "step vs layers alone": rate / layers_rate,
            }
        )
    common.print_table(
        f"train step, {res}^3, batch {batch}, width {width:g} (interleaved, same process)", table
    )
    common.print_table(
        "DM features (inference mode, 3 layers pooled to 4^3)",
        [
            {"extractor": k, "s/batch": v, "vs plain keras": v / features["plain keras"]}
            for k, v in features.items()
        ],
    )
    traces = {k: t.train_step.experimental_get_tracing_count() for k, t in trainers.items()}
    traces["plain keras"] = plain.step.experimental_get_tracing_count()
    print(
        "traces of each step function over all its calls (1 = Python model code ran once, "
        f"none of it per step): {traces}"
    )
    p = steps["project"]
    print(f"ratio step_project_over_plain={p / steps['plain keras']:.4g}")
    if "project (old BN)" in steps:
        print(f"ratio step_project_over_old_bn={p / steps['project (old BN)']:.4g}")
    print(f"ratio step_vs_layers_alone={flops / p / layers_rate:.4g}")
    print(f"ratio plain_step_vs_layers_alone={flops / steps['plain keras'] / layers_rate:.4g}")
    print(f"ratio features_project_over_plain={features['project'] / features['plain keras']:.4g}")
    common.final_line("step_vs_plain", p / steps["plain keras"])


if __name__ == "__main__":
    app.run(main)
