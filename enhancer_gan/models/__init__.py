"""The four networks of the paper and how they are wired together.

  GE  EnhancerGenerator      z -> 2D feature maps "layer1".."layerN", "image"
  DE  EnhancerDiscriminator  image -> logit
  GM  VoxelGenerator         [4, 4, 4, C] -> occupancy grid
  DM  VoxelDiscriminator     grid -> named conv features, logit
      LatentProjector        z -> [4, 4, 4, C] (the no-enhancer baseline)

`build_networks(config)` makes the set a config asks for, with weights
created; `generate_voxels` runs z -> GE layer i (or the projector) -> GM.
Losses and the train step live in `enhancer_gan.training`.
"""

from __future__ import annotations

import dataclasses

import keras

from enhancer_gan.config import ModelConfig
from enhancer_gan.models.enhancer import EnhancerDiscriminator, EnhancerGenerator
from enhancer_gan.models.latent import LatentProjector
from enhancer_gan.models.voxel import (
    VoxelDiscriminator,
    VoxelGenerator,
    channels,
    voxel_input_channels,
)

__all__ = [
    "EnhancerDiscriminator",
    "EnhancerGenerator",
    "LatentProjector",
    "Networks",
    "VoxelDiscriminator",
    "VoxelGenerator",
    "build_networks",
    "channels",
    "generate_voxels",
    "voxel_input_channels",
]


@dataclasses.dataclass(frozen=True)
class Networks:
    """The networks of one experiment.

    With the enhancer, `latent_projector` is None; without it,
    `enhancer_generator` and `enhancer_discriminator` are None.
    """

    config: ModelConfig
    enhancer_generator: EnhancerGenerator | None
    enhancer_discriminator: EnhancerDiscriminator | None
    latent_projector: LatentProjector | None
    voxel_generator: VoxelGenerator
    voxel_discriminator: VoxelDiscriminator

    @property
    def generators(self) -> tuple[keras.Model, ...]:
        """The networks that minimise the generator loss (GE or projector, GM)."""
        front = self.enhancer_generator if self.config.use_enhancer else self.latent_projector
        return (front, self.voxel_generator)

    @property
    def discriminators(self) -> tuple[keras.Model, ...]:
        """The networks that minimise the discriminator loss (DE if any, DM)."""
        if self.config.use_enhancer:
            return (self.enhancer_discriminator, self.voxel_discriminator)
        return (self.voxel_discriminator,)


def _build(model: keras.Model, input_shape: tuple[int, ...]) -> keras.Model:
    # A symbolic call creates every weight without computing anything, so
    # building the full-size networks costs only their initialisation.
    model(keras.KerasTensor((1, *input_shape)))
    return model


def build_networks(config: ModelConfig) -> Networks:
    """Makes the networks `config` asks for, weights created (batch of 1 traced)."""
    r, s, c = config.resolution, config.image_size, voxel_input_channels(config)
    ge = de = projector = None
    if config.use_enhancer:
        ge = _build(EnhancerGenerator(config), (config.latent_dim,))
        de = _build(EnhancerDiscriminator(config), (s, s, 3))
    else:
        projector = _build(LatentProjector(config), (config.latent_dim,))
    gm = _build(VoxelGenerator(config), (4, 4, 4, c))
    dm = _build(VoxelDiscriminator(config), (r, r, r, 1))
    return Networks(config, ge, de, projector, gm, dm)


def generate_voxels(networks: Networks, z, training: bool = False, enhancer_outputs: bool = True):
    """z -> GE's layer i (or the latent projector) -> GM: the one z -> voxels path.

    Training, sampling, evaluation and the exported SavedModel all generate
    through here.

    Args:
      networks: from `build_networks`.
      z: [B, latent_dim] float in [-1, 1].
      training: passed to every network (batch norm mode).
      enhancer_outputs: run all of GE and return its outputs (the image DE
        needs); False computes GE only up to layer i (what GM needs) and
        returns None in their place.
    Returns:
      (voxels [B, R, R, R, 1] float32 in [0, 1], GE's output dict or None).
      GE's outputs include 'image' for DE.
    """
    ge_outputs = None
    if not networks.config.use_enhancer:
        features = networks.latent_projector(z, training=training)
    elif enhancer_outputs:
        ge_outputs = networks.enhancer_generator(z, training=training)
        features = networks.enhancer_generator.voxel_features(ge_outputs)
    else:
        features = networks.enhancer_generator.features(z, training=training)
    return networks.voxel_generator(features, training=training), ge_outputs
