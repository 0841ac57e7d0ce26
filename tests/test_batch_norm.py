"""The models' batch norm (enhancer_gan.models.voxel.BatchNorm) against Keras's own.

Training runs TensorFlow's fused kernel on one replica; it must give Keras's
outputs, gradients and moving statistics. Checkpoints written when every
batch norm was `keras.layers.BatchNormalization(synchronized=True)` (before
the change) must load into today's networks and give the same features and
generated shapes (inference is Keras's own code path).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from enhancer_gan.evaluation.features import FeatureExtractor
from enhancer_gan.models import build_networks, enhancer, generate_voxels, latent, voxel
from tests.helpers import box_grids, tiny_model_config


def _old_batch_norm(name):
    """What every network used before: Keras batch norm, synchronized on any replica count."""
    return keras.layers.BatchNormalization(
        axis=-1,
        synchronized=True,
        gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=0.02),
        name=name,
    )


@pytest.mark.parametrize("shape", [[3, 5, 5, 6, 7], [4, 6, 6, 9]])
def test_fused_training_pass_equals_keras(shape):
    x = tf.random.stateless_normal(shape, seed=[1, 2]) * 3.0 + 1.0
    ours = voxel.BatchNorm(gamma_initializer="glorot_uniform")
    ref = keras.layers.BatchNormalization()
    ours.build(x.shape)
    ref.build(x.shape)
    ref.set_weights(ours.get_weights())
    results = []
    for layer in (ours, ref):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.sin(y))
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append([y, *grads, layer.moving_mean, layer.moving_variance])
    for a, b in zip(*results):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=5e-4)


def test_one_replica_is_not_synchronized():
    nets = build_networks(tiny_model_config())
    bns = [
        layer
        for net in (nets.enhancer_generator, nets.voxel_generator, nets.voxel_discriminator)
        for layer in net.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert bns and all(isinstance(b, voxel.BatchNorm) and not b.synchronized for b in bns)


def test_checkpoint_from_before_the_change_loads_and_gives_the_same_features(tmp_path, monkeypatch):
    config = tiny_model_config()
    with monkeypatch.context() as m:
        for module in (voxel, enhancer, latent):
            m.setattr(module, "batch_norm", _old_batch_norm)
        keras.utils.set_random_seed(5)
        old = build_networks(config)
    assert type(old.voxel_discriminator.bn_conv8_256) is keras.layers.BatchNormalization
    # Moving statistics away from their initial values, so that loading them matters.
    z = tf.random.stateless_uniform([4, config.latent_dim], seed=[3, 4], minval=-1, maxval=1)
    grids = box_grids(4, 32, seed=7)
    generate_voxels(old, z, training=True)
    old.voxel_discriminator(tf.constant(grids[..., None], tf.float32), training=True)
    parts = (
        "enhancer_generator",
        "enhancer_discriminator",
        "voxel_generator",
        "voxel_discriminator",
    )
    path = tf.train.Checkpoint(**{p: getattr(old, p) for p in parts}).write(str(tmp_path / "old"))

    keras.utils.set_random_seed(6)  # different initial weights: all must come from the file
    new = build_networks(config)
    assert type(new.voxel_discriminator.bn_conv8_256) is voxel.BatchNorm
    status = tf.train.Checkpoint(**{p: getattr(new, p) for p in parts}).read(path)
    status.assert_existing_objects_matched()

    feats_old = FeatureExtractor(old.voxel_discriminator, batch_size=4)(grids)
    feats_new = FeatureExtractor(new.voxel_discriminator, batch_size=4)(grids)
    np.testing.assert_array_equal(feats_new, feats_old)
    vox_old, _ = generate_voxels(old, z, training=False)
    vox_new, _ = generate_voxels(new, z, training=False)
    np.testing.assert_array_equal(np.asarray(vox_new), np.asarray(vox_old))
