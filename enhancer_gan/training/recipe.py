"""Recipe options beyond the paper, as small functions the train step calls.

All are off by default (TrainConfig); `GanTrainer` applies each where the
step says:

  instance noise   DM's inputs (real and generated) + N(0, sigma_t^2), sigma_t
                   annealed linearly to 0 (`instance_noise_std`).
  augmentation     DiffAugment of DM's inputs: per-example shift and x/z
                   mirror (`augment`); differentiable, so G learns through it.
  R1               DM's logits on real grids and ||grad_x DM(x)||^2 (`logits_and_r1`).
  rotation         quarter turns of grids about y (`rotate_about_up`), example i
                   turned i mod 4 times (`rotate_by_index`): the self-supervised
                   rotation task of DM's rotation head (Chen et al. 2019).
  WGAN-GP          (||grad DM(x_hat)||_2 - 1)^2 at random interpolates x_hat of
                   real and generated grids (`interpolate`, `gradient_penalty`).

Gating, label smoothing and loss scaling live with the optimisers and the
losses (`GanTrainer._apply_gated`, `losses.discriminator_loss(real_label=)`,
`GanTrainer._scaled_losses`).

The random draws are stateless, keyed by (seed, step, replica, which input):
a resumed or distributed run draws exactly what an uninterrupted one does.
This module must not read flags, touch the file system or print.
"""

from __future__ import annotations

import tensorflow as tf

from enhancer_gan.config import TrainConfig
from enhancer_gan.models.voxel import ROTATIONS  # quarter turns about y the task tells apart
from enhancer_gan.training import losses

# Salts of the stateless RNGs of instance noise and DM's input augmentation.
NOISE_SALT = 0x1A5E
AUGMENT_SALT = 0x0A06
# Salt of the WGAN-GP interpolation weights.
GP_SALT = 0x06B0
# The generator's rotation weight beta over DM's alpha (Chen et al. 2019: alpha 1, beta 0.2).
GENERATOR_ROTATION_RATIO = 0.2


def step_seed(seed: int, salt: int, step: tf.Variable, which: int) -> tf.Tensor:
    """A stateless RNG seed [2] int64 for input `which` of this step on this replica."""
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    key = (step * 64 + tf.cast(replica, tf.int64)) * 8 + which
    return tf.stack([tf.constant(seed, tf.int64) + salt, key])


def critic_seed(seed: tf.Tensor, critic: int) -> tf.Tensor:
    """`seed` for critic update 0; a different stateless seed for each later one."""
    if critic == 0:
        return seed
    return tf.random.experimental.stateless_fold_in(seed, critic)


def instance_noise_std(config: TrainConfig, step: tf.Variable) -> tf.Tensor:
    """sigma_t = instance_noise * max(0, 1 - step / anneal steps)."""
    steps = config.instance_noise_steps or config.num_steps
    frac = tf.cast(step, tf.float32) / float(steps)
    return config.instance_noise * tf.maximum(0.0, 1.0 - frac)


def add_instance_noise(x: tf.Tensor, std: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """x + std * N(0, 1), drawn from the stateless `seed`."""
    noise = tf.random.stateless_normal(tf.shape(x), seed=seed, dtype=x.dtype)
    return x + tf.cast(std, x.dtype) * noise


def augment(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """DiffAugment of grids [B, R, R, R, C]: shift by <= R/16 (zero fill), mirror x and z.

    Each example draws its own transform; only gathers and reversals, so the
    generator's gradient flows through. y (up) is never mirrored.
    """
    b, r = tf.shape(x)[0], x.shape[1]
    pad = max(1, r // 16)
    shifts = tf.random.stateless_uniform([b, 3], seed, minval=-pad, maxval=pad + 1, dtype=tf.int32)
    flips = tf.random.stateless_uniform([b, 2], seed + 1, maxval=2, dtype=tf.int32) > 0
    x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [pad, pad], [0, 0]])
    base = tf.range(r, dtype=tf.int32)[None, :] + pad
    for axis in range(3):
        idx = base - shifts[:, axis : axis + 1]  # [B, R]
        x = tf.gather(x, idx, axis=axis + 1, batch_dims=1)
    for k, axis in enumerate((1, 3)):  # x and z
        mask = tf.reshape(flips[:, k], [-1, 1, 1, 1, 1])
        x = tf.where(mask, tf.reverse(x, [axis]), x)
    return x


def logits_and_r1(discriminator, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(DM's logits on x, per-example R1 penalty ||grad_x sum logits||^2 [B]).

    Call inside the discriminator's tape: the penalty's own gradient (a
    second derivative) then reaches DM's weights.
    """
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = discriminator(x, training=True)["logits"]
        total = tf.reduce_sum(tf.cast(logits, tf.float32))
    return logits, losses.r1_penalty(tape.gradient(total, x))


def quarter_turn(x: tf.Tensor) -> tf.Tensor:
    """Grids [B, X, Y, Z, C] turned once about y (up): np.rot90(grid, 1, axes=(0, 2)).

    Reverse z, then swap x and z (numpy's rot90: flip the second axis, then
    transpose); y and the channels are untouched. Needs X == Z.
    """
    return tf.transpose(tf.reverse(x, [3]), [0, 3, 2, 1, 4])


def rotate_about_up(x: tf.Tensor, k) -> tf.Tensor:
    """Grids [B, R, R, R, C] turned k quarter turns about y.

    `k`: a Python int (every example), or an int tensor [B] (one per example).
    Only transposes, reversals and a gather: the gradient flows through.
    """
    turns = [x]
    for _ in range(ROTATIONS - 1):
        turns.append(quarter_turn(turns[-1]))
    if isinstance(k, int):
        return turns[k % ROTATIONS]
    stacked = tf.stack(turns, axis=1)  # [B, 4, R, R, R, C]
    return tf.gather(stacked, tf.cast(k, tf.int32) % ROTATIONS, axis=1, batch_dims=1)


def rotate_by_index(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(x with example i turned i mod 4 quarter turns about y, the labels i mod 4 [B] int32).

    One rotation per example keeps the batch size (cheaper than all four
    turns of every example); the data pipeline shuffles, so an example's
    index says nothing about its shape. The index is the replica's own.
    """
    labels = tf.range(tf.shape(x)[0], dtype=tf.int32) % ROTATIONS
    return rotate_about_up(x, labels), labels


def interpolate(real: tf.Tensor, fake: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """x_hat = eps real + (1 - eps) fake, eps ~ U[0, 1] per example from the stateless `seed`."""
    shape = [tf.shape(real)[0]] + [1] * (len(real.shape) - 1)
    eps = tf.random.stateless_uniform(shape, seed, dtype=real.dtype)
    return eps * real + (1.0 - eps) * tf.cast(fake, real.dtype)


def gradient_penalty(discriminator, real: tf.Tensor, fake: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Per-example WGAN-GP penalty (||grad_x D(x_hat)||_2 - 1)^2 [B] at `interpolate`'s x_hat.

    Call inside the critic's tape: the penalty's gradient (a second
    derivative) then reaches the critic's weights. The gradient of the sum of
    the scores is each example's own only if D treats examples separately:
    no batch norm (ModelConfig.dm_batch_norm=False); the minibatch-std
    channel couples them a little, as in ProGAN, which combines the two.
    """
    x_hat = interpolate(real, tf.stop_gradient(fake), seed)
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = discriminator(x_hat, training=True)["logits"]
        total = tf.reduce_sum(tf.cast(scores, tf.float32))
    return losses.gradient_penalty(tape.gradient(total, x_hat))
