"""The 3D networks: voxel generator GM and voxel discriminator DM.

Also home of the building blocks that all four networks share (channel
widths, DCGAN initialisation, batch norm, the discriminator activation and the
config-carrying `keras.Model` base class), because GM's input width C is the
number every other width is derived from.

Shapes follow the table in docs/DESIGN.md#networks (channels-last, grids in the `grid[x, y, z]`
order of `enhancer_gan.voxels`):

  GM: [B, 4, 4, 4, C] -> Conv3DTranspose 256, 128, (64), 1, kernel 4, stride 2
      -> [B, R, R, R, 1] occupancy in [0, 1]
  DM: [B, R, R, R, 1] -> Conv3D (64), 128, 256, 512, kernel 4, stride 2
      -> Dense -> [B, 1] logit

The layers in brackets exist only at resolution 64. This module builds
networks; it does not train them or read data.

DM's candidates beyond the paper (ModelConfig.dm_*; all off by default, and
off the network is exactly the paper's, variable for variable): spectral
normalisation of its layers, no batch norm, ProGAN's minibatch standard
deviation before the logits, and a 4-way rotation head (docs/DESIGN.md#candidates).
"""

from __future__ import annotations

import dataclasses

import keras
from keras import layers, ops

from enhancer_gan.config import ModelConfig
from enhancer_gan.errors import ConfigError
from enhancer_gan.models import strided

# The paper's widths (docs/DESIGN.md#networks), before `width_multiplier`.
GM_INPUT_WIDTH = 512
GM_WIDTHS_64 = (256, 128, 64)
DM_WIDTHS_64 = (64, 128, 256, 512)
VOXEL_KERNEL = 4
# Kernel of GM's stride-1 convs after nearest-neighbour upsampling
# (ModelConfig.gm_upsample='resize'/'resize_last'; beyond the paper).
RESIZE_KERNEL = 3
# DM's rotation head: quarter turns about y, 0..3 (ModelConfig.dm_rotation_head).
ROTATIONS = 4
# ProGAN's minibatch-std group size (ModelConfig.dm_minibatch_std).
MINIBATCH_STD_GROUP = 4

_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(ModelConfig))
# Keyword arguments of keras.Model that may appear beside the ModelConfig
# fields in a serialized config.
_KERAS_KWARGS = ("name", "trainable", "dtype")


def channels(paper_width: int, config: ModelConfig) -> int:
    """c(n) = max(1, round(n * width_multiplier)): a layer's channel count."""
    return max(1, round(paper_width * config.width_multiplier))


def voxel_input_channels(config: ModelConfig) -> int:
    """C = c(512): the channels of GM's [4, 4, 4, C] input."""
    return channels(GM_INPUT_WIDTH, config)


def kernel_initializer() -> keras.initializers.Initializer:
    """DCGAN initialisation: kernels ~ N(0, 0.02).

    A fresh instance per layer so that each layer draws its own seed from
    Keras's global RNG (`keras.utils.set_random_seed` makes it reproducible).
    """
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def _multi_replica() -> bool:
    """True inside a tf.distribute strategy with more than one replica (device or worker)."""
    import tensorflow as tf

    return tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1


@keras.saving.register_keras_serializable(package="enhancer_gan")
class BatchNorm(layers.BatchNormalization):
    """Keras batch norm whose training pass is TensorFlow's fused kernel.

    Keras 3 computes batch statistics with `tf.nn.moments` and normalises
    with `tf.nn.batch_normalization`: several passes over the activations
    forward and more backward. On one replica, in float32, with the channel
    axis last and no mask, training here runs `FusedBatchNormV3` instead
    (one kernel forward, one backward; oneDNN on CPU), with the same
    statistics: the moving variance is updated with the biased batch
    variance, as Keras does. Everything else (synchronized statistics over
    several replicas, inference, mixed precision, masks) is Keras's own code,
    so inference results and the variables (gamma, beta, moving_mean,
    moving_variance: checkpoints) are exactly Keras's.
    """

    def _fused_ok(self, inputs, training, mask) -> bool:
        return (
            bool(training)
            and self.trainable
            and mask is None
            and not self.synchronized
            and not self.renorm
            and self.scale
            and self.center
            and self.axis in (-1, len(inputs.shape) - 1)
            and len(inputs.shape) in (4, 5)
            and inputs.dtype == "float32"
            and keras.backend.backend() == "tensorflow"
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fused_ok(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            self.gamma,
            self.beta,
            epsilon=self.epsilon,
            data_format="NHWC" if len(inputs.shape) == 4 else "NDHWC",
            is_training=True,
        )
        # The kernel returns the unbiased (Bessel-corrected) variance; Keras
        # keeps the moving average of the biased one.
        n = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
        variance = variance * (n - 1.0) / tf.maximum(n, 1.0)
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        return y


def batch_norm(name: str) -> layers.BatchNormalization:
    """Batch norm over the channel axis with DCGAN's gamma ~ N(1, 0.02).

    synchronized only under a strategy with several replicas (call it inside
    `strategy.scope()`, as the trainer does): there the batch statistics are
    those of the global batch, so N devices train exactly like one. On one
    replica Keras's synchronized path still runs (an all-reduce to itself,
    a tensor of ones as large as the activations to count them, E[x^2] -
    E[x]^2), so it is off there. The flag creates no variable: checkpoints
    are the same either way.
    """
    return BatchNorm(
        axis=-1,
        synchronized=_multi_replica(),
        gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=0.02),
        name=name,
    )


