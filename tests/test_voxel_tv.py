"""The total-variation penalty on GM's grids (issue 18, speckle; beyond the paper):
`losses.total_variation` on grids whose answer is known, the penalty reaching GM
only, and the value logged for samples and data."""

import dataclasses
import json
import pathlib

import keras
import numpy as np
import pytest

from enhancer_gan.config import ExperimentConfig, TrainConfig
from enhancer_gan.data.pipeline import make_pair_dataset
from enhancer_gan.errors import ConfigError
from enhancer_gan.training import losses
from enhancer_gan.training.trainer import METRIC_NAMES, GanTrainer
from tests.helpers import tiny_model_config, tiny_source, tiny_train_config, train_dry_run

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _reference(grids):
    return sum(np.abs(np.diff(grids, axis=a)).mean(axis=(1, 2, 3)) for a in (1, 2, 3))


def test_known_grids():
    r = 8
    pairs = r * r * (r - 1)  # neighbouring pairs along one axis
    grids = np.zeros((4, r, r, r), "float32")
    grids[1] = 1  # full: no surface inside the grid
    grids[2, 3, 4, 5] = 1  # one voxel: 6 faces
    grids[3, 2:4, 2:4, 2:4] = 1  # a 2^3 cube: 24 faces
    tv = losses.total_variation(grids).numpy()
    np.testing.assert_allclose(tv, [0, 0, 6 / pairs, 24 / pairs], rtol=1e-6)
    # The same 8 voxels as 8 specks: twice the cube's surface.
    speckle = np.zeros((1, r, r, r), "float32")
    speckle[0, [1, 1, 1, 1, 5, 5, 5, 5], [1, 1, 5, 5, 1, 1, 5, 5], [1, 5, 1, 5, 1, 5, 1, 5]] = 1
    assert losses.total_variation(speckle).numpy()[0] == pytest.approx(48 / pairs)


def test_matches_numpy_on_soft_grids_with_or_without_a_channel():
    grids = np.random.default_rng(0).random((3, 6, 6, 6)).astype("float32")
    np.testing.assert_allclose(losses.total_variation(grids), _reference(grids), rtol=1e-5)
    np.testing.assert_allclose(
        losses.total_variation(grids[..., None]), _reference(grids), rtol=1e-5
    )


def _batch(tmp_path):
    source, _ = tiny_source(str(tmp_path), n=4, res=32, views=2)
    return next(iter(make_pair_dataset(source, 2, image_size=32)))


def _one_step(batch, weight):
    keras.utils.set_random_seed(0)  # the same initial networks for every weight
    trainer = GanTrainer(
        tiny_model_config(use_enhancer=False), tiny_train_config(voxel_tv_weight=weight)
    )
    out = trainer.train_step(batch)
    nets = trainer.networks
    return (
        out,
        [v.numpy() for v in nets.voxel_generator.trainable_variables],
        [v.numpy() for v in nets.voxel_discriminator.trainable_variables],
    )


def test_the_penalty_moves_gm_only_and_both_values_are_logged(tmp_path):
    batch = _batch(tmp_path)
    out0, gm0, dm0 = _one_step(batch, 0.0)
    out1, gm1, dm1 = _one_step(batch, 50.0)
    # DM updates first, on the same networks and draws: identical.
    for a, b in zip(dm0, dm1):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(gm0, gm1))
    # Logged either way; the data's value is the real batch's.
    assert {"voxel/fake_tv", "voxel/real_tv"} <= set(METRIC_NAMES)
    real = batch["voxels"].numpy().astype("float32")[..., 0]
    for out in (out0, out1):
        assert float(out["voxel/real_tv"]) == pytest.approx(_reference(real).mean(), rel=1e-5)
        assert 0 < float(out["voxel/fake_tv"]) < 3


def test_negative_weight_is_refused():
    with pytest.raises(ConfigError, match="voxel_tv_weight must be >= 0"):
        TrainConfig(voxel_tv_weight=-1)


def test_flag_reaches_the_config_and_old_configs_load():
    result = train_dry_run("--voxel_tv_weight=2.5")
    assert result.returncode == 0, result.stderr
    config = ExperimentConfig.from_dict(json.loads(result.stdout))
    assert dataclasses.asdict(config.train) == {
        **dataclasses.asdict(TrainConfig()),
        "voxel_tv_weight": 2.5,
    }
    old = ExperimentConfig().to_dict()
    del old["train"]["voxel_tv_weight"]
    assert ExperimentConfig.from_dict(old) == ExperimentConfig()
