"""The joint adversarial train step: DE + DM once, then GE + GM twice.

`GanTrainer` owns the four networks (or GM, DM and the latent projector in
the no-enhancer baseline), one Adam optimiser per network, the step counter
and the training metrics. `train_step(batch)` is one `tf.function` that runs
on every replica of the current `tf.distribute` strategy, laid out like the
Keras examples' GAN steps:

  1. `_discriminator_update`: DM on real grids and on GM(GE_i(z0)), DE on the
     paired real views and on GE(z0); fakes carry no generator gradient.
  2. `_generator_update`, `generator_steps_per_discriminator_step` times, each
     with its own z (z1, z2, ...): GE and GM minimise L = LE + LM jointly, so
     GE's layers up to i also learn from LM through GM (paper eq. 4).

Recipe options beyond the paper (TrainConfig; all off by default): separate
discriminator/generator learning rates, discriminator gating (skip a
discriminator's update when its accuracy on the batch is above a threshold:
`_apply_gated`), annealed instance noise and differentiable augmentation of
DM's inputs (`_dm_input`), one-sided label smoothing (`real_label`), an R1
penalty on DM, and loss scaling under mixed precision (`_scaled_losses`);
the random ones and R1 are in `recipe.py`. Candidates beyond the paper
(docs/DESIGN.md#candidates, off by default): a self-supervised rotation loss
on DM's rotation head (`rotation_weight`), WGAN-GP for DM (`gan_loss`,
`gp_weight`) and several DM updates per step (`critic_steps`:
`_discriminator_update`). Skipped updates are not applied
at all (no Adam step), so each discriminator optimiser's `iterations` counts
the updates it made, and every generator optimiser's counts
`generator_steps_per_discriminator_step` per step.

z comes in with the batch (`batch["z"]: [B, 1 + n_g, latent]`), drawn by the
input pipeline from a stateless RNG keyed by the example's position in the
data stream: a resumed or distributed run sees exactly the same noise as an
uninterrupted single-device one.

This module must not read flags, touch the file system or print.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from enhancer_gan.config import ModelConfig, TrainConfig, check_compatible
from enhancer_gan.models import build_networks, generate_voxels
from enhancer_gan.training import losses, recipe
from enhancer_gan.training.adam import FusedAdam
from enhancer_gan.training.runs import network_parts

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
    "loss/gradient_penalty",
    "loss/rotation",
    "voxel/fake_tv",
    "voxel/real_tv",
)

# DM's penalties and auxiliary losses: reported (as 0) even when off, like R1.
_DM_EXTRAS = ("loss/r1_penalty", "loss/gradient_penalty", "loss/rotation")

# Each discriminator's metric prefix.
_PREFIX = {"voxel_discriminator": "voxel", "enhancer_discriminator": "enhancer"}


def _adam(config: TrainConfig, name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    opt = FusedAdam(learning_rate=learning_rate, beta_1=config.beta1, name=name)
    if config.mixed_precision:
        opt = keras.optimizers.LossScaleOptimizer(opt, name=f"{name}_loss_scale")
    return opt


def _occupancy(voxels: tf.Tensor) -> tf.Tensor:
    """Per-example fraction of voxels > 0.5: [B]."""
    return tf.reduce_mean(tf.cast(voxels > 0.5, tf.float32), axis=[1, 2, 3, 4])


def _probabilities(logits: tf.Tensor) -> tf.Tensor:
    """Per-example D(x) = sigmoid(logit): [B]."""
    return tf.sigmoid(tf.reshape(logits, [-1]))


class GanTrainer(tf.Module):
    """Networks, optimisers, step counter and metrics of one training run.

    Create it inside `strategy.scope()` when training on several devices.
    """

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig):
        super().__init__(name="gan_trainer")
        check_compatible(model_config, train_config)
        self.model_config = model_config
        self.train_config = train_config
        self.networks = build_networks(model_config)
        self.use_enhancer = model_config.use_enhancer
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._build_optimizers()
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

    def _build_optimizers(self) -> None:
        """One Adam per network (docs/DESIGN.md#training), slots built now so that a
        checkpoint restores into existing variables. Without the enhancer, the latent
        projector is GM's input layer and shares GM's optimiser."""
        cfg, nets = self.train_config, self.networks
        g_lr, d_lr = cfg.g_learning_rate, cfg.d_learning_rate
        trained = {"voxel_generator": g_lr, "voxel_discriminator": d_lr}
        if self.use_enhancer:
            trained.update(enhancer_generator=g_lr, enhancer_discriminator=d_lr)
        self.optimizers = {n: _adam(cfg, f"{n}_adam", lr) for n, lr in trained.items()}
        self.variables_of = {n: list(getattr(nets, n).trainable_variables) for n in trained}
        if not self.use_enhancer:
            self.variables_of["voxel_generator"] = (
                list(nets.latent_projector.trainable_variables)
                + self.variables_of["voxel_generator"]
            )
        for name, opt in self.optimizers.items():
            opt.build(self.variables_of[name])

    # -- the step -------------------------------------------------------------

    def generate(self, z: tf.Tensor, training: bool):
        """z [B, latent] -> (voxels [B, R, R, R, 1] in [0, 1], GE outputs or None)."""
        return generate_voxels(self.networks, z, training=training)

    def _replica_step(self, batch):
        """One replica's step: D update on z0, then the generator updates on z1, z2, ..."""
        real_voxels = tf.cast(batch["voxels"], tf.float32)
        real_images = tf.cast(batch["image"], tf.float32)
        z = tf.cast(batch["z"], tf.float32)
        out = self._discriminator_update(real_voxels, real_images, z[:, 0])
        out.update(self._generator_updates(z[:, 1:]))
        return out

    # -- 1. the discriminators ---------------------------------------------------

    def _discriminator_update(self, real_voxels, real_images, z):
        """DE and DM: one update on the real pairs and the detached fakes of z, then
        DM alone `critic_steps` - 1 more times on the same grids; metrics.

        Every critic update sees the same real grids and the same fakes (GM
        does not change in between), with its own augmentation, noise and
        interpolation draws. Each metric is the mean over the updates that
        report it (DE's come from the first only).
        """
        fakes = self._fakes(z)
        outs = [
            self._discriminator_step(real_voxels, real_images, *fakes, critic)
            for critic in range(self.train_config.critic_steps)
        ]
        if len(outs) == 1:
            return outs[0]
        means = {}
        for name in outs[0]:
            values = [o[name] for o in outs if name in o]
            means[name] = tf.add_n(values) / len(values)
        return means

    def _discriminator_step(self, real_voxels, real_images, fake_voxels, fake_images, critic):
        """One update of DE and DM (critic 0) or of DM alone (critic > 0); metrics."""
        names = self.discriminator_names if critic == 0 else ("voxel_discriminator",)
        dm_real_in = self._dm_input(real_voxels, 0, critic)
        dm_fake_in = self._dm_input(fake_voxels, 1, critic)
        with tf.GradientTape(persistent=self.train_config.mixed_precision) as tape:
            loss, logits, out = self._voxel_discriminator_loss(dm_real_in, dm_fake_in, critic)
            if self.use_enhancer and critic == 0:
                de_loss, logits["enhancer_discriminator"] = self._enhancer_discriminator_loss(
                    real_images, fake_images
                )
                out["loss/enhancer_discriminator"] = de_loss
                loss = loss + de_loss
            scaled = self._scaled_losses(loss, names)
        accuracies = {name: self._avg(losses.accuracy(*pair)) for name, pair in logits.items()}
        grads = self._gradients(tape, scaled, names)
        skipped = self._apply_gated(grads, accuracies)
        del tape
        out.update(self._discriminator_metrics(real_voxels, logits, accuracies, skipped))
        return out

    def _fakes(self, z):
        """The discriminators' generated inputs of z: (grids, GE's images or None), detached."""
        voxels, outputs = self.generate(z, training=True)
        images = tf.stop_gradient(outputs["image"]) if self.use_enhancer else None
        return tf.stop_gradient(voxels), images

    def _voxel_discriminator_loss(self, real_in, fake_in, critic: int = 0):
        """DM's loss (cross-entropy, or the WGAN critic loss + gp_weight GP), + gamma/2 R1
        on the real grids, + alpha times the rotation loss: (loss, {name: logits}, metrics).

        The accuracy metrics and the gate read the logits' signs either way
        (for a critic: D(real) > 0 > D(fake)).
        """
        cfg, dm = self.train_config, self.networks.voxel_discriminator
        if cfg.r1_gamma > 0:
            real, r1 = recipe.logits_and_r1(dm, real_in)
        else:
            real, r1 = dm(real_in, training=True)["logits"], None
        fake = dm(fake_in, training=True)["logits"]
        if cfg.gan_loss == "wgan_gp":
            loss = self._avg(losses.wasserstein_critic_loss(real, fake))
        else:
            loss = self._avg(losses.discriminator_loss(real, fake, cfg.real_label))
        out = {"loss/voxel_discriminator": loss, **{k: tf.constant(0.0) for k in _DM_EXTRAS}}
        if r1 is not None:
            out["loss/r1_penalty"] = self._avg(r1)
            loss = loss + 0.5 * cfg.r1_gamma * out["loss/r1_penalty"]
        if cfg.gan_loss == "wgan_gp":
            seed = self._seed(recipe.GP_SALT, 0, critic)
            out["loss/gradient_penalty"] = self._avg(
                recipe.gradient_penalty(dm, real_in, fake_in, seed)
            )
            loss = loss + cfg.gp_weight * out["loss/gradient_penalty"]
        if cfg.rotation_weight > 0:
            out["loss/rotation"] = self._rotation_loss(real_in)
            loss = loss + cfg.rotation_weight * out["loss/rotation"]
        return loss, {"voxel_discriminator": (real, fake)}, out

    def _rotation_loss(self, dm_in):
        """DM's rotation cross-entropy on `dm_in` with example i turned i mod 4 times."""
        rotated, labels = recipe.rotate_by_index(dm_in)
        logits = self.networks.voxel_discriminator(rotated, training=True)["rotation_logits"]
        return self._avg(losses.rotation_loss(logits, labels))

    def _enhancer_discriminator_loss(self, real_images, fake_images):
        """DE's loss on the paired real views and GE's images: (loss, (real, fake) logits)."""
        de = self.networks.enhancer_discriminator
        real = de(real_images, training=True)
        fake = de(fake_images, training=True)
        loss = self._avg(losses.discriminator_loss(real, fake, self.train_config.real_label))
        return loss, (real, fake)

    def _discriminator_metrics(self, real_voxels, logits, accuracies, skipped):
        """D(real), D(fake), accuracy per discriminator; gate decisions; noise; occupancy."""
        replicas = self._strategy.num_replicas_in_sync
        # Each replica reports the (shared) decision / num_replicas: the sum is 0 or 1.
        out = {f"gate/{name}_skipped": value / replicas for name, value in skipped.items()}
        out["voxel/instance_noise"] = self.instance_noise_std() / replicas
        out["voxel/real_occupancy"] = self._avg(_occupancy(real_voxels))
        out["voxel/real_tv"] = self._avg(losses.total_variation(real_voxels))
        for name, (real, fake) in logits.items():
            out[f"{_PREFIX[name]}/d_real"] = self._avg(_probabilities(real))
            out[f"{_PREFIX[name]}/d_fake"] = self._avg(_probabilities(fake))
            out[f"{_PREFIX[name]}/d_accuracy"] = accuracies[name]
        return out

    # -- 2. the generators ---------------------------------------------------------

    def _generator_updates(self, z):
        """`generator_steps_per_discriminator_step` updates, the k-th on z[:, k]: mean metrics."""
        n_g = self.train_config.generator_steps_per_discriminator_step
        sums = {}
        for k in range(n_g):
            for name, value in self._generator_update(z[:, k], which=2 + k).items():
                sums[name] = sums.get(name, 0.0) + value
        return {name: total / n_g for name, total in sums.items()}

    def _generator_update(self, z, which: int):
        """GE and GM: one step on L = LE + LM (paper eq. 4); `which` keys DM's input draws.

        With WGAN-GP, LM = -mean D(G(z)); with the rotation loss, LM also has
        beta = GENERATOR_ROTATION_RATIO * rotation_weight times DM's rotation
        cross-entropy on the rotated samples, and voxel_tv_weight times the
        samples' total variation (neither in `loss/voxel_generator`).
        """
        cfg, nets = self.train_config, self.networks
        with tf.GradientTape(persistent=cfg.mixed_precision) as tape:
            voxels, outputs = self.generate(z, training=True)
            dm_in = self._dm_input(voxels, which)
            logits = nets.voxel_discriminator(dm_in, training=True)
            if cfg.gan_loss == "wgan_gp":
                loss = self._avg(losses.wasserstein_generator_loss(logits["logits"]))
            else:
                loss = self._avg(losses.generator_loss(logits["logits"], cfg.generator_loss))
            out = {"loss/voxel_generator": loss}
            if cfg.rotation_weight > 0:
                beta = recipe.GENERATOR_ROTATION_RATIO * cfg.rotation_weight
                loss = loss + beta * self._rotation_loss(dm_in)
            tv = self._avg(losses.total_variation(voxels))
            if cfg.voxel_tv_weight > 0:
                loss = loss + cfg.voxel_tv_weight * tv
            if self.use_enhancer:
                e_logits = nets.enhancer_discriminator(outputs["image"], training=True)
                out["loss/enhancer_generator"] = self._avg(
                    losses.generator_loss(e_logits, cfg.generator_loss)
                )
                loss = loss + out["loss/enhancer_generator"]
            scaled = self._scaled_losses(loss, self.generator_names)
        self._apply(self._gradients(tape, scaled, self.generator_names))
        del tape
        out["voxel/fake_occupancy"] = self._avg(_occupancy(voxels))
        out["voxel/fake_tv"] = tv
        return out

    # -- recipe options: DM's inputs, loss scaling, gating -------------------------

    def _avg(self, per_example: tf.Tensor) -> tf.Tensor:
        """Sum / GLOBAL batch size: summed over replicas, the global batch's mean."""
        return tf.nn.compute_average_loss(
            per_example, global_batch_size=self.train_config.batch_size
        )

    def _dm_input(self, voxels: tf.Tensor, which: int, critic: int = 0) -> tf.Tensor:
        """What DM judges of grids: augmented, then noised (each if on); `which` and
        the critic update `critic` key both."""
        return self._instance_noise(self._augment(voxels, which, critic), which, critic)

    def _augment(self, x: tf.Tensor, which: int, critic: int = 0) -> tf.Tensor:
        """`recipe.augment` (DiffAugment) if discriminator_augment, else x."""
        if not self.train_config.discriminator_augment:
            return x
        return recipe.augment(x, self._seed(recipe.AUGMENT_SALT, which, critic))

    def _instance_noise(self, x: tf.Tensor, which: int, critic: int = 0) -> tf.Tensor:
        """x + N(0, sigma_t^2) if instance_noise, else x; keyed by (seed, step, replica, which)."""
        if self.train_config.instance_noise <= 0:
            return x
        seed = self._seed(recipe.NOISE_SALT, which, critic)
        return recipe.add_instance_noise(x, self.instance_noise_std(), seed)

    def _seed(self, salt: int, which: int, critic: int = 0) -> tf.Tensor:
        """The stateless seed of DM's input `which` at this step on this replica
        (folded with `critic` for the critic updates after the first)."""
        seed = recipe.step_seed(self.train_config.seed, salt, self.step, which)
        return recipe.critic_seed(seed, critic)

    def instance_noise_std(self) -> tf.Tensor:
        """sigma_t = instance_noise * max(0, 1 - step / anneal steps)."""
        return recipe.instance_noise_std(self.train_config, self.step)

    def _scaled_losses(self, loss, names):
        """Per-optimiser scaled losses under mixed precision (call INSIDE the tape, so
        the scaling is recorded); otherwise every network shares the unscaled loss."""
        if not self.train_config.mixed_precision:
            return loss
        return {n: self.optimizers[n].scale_loss(loss) for n in names}

    def _gradients(self, tape, scaled, names):
        """{name: gradients of that network's variables} of what `_scaled_losses` gave."""
        if self.train_config.mixed_precision:
            return {n: tape.gradient(scaled[n], self.variables_of[n]) for n in names}
        grads = iter(tape.gradient(scaled, [v for n in names for v in self.variables_of[n]]))
        return {n: [next(grads) for _ in self.variables_of[n]] for n in names}

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

            def update(name=name, g=g):
                self._apply({name: g})
                return tf.constant(0.0)

            skipped[name] = tf.cond(acc <= gate, update, lambda: tf.constant(1.0))
        return skipped

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
        """A checkpoint of the step, every network and every optimiser.

        The networks' names are `runs.network_parts`', the ones tools read back.
        """
        parts = {"step": self.step, **network_parts(self.networks)}
        for name, opt in self.optimizers.items():
            parts[f"{name}_optimizer"] = opt
        parts.update(extra)
        return tf.train.Checkpoint(**parts)
