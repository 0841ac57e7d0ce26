"""Recipe options beyond the paper, as small functions the train step calls.

All are off by default (TrainConfig); `GanTrainer` applies each where the
step says:

  instance noise   DM's inputs (real and generated) + N(0, sigma_t^2), sigma_t
                   annealed linearly to 0 (`instance_noise_std`).
  augmentation     DiffAugment of DM's inputs: per-example shift and x/z
                   mirror (`augment`); differentiable, so G learns through it.
  R1               DM's logits on real grids and ||grad_x DM(x)||^2 (`logits_and_r1`).

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
from enhancer_gan.training import losses

# Salts of the stateless RNGs of instance noise and DM's input augmentation.
NOISE_SALT = 0x1A5E
AUGMENT_SALT = 0x0A06


def step_seed(seed: int, salt: int, step: tf.Variable, which: int) -> tf.Tensor:
    """A stateless RNG seed [2] int64 for input `which` of this step on this replica."""
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    key = (step * 64 + tf.cast(replica, tf.int64)) * 8 + which
    return tf.stack([tf.constant(seed, tf.int64) + salt, key])


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
