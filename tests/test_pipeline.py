"""The tf.data pair pipeline: content, one view per model per epoch, resume."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from enhancer_gan.data.pipeline import (
    PairSource,
    make_pair_dataset,
    pack_grids,
    unpack_grids,
)
from enhancer_gan.errors import DataError
from tests.helpers import tiny_source


@given(st.integers(1, 3), st.sampled_from([8, 16]), st.integers(0, 2**31 - 1))
def test_pack_unpack_round_trip(n, res, seed):
    grids = np.random.default_rng(seed).random((n, res, res, res)) < 0.3
    packed = pack_grids(grids)
    assert packed.shape == (n, res**3 // 8)
    np.testing.assert_array_equal(unpack_grids(packed, res), grids)


def _take(ds, k):
    it = iter(ds)
    return [{key: v.numpy() for key, v in next(it).items()} for _ in range(k)]


def test_batches_pair_grid_with_its_own_view(tmp_path):
    source, grids = tiny_source(str(tmp_path), n=5, res=16, views=3)
    (batch,) = _take(make_pair_dataset(source, 4, latent_dim=7, num_noise=3, image_size=16), 1)
    assert batch["voxels"].shape == (4, 16, 16, 16, 1) and batch["voxels"].dtype == np.uint8
    assert batch["image"].shape == (4, 16, 16, 3)
    assert batch["z"].shape == (4, 3, 7)
    assert -1 <= batch["z"].min() and batch["z"].max() <= 1
    np.testing.assert_array_equal(batch["voxels"][..., 0], grids[batch["index"]])
    # Each PNG's red channel encodes its model (10 * i): pairs are not mixed up.
    # The corner pixel is transparent -> composited white; the centre is the colour.
    centre = (batch["image"][:, 8, 8, 0] + 1) * 127.5
    np.testing.assert_allclose(centre, 10 * batch["index"], atol=2)
    np.testing.assert_allclose(batch["image"][:, 0, 0], 1.0, atol=1e-3)


def test_every_model_once_per_epoch_and_views_redrawn(tmp_path):
    source, _ = tiny_source(str(tmp_path), n=6, res=8, views=4)
    batches = _take(make_pair_dataset(source, 3, image_size=16, seed=3), 40)  # 20 epochs
    index = np.concatenate([b["index"] for b in batches])
    for epoch in index.reshape(-1, 6):
        assert sorted(epoch) == list(range(6))
    green = np.concatenate([(b["image"][:, 8, 8, 1] + 1) * 127.5 for b in batches])
    view = np.round(green / 60).astype(int)
    # Model 0's view across 20 epochs: all 4 views show up, not one fixed view.
    assert set(view[index == 0]) == {0, 1, 2, 3}


def test_resume_from_any_step_matches_uninterrupted(tmp_path):
    source, _ = tiny_source(str(tmp_path), n=5, res=8, views=2)
    full = _take(make_pair_dataset(source, 2, image_size=16, seed=1), 7)
    for start in (0, 2, 5):
        resumed = _take(make_pair_dataset(source, 2, image_size=16, seed=1, start_step=start), 2)
        for a, b in zip(resumed, full[start : start + 2]):
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])


def test_source_validation(tmp_path):
    source, _ = tiny_source(str(tmp_path), n=2, res=8, views=1)
    with pytest.raises(DataError, match="no rendered views"):
        PairSource(source.packed_voxels, 8, (source.view_paths[0], ()), ("a", "b"))
    with pytest.raises(DataError, match="bytes per model"):
        PairSource(source.packed_voxels, 16, source.view_paths)
    with pytest.raises(DataError, match="no models"):
        PairSource(np.zeros((0, 64), np.uint8), 8, ())


# ---------------------------------------------------------------------------
# The decoded-view cache (data/view_cache.py).


def _cached(source, folder, image_size=16, **kw):
    import dataclasses

    from enhancer_gan.data.view_cache import decoded_views

    views = decoded_views(source.view_paths, image_size, str(folder), progress=False, **kw)
    return dataclasses.replace(source, views=views)


def test_cached_views_give_identical_batches(tmp_path):
    source, _ = tiny_source(str(tmp_path / "png"), n=5, res=8, views=3)
    cached = _cached(source, tmp_path / "cache")
    assert cached.views.shape == (15, 16, 16, 3) and cached.views.dtype == np.uint8
    plain = _take(make_pair_dataset(source, 4, image_size=16, seed=2), 6)
    fast = _take(make_pair_dataset(cached, 4, image_size=16, seed=2), 6)
    for a, b in zip(plain, fast):
        assert sorted(a) == sorted(b)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    # A cache of another side is not used (decoded from the PNGs instead).
    other = _take(make_pair_dataset(cached, 4, image_size=8, seed=2), 1)[0]
    assert other["image"].shape == (4, 8, 8, 3)


def test_view_cache_is_reused_and_rebuilt_when_damaged_or_stale(tmp_path):
    import os

    source, _ = tiny_source(str(tmp_path / "png"), n=3, res=8, views=2)
    first = np.array(_cached(source, tmp_path / "cache").views)  # a copy, not the map
    (path,) = (tmp_path / "cache").glob("decoded_views_16px_*.npy")
    stamp = path.stat().st_mtime_ns
    assert np.array_equal(_cached(source, tmp_path / "cache").views, first)
    assert path.stat().st_mtime_ns == stamp  # reused, not rebuilt
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    messages = []
    again = _cached(source, tmp_path / "cache", log=messages.append).views
    assert np.array_equal(again, first) and "damaged view cache" in messages[0]
    # A changed view file gives another key: a new cache, never the stale one.
    from PIL import Image

    changed = source.view_paths[1][0]
    Image.new("RGBA", (40, 40), (200, 0, 0, 255)).save(changed)
    os.utime(changed, ns=(stamp + 10**9, stamp + 10**9))
    fresh = _cached(source, tmp_path / "cache").views
    assert len(list((tmp_path / "cache").glob("decoded_views_16px_*.npy"))) == 2
    assert fresh[2, 0, 0, 0] == 200 and first[2, 0, 0, 0] == 255


def test_view_that_does_not_decode_is_named(tmp_path):
    source, _ = tiny_source(str(tmp_path / "png"), n=3, res=8, views=2)
    bad = source.view_paths[2][1]
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match="cannot decode view") as info:
        _cached(source, tmp_path / "cache")
    assert bad in str(info.value)
    assert not list((tmp_path / "cache").glob("*.npy"))  # nothing half-written left


def test_views_of_the_wrong_shape_are_refused(tmp_path):
    import dataclasses

    source, _ = tiny_source(str(tmp_path), n=2, res=8, views=2)
    with pytest.raises(DataError, match="decoded views must be uint8"):
        dataclasses.replace(source, views=np.zeros((3, 16, 16, 3), np.uint8))
