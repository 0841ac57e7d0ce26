"""An oracle for the train step: one paper-recipe `GanTrainer` step against plain Keras.

The oracle, `_plain_step`, is the step as the Keras examples write a DCGAN step: one
`tf.GradientTape` per update, `keras.optimizers.Adam(2e-4, beta_1=0.5)` per network,
the losses written out with softplus (-log D = softplus(-l), -log(1 - D) = softplus(l)):
one update of DE + DM on the real pairs and the detached fakes of z0, then two updates
of GE + GM on LE + LM with z1 and z2. It runs on the stock-layer functional networks of
benchmarks/plain_keras.py (`plain_networks`: Keras's Conv*, Dense and
BatchNormalization, none of the project's strided rewrites, fused batch norm or fused
Adam) with the project's initial weights copied in, on the same batch and the same z.
Compared: the four losses and every weight of the four networks (trainable, and the
batch norms' moving statistics) after the step.

Tolerances, measured on CPU (32^3, width 1/16, 32^2 images, batch 4): the losses
agree to 3.7e-6 relative, the weights to 1.4e-6 absolute (3.6e-5 to 1.0e-4 of the
norm of each weight's update), float32 rounding between the two sets of layers. They
are held to 1e-4 relative (losses) and 2e-5 absolute + 1e-4 relative (weights): 2e-5 is
a tenth of one Adam step at lr = 2e-4, so a missing or extra update of any weight, or
a first Adam step in the other direction, fails.

The comparison proves its own power: each trainer of `BROKEN`, which differs from
`GanTrainer` in one thing, must FAIL it (`test_oracle_fails_for_a_broken_step`).
"""

import importlib.util
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from enhancer_gan.data.pipeline import make_pair_dataset
from enhancer_gan.training.trainer import GanTrainer
from tests.helpers import tiny_model_config, tiny_source, tiny_train_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
NETWORKS = (
    "enhancer_generator",
    "enhancer_discriminator",
    "voxel_generator",
    "voxel_discriminator",
)
DISCRIMINATORS = ("enhancer_discriminator", "voxel_discriminator")
GENERATORS = ("enhancer_generator", "voxel_generator")
LOSSES = (
    "loss/voxel_discriminator",
    "loss/enhancer_discriminator",
    "loss/voxel_generator",
    "loss/enhancer_generator",
)
LOSS_RTOL = 1e-4
WEIGHT_ATOL, WEIGHT_RTOL = 2e-5, 1e-4
BATCH = 4


