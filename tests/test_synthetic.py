"""Tests of the built-in synthetic data set: the shapes, the files, the cache logic."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from scipy import ndimage

from enhancer_gan.config import SHAPENET_SYNSETS
from enhancer_gan.data import synthetic
from enhancer_gan.data.shape_parts import FILL
from enhancer_gan.data.shapes import CATEGORIES, make_shape
from enhancer_gan.errors import ConfigError, DataError
from enhancer_gan.voxels import render
from enhancer_gan.voxels.binvox import read_binvox
from enhancer_gan.voxels.grid import downsample

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = range(8)


def shape(category, seed, resolution):
    return make_shape(category, np.random.default_rng(seed), resolution)


def extents(grid):
    """[3] int: occupied extent along x, y, z in voxels."""
    idx = np.argwhere(grid)
    return idx.max(axis=0) - idx.min(axis=0) + 1


def top_rows(grid, rows):
    """[N, 3] indices of the occupied voxels in the `rows` highest occupied y layers."""
    idx = np.argwhere(grid)
    return idx[idx[:, 1] > idx[:, 1].max() - rows]


def all_files(root):
    """{relative path: bytes} of every file under root."""
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


# --------------------------------------------------------------------------
# Shapes.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [16, 32])
@pytest.mark.parametrize("category", CATEGORIES)
def test_shapes_are_solid_models_centred_and_filling_the_grid(category, resolution):
    for seed in SEEDS:
        grid = shape(category, seed, resolution)
        assert grid.shape == (resolution,) * 3 and grid.dtype == bool
        assert 0.003 < grid.mean() < 0.5, (category, seed, grid.mean())
        # Solid: no enclosed empty voxel (a surface-only voxelization of the
        # thick parts has many), like the filled grids of 3D-R2N2 and ShapeNet.
        filled = ndimage.binary_fill_holes(grid)
        assert np.array_equal(filled, grid), (category, seed, int((filled & ~grid).sum()))
        idx = np.argwhere(grid)
        centre = (idx.min(axis=0) + idx.max(axis=0)) / 2
        np.testing.assert_allclose(centre, (resolution - 1) / 2, atol=1.0)
        # The longest side fills about FILL of the grid; thin parts may add a voxel.
        assert FILL * resolution - 1 <= extents(grid).max() <= resolution


@given(
    category=st.sampled_from(CATEGORIES),
    seed=st.integers(0, 2**32 - 1),
    resolution=st.sampled_from([8, 12, 16]),
)
def test_any_seed_gives_a_nonempty_nonsolid_centred_grid(category, seed, resolution):
    grid = shape(category, seed, resolution)
    assert grid.any() and not grid.all()
    # At 8^3 a voxel is an eighth of the side: a table's slab and legs, each
    # grown to whole voxels, can fill 61% of the grid (seed 328776).
    assert grid.mean() < (0.7 if resolution == 8 else 0.6)
    idx = np.argwhere(grid)
    centre = (idx.min(axis=0) + idx.max(axis=0)) / 2
    assert np.all(np.abs(centre - (resolution - 1) / 2) <= 1.0)


@pytest.mark.parametrize("resolution", [16, 32])
def test_chair_has_legs_low_and_its_back_high_at_the_rear(resolution):
    for seed in SEEDS:
        grid = shape("chair", seed, resolution)
        idx = np.argwhere(grid)
        assert (idx[:, 1] < resolution // 4).any(), "no legs or base in the lower quarter"
        assert idx[:, 1].max() >= resolution * 3 // 4
        # The top belongs to the back, which is at low x (chairs face +x).
        assert top_rows(grid, 2)[:, 0].mean() < (resolution - 1) / 2 - 1, seed
        # Legs: the lowest layer is much smaller than the seat's footprint.
        bottom = grid[:, idx[:, 1].min(), :].sum()
        assert bottom < grid.any(axis=1).sum(), seed


@pytest.mark.parametrize("resolution", [16, 32])
def test_table_top_is_its_largest_layer_in_the_upper_half(resolution):
    for seed in SEEDS:
        grid = shape("table", seed, resolution)
        layers = grid.sum(axis=(0, 2))
        assert np.argmax(layers) >= resolution // 2, (seed, layers)
        # And the top hangs over free space: the layer under the legs' tops is sparser.
        assert layers[resolution // 3] < layers.max()


@pytest.mark.parametrize("resolution", [16, 32])
def test_sofa_is_wider_than_deep_with_its_back_at_the_rear(resolution):
    for seed in SEEDS:
        grid = shape("sofa", seed, resolution)
        ex = extents(grid)
        assert ex[2] > ex[0] and ex[2] > ex[1], (seed, ex)
        assert top_rows(grid, 1)[:, 0].mean() < (resolution - 1) / 2 - 1, seed


@pytest.mark.parametrize("resolution", [16, 32])
def test_airplane_is_wider_and_longer_than_tall(resolution):
    for seed in SEEDS:
        grid = shape("airplane", seed, resolution)
        ex = extents(grid)
        assert ex[2] > ex[1] and ex[0] > ex[1], (seed, ex)
        # The fuselage runs along x through the middle of the span (swept
        # tailplane tips may reach further back).
        spine = grid[:, :, resolution // 2 - 1 : resolution // 2 + 1].any(axis=(1, 2))
        assert spine.sum() >= 0.8 * ex[0], seed


def test_airplane_tail_fin_is_highest_and_at_the_rear():
    for seed in SEEDS:
        grid = shape("airplane", seed, 32)
        assert top_rows(grid, 2)[:, 0].mean() < 31 / 2 - 1, seed


@pytest.mark.parametrize("resolution", [16, 32])
def test_car_is_long_with_a_cabin_on_top(resolution):
    for seed in SEEDS:
        grid = shape("car", seed, resolution)
        ex = extents(grid)
        assert ex[0] > ex[2] > ex[1] * 0.9 and ex[0] > 1.5 * ex[1], (seed, ex)
        roof = top_rows(grid, 1)
        assert np.ptp(roof[:, 0]) + 1 < 0.8 * ex[0], seed


def test_car_wheels_stand_apart_at_64():
    # At 64^3 the body clears the ground, so the lowest layer is the wheels.
    grid = shape("car", 1, 64)
    _, count = ndimage.label(grid[:, np.argwhere(grid)[:, 1].min(), :])
    assert count >= 2


@pytest.mark.parametrize("resolution", [16, 32])
def test_rifle_is_long_thin_and_flat(resolution):
    for seed in SEEDS:
        ex = extents(shape("rifle", seed, resolution))
        assert ex[0] > ex[1] >= ex[2] and ex[0] > 3 * ex[2], (seed, ex)


def test_watercraft_is_long_with_its_bow_at_the_front():
    for seed in SEEDS:
        grid = shape("watercraft", seed, 32)
        ex = extents(grid)
        assert ex[0] > 2 * ex[2], (seed, ex)
        # The keel is narrower than the deck.
        layers = grid.sum(axis=(0, 2))
        assert layers[np.argwhere(grid)[:, 1].min()] < layers.max()
        # A pointed bow at +x, a square stern and the superstructure aft: more
        # of the boat lies behind the middle than in front of it.
        x = np.argwhere(grid)[:, 0]
        middle = (x.min() + x.max()) / 2
        assert (x < middle).sum() > (x > middle).sum(), seed


def test_generation_is_deterministic_and_varies_with_the_seed():
    for category in CATEGORIES:
        grids = [shape(category, seed, 16) for seed in range(6)]
        np.testing.assert_array_equal(grids[0], shape(category, 0, 16))
        packed = {np.packbits(g).tobytes() for g in grids}
        assert len(packed) == 6, category


def test_proportions_vary_within_a_category():
    for category in CATEGORIES:
        ex = np.array([extents(shape(category, seed, 32)) for seed in range(12)])
        # The longest side is fixed by the scaling; the others must move.
        assert np.ptp(ex, axis=0).max() >= 3, (category, ex)


@pytest.mark.parametrize("category", CATEGORIES)
def test_same_shape_family_at_every_resolution(category):
    for seed in range(4):
        fine, coarse = shape(category, seed, 32), shape(category, seed, 16)
        pooled = downsample(fine, 16)
        iou = (pooled & coarse).sum() / (pooled | coarse).sum()
        assert iou > 0.9, (category, seed, iou)
        # The drawn parameters do not depend on the resolution.
        r1, r2 = np.random.default_rng(seed), np.random.default_rng(seed)
        make_shape(category, r1, 16)
        make_shape(category, r2, 64)
        assert r1.random() == r2.random()


def test_bad_arguments_raise_config_errors():
    with pytest.raises(ConfigError, match="lamp"):
        make_shape("lamp", np.random.default_rng(0), 16)
    with pytest.raises(ConfigError, match="resolution"):
        make_shape("chair", np.random.default_rng(0), 4)
    with pytest.raises(ConfigError, match="lamp"):
        synthetic.dataset_arguments(2, categories=["chair", "lamp"])
    with pytest.raises(ConfigError, match="views_per_model"):
        synthetic.dataset_arguments(2, views_per_model=0)
    with pytest.raises(ConfigError, match="test_fraction"):
        synthetic.dataset_arguments(2, test_fraction=1.0)


def test_view_metadata_ranges_match_r2n2():
    meta = synthetic.view_metadata(np.random.default_rng(0), 2000)
    assert meta.shape == (2000, 5)
    assert 0 <= meta[:, 0].min() and meta[:, 0].max() < 360 and np.ptp(meta[:, 0]) > 300
    assert 25 <= meta[:, 1].min() and meta[:, 1].max() <= 30
    assert np.all(meta[:, 2] == 0)
    assert 0.65 <= meta[:, 3].min() and meta[:, 3].max() <= 0.9
    assert np.all(meta[:, 4] == 25)
    # The same draws as the renders of data sets without views, rounded to
    # the 12 digits written to rendering_metadata.txt.
    from enhancer_gan.data.views import view_parameters

    drawn = view_parameters(np.random.default_rng(0), 2000)
    np.testing.assert_allclose(meta, drawn, rtol=1e-11)
    assert not np.array_equal(meta, drawn)  # rounded, not the raw draws


def test_modelnet_frame_is_the_inverse_of_the_readers_z_up_turn():
    voxelize = pytest.importorskip("enhancer_gan.voxels.voxelize")
    points = np.random.default_rng(0).normal(size=(20, 3))
    z_up = synthetic.canonical_to_modelnet(points)
    np.testing.assert_allclose(z_up[:, 2], points[:, 1])  # the up axis becomes z
    np.testing.assert_allclose(voxelize.to_y_up(z_up, "z"), points, atol=1e-12)


def test_split_and_ids():
    models = synthetic.synthetic_models(10, seed=3, categories=["chair", "car"])
    assert [m.category for m in models] == ["car"] * 10 + ["chair"] * 10  # CATEGORIES order
    assert sum(m.split == "test" for m in models) == 4
    assert all(re.fullmatch(r"[0-9a-f]{32}", m.model_id) for m in models)
    assert len({m.model_id for m in models}) == 20
    assert models[0].model_id == synthetic.model_id(3, "car", 0) != synthetic.model_id(4, "car", 0)
    assert synthetic.num_test_models(2, 0.2) == 1 and synthetic.num_test_models(1, 0.5) == 0
    assert synthetic.num_test_models(60, 0.2) == 12 and synthetic.num_test_models(5, 0.0) == 0


# --------------------------------------------------------------------------
# The data set on disk.
# --------------------------------------------------------------------------

TINY = dict(num_per_category=2, resolution=16, views_per_model=2, render_size=48, progress=False)


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    summary = synthetic.write_synthetic_dataset(root, **TINY)
    return root, summary


def test_tiny_build_summary_and_marker(tiny_build):
    root, summary = tiny_build
    assert summary.num_models == 14 and summary.num_views == 28
    assert summary.num_train == 7 and summary.num_test == 7
    assert summary.categories == CATEGORIES and not summary.reused
    assert summary.seconds < 30
    with open(root / synthetic.DONE_MARKER) as f:
        marker = json.load(f)
    assert marker["seed"] == 0 and marker["resolution"] == 16 and marker["render_size"] == 48
    assert not (root / synthetic.BUILDING_MARKER).exists()
    assert sorted(os.listdir(root)) == ["ModelNet", "ShapeNetRendering", "ShapeNetVox32", "done"]


def test_voxels_read_back_as_the_generated_shapes(tiny_build):
    root, _ = tiny_build
    models = synthetic.synthetic_models(2)
    synsets = sorted(os.listdir(root / "ShapeNetVox32"))
    assert synsets == sorted(SHAPENET_SYNSETS[c] for c in CATEGORIES)
    for m in models:
        assert m.voxel_path(root) == os.path.join(
            root, "ShapeNetVox32", SHAPENET_SYNSETS[m.category], m.model_id, "model.binvox"
        )
        vf = read_binvox(m.voxel_path(root))
        expected = make_shape(m.category, synthetic.model_rngs(0, m.category, m.index)[0], 16)
        np.testing.assert_array_equal(vf.grid, expected)
        # Like ShapeNetVox32: the occupied box is centred with a unit diagonal.
        idx = np.argwhere(vf.grid)
        lo = np.array(vf.translate) + idx.min(axis=0) * vf.scale / 16
        hi = np.array(vf.translate) + (idx.max(axis=0) + 1) * vf.scale / 16
        np.testing.assert_allclose(lo + hi, 0, atol=1e-4)
        assert np.linalg.norm(hi - lo) == pytest.approx(1.0, abs=1e-4)


def test_renders_have_the_r2n2_layout_and_match_the_grid(tiny_build):
    root, _ = tiny_build
    for m in synthetic.synthetic_models(2):
        folder = m.render_dir(root)
        assert sorted(os.listdir(folder)) == [
            "00.png",
            "01.png",
            "rendering_metadata.txt",
            "renderings.txt",
        ]
        with open(os.path.join(folder, "renderings.txt")) as f:
            assert f.read() == "00.png\n01.png\n"
        meta = np.loadtxt(os.path.join(folder, "rendering_metadata.txt"))
        assert meta.shape == (2, 5)
        assert np.all((meta[:, 1] >= 25) & (meta[:, 1] <= 30) & (meta[:, 4] == 25))
        vf = read_binvox(m.voxel_path(root))
        for k, row in enumerate(meta):
            image = Image.open(os.path.join(folder, f"{k:02d}.png"))
            assert image.mode == "RGBA" and image.size == (48, 48)
            rgba = np.asarray(image)
            alpha = rgba[..., 3] > 0
            assert set(np.unique(rgba[..., 3])) == {0, 255}
            assert np.all(rgba[~alpha, :3] == 0)  # transparent black, like R2N2
            # The grid, placed by its own binvox header and seen by the camera
            # in the metadata, has the render's silhouette.
            mask = render.silhouette(
                vf.grid, row[0], row[1], row[3], 48, translate=vf.translate, scale=vf.scale
            )
            iou = (mask & alpha).sum() / (mask | alpha).sum()
            assert iou > 0.97, (m.category, k, iou)


def test_meshes_have_the_modelnet_layout_and_are_closed(tiny_build):
    root, _ = tiny_build
    for category in CATEGORIES:
        for split, number in (("train", 1), ("test", 2)):
            folder = root / "ModelNet" / category / split
            assert os.listdir(folder) == [f"{category}_{number:04d}.off"]
            path = folder / f"{category}_{number:04d}.off"
            with open(path) as f:
                assert f.readline() == "OFF\n"
            mesh = trimesh.load(path, force="mesh")
            assert mesh.is_watertight and mesh.volume > 0, path
            assert mesh.bounds.min() >= -0.5 and mesh.bounds.max() <= 0.5
            # z up: turned back to the project frame it covers the grid's voxels.
            grid = shape_of(root, category, number - 1)
            y_up = np.stack([mesh.vertices[:, 0], mesh.vertices[:, 2], -mesh.vertices[:, 1]], 1)
            voxels = np.floor((y_up + 0.5) * 16 + 1e-6).clip(0, 15).astype(int)
            idx = np.argwhere(grid)
            assert np.all(voxels.min(axis=0) >= idx.min(axis=0) - 1)
            assert np.all(voxels.max(axis=0) <= idx.max(axis=0) + 1)
            # Marching cubes cuts the corners, so the mesh holds a bit less than the voxels.
            assert 0.6 < mesh.volume / (grid.sum() / 16**3) < 1.0


def test_same_arguments_give_the_same_bytes(tiny_build, tmp_path):
    root, _ = tiny_build
    synthetic.write_synthetic_dataset(tmp_path, **TINY)
    first, second = all_files(root), all_files(tmp_path)
    assert first.keys() == second.keys()
    assert all(first[k] == second[k] for k in first)


def test_workers_do_not_change_the_bytes(tmp_path):
    args = dict(TINY, num_per_category=4, views_per_model=1, render_size=24)
    args["categories"] = ["chair", "table", "sofa", "car", "airplane", "rifle"]  # 24 models
    synthetic.write_synthetic_dataset(tmp_path / "one", workers=1, **args)
    synthetic.write_synthetic_dataset(tmp_path / "two", workers=2, **args)
    assert all_files(tmp_path / "one") == all_files(tmp_path / "two")


def test_complete_build_is_reused(tmp_path):
    args = dict(TINY, categories=["chair"], views_per_model=1)
    synthetic.write_synthetic_dataset(tmp_path, **args)
    view = synthetic.synthetic_models(2, categories=["chair"])[0].render_dir(tmp_path)
    os.remove(os.path.join(view, "00.png"))  # would come back if it rebuilt
    summary = synthetic.ensure_synthetic_dataset(tmp_path, **args)
    assert summary.reused and summary.num_models == 2 and summary.seconds == 0
    assert not os.path.exists(os.path.join(view, "00.png"))


def test_other_arguments_rebuild_and_remove_the_old_models(tmp_path):
    args = dict(TINY, categories=["chair"], views_per_model=1)
    synthetic.write_synthetic_dataset(tmp_path, **args)
    old = synthetic.synthetic_models(2, seed=0, categories=["chair"])
    summary = synthetic.ensure_synthetic_dataset(tmp_path, **dict(args, seed=1))
    assert not summary.reused
    new = synthetic.synthetic_models(2, seed=1, categories=["chair"])
    assert all(os.path.exists(m.voxel_path(tmp_path)) for m in new)
    assert not any(os.path.exists(m.voxel_path(tmp_path)) for m in old)
    assert synthetic.read_marker(tmp_path)["seed"] == 1


def test_interrupted_build_is_detected_and_rebuilt(tmp_path, monkeypatch):
    args = dict(TINY, categories=["chair", "table"], views_per_model=1)
    calls = []
    build_model = synthetic._build_model

    def dies_on_third(task):
        calls.append(task)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return build_model(task)

    monkeypatch.setattr(synthetic, "_build_model", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        synthetic.write_synthetic_dataset(tmp_path, **args)
    assert not (tmp_path / synthetic.DONE_MARKER).exists()
    assert (tmp_path / synthetic.BUILDING_MARKER).exists()
    monkeypatch.setattr(synthetic, "_build_model", build_model)

    summary = synthetic.ensure_synthetic_dataset(tmp_path, **args)
    assert not summary.reused
    assert synthetic.read_marker(tmp_path) == synthetic.dataset_arguments(
        2, resolution=16, categories=["chair", "table"], views_per_model=1, render_size=48
    )
    for m in synthetic.synthetic_models(2, categories=["chair", "table"]):
        assert os.path.exists(m.mesh_path(tmp_path))


def test_unreadable_marker_means_rebuild(tmp_path):
    args = dict(TINY, categories=["sofa"], views_per_model=1)
    synthetic.write_synthetic_dataset(tmp_path, **args)
    (tmp_path / synthetic.DONE_MARKER).write_text("{not json")
    assert synthetic.read_marker(tmp_path) is None
    assert not synthetic.ensure_synthetic_dataset(tmp_path, **args).reused
    assert synthetic.read_marker(tmp_path) is not None


def test_refuses_to_delete_data_it_did_not_write(tmp_path):
    foreign = tmp_path / "ShapeNetVox32" / "03001627" / "x" / "model.binvox"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"precious")
    with pytest.raises(DataError, match="refusing"):
        synthetic.ensure_synthetic_dataset(tmp_path, **dict(TINY, categories=["chair"]))
    assert foreign.read_bytes() == b"precious"


def test_preview_grids_read_the_build(tiny_build):
    root, _ = tiny_build
    grids, titles = synthetic.preview_grids(root, per_category=1)
    assert len(grids) == 7 and titles[0].startswith("airplane ")
    np.testing.assert_array_equal(grids[2], shape_of(root, "chair", 0))
    with pytest.raises(DataError, match="no complete"):
        synthetic.preview_grids(root / "ModelNet")


def shape_of(root, category, index):
    m = synthetic.synthetic_models(2, categories=[category])[index]
    return read_binvox(m.voxel_path(root)).grid


def test_tool_builds_reuses_and_refuses(tmp_path):
    out = tmp_path / "data"
    cmd = [
        sys.executable,
        os.path.join(ROOT, "tools", "make_synthetic_data.py"),
        f"--output_dir={out}",
        "--num_per_category=1",
        "--resolution=16",
        "--views_per_model=1",
        "--categories=chair,table",
    ]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "Built" in first.stdout and str(out) in first.stdout
    assert Image.open(out / "preview.png").size[0] > 0
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "Reused" in again.stdout
    other = subprocess.run(cmd + ["--seed=5"], capture_output=True, text=True, timeout=120)
    assert other.returncode == 2 and "--overwrite" in other.stderr
    assert synthetic.read_marker(out)["seed"] == 0
