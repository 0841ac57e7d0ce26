"""The generators' weight average (training.ema): formula, checkpoint, resume, sampling."""

import os

import numpy as np
import pytest
import tensorflow as tf

from enhancer_gan.config import ModelConfig
from tests.helpers import tiny_experiment, tiny_model_config, tiny_source, tiny_train_config


def _networks(use_enhancer=True, seed=0):
    import keras

    from enhancer_gan.models import build_networks

    keras.utils.set_random_seed(seed)
    return build_networks(
        ModelConfig(
            resolution=32, image_size=32, width_multiplier=1 / 16, use_enhancer=use_enhancer
        )
    )


@pytest.mark.parametrize("use_enhancer", [True, False])
def test_update_follows_the_formula_and_copies_back(use_enhancer):
    from enhancer_gan.training.ema import GeneratorAverage, generator_weights

    nets = _networks(use_enhancer)
    weights = generator_weights(nets)
    assert weights and all(v.trainable for v in weights)
    names = {v.path.split("/")[0] for v in weights}
    assert "voxel_discriminator" not in names and "enhancer_discriminator" not in names
    avg = GeneratorAverage(nets, 0.9)
    start = [v.numpy().copy() for v in weights]
    for v in weights:
        v.assign(v + 1.0)
    avg.update()
    avg.update()
    for s, w0 in zip(avg.shadows, start):
        # two updates towards w0 + 1: 1 - 0.9^2 of the way.
        np.testing.assert_allclose(s.numpy(), w0 + 0.19, rtol=1e-5, atol=1e-6)
    other = _networks(use_enhancer, seed=5)
    avg.copy_to(other)
    for s, v in zip(avg.shadows, generator_weights(other)):
        np.testing.assert_array_equal(s.numpy(), v.numpy())
    with pytest.raises(ValueError, match="decay"):
        GeneratorAverage(nets, 1.0)


def test_training_keeps_checkpoints_and_samples_the_average(tmp_path):
    from enhancer_gan.generation import generator_from_run, sample_noise
    from enhancer_gan.training import ema
    from enhancer_gan.training.loop import train
    from enhancer_gan.training.runs import load_run

    run_dir = str(tmp_path / "run")
    source, _ = tiny_source(str(tmp_path / "data"))
    config = tiny_experiment(
        run_dir, model=tiny_model_config(), train=tiny_train_config(generator_ema=0.5)
    )
    result = train(config, source=source, progress=False, log=lambda *_: None)
    assert result.step == 3
    keys = [k for k, _ in tf.train.list_variables(result.checkpoint_path)]
    assert any(k.startswith(ema.CHECKPOINT_NAME + "/shadows/") for k in keys)

    averaged = load_run(run_dir)
    last = load_run(run_dir, average=False)
    assert averaged.averaged and not last.averaged
    diffs = [
        np.abs(a.numpy() - b.numpy()).max()
        for a, b in zip(
            ema.generator_weights(averaged.networks), ema.generator_weights(last.networks)
        )
    ]
    assert max(diffs) > 0  # three steps at decay 0.5: the average lags the last iterate
    # DM is the same either way: features never come from an average.
    for a, b in zip(
        averaged.networks.voxel_discriminator.weights, last.networks.voxel_discriminator.weights
    ):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Tools sample the average.
    generate, latent = generator_from_run(run_dir)
    z = sample_noise(4, latent, 0)
    from enhancer_gan.generation import sampler

    np.testing.assert_allclose(generate(z), sampler(averaged.networks)(z), atol=1e-6)

    # A resumed run continues the same average.
    more = tiny_experiment(
        run_dir,
        model=tiny_model_config(),
        train=tiny_train_config(generator_ema=0.5, num_steps=4),
    )
    assert train(more, source=source, progress=False, log=lambda *_: None).step == 4
    assert os.path.exists(os.path.join(run_dir, "samples", "step_00000004.png"))
