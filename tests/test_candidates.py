"""DM's candidates beyond the paper (issue 19): each off by default, each doing exactly
what its flag says: spectral norm, minibatch std, the rotation task, WGAN-GP."""

import dataclasses
import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from enhancer_gan.config import ExperimentConfig, ModelConfig, TrainConfig
from enhancer_gan.data.pipeline import make_pair_dataset
from enhancer_gan.errors import ConfigError
from enhancer_gan.evaluation.features import FeatureExtractor, feature_size
from enhancer_gan.models import build_networks
from enhancer_gan.models.voxel import VoxelDiscriminator, minibatch_std
from enhancer_gan.training import losses, recipe
from enhancer_gan.training.trainer import METRIC_NAMES, GanTrainer
from tests.helpers import (
    box_grids,
    tiny_model_config,
    tiny_source,
    tiny_train_config,
    train_dry_run,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
NEW_MODEL_FIELDS = ("dm_spectral_norm", "dm_minibatch_std", "dm_rotation_head", "dm_batch_norm")
NEW_TRAIN_FIELDS = ("rotation_weight", "gan_loss", "gp_weight", "critic_steps")


def _batch(tmp_path, batch_size=4):
    source, _ = tiny_source(str(tmp_path), n=4, res=32, views=2)
    return next(iter(make_pair_dataset(source, batch_size, image_size=32)))


def _dm(**kw):
    return build_networks(tiny_model_config(use_enhancer=False, **kw)).voxel_discriminator


def _values(variables):
    return [v.numpy().copy() for v in variables]


def _changed(before, variables):
    return any(not np.array_equal(a, v.numpy()) for a, v in zip(before, variables))


def _sn_layers(model):
    return [
        layer for layer in model.layers if isinstance(layer, keras.layers.SpectralNormalization)
    ]


# -- all four: off by default, old configs load ---------------------------------------


def test_defaults_are_the_paper_and_old_config_files_load():
    m, t = ModelConfig(), TrainConfig()
    assert (m.dm_spectral_norm, m.dm_minibatch_std, m.dm_rotation_head) == (False,) * 3
    assert m.dm_batch_norm is True
    assert (t.rotation_weight, t.gan_loss, t.gp_weight, t.critic_steps) == (0.0, "standard", 10, 1)
    # A config.json written before these fields existed reads with the defaults.
    old = ExperimentConfig().to_dict()
    for name in NEW_MODEL_FIELDS:
        del old["model"][name]
    for name in NEW_TRAIN_FIELDS:
        del old["train"][name]
    assert ExperimentConfig.from_dict(json.loads(json.dumps(old))) == ExperimentConfig()
    # So does a serialized DM of that time.
    dm = VoxelDiscriminator.from_config({**old["model"], "resolution": 32, "name": "dm"})
    assert dm.model_config == ModelConfig(resolution=32)


def test_default_dm_is_the_papers_variable_for_variable():
    dm = _dm()
    assert not _sn_layers(dm)
    assert not hasattr(dm, "rotation_logits")
    assert [v.path.split("/", 1)[1] for v in dm.weights] == [
        "conv16_128/kernel",
        "conv16_128/bias",
        "conv8_256/kernel",
        "bn_conv8_256/gamma",
        "bn_conv8_256/beta",
        "bn_conv8_256/moving_mean",
        "bn_conv8_256/moving_variance",
        "conv4_512/kernel",
        "bn_conv4_512/gamma",
        "bn_conv4_512/beta",
        "bn_conv4_512/moving_mean",
        "bn_conv4_512/moving_variance",
        "logits/kernel",
        "logits/bias",
    ]
    out = dm(tf.zeros([2, 32, 32, 32, 1]))
    assert set(out) == {*dm.layer_names, "logits"}
    assert {"loss/rotation", "loss/gradient_penalty"} <= set(METRIC_NAMES)


def test_no_batch_norm_drops_every_bn_and_keeps_the_biases():
    dm = _dm(dm_batch_norm=False)
    assert not [layer for layer in dm.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert all(dm.conv(name).use_bias for name in dm.layer_names)
    x = tf.random.stateless_uniform([3, 32, 32, 32, 1], [1, 2])
    # Without batch norm, training and inference mode are the same function.
    np.testing.assert_allclose(
        dm(x, training=True)["logits"], dm(x, training=False)["logits"], rtol=1e-5, atol=1e-6
    )


# -- 1. spectral normalisation ----------------------------------------------------------


def test_spectral_norm_makes_every_wrapped_kernel_1_lipschitz():
    keras.utils.set_random_seed(0)
    dm = _dm(dm_spectral_norm=True, dm_rotation_head=True)
    wrapped = _sn_layers(dm)
    names = {layer.name for layer in wrapped}
    assert names == {*dm.layer_names, "logits", "rotation_logits"}
    x = tf.random.stateless_uniform([2, 32, 32, 32, 1], [3, 4])
    raw = {layer.name: np.linalg.svd(_matrix(layer), compute_uv=False)[0] for layer in wrapped}
    assert all(s > 0 for s in raw.values())
    # One power iteration per training-mode call: the estimate converges at
    # the rate of the ratio of the two largest singular values (slowly for
    # these random kernels).
    for _ in range(40):
        dm(x, training=True)
    for layer in wrapped:
        sigma = np.linalg.svd(_matrix(layer), compute_uv=False)[0]
        assert sigma == pytest.approx(1.0, abs=0.02), (layer.name, raw[layer.name], sigma)
    # Inference mode reads the kernel as it is: no normalisation step.
    before = _values(dm.weights)
    dm(x, training=False)
    assert not _changed(before, dm.weights)


def _matrix(layer):
    kernel = layer.layer.kernel.numpy()
    return kernel.reshape(-1, kernel.shape[-1])


def test_spectral_norm_keeps_the_feature_outputs_and_their_size():
    plain, sn = _dm(), _dm(dm_spectral_norm=True)
    assert feature_size(sn) == feature_size(plain)
    assert [sn.conv(n).filters for n in sn.feature_layer_names] == [
        plain.conv(n).filters for n in plain.feature_layer_names
    ]
    out = sn(tf.zeros([2, 32, 32, 32, 1]), training=True)
    assert {n: tuple(out[n].shape) for n in sn.layer_names} == {
        "conv16_128": (2, 16, 16, 16, 8),
        "conv8_256": (2, 8, 8, 8, 16),
        "conv4_512": (2, 4, 4, 4, 32),
    }
    features = FeatureExtractor(sn, batch_size=2)(box_grids(3, 32))
    assert features.shape == (3, feature_size(plain)) and np.isfinite(features).all()


def test_spectral_norm_trains(tmp_path):
    trainer = GanTrainer(
        tiny_model_config(use_enhancer=False, dm_spectral_norm=True), tiny_train_config()
    )
    dm = trainer.networks.voxel_discriminator
    before = _values(dm.trainable_variables)
    out = trainer.train_step(_batch(tmp_path, batch_size=2))
    assert all(np.isfinite(float(v)) for v in out.values())
    assert _changed(before, dm.trainable_variables)
    assert int(trainer.optimizers["voxel_discriminator"].iterations) == 1


# -- 2. minibatch standard deviation ------------------------------------------------------


def _minibatch_std_reference(x, group):
    """ProGAN's minibatch std in numpy: example i in group i mod (B / group)."""
    b = x.shape[0]
    y = x.reshape(group, b // group, *x.shape[1:]).astype(np.float64)
    std = np.sqrt(y.var(axis=0) + 1e-8)  # biased variance, as ProGAN
    per_group = std.reshape(b // group, -1).mean(axis=1)
    return np.array([per_group[i % (b // group)] for i in range(b)])


@pytest.mark.parametrize("batch, group", [(8, 4), (4, 4), (6, 6), (2, 2), (1, 1)])
def test_minibatch_std_channel_matches_numpy(batch, group):
    x = np.random.default_rng(batch).normal(size=(batch, 2, 3, 2, 5)).astype(np.float32)
    got = minibatch_std(tf.constant(x)).numpy()
    assert got.shape == (batch, 2, 3, 2, 6)
    np.testing.assert_array_equal(got[..., :5], x)
    want = _minibatch_std_reference(x, group)
    for i in range(batch):  # one value per example, at every position
        np.testing.assert_allclose(got[i, ..., 5], want[i], rtol=1e-5)
    if batch == 8:  # two groups: {0, 2, 4, 6} and {1, 3, 5, 7}
        assert got[0, 0, 0, 0, 5] != got[1, 0, 0, 0, 5]


@pytest.mark.parametrize("on", [False, True])
def test_minibatch_std_couples_the_logits_only(on):
    """Changing example 0 changes the others' logits only with the option on, and
    never their conv features (inference mode: no batch statistics)."""
    dm = _dm(dm_minibatch_std=on)
    x = box_grids(4, 32, seed=1).astype(np.float32)[..., None]
    y = x.copy()
    y[0] = 1.0 - y[0]
    a, b = dm(tf.constant(x)), dm(tf.constant(y))
    for name in dm.layer_names:
        np.testing.assert_allclose(a[name].numpy()[1:], b[name].numpy()[1:], rtol=1e-6, atol=1e-7)
    moved = np.abs(a["logits"].numpy()[1:] - b["logits"].numpy()[1:]).max()
    assert (moved > 1e-6) == on, moved
    assert dm.logits.kernel.shape[0] == 4**3 * (32 + on)


def test_minibatch_std_leaves_the_conv_layers_as_they_are():
    """Same seed: the option changes only the logits Dense's input width."""
    keras.utils.set_random_seed(7)
    plain = _dm()
    keras.utils.set_random_seed(7)
    mbstd = _dm(dm_minibatch_std=True)
    x = tf.constant(box_grids(2, 32, seed=2).astype(np.float32)[..., None])
    a, b = plain(x, training=True), mbstd(x, training=True)
    for name in plain.layer_names:
        np.testing.assert_array_equal(a[name].numpy(), b[name].numpy())
    assert feature_size(plain) == feature_size(mbstd)


# -- 3. the rotation task -------------------------------------------------------------


def _asymmetric_grids(b=3, r=6, c=2):
    return np.random.default_rng(0).uniform(size=(b, r, r, r, c)).astype(np.float32)


def test_quarter_turn_about_y_is_numpys_rot90_on_x_and_z():
    x = _asymmetric_grids()
    for k in range(4):
        got = recipe.rotate_about_up(tf.constant(x), k).numpy()
        np.testing.assert_array_equal(got, np.rot90(x, k, axes=(1, 3)))
    # Four turns are the identity; fewer are not (the grids are asymmetric).
    turned = tf.constant(x)
    for turns in range(1, 5):
        turned = recipe.quarter_turn(turned)
        assert np.array_equal(turned.numpy(), x) == (turns == 4)


def test_quarter_turn_moves_a_voxel_in_the_horizontal_plane_only():
    grid = np.zeros((1, 4, 4, 4, 1), np.float32)
    grid[0, 1, 2, 0, 0] = 1.0  # x=1, y=2, z=0
    turned = recipe.quarter_turn(tf.constant(grid)).numpy()
    assert np.argwhere(turned[0, ..., 0]).tolist() == [[3, 2, 1]]  # (R-1-z, y, x)
    # y is untouched: every horizontal slice keeps its contents' total.
    x = _asymmetric_grids()
    for k in range(1, 4):
        turned = recipe.rotate_about_up(tf.constant(x), k).numpy()
        np.testing.assert_allclose(turned.sum(axis=(1, 3)), x.sum(axis=(1, 3)), rtol=1e-6)


def test_each_example_is_turned_by_its_index_and_gradients_flow():
    x = tf.constant(_asymmetric_grids(b=6))
    with tf.GradientTape() as tape:
        tape.watch(x)
        turned, labels = recipe.rotate_by_index(x)
        total = tf.reduce_sum(turned * tf.range(6, dtype=tf.float32)[:, None, None, None, None])
    assert labels.numpy().tolist() == [0, 1, 2, 3, 0, 1]
    for i in range(6):
        np.testing.assert_array_equal(turned[i].numpy(), np.rot90(x[i].numpy(), i % 4, axes=(0, 2)))
    grad = tape.gradient(total, x).numpy()
    np.testing.assert_array_equal(
        grad, np.broadcast_to(np.arange(6.0)[:, None, None, None, None], grad.shape)
    )


def test_rotation_loss_is_cross_entropy():
    logits = tf.constant([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    got = losses.rotation_loss(logits, tf.constant([0, 3])).numpy()
    want = [-np.log(np.exp(2) / (np.exp(2) + 3)), np.log(4)]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_rotation_weight_trains_the_head_and_reaches_the_generator(tmp_path, monkeypatch):
    model = tiny_model_config(use_enhancer=False, dm_rotation_head=True)
    trainer = GanTrainer(model, tiny_train_config(batch_size=4, rotation_weight=1.0))
    calls = []
    original = trainer._rotation_loss
    monkeypatch.setattr(trainer, "_rotation_loss", lambda x: calls.append(x) or original(x))
    head = trainer.networks.voxel_discriminator.rotation_logits
    before = _values(head.trainable_variables)
    out = trainer.train_step(_batch(tmp_path))
    assert _changed(before, head.trainable_variables)
    # log 4 at a head that cannot tell yet; finite and positive.
    assert 0.5 < float(out["loss/rotation"]) < 3.0
    # Traced once in DM's update and once in each of the 2 generator updates.
    assert len(calls) == 3
    assert recipe.GENERATOR_ROTATION_RATIO == 0.2


def test_without_rotation_weight_there_is_no_head_and_the_loss_reads_0(tmp_path):
    trainer = GanTrainer(tiny_model_config(use_enhancer=False), tiny_train_config(batch_size=4))
    assert not hasattr(trainer.networks.voxel_discriminator, "rotation_logits")
    out = trainer.train_step(_batch(tmp_path))
    assert float(out["loss/rotation"]) == 0.0 and float(out["loss/gradient_penalty"]) == 0.0


@pytest.mark.parametrize(
    "model, train, message",
    [
        ({}, {"rotation_weight": -1.0}, "rotation_weight must be >= 0"),
        ({"dm_batch_norm": False}, {"gan_loss": "wgan_gp", "real_label": 0.9}, "real_label"),
        ({}, {"gan_loss": "hinge"}, "gan_loss must be one of"),
        ({}, {"critic_steps": 0}, "critic_steps must be >= 1"),
        ({}, {"gp_weight": -1.0}, "gp_weight must be >= 0"),
    ],
)
def test_bad_candidate_values_are_refused(model, train, message):
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig(model=ModelConfig(**model), train=TrainConfig(**train))


@pytest.mark.parametrize(
    "model, train, message",
    [
        ({}, {"rotation_weight": 1.0}, "dm_rotation_head"),
        ({"dm_rotation_head": True}, {}, "rotation_weight"),
        ({}, {"gan_loss": "wgan_gp"}, "--nodm_batch_norm"),
    ],
)
def test_a_dm_that_cannot_train_the_recipe_is_refused(model, train, message):
    """Both where a run's config is built and where a trainer is."""
    model_config, train_config = ModelConfig(**model), TrainConfig(**train)
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig(model=model_config, train=train_config)
    with pytest.raises(ConfigError, match=message):
        GanTrainer(tiny_model_config(**model), tiny_train_config(**train))


# -- 4. WGAN-GP ---------------------------------------------------------------------------


def _linear_critic(w):
    """A critic D(x) = <w, x> per example: its input gradient is w everywhere."""
    w = tf.constant(w, tf.float32)

    def critic(x, training=False):
        return {"logits": tf.reduce_sum(x * w, axis=[1, 2, 3, 4])[:, None]}

    return critic


def test_gradient_penalty_is_0_at_unit_gradient_and_positive_otherwise():
    rng = np.random.default_rng(0)
    real = rng.uniform(size=(3, 4, 4, 4, 1)).astype(np.float32)
    fake = rng.uniform(size=(3, 4, 4, 4, 1)).astype(np.float32)
    w = rng.normal(size=(4, 4, 4, 1)).astype(np.float32)
    w /= np.linalg.norm(w)
    seed = tf.constant([1, 2], tf.int64)
    unit = recipe.gradient_penalty(_linear_critic(w), real, fake, seed).numpy()
    np.testing.assert_allclose(unit, 0.0, atol=1e-6)
    steep = recipe.gradient_penalty(_linear_critic(3 * w), real, fake, seed).numpy()
    np.testing.assert_allclose(steep, 4.0, rtol=1e-5)  # (3 - 1)^2
    flat = recipe.gradient_penalty(_linear_critic(0 * w), real, fake, seed).numpy()
    np.testing.assert_allclose(flat, 1.0, rtol=1e-5)  # (0 - 1)^2
    # A nonlinear critic: the norm varies with x_hat and the penalty is > 0.
    square = lambda x, training=False: {"logits": tf.reduce_sum(x * x, axis=[1, 2, 3, 4])}  # noqa: E731
    assert (recipe.gradient_penalty(square, real, fake, seed).numpy() > 0).all()


def test_interpolates_lie_between_real_and_fake_one_draw_per_example():
    real, fake = tf.ones([5, 2, 2, 2, 1]), tf.zeros([5, 2, 2, 2, 1])
    seed = tf.constant([3, 4], tf.int64)
    x_hat = recipe.interpolate(real, fake, seed).numpy()
    eps = x_hat[:, 0, 0, 0, 0]
    assert ((0 <= eps) & (eps <= 1)).all() and len(set(eps.tolist())) == 5
    np.testing.assert_array_equal(
        x_hat, np.broadcast_to(eps[:, None, None, None, None], x_hat.shape)
    )
    np.testing.assert_array_equal(recipe.interpolate(real, fake, seed).numpy(), x_hat)


def test_wasserstein_losses_equal_hand_computed_values():
    real = tf.constant([[1.0], [-2.0], [0.5]])
    fake = tf.constant([[0.3], [1.0], [-1.0]])
    critic = losses.wasserstein_critic_loss(real, fake).numpy()
    np.testing.assert_allclose(critic, [-0.7, 3.0, -1.5], rtol=1e-6)
    # mean D(fake) - mean D(real) = 0.1 - (-0.1667)
    assert critic.mean() == pytest.approx(0.1 - (-0.5 / 3), rel=1e-6)
    np.testing.assert_allclose(losses.wasserstein_generator_loss(fake).numpy(), [-0.3, -1.0, 1.0])


def test_wgan_gp_step_updates_dm_critic_steps_times(tmp_path):
    model = tiny_model_config(dm_batch_norm=False)
    train = tiny_train_config(gan_loss="wgan_gp", critic_steps=3)
    trainer = GanTrainer(model, train)
    dm = trainer.networks.voxel_discriminator
    steps = []
    original = trainer._discriminator_step
    trainer._discriminator_step = lambda *a: steps.append(a[-1]) or original(*a)
    before = _values(dm.trainable_variables)
    batch = _batch(tmp_path, batch_size=2)
    for _ in range(2):
        out = trainer.train_step(batch)
    assert steps == [0, 1, 2]  # traced once: one update per critic step
    assert int(trainer.optimizers["voxel_discriminator"].iterations) == 2 * 3
    assert int(trainer.optimizers["enhancer_discriminator"].iterations) == 2
    for name in trainer.generator_names:
        assert int(trainer.optimizers[name].iterations) == 2 * 2
    assert _changed(before, dm.trainable_variables)
    assert all(np.isfinite(float(v)) for v in out.values())
    assert float(out["loss/gradient_penalty"]) > 0.0
    assert float(out["loss/r1_penalty"]) == 0.0


def test_wgan_losses_reach_the_trainer(tmp_path):
    """The step's DM losses are the WGAN ones on the critic's scores (one critic step)."""
    trainer = GanTrainer(
        tiny_model_config(use_enhancer=False, dm_batch_norm=False),
        tiny_train_config(gan_loss="wgan_gp", gp_weight=0.0),
    )
    dm = trainer.networks.voxel_discriminator
    real = tf.random.stateless_uniform([2, 32, 32, 32, 1], [5, 6])
    fake = tf.random.stateless_uniform([2, 32, 32, 32, 1], [7, 8])
    loss, logits, out = tf.function(lambda: trainer._voxel_discriminator_loss(real, fake))()
    r, f = dm(real)["logits"].numpy(), dm(fake)["logits"].numpy()
    assert float(loss) == pytest.approx(f.mean() - r.mean(), rel=1e-4, abs=1e-6)
    assert float(out["loss/gradient_penalty"]) > 0.0  # reported, weighted by gp_weight = 0


def test_critic_steps_use_fresh_input_draws(tmp_path):
    trainer = GanTrainer(
        tiny_model_config(), tiny_train_config(discriminator_augment=True, critic_steps=2)
    )
    x = tf.constant(_asymmetric_grids(b=4, r=32, c=1))
    first = tf.function(lambda: trainer._dm_input(x, 0))().numpy()
    np.testing.assert_array_equal(tf.function(lambda: trainer._dm_input(x, 0, 0))().numpy(), first)
    assert not np.array_equal(tf.function(lambda: trainer._dm_input(x, 0, 1))().numpy(), first)


# -- flags ------------------------------------------------------------------------------


def test_flags_reach_the_configs():
    result = train_dry_run(
        "--dm_spectral_norm",
        "--dm_minibatch_std",
        "--rotation_weight=0.5",
        "--gan_loss=wgan_gp",
        "--gp_weight=5",
        "--critic_steps=5",
        "--nodm_batch_norm",
    )
    assert result.returncode == 0, result.stderr
    config = ExperimentConfig.from_dict(json.loads(result.stdout))
    assert dataclasses.asdict(config.model) == {
        **dataclasses.asdict(ModelConfig()),
        "dm_spectral_norm": True,
        "dm_minibatch_std": True,
        "dm_rotation_head": True,
        "dm_batch_norm": False,
    }
    train = config.train
    assert (train.rotation_weight, train.gan_loss, train.gp_weight, train.critic_steps) == (
        0.5,
        "wgan_gp",
        5.0,
        5,
    )
    default = ExperimentConfig.from_dict(json.loads(train_dry_run().stdout))
    assert default == ExperimentConfig()


def test_wgan_gp_flag_without_nodm_batch_norm_is_one_error_line():
    result = train_dry_run("--gan_loss=wgan_gp")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--nodm_batch_norm" in lines[0]
