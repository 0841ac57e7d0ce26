"""Trains enhancer-gan: GE + DE on rendered views, GM + DM on voxel grids, jointly.

  python experiments/train.py --flagfile=experiments/configs/demo.cfg
  python experiments/train.py --flagfile=experiments/configs/features_7cat.cfg \
      --data_dir=/data/ShapeNet --run_dir=runs/features

Flags become one frozen ExperimentConfig (written to <run_dir>/config.json);
re-running the same command resumes the run. --dry_run prints the resolved
configuration and exits without writing anything.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from enhancer_gan.config import (  # noqa: E402
    GM_UPSAMPLE,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
)
from enhancer_gan.errors import EnhancerGanError  # noqa: E402
from experiments._cli import flags_parser  # noqa: E402

_M, _D, _T = ModelConfig(), DataConfig(), TrainConfig()

flags.DEFINE_string("run_dir", None, "Run folder: checkpoints, events, config, samples.")
flags.DEFINE_bool("dry_run", False, "Print the resolved config and exit.")
flags.DEFINE_bool(
    "evaluate_generation",
    False,
    "After training, score the generator against the data set's held-out split "
    "(COV, MMD, 1-NNA under IoU; synthetic, archive and modelnet data) into "
    "<run_dir>/generation_step<N>.json.",
)
flags.DEFINE_integer("evaluation_samples", 64, "Shapes generated for --evaluate_generation.")
flags.DEFINE_bool(
    "restart_if_damaged",
    False,
    "When no checkpoint of the run reads whole, move them into checkpoints/damaged/ and "
    "start again from step 0 (default: stop with an error that lists what was tried).",
)
flags.DEFINE_enum(
    "strategy",
    "default",
    ["default", "mirrored", "multi_worker"],
    "tf.distribute strategy: one device, all local GPUs, or workers from TF_CONFIG.",
)
# Model.
flags.DEFINE_enum("resolution", str(_M.resolution), ["32", "64"], "Voxel grid side.")
flags.DEFINE_bool("use_enhancer", _M.use_enhancer, "False: the no-enhancer 3D-GAN baseline.")
flags.DEFINE_integer("enhancer_layer", _M.enhancer_layer, "GE layer i (1-3) that drives GM.")
flags.DEFINE_float("width_multiplier", _M.width_multiplier, "Scales every layer's channels.")
flags.DEFINE_integer("latent_dim", _M.latent_dim, "Size of z.")
flags.DEFINE_integer("image_size", _M.image_size, "Side of GE's images and the views.")
flags.DEFINE_enum(
    "discriminator_activation",
    _M.discriminator_activation,
    ["leaky_relu", "relu"],
    "Activation in DE and DM.",
)
# Data.
flags.DEFINE_enum(
    "dataset",
    _D.kind,
    ["synthetic", "r2n2", "r2n2_v2", "shapenet_v2", "modelnet", "archive"],
    "Data set kind: r2n2 = ShapeNetVox32 + 3D-R2N2 renders (32^3 only); r2n2_v2 = the "
    "paper's pairs, ShapeNetCore v2 voxels (or meshes) + 3D-R2N2 renders (32^3 or 64^3).",
)
flags.DEFINE_string("data_dir", _D.data_dir, "Data root (or .npz archive). Empty: built-in.")
flags.DEFINE_string(
    "voxel_dir",
    _D.voxel_dir,
    "r2n2/r2n2_v2: the ShapeNetVox32 or ShapeNetCore.v2 folder, if not under --data_dir.",
)
flags.DEFINE_string(
    "render_dir",
    _D.render_dir,
    "r2n2/r2n2_v2: the ShapeNetRendering folder, if not under --data_dir.",
)
flags.DEFINE_list("categories", list(_D.categories), "Categories to train on (empty = all).")
flags.DEFINE_string("cache_dir", _D.cache_dir, "Voxel/view cache folder (default run_dir/cache).")
flags.DEFINE_enum("split", _D.split, ["train", "test"], "ModelNet/archive split to train on.")
flags.DEFINE_integer(
    "num_synthetic_per_category",
    _D.num_synthetic_per_category,
    "Shapes per category in the built-in data set.",
)
flags.DEFINE_integer("views_per_model", _D.views_per_model, "Views rendered per model.")
# Training.
flags.DEFINE_integer("batch_size", _T.batch_size, "Global batch size.")
flags.DEFINE_float("learning_rate", _T.learning_rate, "Adam learning rate.")
flags.DEFINE_float("beta1", _T.beta1, "Adam beta1.")
flags.DEFINE_integer(
    "generator_steps",
    _T.generator_steps_per_discriminator_step,
    "Generator updates per discriminator update.",
)
flags.DEFINE_enum(
    "generator_loss", _T.generator_loss, ["non_saturating", "minimax"], "Generator loss form."
)
flags.DEFINE_integer("num_steps", _T.num_steps, "Discriminator steps to train for.")
flags.DEFINE_integer("summary_every", _T.summary_every, "TensorBoard scalars every N steps.")
flags.DEFINE_integer("checkpoint_every", _T.checkpoint_every, "Checkpoint every N steps.")
flags.DEFINE_integer("sample_every", _T.sample_every, "Sample sheets every N steps.")
flags.DEFINE_integer("max_checkpoints", _T.max_checkpoints, "Checkpoints kept.")
flags.DEFINE_integer("seed", _T.seed, "Seed of weights, data order and noise.")
flags.DEFINE_bool("mixed_precision", _T.mixed_precision, "float16 compute (GPUs).")
flags.DEFINE_bool("jit_compile", _T.jit_compile, "XLA-compile the train step (off on CPU).")
flags.DEFINE_integer("num_samples", _T.num_samples, "Shapes in each sample sheet.")
# Training recipe beyond the paper (defaults = the paper's recipe; docs/RESULTS.md).
flags.DEFINE_float(
    "discriminator_learning_rate",
    _T.discriminator_learning_rate,
    "Adam learning rate of DE and DM (0 = --learning_rate).",
)
flags.DEFINE_float(
    "generator_learning_rate",
    _T.generator_learning_rate,
    "Adam learning rate of GE and GM (0 = --learning_rate).",
)
flags.DEFINE_float(
    "discriminator_gate",
    _T.discriminator_gate,
    "Skip a discriminator's update when its batch accuracy exceeds this (1 = never).",
)
flags.DEFINE_float(
    "instance_noise", _T.instance_noise, "Std of Gaussian noise on DM's inputs (annealed to 0)."
)
flags.DEFINE_integer(
    "instance_noise_steps",
    _T.instance_noise_steps,
    "Step at which instance noise reaches 0 (0 = --num_steps).",
)
flags.DEFINE_float(
    "real_label", _T.real_label, "Discriminators' target for real inputs (<1: label smoothing)."
)
flags.DEFINE_float("r1_gamma", _T.r1_gamma, "Weight of the R1 gradient penalty on DM (0 = off).")
flags.DEFINE_bool(
    "discriminator_augment",
    _T.discriminator_augment,
    "Random shifts and x/z mirrors of everything DM sees (DiffAugment).",
)

flags.DEFINE_float(
    "generator_ema",
    _T.generator_ema,
    "Decay of a moving average of the generators' weights that samples come from (0 = off).",
)

# Candidates beyond the paper (docs/DESIGN.md#candidates; defaults = the paper).
flags.DEFINE_bool(
    "dm_spectral_norm",
    _M.dm_spectral_norm,
    "Beyond the paper: spectral normalisation of DM's conv layers and Dense heads.",
)
flags.DEFINE_bool(
    "dm_minibatch_std",
    _M.dm_minibatch_std,
    "Beyond the paper: ProGAN's minibatch-std channel before DM's logits.",
)
flags.DEFINE_enum(
    "gm_upsample",
    _M.gm_upsample,
    list(GM_UPSAMPLE),
    "Beyond the paper unless 'transpose': GM's x2 layers as transposed convs (the paper), "
    "resize-convs (nearest x2 + 3^3 conv) in every layer, or in the last only.",
)
flags.DEFINE_bool(
    "dm_batch_norm",
    _M.dm_batch_norm,
    "Batch norm in DM (the paper); --nodm_batch_norm drops it (needed by WGAN-GP).",
)
flags.DEFINE_float(
    "rotation_weight",
    _T.rotation_weight,
    "Beyond the paper: weight of DM's self-supervised rotation loss (GM's: 0.2 x this); "
    "> 0 adds DM's rotation head (0 = off).",
)
flags.DEFINE_enum(
    "gan_loss",
    _T.gan_loss,
    ["standard", "wgan_gp"],
    "DM's game: the paper's cross-entropy, or WGAN-GP (beyond the paper; needs "
    "--nodm_batch_norm, usually --critic_steps=5).",
)
flags.DEFINE_float("gp_weight", _T.gp_weight, "WGAN-GP gradient-penalty weight lambda.")
flags.DEFINE_float(
    "voxel_tv_weight",
    _T.voxel_tv_weight,
    "Beyond the paper: weight of a total-variation penalty on GM's grids, against speckle "
    "(0 = off).",
)
flags.DEFINE_integer(
    "critic_steps", _T.critic_steps, "Beyond the paper: DM updates per step (DE: one)."
)

FLAGS = flags.FLAGS


def config_from_flags() -> ExperimentConfig:
    """All flags -> one validated, frozen ExperimentConfig."""
    if not FLAGS.run_dir and not FLAGS.dry_run:
        raise EnhancerGanError("--run_dir is required (the folder of this run)")
    return ExperimentConfig(
        model=ModelConfig(
            resolution=int(FLAGS.resolution),
            use_enhancer=FLAGS.use_enhancer,
            enhancer_layer=FLAGS.enhancer_layer,
            width_multiplier=FLAGS.width_multiplier,
            latent_dim=FLAGS.latent_dim,
            image_size=FLAGS.image_size,
            discriminator_activation=FLAGS.discriminator_activation,
            dm_spectral_norm=FLAGS.dm_spectral_norm,
            dm_minibatch_std=FLAGS.dm_minibatch_std,
            dm_rotation_head=FLAGS.rotation_weight > 0,
            dm_batch_norm=FLAGS.dm_batch_norm,
            gm_upsample=FLAGS.gm_upsample,
        ),
        data=DataConfig(
            kind=FLAGS.dataset,
            data_dir=FLAGS.data_dir,
            voxel_dir=FLAGS.voxel_dir,
            render_dir=FLAGS.render_dir,
            categories=tuple(FLAGS.categories),
            cache_dir=FLAGS.cache_dir,
            split=FLAGS.split,
            num_synthetic_per_category=FLAGS.num_synthetic_per_category,
            views_per_model=FLAGS.views_per_model,
        ),
        train=TrainConfig(
            batch_size=FLAGS.batch_size,
            learning_rate=FLAGS.learning_rate,
            beta1=FLAGS.beta1,
            generator_steps_per_discriminator_step=FLAGS.generator_steps,
            generator_loss=FLAGS.generator_loss,
            num_steps=FLAGS.num_steps,
            summary_every=FLAGS.summary_every,
            checkpoint_every=FLAGS.checkpoint_every,
            sample_every=FLAGS.sample_every,
            max_checkpoints=FLAGS.max_checkpoints,
            seed=FLAGS.seed,
            mixed_precision=FLAGS.mixed_precision,
            jit_compile=FLAGS.jit_compile,
            num_samples=FLAGS.num_samples,
            discriminator_learning_rate=FLAGS.discriminator_learning_rate,
            generator_learning_rate=FLAGS.generator_learning_rate,
            discriminator_gate=FLAGS.discriminator_gate,
            instance_noise=FLAGS.instance_noise,
            instance_noise_steps=FLAGS.instance_noise_steps,
            real_label=FLAGS.real_label,
            r1_gamma=FLAGS.r1_gamma,
            discriminator_augment=FLAGS.discriminator_augment,
            generator_ema=FLAGS.generator_ema,
            rotation_weight=FLAGS.rotation_weight,
            gan_loss=FLAGS.gan_loss,
            gp_weight=FLAGS.gp_weight,
            critic_steps=FLAGS.critic_steps,
            voxel_tv_weight=FLAGS.voxel_tv_weight,
        ),
        run_dir=FLAGS.run_dir or "",
    )


def _strategy(name: str):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def main(argv):
    del argv
    try:
        config = config_from_flags()
        if FLAGS.dry_run:
            print(config.to_json(), end="")
            return 0
        data = config.data
        for flag in ("data_dir", "voxel_dir", "render_dir"):
            path = getattr(data, flag)
            if data.kind != "synthetic" and path and not os.path.exists(path):
                raise EnhancerGanError(f"--{flag} {path}: no such file or folder")
        from enhancer_gan.training.loop import train

        result = train(
            config,
            strategy=_strategy(FLAGS.strategy),
            restart_if_damaged=FLAGS.restart_if_damaged,
        )
        print(
            f"{'Interrupted' if result.interrupted else 'Finished'} at step {result.step} "
            f"in {result.seconds:.0f} s. Checkpoint: {result.checkpoint_path}. "
            f"Samples: {os.path.join(config.run_dir, 'samples')}. "
            f"TensorBoard: tensorboard --logdir {config.run_dir}"
        )
        if FLAGS.evaluate_generation and not result.interrupted:
            evaluate_generation(config, result.step, FLAGS.evaluation_samples)
    except EnhancerGanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def evaluate_generation(config: ExperimentConfig, step: int, num_samples: int) -> None:
    """Generation-quality report of the finished run (beside its ceiling), once per step."""
    from enhancer_gan.evaluation.generation_eval import (
        REFERENCE_KINDS,
        evaluate_run_generation,
        format_report,
        run_reference,
    )
    from enhancer_gan.io_utils import atomic_write_json

    kind = config.data.kind
    if kind not in REFERENCE_KINDS:
        print(f"--evaluate_generation: no held-out split for dataset {kind}; skipped")
        return
    path = os.path.join(config.run_dir, f"generation_step{step}.json")
    if os.path.exists(path):
        print(f"Generation quality: {path} (already computed)")
        return
    reference, ceiling = run_reference(config, num_samples)
    report = evaluate_run_generation(
        config.run_dir, reference, num_samples=num_samples, ceiling_grids=ceiling
    )
    report["reference"] = {"dataset": kind, "data_dir": config.data.data_dir, "split": "test"}
    atomic_write_json(path, report)
    print(format_report(report))
    print(f"Generation quality: {path}")


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(FLAGS))
