"""Sampling matches training: the same z give the same shapes in both (generation.sampler)."""

import numpy as np
import pytest

from enhancer_gan.config import ModelConfig
from enhancer_gan.errors import ConfigError


def _networks(use_enhancer=True, seed=3):
    import keras

    from enhancer_gan.models import build_networks

    keras.utils.set_random_seed(seed)
    config = ModelConfig(
        resolution=32, image_size=32, width_multiplier=1 / 16, use_enhancer=use_enhancer
    )
    return build_networks(config)


def _stale_statistics(networks, seed=0):
    """Moving statistics that describe some other generator (as after training)."""
    from enhancer_gan.generation import generator_batch_norms

    rng = np.random.default_rng(seed)
    for bn in generator_batch_norms(networks):
        shape = bn.moving_mean.shape
        bn.moving_mean.assign(rng.normal(0.0, 0.5, shape).astype(np.float32))
        bn.moving_variance.assign(rng.uniform(0.2, 3.0, shape).astype(np.float32))


def _training_mode(networks, z):
    from enhancer_gan.generation import batch_samples

    return batch_samples(networks, z)[0].numpy()[..., 0]


@pytest.mark.parametrize("use_enhancer", [True, False])
def test_recalibrated_sampling_gives_the_shapes_training_gives(use_enhancer):
    from enhancer_gan.generation import generator_batch_norms, sample_noise, sampler

    nets = _networks(use_enhancer)
    assert len(generator_batch_norms(nets)) == (
        5 if use_enhancer else 3
    )  # GE 3 or projector 1, GM 2
    _stale_statistics(nets)
    z = sample_noise(64, nets.config.latent_dim, seed=11)
    trained = _training_mode(nets, z)  # what the discriminator judged
    moving = sampler(nets, "moving")(z)
    recal = sampler(nets, "recalibrated")(z)
    err_moving = np.abs(moving - trained).mean()
    err_recal = np.abs(recal - trained).mean()
    # Stale statistics change the samples; re-estimated ones give training's back.
    assert err_moving > 10 * err_recal
    assert err_recal < 2e-3
    # Untrained outputs sit within about 0.02 of 0.5, so thresholds are touchy.
    assert np.mean((recal > 0.5) == (trained > 0.5)) > 0.95
    assert np.mean((moving > 0.5) == (trained > 0.5)) < 0.8
    # Each recalibrated sample depends on its own z only (inference mode).
    np.testing.assert_allclose(sampler(nets, "moving")(z[:5]), recal[:5], atol=1e-5)


def test_batch_mode_leaves_the_moving_statistics_alone():
    from enhancer_gan.generation import generator_batch_norms, sample_noise, sampler

    nets = _networks()
    _stale_statistics(nets)
    before = [bn.moving_mean.numpy().copy() for bn in generator_batch_norms(nets)]
    z = sample_noise(8, nets.config.latent_dim, seed=1)
    out = sampler(nets, "batch")(z)
    after = [bn.moving_mean.numpy() for bn in generator_batch_norms(nets)]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(out, _training_mode(nets, z), atol=1e-6)


def test_recalibration_is_deterministic_and_keeps_momentum():
    from enhancer_gan.generation import generator_batch_norms, recalibrate_batch_norm

    nets = _networks()
    _stale_statistics(nets, seed=1)
    recalibrate_batch_norm(nets, num_batches=4, batch_size=16)
    first = [bn.moving_variance.numpy().copy() for bn in generator_batch_norms(nets)]
    _stale_statistics(nets, seed=2)
    recalibrate_batch_norm(nets, num_batches=4, batch_size=16)
    for a, bn in zip(first, generator_batch_norms(nets)):
        np.testing.assert_allclose(a, bn.moving_variance.numpy(), rtol=1e-5)
        assert bn.momentum == pytest.approx(0.99)


def test_unknown_mode_is_refused():
    from enhancer_gan.generation import sampler

    with pytest.raises(ConfigError, match="sampling mode"):
        sampler(_networks(), "ema")
