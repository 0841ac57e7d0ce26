"""The 2D image enhancer: generator GE and discriminator DE (DCGAN-style).

GE (docs/DESIGN.md#networks, at image_size 128 and width 1):

  z [B, 100] -> Dense -> [B, 4, 4, 2048] + BN + ReLU         "layer1"
             -> Conv2DTranspose 1024, 5, stride 2 + BN + ReLU  "layer2" [B, 8, 8, 1024]
             -> ... 512 "layer3" (16^2), 256 "layer4" (32^2), 128 "layer5" (64^2)
             -> Conv2DTranspose 3 + tanh                         "image" [B, 128, 128, 3]

GE's layer i (config.enhancer_layer) drives the voxel generator GM, so its
output must hold exactly 4*4*4*C numbers (C = GM's input channels, 512 at
width 1): layer 1 has 4C channels, layer 2 C and layer 3 C/4
(side_i^2 * channels_i = 64 C); every other layer keeps the paper's width
times width_multiplier (docs/DESIGN.md#layer-i).

Smaller images drop the last hidden layers: image_size 64 has layers 1-4
(the image is made from the 32^2 layer4), image_size 32 has layers 1-3.

DE: image [B, S, S, 3] -> Conv2D 64, 128, 256, 512, kernel 5, stride 2
(no BN on the first) -> Dense -> [B, 1] logit.
"""

from __future__ import annotations

import math

from keras import layers, ops

from enhancer_gan.config import ModelConfig
from enhancer_gan.errors import ConfigError
from enhancer_gan.models import strided
from enhancer_gan.models.voxel import (
    ConfiguredModel,
    batch_norm,
    channels,
    discriminator_activation,
    kernel_initializer,
    voxel_input_channels,
)

# The paper's hidden widths of GE, layer 1 (4x4) to layer 5 (64x64).
GE_WIDTHS = (2048, 1024, 512, 256, 128)
DE_WIDTHS = (64, 128, 256, 512)
IMAGE_KERNEL = 5
FIRST_SIDE = 4