def discriminator_activation(x, config: ModelConfig):
    """LeakyReLU(config.leaky_relu_slope) or ReLU, per config."""
    if config.discriminator_activation == "relu":
        return ops.relu(x)
    return ops.leaky_relu(x, negative_slope=config.leaky_relu_slope)


class ConfiguredModel(keras.Model):
    """A `keras.Model` built from a `ModelConfig` and serialized as its fields.

    `get_config()` returns exactly the ModelConfig fields (a JSON-able dict),
    and `from_config()` rebuilds an equal network (same weight shapes) from it.
    """

    def __init__(self, config: ModelConfig, **kwargs):
        if not isinstance(config, ModelConfig):
            raise ConfigError(
                f"{type(self).__name__} needs an enhancer_gan.config.ModelConfig, "
                f"got {type(config).__name__}"
            )
        super().__init__(**kwargs)
        self.model_config = config

    def get_config(self) -> dict:
        return dataclasses.asdict(self.model_config)

    @classmethod
    def from_config(cls, config: dict):
        unknown = set(config) - _CONFIG_FIELDS - set(_KERAS_KWARGS)
        if unknown:
            raise ConfigError(
                f"{cls.__name__}.from_config: unknown field(s) {', '.join(sorted(unknown))}"
            )
        fields = {k: v for k, v in config.items() if k in _CONFIG_FIELDS}
        kwargs = {k: config[k] for k in _KERAS_KWARGS if k in config and k != "dtype"}
        return cls(ModelConfig(**fields), **kwargs)


def _gm_widths(config: ModelConfig) -> tuple[int, ...]:
    # At 32^3 the 64-channel layer is dropped: 4 -> 8 -> 16 -> 32.
    paper = GM_WIDTHS_64 if config.resolution == 64 else GM_WIDTHS_64[:2]
    return tuple(channels(w, config) for w in paper)


def _dm_paper_widths(config: ModelConfig) -> tuple[int, ...]:
    # At 32^3 the 64-channel layer is dropped: 32 -> 16 -> 8 -> 4.
    return DM_WIDTHS_64 if config.resolution == 64 else DM_WIDTHS_64[1:]


