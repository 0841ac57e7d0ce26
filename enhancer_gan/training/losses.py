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

Beyond the paper (docs/DESIGN.md#candidates), on DM only:
  WGAN-GP critic:     D(fake) - D(real), + gp_weight (||grad D(x_hat)||_2 - 1)^2
  WGAN-GP generator:  -D(fake)
  rotation:           cross-entropy of the 4-way rotation logits
and on GM's grids (docs/DESIGN.md#gm-upsample):
  total variation:    mean |p(x + e_a) - p(x)| over neighbouring voxels, summed over the axes
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


def wasserstein_critic_loss(real_scores: tf.Tensor, fake_scores: tf.Tensor) -> tf.Tensor:
    """Per-example WGAN critic loss D(fake) - D(real): [B]; its mean is
    mean D(fake) - mean D(real), the negated Wasserstein estimate."""
    return _flat(fake_scores) - _flat(real_scores)


def wasserstein_generator_loss(fake_scores: tf.Tensor) -> tf.Tensor:
    """Per-example WGAN generator loss -D(G(z)): [B]."""
    return -_flat(fake_scores)


def gradient_penalty(gradients: tf.Tensor) -> tf.Tensor:
    """Per-example WGAN-GP penalty (||grad_x D(x)||_2 - 1)^2 over all but the batch axis: [B].

    The norm is sqrt(sum g^2 + 1e-12), so its own gradient is finite at g = 0.
    """
    g = tf.cast(gradients, tf.float32)
    norm = tf.sqrt(tf.reduce_sum(tf.square(tf.reshape(g, [tf.shape(g)[0], -1])), axis=1) + 1e-12)
    return tf.square(norm - 1.0)


def rotation_loss(rotation_logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Per-example cross-entropy of rotation logits [B, 4] against labels [B] in 0..3: [B]."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(rotation_logits, tf.float32)
    )


def total_variation(voxels: tf.Tensor) -> tf.Tensor:
    """Occupancy grids [B, R, R, R(, 1)] -> [B] float32: for each grid, the mean
    absolute difference between neighbouring voxels along each axis, summed over
    the three axes. A binary grid's value is its surface (exposed faces between
    its voxels and empty ones inside the grid) divided by R^2 (R - 1): isolated
    voxels and small pieces cost the most surface per voxel."""
    x = tf.cast(voxels, tf.float32)
    if x.shape.rank == 5:
        x = x[..., 0]
    total = 0.0
    for axis in (1, 2, 3):
        n = tf.shape(x)[axis]
        diff = tf.gather(x, tf.range(1, n), axis=axis) - tf.gather(x, tf.range(n - 1), axis=axis)
        total += tf.reduce_mean(tf.abs(diff), axis=[1, 2, 3])
    return total