def _plain_networks(model_config) -> dict[str, keras.Model]:
    """benchmarks/plain_keras.py's functional networks (loaded by path: not a package)."""
    spec = importlib.util.spec_from_file_location(
        "plain_keras_for_oracle", ROOT / "benchmarks" / "plain_keras.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.plain_networks(model_config)


def _copy_weights(trainer: GanTrainer, plain: dict[str, keras.Model]) -> None:
    """The project's weights into the plain networks (same layer order, shapes checked)."""
    for name in NETWORKS:
        ours = getattr(trainer.networks, name)
        for kind in ("trainable_variables", "non_trainable_variables"):
            for a, b in zip(getattr(ours, kind), getattr(plain[name], kind), strict=True):
                assert a.shape == b.shape, (name, a.path, b.path)
                b.assign(a)


def _apply(tape, loss, nets, optimizers, names):
    grads = tape.gradient(loss, [nets[n].trainable_variables for n in names])
    for name, g in zip(names, grads):
        optimizers[name].apply_gradients(zip(g, nets[name].trainable_variables))


def _plain_step(nets, optimizers, batch, generator_steps=2):
    """The paper's step in plain Keras: D once on (real, detached fakes of z0), G twice."""
    ge, de, gm, dm = (nets[n] for n in NETWORKS)
    sp, mean = tf.nn.softplus, tf.reduce_mean
    real_voxels, real_images, z = (tf.cast(batch[k], tf.float32) for k in ("voxels", "image", "z"))

    volume, fake_images = ge(z[:, 0], training=True)
    fake_voxels = tf.stop_gradient(gm(volume, training=True))
    fake_images = tf.stop_gradient(fake_images)
    with tf.GradientTape() as tape:
        dm_loss = mean(sp(-dm(real_voxels, training=True)[-1]))
        dm_loss += mean(sp(dm(fake_voxels, training=True)[-1]))
        de_loss = mean(sp(-de(real_images, training=True))) + mean(
            sp(de(fake_images, training=True))
        )
        d_loss = dm_loss + de_loss
    _apply(tape, d_loss, nets, optimizers, DISCRIMINATORS)

    lm_sum = le_sum = 0.0
    for k in range(generator_steps):
        with tf.GradientTape() as tape:
            volume, images = ge(z[:, 1 + k], training=True)
            lm = mean(sp(-dm(gm(volume, training=True), training=True)[-1]))
            le = mean(sp(-de(images, training=True)))
            g_loss = lm + le
        _apply(tape, g_loss, nets, optimizers, GENERATORS)
        lm_sum, le_sum = lm_sum + lm, le_sum + le
    return dict(zip(LOSSES, (dm_loss, de_loss, lm_sum / generator_steps, le_sum / generator_steps)))


# -- deliberately broken steps: each differs from GanTrainer in one thing ------------


class OneGeneratorUpdate(GanTrainer):
    """GE + GM updated once per step instead of twice."""

    def _generator_updates(self, z):
        return self._generator_update(z[:, 0], which=2)


class DiscriminatorLossTrainsEnhancer(GanTrainer):
    """DE judges GE's images without stop_gradient in the discriminator update, and
    that update's loss is differentiated w.r.t. GE too (one tape over everything)."""

    def _fakes(self, z):
        voxels, outputs = self.generate(z, training=True)
        return tf.stop_gradient(voxels), outputs["image"]

    def _discriminator_update(self, real_voxels, real_images, z):
        with tf.GradientTape() as tape:
            out = super()._discriminator_update(real_voxels, real_images, z)
        variables = self.variables_of["enhancer_generator"]
        grads = tape.gradient(out["loss/enhancer_discriminator"], variables)
        self.optimizers["enhancer_generator"].apply_gradients(zip(grads, variables))
        return out


class VoxelLossSkipsEnhancer(GanTrainer):
    """GM's input is detached from GE: GE learns from LE only (not paper eq. 4)."""

    def generate(self, z, training):
        ge = self.networks.enhancer_generator
        outputs = ge(z, training=training)
        features = tf.stop_gradient(ge.voxel_features(outputs))
        return self.networks.voxel_generator(features, training=training), outputs


BROKEN = {
    "one_generator_update": (OneGeneratorUpdate, {"voxel_generator", "enhancer_generator"}),
    "discriminator_loss_trains_enhancer": (DiscriminatorLossTrainsEnhancer, {"enhancer_generator"}),
    "voxel_loss_skips_enhancer": (VoxelLossSkipsEnhancer, {"enhancer_generator"}),
}


# -- the comparison --------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    source, _ = tiny_source(str(tmp_path_factory.mktemp("oracle")), n=4, res=32, views=2)
    return next(iter(make_pair_dataset(source, BATCH, image_size=32, seed=0)))


def _run_both(trainer_class, batch):
    """(trainer's losses, oracle's losses, trainer, plain networks) after one step of each."""
    keras.utils.set_random_seed(0)
    model_config = tiny_model_config()
    trainer = trainer_class(model_config, tiny_train_config(batch_size=BATCH))
    plain = _plain_networks(model_config)
    _copy_weights(trainer, plain)
    cfg = trainer.train_config
    optimizers = {n: keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta1) for n in NETWORKS}
    ours = {k: float(v) for k, v in trainer.train_step(batch).items()}
    step = tf.function(lambda b: _plain_step(plain, optimizers, b))
    reference = {k: float(v) for k, v in step(batch).items()}
    return ours, reference, trainer, plain


def _mismatches(ours, reference, trainer, plain) -> tuple[list[str], dict]:
    """What disagrees beyond the tolerances (['loss/...', 'weights/<network>', ...]),
    and the largest differences seen."""
    bad, worst = [], {"loss_rel": 0.0, "weight_abs": 0.0}
    for key in LOSSES:
        rel = abs(ours[key] - reference[key]) / abs(reference[key])
        worst["loss_rel"] = max(worst["loss_rel"], rel)
        if rel > LOSS_RTOL:
            bad.append(f"{key}: {ours[key]} vs {reference[key]}")
    for name in NETWORKS:
        for a, b in zip(getattr(trainer.networks, name).weights, plain[name].weights, strict=True):
            a, b = a.numpy(), b.numpy()
            worst["weight_abs"] = max(worst["weight_abs"], float(np.max(np.abs(a - b))))
            if not np.allclose(a, b, rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL):
                bad.append(f"weights/{name}")
                break
    return bad, worst


def test_oracle_one_paper_step_matches_plain_keras(batch):
    """Same losses and the same weights after one step, to the module's tolerances."""
    ours, reference, trainer, plain = _run_both(GanTrainer, batch)
    bad, worst = _mismatches(ours, reference, trainer, plain)
    assert not bad, (bad, worst)
    # The step did move every network by about an Adam step: the comparison is not vacuous.
    assert all(int(trainer.optimizers[n].iterations) == 1 for n in DISCRIMINATORS)
    assert all(int(trainer.optimizers[n].iterations) == 2 for n in GENERATORS)


@pytest.mark.parametrize("variant", sorted(BROKEN))
def test_oracle_fails_for_a_broken_step(batch, variant):
    """The oracle's power: a step broken on purpose disagrees with it, in the
    weights of the networks the bug touches."""
    trainer_class, touched = BROKEN[variant]
    bad, _ = _mismatches(*_run_both(trainer_class, batch))
    assert bad, f"{variant}: the oracle did not notice"
    assert touched <= {b.removeprefix("weights/") for b in bad}, bad
