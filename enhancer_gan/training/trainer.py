"""The joint adversarial train step: DE + DM once, then GE + GM twice.

`GanTrainer` owns the four networks (or GM, DM and the latent projector in
the no-enhancer baseline), one Adam optimiser per network, the step counter
and the training metrics. `train_step(batch)` is one `tf.function` that runs
on every replica of the current `tf.distribute` strategy:

  1. discriminator update: DM on real grids and on GM(GE_i(z0)), DE on the
     paired real views and on GE(z0); fakes carry no generator gradient.
  2. `generator_steps_per_discriminator_step` generator updates, each with its
     own z (z1, z2, ...): GE and GM minimise L = LE + LM jointly, so GE's
     layers up to i also learn from LM through GM (paper eq. 4).

Recipe options beyond the paper (TrainConfig; all off by default): separate
discriminator/generator learning rates, discriminator gating (skip a
discriminator's update when its accuracy on the batch is above a threshold),
annealed instance noise on DM's inputs, one-sided label smoothing, an R1
penalty on DM and differentiable augmentation of DM's inputs. Skipped updates are not applied at all (no Adam step), so each
discriminator optimiser's `iterations` counts the updates it made, and every
generator optimiser's counts `generator_steps_per_discriminator_step` per step.

z comes in with the batch (`batch["z"]: [B, 1 + n_g, latent]`), drawn by the
input pipeline from a stateless RNG keyed by the example's position in the
data stream: a resumed or distributed run sees exactly the same noise as an
uninterrupted single-device one.

This module must not read flags, touch the file system or print.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from enhancer_gan.config import ModelConfig, TrainConfig
from enhancer_gan.models import build_networks, generate_voxels
from enhancer_gan.training import losses
from enhancer_gan.training.adam import FusedAdam

METRIC_NAMES = (
    "loss/voxel_discriminator",
    "loss/voxel_generator",
    "loss/enhancer_discriminator",
    "loss/enhancer_generator",
    "voxel/d_real",
    "voxel/d_fake",
    "voxel/d_accuracy",
    "voxel/fake_occupancy",
    "voxel/real_occupancy",
    "enhancer/d_real",
    "enhancer/d_fake",
    "enhancer/d_accuracy",
    "gate/voxel_discriminator_skipped",
    "gate/enhancer_discriminator_skipped",
    "voxel/instance_noise",
    "loss/r1_penalty",
)

# Salts of the stateless RNGs of instance noise and DM's input augmentation.
_NOISE_SALT = 0x1A5E
_AUGMENT_SALT = 0x0A06


def _adam(config: TrainConfig, name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    opt = FusedAdam(learning_rate=learning_rate, beta_1=config.beta1, name=name)
    if config.mixed_precision:
        opt = keras.optimizers.LossScaleOptimizer(opt, name=f"{name}_loss_scale")
    return opt


class GanTrainer(tf.Module):
    """Networks, optimisers, step counter and metrics of one training run.

    Create it inside `strategy.scope()` when training on several devices.
    """

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig):
        super().__init__(name="gan_trainer")
        self.model_config = model_config
        self.train_config = train_config
        self.networks = build_networks(model_config)
        nets = self.networks
        self.use_enhancer = model_config.use_enhancer
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")

        # One optimiser per network (docs/DESIGN.md#training). Without the enhancer, the
        # latent projector is GM's input layer and shares GM's optimiser.
        g_lr, d_lr = train_config.g_learning_rate, train_config.d_learning_rate
        self.optimizers = {
            "voxel_generator": _adam(train_config, "voxel_generator_adam", g_lr),
            "voxel_discriminator": _adam(train_config, "voxel_discriminator_adam", d_lr),
        }
        self.variables_of = {
            "voxel_generator": list(nets.voxel_generator.trainable_variables),
            "voxel_discriminator": list(nets.voxel_discriminator.trainable_variables),
        }
        if self.use_enhancer:
            self.optimizers["enhancer_generator"] = _adam(
                train_config, "enhancer_generator_adam", g_lr
            )
            self.optimizers["enhancer_discriminator"] = _adam(
                train_config, "enhancer_discriminator_adam", d_lr
            )
            self.variables_of["enhancer_generator"] = list(
                nets.enhancer_generator.trainable_variables
            )
            self.variables_of["enhancer_discriminator"] = list(
                nets.enhancer_discriminator.trainable_variables
            )
        else:
            self.variables_of["voxel_generator"] = (
                list(nets.latent_projector.trainable_variables)
                + self.variables_of["voxel_generator"]
            )
        # Build slots now so that a checkpoint restores into existing variables.
        for name, opt in self.optimizers.items():
            opt.build(self.variables_of[name])

        self.generator_names = tuple(
            n for n in ("enhancer_generator", "voxel_generator") if n in self.optimizers
        )
        self.discriminator_names = tuple(
            n for n in ("enhancer_discriminator", "voxel_discriminator") if n in self.optimizers
        )
        self.metrics = {
            name: keras.metrics.Mean(name=f"train/{name}")
            for name in METRIC_NAMES
            if self.use_enhancer
            or not name.startswith(("enhancer", "loss/enhancer", "gate/enhancer"))
        }
        self._strategy = tf.distribute.get_strategy()
        replica_fn = self._replica_step
        if train_config.jit_compile:
            replica_fn = tf.function(replica_fn, jit_compile=True)
        self._replica_fn = replica_fn
        self.train_step = tf.function(self._distributed_step, reduce_retracing=True)

    # -- the step -------------------------------------------------------------

    def generate(self, z: tf.Tensor, training: bool):
        """z [B, latent] -> (voxels [B, R, R, R, 1] in [0, 1], GE outputs or None)."""
        return generate_voxels(self.networks, z, training=training)

    def _scaled_losses(self, loss, names):
        """Per-optimiser scaled losses; call INSIDE the tape so scaling is recorded.

        Without mixed precision every network shares the unscaled loss.
        """
        if not self.train_config.mixed_precision:
            return loss
        return {n: self.optimizers[n].scale_loss(loss) for n in names}

    def _gradients(self, tape, scaled, names):
        """Gradients for each named network of what `_scaled_losses` gave."""
        if not self.train_config.mixed_precision:
            flat = [v for n in names for v in self.variables_of[n]]
            grads = tape.gradient(scaled, flat)
            out, i = {}, 0
            for n in names:
                k = len(self.variables_of[n])
                out[n] = grads[i : i + k]
                i += k
            return out
        return {n: tape.gradient(scaled[n], self.variables_of[n]) for n in names}

    def _apply(self, grads):
        for name, g in grads.items():
            self.optimizers[name].apply_gradients(zip(g, self.variables_of[name]))

    def _apply_gated(self, grads, accuracies):
        """Discriminator updates; each skipped when its batch accuracy > the gate.

        Returns {name: 1.0 if skipped else 0.0}. The accuracy is the global
        batch's (summed over replicas), so every replica takes the same branch.
        """
        gate = self.train_config.discriminator_gate
        if gate >= 1.0:
            self._apply(grads)
            return {name: tf.constant(0.0) for name in grads}
        ctx = tf.distribute.get_replica_context()
        skipped = {}
        for name, g in grads.items():
            acc = ctx.all_reduce(tf.distribute.ReduceOp.SUM, accuracies[name])
            apply = acc <= gate

            def update(name=name, g=g):
                self.optimizers[name].apply_gradients(zip(g, self.variables_of[name]))
                return tf.constant(0.0)

            skipped[name] = tf.cond(apply, update, lambda: tf.constant(1.0))
        return skipped

    def instance_noise_std(self) -> tf.Tensor:
        """sigma_t = instance_noise * max(0, 1 - step / anneal steps)."""
        cfg = self.train_config
        steps = cfg.instance_noise_steps or cfg.num_steps
        frac = tf.cast(self.step, tf.float32) / float(steps)
        return cfg.instance_noise * tf.maximum(0.0, 1.0 - frac)

    def _instance_noise(self, x: tf.Tensor, which: int) -> tf.Tensor:
        """x + N(0, sigma_t^2), keyed by (seed, step, replica, which): reproducible."""
        if self.train_config.instance_noise <= 0:
            return x
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        key = (self.step * 64 + tf.cast(replica, tf.int64)) * 8 + which
        seed = tf.stack([tf.constant(self.train_config.seed, tf.int64) + _NOISE_SALT, key])
        noise = tf.random.stateless_normal(tf.shape(x), seed=seed, dtype=x.dtype)
        return x + tf.cast(self.instance_noise_std(), x.dtype) * noise

    def _augment(self, x: tf.Tensor, which: int) -> tf.Tensor:
        """DiffAugment for DM: random shift (zero fill) and x/z mirror per example.

        Keyed like the instance noise; only gathers and reversals, so the
        generator's gradient flows through.
        """
        if not self.train_config.discriminator_augment:
            return x
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        key = (self.step * 64 + tf.cast(replica, tf.int64)) * 8 + which
        seed = tf.stack([tf.constant(self.train_config.seed, tf.int64) + _AUGMENT_SALT, key])
        b, r = tf.shape(x)[0], x.shape[1]
        pad = max(1, r // 16)
        shifts = tf.random.stateless_uniform(
            [b, 3], seed, minval=-pad, maxval=pad + 1, dtype=tf.int32
        )
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

    def _replica_step(self, batch):
        cfg = self.train_config
        nets = self.networks
        global_batch = cfg.batch_size
        avg = lambda x: tf.nn.compute_average_loss(x, global_batch_size=global_batch)  # noqa: E731
        real_voxels = tf.cast(batch["voxels"], tf.float32)
        real_images = tf.cast(batch["image"], tf.float32)
        z = tf.cast(batch["z"], tf.float32)
        n_g = cfg.generator_steps_per_discriminator_step
        persistent = cfg.mixed_precision
        out = {}

        # 1. Discriminators (DE and DM) on real pairs and on detached fakes.
        fake_voxels, fake_outputs = self.generate(z[:, 0], training=True)
        fake_voxels = tf.stop_gradient(fake_voxels)
        dm_real_in = self._instance_noise(self._augment(real_voxels, 0), 0)
        dm_fake_in = self._instance_noise(self._augment(fake_voxels, 1), 1)
        with tf.GradientTape(persistent=persistent) as tape:
            if cfg.r1_gamma > 0:
                with tf.GradientTape() as r1_tape:
                    r1_tape.watch(dm_real_in)
                    dm_real = nets.voxel_discriminator(dm_real_in, training=True)["logits"]
                    real_sum = tf.reduce_sum(tf.cast(dm_real, tf.float32))
                grad_real = r1_tape.gradient(real_sum, dm_real_in)
            else:
                dm_real = nets.voxel_discriminator(dm_real_in, training=True)["logits"]
            dm_fake = nets.voxel_discriminator(dm_fake_in, training=True)["logits"]
            d_loss = avg(losses.discriminator_loss(dm_real, dm_fake, cfg.real_label))
            out["loss/voxel_discriminator"] = d_loss
            if cfg.r1_gamma > 0:
                out["loss/r1_penalty"] = avg(losses.r1_penalty(grad_real))
                d_loss = d_loss + 0.5 * cfg.r1_gamma * out["loss/r1_penalty"]
            else:
                out["loss/r1_penalty"] = tf.constant(0.0)
            if self.use_enhancer:
                fake_images = tf.stop_gradient(fake_outputs["image"])
                de_real = nets.enhancer_discriminator(real_images, training=True)
                de_fake = nets.enhancer_discriminator(fake_images, training=True)
                de_loss = avg(losses.discriminator_loss(de_real, de_fake, cfg.real_label))
                out["loss/enhancer_discriminator"] = de_loss
                d_loss = d_loss + de_loss
            scaled = self._scaled_losses(d_loss, self.discriminator_names)
        accuracies = {"voxel_discriminator": avg(losses.accuracy(dm_real, dm_fake))}
        if self.use_enhancer:
            accuracies["enhancer_discriminator"] = avg(losses.accuracy(de_real, de_fake))
        skipped = self._apply_gated(
            self._gradients(tape, scaled, self.discriminator_names), accuracies
        )
        del tape
        for name, value in skipped.items():
            # Each replica reports the (shared) decision / num_replicas: the sum is 0 or 1.
            out[f"gate/{name}_skipped"] = value / self._strategy.num_replicas_in_sync
        out["voxel/instance_noise"] = self.instance_noise_std() / (
            self._strategy.num_replicas_in_sync
        )

        out["voxel/d_real"] = avg(tf.sigmoid(tf.reshape(dm_real, [-1])))
        out["voxel/d_fake"] = avg(tf.sigmoid(tf.reshape(dm_fake, [-1])))
        out["voxel/d_accuracy"] = accuracies["voxel_discriminator"]
        out["voxel/real_occupancy"] = avg(
            tf.reduce_mean(tf.cast(real_voxels > 0.5, tf.float32), axis=[1, 2, 3, 4])
        )
        if self.use_enhancer:
            out["enhancer/d_real"] = avg(tf.sigmoid(tf.reshape(de_real, [-1])))
            out["enhancer/d_fake"] = avg(tf.sigmoid(tf.reshape(de_fake, [-1])))
            out["enhancer/d_accuracy"] = accuracies["enhancer_discriminator"]

        # 2. Generators, n_g times with fresh z: minimise L = LE + LM jointly.
        g_sums = {"loss/voxel_generator": 0.0, "loss/enhancer_generator": 0.0}
        occupancy = 0.0
        for k in range(n_g):
            with tf.GradientTape(persistent=persistent) as tape:
                voxels, outputs = self.generate(z[:, 1 + k], training=True)
                judged = self._instance_noise(self._augment(voxels, 2 + k), 2 + k)
                logits = nets.voxel_discriminator(judged, training=True)["logits"]
                g_loss = avg(losses.generator_loss(logits, cfg.generator_loss))
                g_sums["loss/voxel_generator"] += g_loss
                if self.use_enhancer:
                    e_logits = nets.enhancer_discriminator(outputs["image"], training=True)
                    e_loss = avg(losses.generator_loss(e_logits, cfg.generator_loss))
                    g_sums["loss/enhancer_generator"] += e_loss
                    g_loss = g_loss + e_loss
                scaled = self._scaled_losses(g_loss, self.generator_names)
            self._apply(self._gradients(tape, scaled, self.generator_names))
            del tape
            occupancy += avg(tf.reduce_mean(tf.cast(voxels > 0.5, tf.float32), axis=[1, 2, 3, 4]))
        out["loss/voxel_generator"] = g_sums["loss/voxel_generator"] / n_g
        if self.use_enhancer:
            out["loss/enhancer_generator"] = g_sums["loss/enhancer_generator"] / n_g
        out["voxel/fake_occupancy"] = occupancy / n_g
        return out

    def _distributed_step(self, batch):
        per_replica = self._strategy.run(self._replica_fn, args=(batch,))
        # Each replica's values are already divided by the global batch size,
        # so the sum over replicas is the global mean.
        values = {
            k: self._strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in per_replica.items()
        }
        for k, v in values.items():
            self.metrics[k].update_state(v)
        self.step.assign_add(1)
        return values

    # -- bookkeeping ----------------------------------------------------------

    def metric_results(self) -> dict[str, float]:
        return {name: float(m.result()) for name, m in self.metrics.items()}

    def reset_metrics(self) -> None:
        for m in self.metrics.values():
            m.reset_state()

    def checkpoint(self, **extra) -> tf.train.Checkpoint:
        """A checkpoint of the step, every network and every optimiser."""
        nets = self.networks
        parts = {
            "step": self.step,
            "voxel_generator": nets.voxel_generator,
            "voxel_discriminator": nets.voxel_discriminator,
        }
        if self.use_enhancer:
            parts["enhancer_generator"] = nets.enhancer_generator
            parts["enhancer_discriminator"] = nets.enhancer_discriminator
        else:
            parts["latent_projector"] = nets.latent_projector
        for name, opt in self.optimizers.items():
            parts[f"{name}_optimizer"] = opt
        parts.update(extra)
        return tf.train.Checkpoint(**parts)
