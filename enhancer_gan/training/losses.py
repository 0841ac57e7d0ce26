"""GAN losses on logits (paper eqs. 2-4), per example so they distribute.

All functions take discriminator logits [B, 1] (or [B]) and return a
per-example loss [B] float32; the caller averages over the GLOBAL batch
(`tf.nn.compute_average_loss`), which keeps a multi-replica step equal to a
single-device step on the same batch.

With D(x) = sigmoid(logit):
  discriminator:  -log D(real) - log(1 - D(fake))
                = softplus(-real_logit) + softplus(fake_logit)
  generator, non-saturating (default):  -log D(G(z)) = softplus(-fake_logit)
  generator, minimax (the paper's eq.):  log(1 - D(G(z))) = -softplus(fake_logit)
"""

from __future__ import annotations

import tensorflow as tf

GENERATOR_LOSSES = ("non_saturating", "minimax")


def _flat(logits: tf.Tensor) -> tf.Tensor:
    return tf.reshape(tf.cast(logits, tf.float32), [-1])


def discriminator_loss(
    real_logits: tf.Tensor, fake_logits: tf.Tensor, real_label: float = 1.0
) -> tf.Tensor:
    """Per-example binary cross-entropy of a discriminator: [B].

    `real_label` < 1 is one-sided label smoothing: the real target becomes
    t, so the real term is t softplus(-l) + (1 - t) softplus(l); generated
    inputs keep the target 0.
    """
    real = _flat(real_logits)
    real_term = tf.nn.softplus(-real)
    if real_label != 1.0:
        real_term = real_label * real_term + (1.0 - real_label) * tf.nn.softplus(real)
    return real_term + tf.nn.softplus(_flat(fake_logits))


def r1_penalty(gradients: tf.Tensor) -> tf.Tensor:
    """Per-example ||grad_x D(x)||^2 over all but the batch axis: [B]."""
    g = tf.cast(gradients, tf.float32)
    return tf.reduce_sum(tf.square(tf.reshape(g, [tf.shape(g)[0], -1])), axis=1)


def generator_loss(fake_logits: tf.Tensor, kind: str = "non_saturating") -> tf.Tensor:
    """Per-example generator loss: [B]."""
    if kind == "non_saturating":
        return tf.nn.softplus(-_flat(fake_logits))
    if kind == "minimax":
        return -tf.nn.softplus(_flat(fake_logits))
    raise ValueError(f"unknown generator loss {kind!r}; expected one of {GENERATOR_LOSSES}")


def accuracy(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Per-example discriminator accuracy over real and fake halves: [B]."""
    real_ok = tf.cast(_flat(real_logits) > 0, tf.float32)
    fake_ok = tf.cast(_flat(fake_logits) < 0, tf.float32)
    return 0.5 * (real_ok + fake_ok)
