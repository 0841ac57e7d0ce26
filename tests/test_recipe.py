"""Training-recipe options: each does exactly what its TrainConfig field says."""

import numpy as np
import pytest
import tensorflow as tf

from enhancer_gan.config import TrainConfig
from enhancer_gan.data.pipeline import make_pair_dataset
from enhancer_gan.errors import ConfigError
from enhancer_gan.training import losses
from enhancer_gan.training.trainer import GanTrainer
from tests.helpers import tiny_model_config, tiny_source, tiny_train_config


def _batch(tmp_path, batch_size=2):
    source, _ = tiny_source(str(tmp_path), n=4, res=32, views=2)
    return next(iter(make_pair_dataset(source, batch_size, image_size=32)))


def _values(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def _same(a, model):
    return all(np.array_equal(x, v.numpy()) for x, v in zip(a, model.trainable_variables))


def test_defaults_are_the_papers_recipe():
    cfg = TrainConfig()
    assert cfg.d_learning_rate == cfg.g_learning_rate == cfg.learning_rate == 2e-4
    assert cfg.discriminator_gate == 1.0 and cfg.instance_noise == 0.0
    assert cfg.real_label == 1.0 and cfg.r1_gamma == 0.0


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"discriminator_gate": 0.3}, "discriminator_gate"),
        ({"real_label": 0.4}, "real_label"),
        ({"r1_gamma": -1.0}, "r1_gamma"),
        ({"instance_noise": -0.1}, "instance_noise"),
        ({"discriminator_learning_rate": -1e-4}, "discriminator_learning_rate"),
    ],
)
def test_bad_recipe_values_are_refused(kw, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kw)


def test_separate_learning_rates_reach_the_optimisers():
    trainer = GanTrainer(
        tiny_model_config(),
        tiny_train_config(discriminator_learning_rate=1e-5, generator_learning_rate=2.5e-3),
    )
    for name in trainer.discriminator_names:
        assert float(trainer.optimizers[name].learning_rate) == pytest.approx(1e-5)
    for name in trainer.generator_names:
        assert float(trainer.optimizers[name].learning_rate) == pytest.approx(2.5e-3)


def test_label_smoothing_is_binary_cross_entropy_with_a_soft_real_target():
    logits = np.array([-3.0, -0.5, 0.0, 0.7, 4.0], np.float32)
    fake = np.array([1.0, -2.0, 0.3, 0.0, -1.0], np.float32)
    sig = 1 / (1 + np.exp(-logits.astype(np.float64)))
    sig_f = 1 / (1 + np.exp(-fake.astype(np.float64)))
    for t in (1.0, 0.9, 0.75):
        expected = -(t * np.log(sig) + (1 - t) * np.log(1 - sig)) - np.log(1 - sig_f)
        got = losses.discriminator_loss(logits, fake, real_label=t).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_gating_skips_exactly_the_discriminators_above_the_threshold():
    trainer = GanTrainer(tiny_model_config(), tiny_train_config(discriminator_gate=0.8))
    names = trainer.discriminator_names
    grads = {n: [tf.ones_like(v) for v in trainer.variables_of[n]] for n in names}
    before = {n: _values(trainer.networks.voxel_discriminator) for n in names}
    before_de = _values(trainer.networks.enhancer_discriminator)
    accuracies = {"voxel_discriminator": tf.constant(0.9), "enhancer_discriminator": 0.8}

    skipped = tf.function(lambda: trainer._apply_gated(grads, accuracies))()
    assert float(skipped["voxel_discriminator"]) == 1.0  # 0.9 > 0.8: skipped
    assert float(skipped["enhancer_discriminator"]) == 0.0  # 0.8 <= 0.8: applied
    assert int(trainer.optimizers["voxel_discriminator"].iterations) == 0
    assert int(trainer.optimizers["enhancer_discriminator"].iterations) == 1
    assert _same(before["voxel_discriminator"], trainer.networks.voxel_discriminator)
    assert not _same(before_de, trainer.networks.enhancer_discriminator)


def test_gated_training_keeps_the_update_counts_provable(tmp_path):
    """Over real steps: skipped == (accuracy > gate); D iterations = steps - skipped."""
    trainer = GanTrainer(
        tiny_model_config(), tiny_train_config(discriminator_gate=0.5, num_steps=6)
    )
    batch = _batch(tmp_path)
    skipped = {n: 0 for n in trainer.discriminator_names}
    for _ in range(6):
        out = trainer.train_step(batch)
        for name, prefix in (
            ("voxel_discriminator", "voxel"),
            ("enhancer_discriminator", "enhancer"),
        ):
            s = float(out[f"gate/{name}_skipped"])
            assert s == float(float(out[f"{prefix}/d_accuracy"]) > 0.5)
            skipped[name] += int(s)
    for name in trainer.discriminator_names:
        assert int(trainer.optimizers[name].iterations) == 6 - skipped[name]
    for name in trainer.generator_names:
        assert int(trainer.optimizers[name].iterations) == 2 * 6


