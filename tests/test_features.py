"""Shape features: size at both resolutions, pooling against numpy, the tool."""

import json
import os

import numpy as np
import pytest

from enhancer_gan.config import ModelConfig
from enhancer_gan.errors import DataError
from enhancer_gan.evaluation.extract import extract_dataset_features
from enhancer_gan.evaluation.features import (
    FeatureExtractor,
    feature_size,
    load_features,
    pool_geometry,
    pooled_features,
    save_features,
)
from enhancer_gan.io_utils import OutputExistsError, atomic_write_text
from enhancer_gan.models import build_networks
from tests.helpers import box_grids, tiny_experiment, tiny_model_config


@pytest.mark.parametrize("resolution", [32, 64])
def test_full_size_feature_is_57344_at_both_resolutions(resolution):
    dm = build_networks(ModelConfig(resolution=resolution, use_enhancer=False)).voxel_discriminator
    assert feature_size(dm) == 8192 + 16384 + 32768 == 57344
    assert [getattr(dm, n).filters for n in dm.feature_layer_names] == [128, 256, 512]


@pytest.mark.parametrize("side", [16, 8, 4])
def test_pool_geometry_gives_4_cubed_and_sees_every_voxel(side):
    """What the geometry must achieve, checked on TensorFlow's own pooling:
    a 4^3 output, and no voxel outside every window (a single hot voxel at
    any index survives the max-pool; windows are separable by axis, so the
    diagonal covers every index of every axis)."""
    import tensorflow as tf

    kernel, stride = pool_geometry(side)
    x = np.zeros((side, side, side, side, 1), np.float32)
    x[np.arange(side), np.arange(side), np.arange(side), np.arange(side)] = 1.0
    pooled = pooled_features({"a": x}, ["a"]).numpy()
    assert pooled.shape == (side, 64)
    assert np.all(pooled.max(axis=1) == 1.0)
    # 'valid' windows of the same geometry give 3^3 per layer (24,192 numbers
    # in all), not the paper's 57,344: the padding must be 'same'.
    valid = tf.nn.max_pool3d(x, ksize=kernel, strides=stride, padding="VALID")
    assert valid.shape[1:4] == (3, 3, 3)


def _numpy_pool_same(x, kernel, stride):
    """Plain numpy max-pool with TF's 'SAME' padding on [B, S, S, S, C]."""
    side = x.shape[1]
    out_side = -(-side // stride)
    pad = max((out_side - 1) * stride + kernel - side, 0)
    lo = pad // 2
    out = np.full((x.shape[0], out_side, out_side, out_side, x.shape[-1]), -np.inf, np.float32)
    for i in range(out_side):
        for j in range(out_side):
            for k in range(out_side):
                sl = [
                    slice(max(a * stride - lo, 0), min(a * stride - lo + kernel, side))
                    for a in (i, j, k)
                ]
                out[:, i, j, k] = x[:, sl[0], sl[1], sl[2]].max(axis=(1, 2, 3))
    return out


def test_pooling_matches_numpy():
    rng = np.random.default_rng(0)
    outputs = {
        "a": rng.standard_normal((2, 16, 16, 16, 3)).astype(np.float32),
        "b": rng.standard_normal((2, 8, 8, 8, 5)).astype(np.float32),
        "c": rng.standard_normal((2, 4, 4, 4, 7)).astype(np.float32),
    }
    got = pooled_features(outputs, ["a", "b", "c"]).numpy()
    want = np.concatenate(
        [
            _numpy_pool_same(outputs[n], *pool_geometry(outputs[n].shape[1])).reshape(2, -1)
            for n in ("a", "b", "c")
        ],
        axis=1,
    )
    assert got.shape == (2, 64 * (3 + 5 + 7))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_extractor_is_batch_independent_and_pads():
    dm = build_networks(tiny_model_config(use_enhancer=False)).voxel_discriminator
    grids = box_grids(5, 32)
    whole = FeatureExtractor(dm, batch_size=4)(grids)  # 4 + 1 padded
    single = np.concatenate([FeatureExtractor(dm, batch_size=1)(g[None]) for g in grids])
    assert whole.shape == (5, feature_size(dm))
    np.testing.assert_allclose(whole, single, rtol=1e-4, atol=1e-5)
    assert not np.allclose(whole[0], whole[1])
    with pytest.raises(ValueError, match="expected grids"):
        FeatureExtractor(dm, batch_size=2)(np.zeros((2, 16, 16, 16)))


def test_feature_file_round_trip_and_validation(tmp_path):
    path = str(tmp_path / "f.npz")
    feats = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_features(path, feats, [0, 1, 0], ["a", "b"], ["x", "y", "z"], {"step": 7})
    out = load_features(path)
    np.testing.assert_array_equal(out["features"], feats)
    assert out["class_names"] == ("a", "b") and out["source"] == {"step": 7}
    np.savez(str(tmp_path / "bad.npz"), features=feats)
    with pytest.raises(DataError, match="bad.npz.*missing"):
        load_features(str(tmp_path / "bad.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        load_features(str(tmp_path / "junk.npz"))


def test_extract_tool_on_an_archive(tmp_path):
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    atomic_write_text(os.path.join(run_dir, "config.json"), tiny_experiment(run_dir).to_json())
    archive = str(tmp_path / "mini.npz")
    np.savez(
        archive,
        X_train=box_grids(6, 32, 1).astype(np.uint8),
        y_train=[0, 1, 2, 0, 1, 2],
        X_test=box_grids(3, 32, 2).astype(np.uint8),
        y_test=[2, 1, 0],
    )
    out_dir = str(tmp_path / "feats")
    written = extract_dataset_features(
        run_dir,
        "archive",
        archive,
        out_dir,
        random_init=True,
        batch_size=4,
        progress=False,
        log=lambda *_: None,
    )
    assert [os.path.basename(p) for p, _ in written] == ["train.npz", "test.npz"]
    test = load_features(os.path.join(out_dir, "test.npz"))
    assert test["features"].shape[0] == 3
    np.testing.assert_array_equal(test["labels"], [2, 1, 0])
    assert test["class_names"][:3] == ("bathtub", "bed", "chair")
    assert test["source"]["checkpoint"] == "random_init"
    assert json.dumps(test["source"]["config"])  # the run's config travels with the features
    with pytest.raises(OutputExistsError, match="--overwrite"):
        extract_dataset_features(run_dir, "archive", archive, out_dir, random_init=True)
