"""A plain Keras reference of the four networks and the train step.

GE, DE, GM and DM layer for layer as `enhancer_gan.models` (widths from the
project's own width rules), written as the Keras documentation writes a
DCGAN: functional models of stock layers, the ordinary BatchNormalization,
and `PlainStep`, a `tf.function` with one GradientTape per update and one
Adam per network, doing what `GanTrainer.train_step` does at the paper's
recipe; no project code runs in the step (no subclassed models, config
objects, strategy or metrics). `plain_feature_fn` is the project's shape
feature from the functional DM. Used by bench_vs_plain.py, and translated to
PyTorch by torch_mirror.py.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

IMAGE_KERNEL = 5
VOXEL_KERNEL = 4


def _init():
    return keras.initializers.RandomNormal(0.0, 0.02)


def _bn(name):
    return layers.BatchNormalization(
        gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02), name=name
    )


def _widths(model_config):
    from enhancer_gan.models.enhancer import DE_WIDTHS, enhancer_hidden_channels
    from enhancer_gan.models.voxel import (
        _dm_paper_widths,
        _gm_widths,
        channels,
        voxel_input_channels,
    )

    return {
        "ge": enhancer_hidden_channels(model_config),
        "de": [channels(w, model_config) for w in DE_WIDTHS],
        "gm": _gm_widths(model_config),
        "dm": [channels(w, model_config) for w in _dm_paper_widths(model_config)],
        "c": voxel_input_channels(model_config),
    }


def plain_networks(model_config) -> dict[str, keras.Model]:
    """Functional GE (outputs: GM's input volume, image), DE, GM, DM (outputs: 3 features, logit)."""
    cfg = model_config
    w = _widths(cfg)
    if cfg.enhancer_layer != 1:
        raise ValueError("the plain reference mirrors enhancer_layer=1 only")

    def d_act(name):
        if cfg.discriminator_activation == "relu":
            return layers.ReLU(name=name)
        return layers.LeakyReLU(negative_slope=cfg.leaky_relu_slope, name=name)

    # GE
    z = keras.Input((cfg.latent_dim,), name="z")
    x = layers.Dense(16 * w["ge"][0], use_bias=False, kernel_initializer=_init(), name="dense1")(z)
    x = layers.Reshape((4, 4, w["ge"][0]))(x)
    x = layers.ReLU()(_bn("bn1")(x))
    volume = layers.Reshape((4, 4, 4, w["c"]), name="volume")(x)
    for k, width in enumerate(w["ge"][1:], start=2):
        x = layers.Conv2DTranspose(
            width, IMAGE_KERNEL, 2, "same", use_bias=False, kernel_initializer=_init()
        )(x)
        x = layers.ReLU()(_bn(f"bn{k}")(x))
    x = layers.Conv2DTranspose(3, IMAGE_KERNEL, 2, "same", kernel_initializer=_init())(x)
    image = layers.Activation("tanh", name="image")(x)
    ge = keras.Model(z, [volume, image], name="plain_ge")

    # DE
    im = keras.Input((cfg.image_size, cfg.image_size, 3), name="image")
    x = im
    for k, width in enumerate(w["de"]):
        x = layers.Conv2D(
            width, IMAGE_KERNEL, 2, "same", use_bias=k == 0, kernel_initializer=_init()
        )(x)
        if k:
            x = _bn(f"de_bn{k}")(x)
        x = d_act(f"de_act{k}")(x)
    de_logit = layers.Dense(1, kernel_initializer=_init())(layers.Flatten()(x))
    de = keras.Model(im, de_logit, name="plain_de")

    # GM
    v = keras.Input((4, 4, 4, w["c"]), name="volume")
    x = v
    for k, width in enumerate(w["gm"]):
        x = layers.Conv3DTranspose(
            width, VOXEL_KERNEL, 2, "same", use_bias=False, kernel_initializer=_init()
        )(x)
        x = layers.ReLU()(_bn(f"gm_bn{k}")(x))
    x = layers.Conv3DTranspose(1, VOXEL_KERNEL, 2, "same", kernel_initializer=_init())(x)
    gm = keras.Model(v, layers.Activation("sigmoid")(x), name="plain_gm")

    # DM
    r = cfg.resolution
    g = keras.Input((r, r, r, 1), name="voxels")
    x = g
    feats = []
    for k, width in enumerate(w["dm"]):
        x = layers.Conv3D(
            width, VOXEL_KERNEL, 2, "same", use_bias=k == 0, kernel_initializer=_init()
        )(x)
        if k:
            x = _bn(f"dm_bn{k}")(x)
        x = d_act(f"dm_act{k}")(x)
        feats.append(x)
    dm_logit = layers.Dense(1, kernel_initializer=_init())(layers.Flatten()(x))
    dm = keras.Model(g, [*feats[-3:], dm_logit], name="plain_dm")
    return {
        "enhancer_generator": ge,
        "enhancer_discriminator": de,
        "voxel_generator": gm,
        "voxel_discriminator": dm,
    }


class PlainStep:
    """The train step of `GanTrainer` at the paper's recipe, in plain Keras + tf.function."""

    def __init__(self, nets: dict[str, keras.Model], generator_steps: int = 2):
        self.nets = nets
        self.n_g = generator_steps
        self.opt = {n: keras.optimizers.Adam(2e-4, beta_1=0.5, name=f"{n}_adam") for n in nets}
        for n, opt in self.opt.items():
            opt.build(nets[n].trainable_variables)
        self.step = tf.function(self._step, jit_compile=False)

    def _apply(self, tape, loss, names):
        variables = [v for n in names for v in self.nets[n].trainable_variables]
        grads = tape.gradient(loss, variables)
        i = 0
        for n in names:
            k = len(self.nets[n].trainable_variables)
            self.opt[n].apply_gradients(zip(grads[i : i + k], self.nets[n].trainable_variables))
            i += k

    def _step(self, batch):
        ge, de = self.nets["enhancer_generator"], self.nets["enhancer_discriminator"]
        gm, dm = self.nets["voxel_generator"], self.nets["voxel_discriminator"]
        real_v = tf.cast(batch["voxels"], tf.float32)
        real_im = tf.cast(batch["image"], tf.float32)
        z = tf.cast(batch["z"], tf.float32)
        sp = tf.nn.softplus

        volume, fake_im = ge(z[:, 0], training=True)
        fake_v = tf.stop_gradient(gm(volume, training=True))
        fake_im = tf.stop_gradient(fake_im)
        with tf.GradientTape() as tape:
            dm_real = dm(real_v, training=True)[-1]
            dm_fake = dm(fake_v, training=True)[-1]
            de_real = de(real_im, training=True)
            de_fake = de(fake_im, training=True)
            d_loss = (
                tf.reduce_mean(sp(-dm_real))
                + tf.reduce_mean(sp(dm_fake))
                + tf.reduce_mean(sp(-de_real))
                + tf.reduce_mean(sp(de_fake))
            )
        self._apply(tape, d_loss, ("enhancer_discriminator", "voxel_discriminator"))
        occupancy = 0.0
        for k in range(self.n_g):
            with tf.GradientTape() as tape:
                volume, image = ge(z[:, 1 + k], training=True)
                voxels = gm(volume, training=True)
                g_loss = tf.reduce_mean(sp(-dm(voxels, training=True)[-1])) + tf.reduce_mean(
                    sp(-de(image, training=True))
                )
            self._apply(tape, g_loss, ("enhancer_generator", "voxel_generator"))
            occupancy += tf.reduce_mean(tf.cast(voxels > 0.5, tf.float32))
        return {"d_loss": d_loss, "g_loss": g_loss, "occupancy": occupancy / self.n_g}

    def __call__(self, batch):
        return self.step(batch)


def plain_feature_fn(dm: keras.Model, batch_size: int, resolution: int):
    """tf.function grids [B, R, R, R, 1] float32 -> [B, 57,344 at width 1] (inference mode)."""
    r = resolution

    @tf.function(input_signature=[tf.TensorSpec([batch_size, r, r, r, 1], tf.float32)])
    def features(voxels):
        outs = dm(voxels, training=False)[:-1]
        parts = []
        for x in outs:
            stride = int(x.shape[1]) // 4
            kernel = 2 * stride if stride > 1 else 2
            pooled = tf.nn.max_pool3d(x, kernel, stride, "SAME")
            parts.append(tf.reshape(pooled, [batch_size, -1]))
        return tf.concat(parts, 1)

    return features
