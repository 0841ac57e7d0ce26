"""Reading a finished (or running) training run back: config and networks.

Tools that only use a run (feature extraction, generation, export) build the
networks from the run's `config.json` and restore their weights from a
checkpoint with `expect_partial()`: optimiser slots are not needed.
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf

from enhancer_gan.config import ExperimentConfig
from enhancer_gan.errors import EnhancerGanError


class RunError(EnhancerGanError):
    """A run folder or checkpoint cannot be used."""


@dataclasses.dataclass
class LoadedRun:
    config: ExperimentConfig
    networks: object  # enhancer_gan.models.Networks
    checkpoint_path: str | None  # None: random initialisation
    step: int


def network_parts(networks) -> dict:
    """The checkpoint names of a Networks' models (as GanTrainer saves them)."""
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
    """The latest checkpoint of a run, or the named one ('ckpt-1200' or a path)."""
    folder = os.path.join(run_dir, "checkpoints")
    if checkpoint:
        path = checkpoint if os.path.dirname(checkpoint) else os.path.join(folder, checkpoint)
        if not tf.io.gfile.glob(path + ".index"):
            raise RunError(f"{path}: no such checkpoint")
        return path
    latest = tf.train.latest_checkpoint(folder)
    if latest is None:
        raise RunError(f"{run_dir}: no checkpoint in {folder}; has the run saved one yet?")
    return latest


def load_run(run_dir: str, checkpoint: str = "", random_init: bool = False) -> LoadedRun:
    """Builds a run's networks and restores their weights.

    Args:
      run_dir: the training run's folder (holds config.json, checkpoints/).
      checkpoint: a checkpoint name or path; default the latest.
      random_init: keep the random initialisation (the random-feature floor);
        the weights are seeded by the run's seed.
    """
    from enhancer_gan.models import build_networks

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
    ckpt = tf.train.Checkpoint(step=step, **network_parts(networks))
    try:
        ckpt.restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, tf.errors.OpError, ValueError) as e:
        raise RunError(f"{path}: checkpoint does not match the run's config: {e}") from None
    return LoadedRun(config, networks, path, int(step))
