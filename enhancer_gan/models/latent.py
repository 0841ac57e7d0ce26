"""The "without enhancer" baseline's front end: z -> GM's input volume.

docs/DESIGN.md#no-enhancer: z ~ U[-1, 1]^100 -> Dense -> 4x4x4x512 -> the same GM, no GE/DE
(the paper's "self-implemented 3D-GAN"). This module holds only that
projection; GM itself is `enhancer_gan.models.voxel.VoxelGenerator`.
"""

from __future__ import annotations

from keras import layers, ops

from enhancer_gan.config import ModelConfig
from enhancer_gan.models.voxel import (
    ConfiguredModel,
    batch_norm,
    kernel_initializer,
    voxel_input_channels,
)

SIDE = 4


class LatentProjector(ConfiguredModel):
    """z -> Dense -> [4, 4, 4, C] + BN + ReLU (no bias: BN cancels it).

    Call: `features = projector(z, training=False)`
      z: [B, latent_dim] float in [-1, 1].
      returns: [B, 4, 4, 4, C], C = voxel_input_channels(config).
    """

    def __init__(self, config: ModelConfig, name: str = "latent_projector", **kwargs):
        super().__init__(config, name=name, **kwargs)
        c = voxel_input_channels(config)
        self.dense = layers.Dense(
            SIDE**3 * c, use_bias=False, kernel_initializer=kernel_initializer(), name="dense"
        )
        self.reshape = layers.Reshape((SIDE, SIDE, SIDE, c), name="reshape")
        self.bn = batch_norm("bn")

    def call(self, z, training=False):
        x = self.reshape(self.dense(z))
        return ops.relu(self.bn(x, training=training))
