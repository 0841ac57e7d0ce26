"""Export of the generation path (GE up to layer i, then GM) as a SavedModel.

The exported folder loads with plain TensorFlow, without this package:

    gen = tf.saved_model.load("runs/x/export")
    voxels = gen.generate(tf.random.uniform([4, 100], -1, 1))  # [4, R, R, R]

Only the layers on the generation path are saved (GE's dense layer and
deconvolutions up to layer i, or the latent projector, and GM); GE's later
layers, DE and DM are left out, which for the paper's model drops GE's
52 M-parameter second deconvolution.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import tensorflow as tf

from enhancer_gan.io_utils import OutputExistsError


class GenerationPath(tf.Module):
    """z [B, latent] -> occupancy [B, R, R, R] float32 in [0, 1]."""

    def __init__(self, networks):
        super().__init__(name="generation_path")
        cfg = networks.config
        # Tracked for saving: only the layers on the generation path.
        if cfg.use_enhancer:
            self.front_layers = networks.enhancer_generator.feature_layers()
        else:
            self.front_layers = [networks.latent_projector]
        self.voxel_generator = networks.voxel_generator
        self._networks = networks  # not tracked: a plain dataclass
        self.latent_dim = cfg.latent_dim
        self.resolution = cfg.resolution
        self.config_json = tf.constant(json.dumps(dataclasses.asdict(cfg), sort_keys=True))
        self.generate = tf.function(
            self._generate,
            input_signature=[tf.TensorSpec([None, cfg.latent_dim], tf.float32, name="z")],
        )

    def _generate(self, z):
        from enhancer_gan.models import generate_voxels

        voxels, _ = generate_voxels(self._networks, z, training=False, enhancer_outputs=False)
        return tf.cast(voxels[..., 0], tf.float32)


def export_generator(networks, path: str, overwrite: bool = False) -> str:
    """Writes the SavedModel to `path` (via a temporary folder, then rename)."""
    if os.path.exists(path):
        if not overwrite:
            raise OutputExistsError(f"{path}: exists; pass --overwrite to replace it")
    module = GenerationPath(networks)
    tmp = f"{path}.tmp-export"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tf.saved_model.save(module, tmp, signatures={"serving_default": module.generate})
    except BaseException:
        # A failed save (full disk, interrupt) leaves no half-written export.
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if os.path.exists(path):
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path
