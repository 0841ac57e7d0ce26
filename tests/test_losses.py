"""GAN losses against values worked out by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from enhancer_gan.training import losses


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_discriminator_loss_by_hand():
    real, fake = tf.constant([[2.0], [0.0]]), tf.constant([[-1.0], [3.0]])
    got = losses.discriminator_loss(real, fake).numpy()
    want = [
        -math.log(_sig(2.0)) - math.log(1 - _sig(-1.0)),
        -math.log(_sig(0.0)) - math.log(1 - _sig(3.0)),
    ]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_generator_losses_by_hand():
    fake = tf.constant([[1.5], [-2.0]])
    ns = losses.generator_loss(fake, "non_saturating").numpy()
    mm = losses.generator_loss(fake, "minimax").numpy()
    np.testing.assert_allclose(ns, [-math.log(_sig(1.5)), -math.log(_sig(-2.0))], rtol=1e-6)
    np.testing.assert_allclose(mm, [math.log(1 - _sig(1.5)), math.log(1 - _sig(-2.0))], rtol=1e-6)


def test_losses_stable_for_large_logits():
    big = tf.constant([[80.0], [-80.0]])
    assert np.isfinite(losses.discriminator_loss(big, -big).numpy()).all()
    assert np.isfinite(losses.generator_loss(big, "minimax").numpy()).all()


def test_accuracy_by_hand():
    acc = losses.accuracy(tf.constant([1.0, -1.0]), tf.constant([-1.0, -2.0])).numpy()
    np.testing.assert_allclose(acc, [1.0, 0.5])


def test_unknown_generator_loss():
    with pytest.raises(ValueError, match="unknown generator loss"):
        losses.generator_loss(tf.zeros([1, 1]), "wasserstein")