def test_instance_noise_anneals_to_zero_and_is_reproducible():
    trainer = GanTrainer(
        tiny_model_config(), tiny_train_config(instance_noise=0.3, instance_noise_steps=10)
    )
    zeros = tf.zeros([4, 32, 32, 32, 1])
    stds = []
    for step in (0, 5, 10, 20):
        trainer.step.assign(step)
        stds.append(float(trainer.instance_noise_std()))
        noisy = trainer._instance_noise(zeros, 0).numpy()
        assert noisy.std() == pytest.approx(stds[-1], rel=0.02, abs=1e-6)
    np.testing.assert_allclose(stds, [0.3, 0.15, 0.0, 0.0], atol=1e-7)
    trainer.step.assign(3)
    a = trainer._instance_noise(zeros, 0).numpy()
    np.testing.assert_array_equal(a, trainer._instance_noise(zeros, 0).numpy())
    assert not np.array_equal(a, trainer._instance_noise(zeros, 1).numpy())
    trainer.step.assign(4)
    assert not np.array_equal(a, trainer._instance_noise(zeros, 0).numpy())


def test_no_instance_noise_leaves_inputs_untouched():
    trainer = GanTrainer(tiny_model_config(), tiny_train_config())
    x = tf.random.uniform([2, 32, 32, 32, 1])
    assert trainer._instance_noise(x, 0) is x


def test_r1_penalty_is_the_squared_input_gradient_of_dm_on_real_grids(tmp_path):
    trainer = GanTrainer(tiny_model_config(), tiny_train_config(r1_gamma=5.0))
    batch = _batch(tmp_path)
    real = tf.cast(batch["voxels"], tf.float32)
    dm = trainer.networks.voxel_discriminator
    # Expected, before the update, with the same weights and batch statistics.
    with tf.GradientTape() as tape:
        tape.watch(real)
        total = tf.reduce_sum(dm(real, training=True)["logits"])
    g = tape.gradient(total, real).numpy().reshape(len(real), -1)
    expected = float(np.mean(np.sum(g.astype(np.float64) ** 2, axis=1)))
    out = trainer.train_step(batch)
    assert expected > 0
    assert float(out["loss/r1_penalty"]) == pytest.approx(expected, rel=1e-4)


def test_r1_penalty_changes_the_discriminator_update(tmp_path):
    batch = _batch(tmp_path)
    results = []
    for gamma in (0.0, 50.0):
        tf.keras.utils.set_random_seed(0)
        trainer = GanTrainer(tiny_model_config(), tiny_train_config(r1_gamma=gamma))
        trainer.train_step(batch)
        results.append(_values(trainer.networks.voxel_discriminator))
        assert (float(trainer.metrics["loss/r1_penalty"].result()) > 0) == (gamma > 0)
    assert any(not np.allclose(a, b) for a, b in zip(*results))


def test_augmentation_shifts_and_mirrors_each_example_and_passes_gradients():
    trainer = GanTrainer(tiny_model_config(), tiny_train_config(discriminator_augment=True))
    grid = np.zeros([16, 32, 32, 32, 1], np.float32)
    grid[:, 10, 12, 14, 0] = 1.0  # one voxel at (x, y, z) = (10, 12, 14)
    x = tf.constant(grid)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = trainer._augment(x, 0)
        total = tf.reduce_sum(out * tf.range(32.0)[:, None, None, None])
    assert tape.gradient(total, x) is not None
    out = out.numpy()[..., 0]
    positions = set()
    for k in range(16):
        (px, py, pz) = np.argwhere(out[k] > 0.5)[0]
        assert out[k].sum() == 1.0  # a shift by <= 2 keeps it inside; nothing else appears
        assert abs(py - 12) <= 2  # y (up) is shifted, never mirrored
        assert min(abs(px - 10), abs(px - 21)) <= 2  # x: shifted, maybe mirrored (31 - 10)
        assert min(abs(pz - 14), abs(pz - 17)) <= 2
        positions.add((px, py, pz))
    assert len(positions) > 8  # each example draws its own transform
    np.testing.assert_array_equal(out, trainer._augment(x, 0).numpy()[..., 0])
    assert not np.array_equal(out, trainer._augment(x, 1).numpy()[..., 0])


def test_no_augmentation_leaves_inputs_untouched():
    trainer = GanTrainer(tiny_model_config(), tiny_train_config())
    x = tf.random.uniform([2, 32, 32, 32, 1])
    assert trainer._augment(x, 0) is x
