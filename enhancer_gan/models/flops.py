"""Analytic cost model: multiply-accumulates (MACs) of the networks.

Counts come from the built models' own layers (kernel shapes and the input
shapes each layer was built with), not from a hand table, so they follow any
change to the architecture or config. Only the layers that carry the cost
are counted (Dense, convolutions and transposed convolutions); biases,
batch norm and activations are left out (under 0.1% here). One MAC is two
FLOPs. This module measures nothing at run time; benchmarks divide these
numbers by measured times.
"""

from __future__ import annotations

import math

import keras

from enhancer_gan.config import ModelConfig
from enhancer_gan.errors import ConfigError
from enhancer_gan.models import Networks, build_networks

_CONVS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_TRANSPOSED = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
# Layers with weights but (almost) no multiply-accumulates.
_FREE = (keras.layers.BatchNormalization,)


def _sublayers(model: keras.Layer):
    for layer in model.layers if hasattr(model, "layers") else ():
        if hasattr(layer, "layers") and layer.layers:
            yield from _sublayers(layer)
        else:
            yield layer


def layer_macs(layer: keras.Layer) -> int:
    """Per-sample MACs of one built layer's forward pass.

    Dense: positions * c_in * c_out (positions = all but the last input axis);
    convolution: output positions * k^d * c_in * c_out; transposed
    convolution: input positions * k^d * c_in * c_out (each input position
    scatters one full kernel). Weightless and batch-norm layers count 0.

    Raises:
      ConfigError: if the layer is not built, or has weights of a kind this
        model does not know how to count (so nothing is silently left out).
    """
    if isinstance(layer, _FREE):
        return 0
    if not isinstance(layer, (keras.layers.Dense, *_CONVS, *_TRANSPOSED)):
        if layer.weights:
            raise ConfigError(f"cannot count MACs of layer {layer.name!r} ({type(layer).__name__})")
        return 0
    input_shape = (layer.get_build_config() or {}).get("input_shape")
    if not layer.built or input_shape is None:
        raise ConfigError(f"layer {layer.name!r} is not built; build the model before counting")
    kernel = math.prod(layer.kernel.shape)
    if isinstance(layer, _CONVS):
        output_shape = layer.compute_output_shape(input_shape)
        return math.prod(output_shape[1:-1]) * kernel
    # Dense runs once per position of all but the last axis; a transposed
    # convolution scatters one full kernel per input position.
    return math.prod(input_shape[1:-1]) * kernel


def forward_macs(model: keras.Model) -> int:
    """Per-sample MACs of a built model's forward pass (sum over its layers)."""
    return sum(layer_macs(layer) for layer in _sublayers(model))


def train_step_flops(
    config: ModelConfig, networks: Networks | None = None, generator_steps: int = 2
) -> dict[str, int]:
    """Per-sample cost of one full training step (one D update, two G updates).

    With F_G the forward MACs of the generator chain (GE, all of it, + GM; or
    projector + GM) and F_D those of the discriminators (DE + DM; or DM), and
    backward = 2 x forward:

      D update   = F_G (fakes, no backward) + 2 x 3 F_D (real and fake)
      G update   = 3 F_G + 3 F_D (D forward and backward down to its input)
      train step = D update + n G updates = (1 + 3n) F_G + (6 + 3n) F_D MACs
                 = 7 F_G + 12 F_D at the paper's n = 2

    (n = `generator_steps`, TrainConfig.generator_steps_per_discriminator_step),
    and FLOPs = 2 x MACs. (Backward through D to its input alone would need
    only ~1 x forward; the 2 x rule counts D's weight gradients too, as
    frameworks usually compute them.)

    Args:
      config: the model config.
      networks: a built `Networks` for `config`; built here when None
        (a few seconds at full size).
      generator_steps: generator updates per discriminator update.
    Returns:
      dict with the forward MACs of each network present (keys as in
      `Networks`: 'enhancer_generator', ..., 'voxel_discriminator'),
      'generator_forward_macs' (F_G), 'discriminator_forward_macs' (F_D),
      'discriminator_update_flops', 'generator_update_flops',
      'train_step_macs' and 'train_step_flops', all per sample.
    """
    if generator_steps < 1:
        raise ConfigError(f"generator_steps must be >= 1, got {generator_steps}")
    if networks is None:
        networks = build_networks(config)
    elif networks.config != config:
        raise ConfigError("train_step_flops: networks were built for a different ModelConfig")
    names = (
        "enhancer_generator",
        "enhancer_discriminator",
        "latent_projector",
        "voxel_generator",
        "voxel_discriminator",
    )
    costs = {
        name: forward_macs(getattr(networks, name))
        for name in names
        if getattr(networks, name) is not None
    }
    f_g = sum(forward_macs(m) for m in networks.generators)
    f_d = sum(forward_macs(m) for m in networks.discriminators)
    d_update = f_g + 2 * 3 * f_d
    g_update = 3 * f_g + 3 * f_d
    step = d_update + generator_steps * g_update
    costs.update(
        generator_forward_macs=f_g,
        discriminator_forward_macs=f_d,
        discriminator_update_flops=2 * d_update,
        generator_update_flops=2 * g_update,
        train_step_macs=step,
        train_step_flops=2 * step,
    )
    return costs
