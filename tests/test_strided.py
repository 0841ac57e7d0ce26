"""The rewrites of stride-2 convolutions equal Keras's layers: values, gradients, checkpoints."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from enhancer_gan.models import strided


def _grads(fn, x, kernel):
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        y = fn(x, kernel)
        # A loss that weighs every output differently, so a misplaced output shows.
        loss = tf.reduce_sum(y * tf.cos(tf.reshape(tf.range(tf.size(y), dtype=y.dtype), y.shape)))
    gx, gk = tape.gradient(loss, [x, kernel])
    return y.numpy(), gx.numpy(), gk.numpy()


def _keras_layer(transposed, rank, kernel_size, filters):
    cls = {
        (False, 2): keras.layers.Conv2D,
        (False, 3): keras.layers.Conv3D,
        (True, 2): keras.layers.Conv2DTranspose,
        (True, 3): keras.layers.Conv3DTranspose,
    }[transposed, rank]
    return cls(filters, kernel_size, strides=2, padding="same", use_bias=False)


CASES = [
    # (transposed, rank, side, kernel, cin, cout): the layers the networks have, small.
    (True, 2, 4, 5, 6, 5),  # GE's first transposed convolution: 4x4, kernel 5
    (True, 2, 8, 5, 3, 2),
    (True, 3, 4, 4, 5, 1),  # GM's last: one output channel
    (True, 3, 6, 4, 2, 3),
    (True, 3, 3, 3, 2, 2),  # odd kernel and side
    (False, 3, 8, 4, 1, 4),  # DM's first: one input channel
    (False, 3, 6, 4, 3, 2),
    (False, 2, 8, 5, 3, 4),  # DE's kernel 5
    (False, 3, 4, 3, 2, 2),
]


@pytest.mark.parametrize("transposed,rank,side,k,cin,cout", CASES)
def test_rewrite_equals_keras_values_and_gradients(transposed, rank, side, k, cin, cout):
    rng = np.random.default_rng(side * 100 + k * 10 + cin)
    layer = _keras_layer(transposed, rank, k, cout)
    x = tf.constant(rng.normal(size=(2,) + (side,) * rank + (cin,)), tf.float32)
    layer.build(x.shape)
    kernel = tf.constant(rng.normal(size=layer.kernel.shape), tf.float32)
    layer.kernel.assign(kernel)

    rewrite = strided.conv_transpose_matmul if transposed else strided.conv_space_to_depth
    want = _grads(lambda x, w: _with_kernel(layer, x, w), x, kernel)
    np.testing.assert_allclose(layer(x).numpy(), want[0], rtol=1e-5, atol=1e-5)
    got = _grads(rewrite, x, kernel)
    out_side = side * 2 if transposed else side // 2
    assert got[0].shape == (2,) + (out_side,) * rank + (cout,)
    for name, a, b in zip(("output", "input gradient", "kernel gradient"), got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max(), err_msg=name)


def _with_kernel(layer, x, kernel):
    """The Keras layer's own op with `kernel` as a tensor (so the tape sees it)."""
    from keras import ops

    if isinstance(layer, keras.layers.Conv2DTranspose | keras.layers.Conv3DTranspose):
        return ops.conv_transpose(x, kernel, strides=2, padding="same")
    return ops.conv(x, kernel, strides=2, padding="same")


def _stock_networks(monkeypatch, config):
    """The four networks built with Keras's own conv layers (as before the rewrites)."""
    from enhancer_gan import models
    from enhancer_gan.models import strided as module

    for name in ("Conv3D", "Conv2DTranspose", "Conv3DTranspose"):
        monkeypatch.setattr(module, name, getattr(keras.layers, name))
    return models.build_networks(config)


@pytest.mark.parametrize("resolution", [32, 64])
def test_networks_choose_the_rewrites_and_match_stock_layers(monkeypatch, tmp_path, resolution):
    """Which layers take a rewrite, and a checkpoint of stock layers gives the same outputs."""
    from enhancer_gan import models
    from tests.helpers import tiny_model_config

    config = tiny_model_config(resolution=resolution, width_multiplier=1 / 16)
    keras.utils.set_random_seed(3)
    fast = models.build_networks(config)
    z = tf.random.stateless_normal([2, config.latent_dim], seed=[1, 2])
    grids = tf.cast(
        tf.random.stateless_uniform([2] + [resolution] * 3 + [1], [3, 4]) > 0.7, tf.float32
    )
    fast_out = models.generate_voxels(fast, z, training=False)[0]
    fast.voxel_discriminator(grids)
    chosen = {
        f"{net.name}/{layer.name}"
        for net in (fast.enhancer_generator, fast.voxel_generator, fast.voxel_discriminator)
        for layer in net.layers
        if hasattr(layer, "uses_rewrite")
        and layer.uses_rewrite(layer.get_build_config()["input_shape"])
    }
    # The rule, spelled out: GE's transposed convolutions of <= 256 input
    # positions, GM's 4^3-input first and one-channel last layers, DM's
    # one-channel first layer.
    expected = {
        f"voxel_discriminator/{fast.voxel_discriminator.layer_names[0]}",
        "voxel_generator/deconv1",
        "voxel_generator/to_voxels",
    }
    for layer in fast.enhancer_generator.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            side = layer.get_build_config()["input_shape"][1]
            if side * side <= 256:
                expected.add(f"enhancer_generator/{layer.name}")
    assert "enhancer_generator/deconv2" in expected  # GE's 4x4 input
    assert chosen == expected, (chosen, expected)

    # A checkpoint written by Keras's own layers loads into the networks and
    # gives the same voxels and features.
    keras.utils.set_random_seed(4)
    stock = _stock_networks(monkeypatch, config)
    models.generate_voxels(stock, z, training=False)
    stock.voxel_discriminator(grids)
    saved = tf.train.Checkpoint(
        gm=stock.voxel_generator, dm=stock.voxel_discriminator, ge=stock.enhancer_generator
    ).write(str(tmp_path / "ckpt"))
    tf.train.Checkpoint(
        gm=fast.voxel_generator, dm=fast.voxel_discriminator, ge=fast.enhancer_generator
    ).read(saved).assert_existing_objects_matched()
    want = models.generate_voxels(stock, z, training=False)[0].numpy()
    got = models.generate_voxels(fast, z, training=False)[0].numpy()
    assert not np.allclose(got, fast_out.numpy())  # the weights did change
    np.testing.assert_allclose(got, want, atol=2e-5)
    for name in fast.voxel_discriminator.feature_layer_names:
        np.testing.assert_allclose(
            fast.voxel_discriminator(grids)[name].numpy(),
            stock.voxel_discriminator(grids)[name].numpy(),
            rtol=1e-4,
            atol=1e-5,
        )
