"""Reading a finished (or running) training run back: config and networks.

Tools that only use a run (feature extraction, generation, export) build the
networks from the run's `config.json` and restore their weights from a
checkpoint with `expect_partial()`: optimiser slots are not needed.

The checkpoint is read whole first (`training.checkpoints.verify`): a damaged
one is a `DamagedCheckpointError` naming the file, the damage and the
checkpoints that read whole; one made for another configuration is a
`RunError` that says so. Tools never fall back to another checkpoint on their
own: `--checkpoint=` selects one.
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf

from enhancer_gan.config import ExperimentConfig
from enhancer_gan.training.checkpoints import (  # noqa: F401 - re-exported
    CheckpointError,
    DamagedCheckpointError,
    RunError,
    select_checkpoint,
)


@dataclasses.dataclass
class LoadedRun:
    config: ExperimentConfig
    networks: object  # enhancer_gan.models.Networks
    checkpoint_path: str | None  # None: random initialisation
    step: int
    averaged: bool = False  # the generators hold the run's average of their weights


def network_parts(networks) -> dict:
    """The checkpoint names of a Networks' models: the one source of them.

    `GanTrainer.checkpoint` saves the networks under these names (next to
    'step' and '<network>_optimizer'); the tools restore them from here.
    """
    parts = {
        "voxel_generator": networks.voxel_generator,
        "voxel_discriminator": networks.voxel_discriminator,
    }
    if networks.config.use_enhancer:
        parts["enhancer_generator"] = networks.enhancer_generator
        parts["enhancer_discriminator"] = networks.enhancer_discriminator
    else:
        parts["latent_projector"] = networks.latent_projector
    return parts


def find_checkpoint(run_dir: str, checkpoint: str = "") -> str:
    """The latest checkpoint of a run, or the named one ('ckpt-1200' or a path).

    Every tensor of it is read back first; a damaged checkpoint (or a damaged
    state file naming the latest) is a DamagedCheckpointError that lists the
    checkpoints that read whole, never a silent fall-back to one of them.
    """
    return select_checkpoint(os.path.join(run_dir, "checkpoints"), checkpoint, run_dir=run_dir)


def load_run(
    run_dir: str, checkpoint: str = "", random_init: bool = False, average: bool = True
) -> LoadedRun:
    """Builds a run's networks and restores their weights.

    Args:
      run_dir: the training run's folder (holds config.json, checkpoints/).
      checkpoint: a checkpoint name or path; default the latest.
      random_init: keep the random initialisation (the random-feature floor);
        the weights are seeded by the run's seed.
      average: when the run keeps an average of its generators' weights
        (`training.ema`), put it into the generators (what sampling uses;
        their batch-norm statistics are then the last iterate's: sample
        with `generation.sampler`). False: the last iterate.
    """
    from enhancer_gan.models import build_networks
    from enhancer_gan.training import ema

    config_path = os.path.join(run_dir, "config.json")
    if not os.path.exists(config_path):
        raise RunError(f"{run_dir}: not a run folder (no config.json)")
    config = ExperimentConfig.load(config_path)
    tf.keras.utils.set_random_seed(config.train.seed)
    networks = build_networks(config.model)
    if random_init:
        return LoadedRun(config, networks, None, 0)
    path = find_checkpoint(run_dir, checkpoint)
    step = tf.Variable(0, dtype=tf.int64)
    parts = network_parts(networks)
    averaged = None
    if config.train.generator_ema and average:
        averaged = ema.GeneratorAverage(networks, config.train.generator_ema)
        parts[ema.CHECKPOINT_NAME] = averaged
    ckpt = tf.train.Checkpoint(step=step, **parts)
    try:
        ckpt.restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, tf.errors.OpError, ValueError, IndexError) as e:
        # The checkpoint read whole a moment ago: it was made for other networks.
        raise RunError(
            f"{path}: checkpoint reads whole but does not match the run's config "
            f"({os.path.join(run_dir, 'config.json')}): was it made for another "
            f"configuration? {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
        ) from None
    if averaged is not None:
        averaged.copy_to(networks)
    return LoadedRun(config, networks, path, int(step), averaged is not None)