def dm_layer_names(config: ModelConfig) -> tuple[str, ...]:
    """Names of DM's conv outputs, 'conv{output side}_{paper width}'.

    The width in the name is the paper's (before width_multiplier), so the
    same name means the same layer at every width and both resolutions:
    ('conv32_64', 'conv16_128', 'conv8_256', 'conv4_512') at 64^3 and the
    last three at 32^3.
    """
    widths = _dm_paper_widths(config)
    sides = [config.resolution // 2 ** (k + 1) for k in range(len(widths))]
    return tuple(f"conv{s}_{w}" for s, w in zip(sides, widths))


class VoxelGenerator(ConfiguredModel):
    """GM: a [4, 4, 4, C] feature volume -> an occupancy grid.

    Call: `voxels = gm(features, training=False)`
      features: [B, 4, 4, 4, C] float, C = voxel_input_channels(config).
      returns: [B, R, R, R, 1] float32 in [0, 1] (sigmoid), R = resolution.
    """

    def __init__(self, config: ModelConfig, name: str = "voxel_generator", **kwargs):
        super().__init__(config, name=name, **kwargs)
        self.input_channels = voxel_input_channels(config)
        self.num_hidden = len(_gm_widths(config))
        resize_hidden = config.gm_upsample == "resize"
        for k, width in enumerate(_gm_widths(config), start=1):
            # No bias: the batch norm right after would cancel it.
            up, conv = _upsampling_conv(width, False, resize_hidden, f"deconv{k}")
            setattr(self, f"up{k}", up)
            setattr(self, f"deconv{k}", conv)
            setattr(self, f"bn{k}", batch_norm(f"bn{k}"))
        resize_last = config.gm_upsample in ("resize", "resize_last")
        self.up_voxels, self.to_voxels = _upsampling_conv(1, True, resize_last, "to_voxels")
        # float32 even under mixed precision: losses and samples need it.
        self.sigmoid = layers.Activation("sigmoid", dtype="float32", name="sigmoid")

    def call(self, features, training=False):
        x = features
        for k in range(1, self.num_hidden + 1):
            x = _upsample(getattr(self, f"up{k}"), x)
            x = getattr(self, f"deconv{k}")(x)
            x = ops.relu(getattr(self, f"bn{k}")(x, training=training))
        return self.sigmoid(self.to_voxels(_upsample(self.up_voxels, x)))


def _upsampling_conv(filters: int, use_bias: bool, resize: bool, name: str):
    """One of GM's x2 layers -> (upsampling layer or None, conv layer).

    resize=False: (None, the paper's 4^3 stride-2 transposed conv); True:
    (nearest-neighbour x2 `UpSampling3D`, a RESIZE_KERNEL^3 stride-1 conv).
    The conv carries `name`, so checkpoints keep the paper's variable names.
    """
    init = kernel_initializer()
    if not resize:
        conv = strided.Conv3DTranspose(
            filters,
            VOXEL_KERNEL,
            strides=2,
            padding="same",
            use_bias=use_bias,
            kernel_initializer=init,
            name=name,
        )
        return None, conv
    up = layers.UpSampling3D(2, name=f"{name}_upsample")
    conv = layers.Conv3D(
        filters,
        RESIZE_KERNEL,
        padding="same",
        use_bias=use_bias,
        kernel_initializer=init,
        name=name,
    )
    return up, conv


def _upsample(up, x):
    return x if up is None else up(x)


def spectral_norm(layer: layers.Layer, config: ModelConfig, **kwargs) -> layers.Layer:
    """`layer` in `keras.layers.SpectralNormalization` (1 power iteration) if
    config.dm_spectral_norm, else `layer` itself. Beyond the paper.

    Keras's wrapper divides the kernel variable by its estimated largest
    singular value in place at every training-mode call (the normalised
    kernel is what the layer then uses, what the optimiser updates and what
    inference mode reads). The wrapper keeps the layer's name. Under mixed
    precision the normalisation runs in float32 (the layer itself in
    float16): a wrapper of the global policy reads the kernel un-autocast
    (`autocast=False`); one given `dtype="float32"` (the heads, whose
    outputs are float32) autocasts to float32, inputs included.
    """
    if not config.dm_spectral_norm:
        return layer
    return layers.SpectralNormalization(
        layer, power_iterations=1, autocast="dtype" in kwargs, name=layer.name, **kwargs
    )


def _call(layer: layers.Layer, x, training):
    # Only the spectral-norm wrapper takes `training` (it normalises then).
    if isinstance(layer, layers.SpectralNormalization):
        return layer(x, training=training)
    return layer(x)


def minibatch_std(x, group_size: int = MINIBATCH_STD_GROUP):
    """x [B, ..., C] -> [B, ..., C + 1]: ProGAN's minibatch standard deviation.

    The batch is split into groups of `group_size` (example i in group
    i mod (B / group_size), as ProGAN's reshape does) when B is a multiple of
    it, else it is one group (so B < 4 is min(4, B) too). Per group: the std
    over its members of every feature (position and channel),
    sqrt(var + 1e-8), averaged over the features; the appended channel holds
    that scalar at every position of each of the group's examples. Under a
    strategy with several replicas the groups are those of the replica's own
    batch. Computed in float32; returned in x's dtype. Beyond the paper.
    """
    import tensorflow as tf

    shape = tf.shape(x)
    b = shape[0]
    g = tf.where(b % group_size == 0, group_size, b)
    y = tf.reshape(tf.cast(x, tf.float32), tf.concat([[g, b // g], shape[1:]], axis=0))
    y = y - tf.reduce_mean(y, axis=0, keepdims=True)
    std = tf.sqrt(tf.reduce_mean(tf.square(y), axis=0) + 1e-8)  # [B / g, ...]
    std = tf.reduce_mean(std, axis=list(range(1, len(x.shape))))  # [B / g]
    std = tf.tile(std, [g])  # example i -> its group i mod (B / g)
    channel = tf.ones_like(x[..., :1]) * tf.cast(
        tf.reshape(std, [-1] + [1] * (len(x.shape) - 1)), x.dtype
    )
    return tf.concat([x, channel], axis=-1)


class VoxelDiscriminator(ConfiguredModel):
    """DM: an occupancy grid -> named conv features and a real/fake logit.

    Call: `outputs = dm(voxels, training=False)`
      voxels: [B, R, R, R, 1] float in [0, 1].
      returns: dict with one entry per conv layer, named by `layer_names`
        ('conv16_128': [B, 16, 16, 16, c(128)], ...), each taken after the
        activation, and 'logits': [B, 1] float32; with
        config.dm_rotation_head also 'rotation_logits': [B, 4] float32.
    `feature_layer_names` are the last three conv outputs (16^3 x 128,
    8^3 x 256, 4^3 x 512 at width 1, both resolutions): the shape feature.
    With config.dm_spectral_norm the attributes named by `layer_names` are
    the wrappers; `conv(name)` is the convolution itself either way.

    Candidates beyond the paper (ModelConfig): dm_batch_norm=False drops the
    batch norms (the convs keep their biases); dm_spectral_norm wraps every
    conv and Dense head (`spectral_norm`); dm_minibatch_std appends
    `minibatch_std`'s channel to the last conv output before the logits
    Dense only; the rotation head reads the last conv output without it.
    """

    def __init__(self, config: ModelConfig, name: str = "voxel_discriminator", **kwargs):
        super().__init__(config, name=name, **kwargs)
        self.layer_names = dm_layer_names(config)
        self.feature_layer_names = self.layer_names[-3:]
        for k, (layer_name, paper_width) in enumerate(
            zip(self.layer_names, _dm_paper_widths(config))
        ):
            normalised = k > 0 and config.dm_batch_norm
            conv = strided.Conv3D(
                channels(paper_width, config),
                VOXEL_KERNEL,
                strides=2,
                padding="same",
                # DCGAN practice: no batch norm on the first layer, so it
                # keeps its bias; the others' biases would be cancelled.
                use_bias=not normalised,
                kernel_initializer=kernel_initializer(),
                name=layer_name,
            )
            setattr(self, layer_name, spectral_norm(conv, config))
            if normalised:
                setattr(self, f"bn_{layer_name}", batch_norm(f"bn_{layer_name}"))
        self.flatten = layers.Flatten(name="flatten")
        self.logits = self._head(1, "logits")
        if config.dm_rotation_head:
            self.rotation_logits = self._head(ROTATIONS, "rotation_logits")

    def _head(self, units: int, name: str) -> layers.Layer:
        dense = layers.Dense(
            units, kernel_initializer=kernel_initializer(), dtype="float32", name=name
        )
        return spectral_norm(dense, self.model_config, dtype="float32")

    def conv(self, name: str) -> layers.Layer:
        """The Conv3D layer `name` of `layer_names` (unwrapped under spectral norm)."""
        layer = getattr(self, name)
        return layer.layer if isinstance(layer, layers.SpectralNormalization) else layer

    def call(self, voxels, training=False):
        config = self.model_config
        outputs = {}
        x = voxels
        for k, layer_name in enumerate(self.layer_names):
            x = _call(getattr(self, layer_name), x, training)
            if k > 0 and config.dm_batch_norm:
                x = getattr(self, f"bn_{layer_name}")(x, training=training)
            x = discriminator_activation(x, config)
            outputs[layer_name] = x
        h = minibatch_std(x) if config.dm_minibatch_std else x
        outputs["logits"] = _call(self.logits, self.flatten(h), training)
        if config.dm_rotation_head:
            outputs["rotation_logits"] = _call(self.rotation_logits, self.flatten(x), training)
        return outputs