def num_hidden_layers(config: ModelConfig) -> int:
    """GE's hidden layers: sides 4, 8, ... up to image_size / 2 (5 at 128)."""
    return int(math.log2(config.image_size // FIRST_SIDE))


def layer_side(layer: int) -> int:
    """Spatial side of GE's layer `layer` (1-based): 4, 8, 16, ..."""
    return FIRST_SIDE * 2 ** (layer - 1)


def enhancer_hidden_channels(config: ModelConfig) -> tuple[int, ...]:
    """Channels of GE's hidden layers 1..n, with layer i sized to feed GM.

    Raises:
      ConfigError: if layer i cannot hold exactly 4*4*4*C numbers.
    """
    n = num_hidden_layers(config)
    i = config.enhancer_layer
    if i > n:
        raise ConfigError(
            f"enhancer_layer {i} does not exist at image_size {config.image_size} "
            f"(GE has layers 1..{n})"
        )
    widths = [channels(w, config) for w in GE_WIDTHS[:n]]
    numbers = 64 * voxel_input_channels(config)
    side2 = layer_side(i) ** 2
    if numbers % side2:
        raise ConfigError(
            f"width_multiplier {config.width_multiplier} gives GM "
            f"{voxel_input_channels(config)} input channels; GE's layer {i} "
            f"({layer_side(i)}x{layer_side(i)}) cannot hold 4*4*4*"
            f"{voxel_input_channels(config)} = {numbers} numbers "
            f"({numbers} is not divisible by {side2})"
        )
    widths[i - 1] = numbers // side2
    return tuple(widths)


class EnhancerGenerator(ConfiguredModel):
    """GE: z -> named feature maps and an image.

    Call: `outputs = ge(z, training=False)`
      z: [B, latent_dim] float in [-1, 1].
      returns: dict 'layer1': [B, 4, 4, ch1], 'layer2': [B, 8, 8, ch2], ...,
        one per hidden layer, each after BN + ReLU, and 'image':
        [B, S, S, 3] float32 in [-1, 1] (tanh), S = image_size.
    `voxel_features(outputs)` gives GM's input [B, 4, 4, 4, C] from the
    output named `feature_layer`.
    """

    def __init__(self, config: ModelConfig, name: str = "enhancer_generator", **kwargs):
        super().__init__(config, name=name, **kwargs)
        widths = enhancer_hidden_channels(config)
        self.num_hidden = len(widths)
        self.voxel_channels = voxel_input_channels(config)
        # No biases anywhere before a batch norm: it would cancel them.
        self.dense1 = layers.Dense(
            FIRST_SIDE * FIRST_SIDE * widths[0],
            use_bias=False,
            kernel_initializer=kernel_initializer(),
            name="dense1",
        )
        self.reshape1 = layers.Reshape((FIRST_SIDE, FIRST_SIDE, widths[0]), name="reshape1")
        self.bn1 = batch_norm("bn1")
        for k in range(2, self.num_hidden + 1):
            setattr(
                self,
                f"deconv{k}",
                strided.Conv2DTranspose(
                    widths[k - 1],
                    IMAGE_KERNEL,
                    strides=2,
                    padding="same",
                    use_bias=False,
                    kernel_initializer=kernel_initializer(),
                    name=f"deconv{k}",
                ),
            )
            setattr(self, f"bn{k}", batch_norm(f"bn{k}"))
        self.to_image = strided.Conv2DTranspose(
            3,
            IMAGE_KERNEL,
            strides=2,
            padding="same",
            use_bias=True,
            kernel_initializer=kernel_initializer(),
            name="to_image",
        )
        # float32 even under mixed precision: DE's loss and summaries need it.
        self.tanh = layers.Activation("tanh", dtype="float32", name="tanh")

    @property
    def feature_layer(self) -> str:
        """Name of the output that feeds GM: 'layer{enhancer_layer}'."""
        return f"layer{self.model_config.enhancer_layer}"

    def voxel_features(self, outputs: dict):
        """GM's input from GE's outputs.

        Args:
          outputs: the dict returned by `call`.
        Returns:
          [B, 4, 4, 4, C]: outputs[feature_layer] ([B, s, s, 64 C / s^2]) in
          row-major order, reshaped (at layer 1 the 4 x 4 image grid becomes
          the first two voxel axes and the channels split into 4 x C).
        """
        return ops.reshape(
            outputs[self.feature_layer],
            (-1, FIRST_SIDE, FIRST_SIDE, FIRST_SIDE, self.voxel_channels),
        )

    def _hidden(self, x, k: int, training):
        """Hidden layer k: layer 1 from z, layer k > 1 from layer k - 1."""
        if k == 1:
            x = self.reshape1(self.dense1(x))
        else:
            x = getattr(self, f"deconv{k}")(x)
        return ops.relu(getattr(self, f"bn{k}")(x, training=training))

    def feature_layers(self) -> list:
        """The layers that compute `feature_layer` (what GM needs, nothing after)."""
        out = [self.dense1, self.reshape1, self.bn1]
        for k in range(2, self.model_config.enhancer_layer + 1):
            out += [getattr(self, f"deconv{k}"), getattr(self, f"bn{k}")]
        return out

    def features(self, z, training=False):
        """GM's input [B, 4, 4, 4, C] from z, computing no layer after layer i."""
        x = z
        for k in range(1, self.model_config.enhancer_layer + 1):
            x = self._hidden(x, k, training)
        return self.voxel_features({self.feature_layer: x})

    def call(self, z, training=False):
        outputs = {}
        x = z
        for k in range(1, self.num_hidden + 1):
            x = self._hidden(x, k, training)
            outputs[f"layer{k}"] = x
        outputs["image"] = self.tanh(self.to_image(x))
        return outputs


class EnhancerDiscriminator(ConfiguredModel):
    """DE: image -> real/fake logit.

    Call: `logits = de(image, training=False)`
      image: [B, S, S, 3] float in [-1, 1], S = image_size.
      returns: [B, 1] float32.
    """

    def __init__(self, config: ModelConfig, name: str = "enhancer_discriminator", **kwargs):
        super().__init__(config, name=name, **kwargs)
        self.num_conv = len(DE_WIDTHS)
        for k, paper_width in enumerate(DE_WIDTHS, start=1):
            first = k == 1
            setattr(
                self,
                f"conv{k}",
                layers.Conv2D(
                    channels(paper_width, config),
                    IMAGE_KERNEL,
                    strides=2,
                    padding="same",
                    # No BN on the first layer (DCGAN), so only it has a bias.
                    use_bias=first,
                    kernel_initializer=kernel_initializer(),
                    name=f"conv{k}",
                ),
            )
            if not first:
                setattr(self, f"bn{k}", batch_norm(f"bn{k}"))
        self.flatten = layers.Flatten(name="flatten")
        self.logits = layers.Dense(
            1, kernel_initializer=kernel_initializer(), dtype="float32", name="logits"
        )

    def call(self, image, training=False):
        x = image
        for k in range(1, self.num_conv + 1):
            x = getattr(self, f"conv{k}")(x)
            if k > 1:
                x = getattr(self, f"bn{k}")(x, training=training)
            x = discriminator_activation(x, self.model_config)
        return self.logits(self.flatten(x))
