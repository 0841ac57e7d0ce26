"""Tests of the ModelNet layout, voxel archives (data/archives.py), the voxel cache
(data/voxel_cache.py) and its tool."""

import functools
import io
import os
import pathlib
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import trimesh

from enhancer_gan.data import voxel_cache
from enhancer_gan.data.archives import (
    archive_records,
    archive_to_canonical,
    fit_archive_grids,
    load_archive,
)
from enhancer_gan.data.modelnet import index_modelnet, modelnet_classes
from enhancer_gan.data.modelnet_classes import MODELNET10_CLASSES, MODELNET40_CLASSES
from enhancer_gan.data.off import read_off, write_off
from enhancer_gan.data.packing import pack_grids, unpack_grids
from enhancer_gan.data.voxel_cache import load_voxel_cache, voxelize_split
from enhancer_gan.errors import ConfigError, DataError, MeshError
from enhancer_gan.io_utils import OutputExistsError
from enhancer_gan.voxels.voxelize import voxelize_mesh

ROOT = pathlib.Path(__file__).resolve().parents[1]


def make_tree(root, layout, broken=()):
    """Writes a small ModelNet tree: {class: {split: count}} of box/capsule meshes."""
    for category, splits in layout.items():
        for split, count in splits.items():
            folder = root / category / split
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(1, count + 1):
                mesh = (
                    trimesh.creation.box(extents=(1, 1 + i, 2))
                    if i % 2
                    else trimesh.creation.capsule(height=i, radius=0.5)
                )
                write_off(folder / f"{category}_{i:04d}.off", mesh.vertices, mesh.faces)
    for relpath in broken:
        (root / relpath).write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n")  # truncated
    return root


@pytest.fixture
def tree(tmp_path):
    return make_tree(
        tmp_path / "ModelNet10",
        {"toilet": {"train": 3, "test": 1}, "chair": {"train": 2, "test": 2}},
    )


def test_class_lists():
    assert len(MODELNET10_CLASSES) == 10 and len(MODELNET40_CLASSES) == 40
    assert list(MODELNET10_CLASSES) == sorted(MODELNET10_CLASSES)
    assert list(MODELNET40_CLASSES) == sorted(MODELNET40_CLASSES)
    assert set(MODELNET10_CLASSES) < set(MODELNET40_CLASSES)


def test_index_synthetic_tree(tree):
    records = index_modelnet(tree, "train")
    assert [r.model_id for r in records] == [
        "chair_0001",
        "chair_0002",
        "toilet_0001",
        "toilet_0002",
        "toilet_0003",
    ]
    # ModelNet10 classes: labels index the full official list.
    assert {r.category: r.label for r in records} == {"chair": 2, "toilet": 9}
    assert all(r.source == "modelnet" and r.archive_index == -1 for r in records)
    assert records[0].voxel_path == str(tree / "chair" / "train" / "chair_0001.off")
    test = index_modelnet(tree, "test", categories=["toilet"])
    assert [r.model_id for r in test] == ["toilet_0001"]


def test_index_ignores_other_files_and_folders(tree):
    (tree / "README.txt").write_text("not a class")
    (tree / ".hidden" / "train").mkdir(parents=True)
    (tree / "__MACOSX" / "train").mkdir(parents=True)
    (tree / "chair" / "train" / "notes.txt").write_text("x")
    (tree / "chair" / "train" / "sub.off").mkdir()  # a folder, not a mesh
    assert len(index_modelnet(tree, "train")) == 5
    assert modelnet_classes(tree) == MODELNET10_CLASSES


def test_label_spaces(tmp_path):
    mn40 = make_tree(tmp_path / "ModelNet40", {"airplane": {"train": 1}, "chair": {"train": 1}})
    assert [r.label for r in index_modelnet(mn40, "train")] == [0, 8]
    # ModelNet10 class names under a root called ModelNet40: ModelNet40 labels.
    only10 = make_tree(tmp_path / "my_ModelNet40", {"chair": {"train": 1}})
    assert index_modelnet(only10, "train")[0].label == MODELNET40_CLASSES.index("chair")
    custom = make_tree(tmp_path / "custom", {"zebra": {"train": 1}, "chair": {"test": 1}})
    assert modelnet_classes(custom) == ("chair", "zebra")
    assert index_modelnet(custom, "train")[0].label == 1


def test_index_errors(tree, tmp_path):
    with pytest.raises(ConfigError, match="split"):
        index_modelnet(tree, "val")
    with pytest.raises(DataError, match="no class folder for sofa") as info:
        index_modelnet(tree, "train", categories=["sofa"])
    assert str(tree) in str(info.value)
    with pytest.raises(DataError, match="no class folder for ../x"):
        index_modelnet(tree, "train", categories=["../x"])
    with pytest.raises(DataError, match="not a folder"):
        index_modelnet(tmp_path / "nowhere", "train")
    empty = make_tree(tmp_path / "empty", {"chair": {"train": 0}})
    with pytest.raises(DataError, match="no .off meshes for split 'train'") as info:
        index_modelnet(empty, "train")
    assert str(empty) in str(info.value)


def test_index_refuses_links_out_of_the_root(tree, tmp_path):
    outside = make_tree(tmp_path / "outside", {"sofa": {"train": 1}})
    os.symlink(outside / "sofa", tree / "sofa")
    with pytest.raises(DataError, match="leads outside the data set root"):
        index_modelnet(tree, "train")


def test_index_real_samples(shared_data):
    train = index_modelnet(shared_data / "ModelNet10", "train")
    assert [r.model_id for r in train] == [f"bathtub_{i:04d}" for i in range(1, 6)]
    assert {r.label for r in train} == {0}
    (toilet,) = index_modelnet(shared_data / "ModelNet10", "test")
    assert (toilet.model_id, toilet.label) == ("toilet_0345", 9)
    grid = voxelize_mesh(*read_off(toilet.voxel_path), 32)
    assert grid.shape == (32, 32, 32) and grid.dtype == bool and grid.sum() > 1000


# Archives --------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def real_archive(root):
    return load_archive(root / "modelnet10_vox32.npz")


def test_real_archive(shared_data):
    archive = real_archive(shared_data)
    assert archive.x_train.shape == (3991, 32, 32, 32) and archive.x_train.dtype == bool
    assert archive.x_test.shape == (908, 32, 32, 32)
    assert archive.y_train.dtype == np.int64 and archive.class_names == MODELNET10_CLASSES
    assert np.bincount(archive.y_test).tolist() == [50, 100, 100, 86, 86, 100, 86, 100, 100, 100]
    empty_train = int((~archive.x_train.reshape(3991, -1).any(axis=1)).sum())
    empty_test = int((~archive.x_test.reshape(908, -1).any(axis=1)).sum())
    assert (empty_train, empty_test) == (27, 7)  # as the data README says
    # Rows in the file's frame, turned to the project frame.
    with np.load(shared_data / "modelnet10_vox32.npz") as raw:
        rows = raw["X_train"][:3].astype(bool)
    np.testing.assert_array_equal(archive.x_train[:3], archive_to_canonical(rows))
    # In the project frame the bathtubs lie flat: height (y) is their smallest extent.
    tubs = archive.x_train[archive.y_train == 0]
    heights = tubs.any(axis=(1, 3)).sum(axis=1)  # occupied y layers per grid
    lengths = tubs.any(axis=(2, 3)).sum(axis=1)  # occupied x columns
    depths = tubs.any(axis=(1, 2)).sum(axis=1)
    assert np.median(heights) < np.median(np.maximum(lengths, depths))


def test_archive_and_shapenet_chairs_agree_on_up(shared_data):
    """ModelNet (archive, project frame) and ShapeNetVox32 chairs share the up axis.

    The mean occupancy per layer along y (legs, a dense seat, a backrest) of
    the archive's 889 train chairs matches that of the six ShapeNetVox32
    chairs (y up, 3D-R2N2) better than any other axis or direction does.
    """
    from enhancer_gan.voxels.binvox import read_binvox

    archive = real_archive(shared_data)
    chairs = archive.x_train[archive.y_train == MODELNET10_CLASSES.index("chair")]
    paths = sorted((shared_data / "ShapeNetVox32" / "03001627").glob("*/model.binvox"))
    shapenet = np.stack([read_binvox(p).grid for p in paths])

    def layer_profile(grids, axis):
        return grids.mean(axis=tuple(a for a in (0, 1, 2, 3) if a != axis + 1))

    reference = layer_profile(shapenet, 1)
    scores = {}
    for axis in range(3):
        profile = layer_profile(chairs, axis)
        scores[(axis, "+")] = np.corrcoef(profile, reference)[0, 1]
        scores[(axis, "-")] = np.corrcoef(profile[::-1], reference)[0, 1]
    best = max(scores, key=scores.get)
    assert best == (1, "+"), scores
    assert scores[(1, "+")] > 0.8


def test_archive_records(shared_data):
    archive = real_archive(shared_data)
    records = archive_records(archive, "test")
    assert len(records) == 908
    assert records[0].model_id == "test_0000" and records[-1].model_id == "test_0907"
    assert records[-1].category == "toilet" and records[-1].label == 9
    assert all(r.source == "archive" and r.voxel_path == "" for r in records)
    assert [r.archive_index for r in records] == list(range(908))


def test_archive_to_canonical_turns_z_up_into_y_up():
    grid = np.zeros((8, 8, 8), bool)
    grid[3, 2, :] = True  # a pillar along the file's z (up)
    grid[3, 0, 0] = True  # its foot marker at file y = 0
    canonical = archive_to_canonical(grid)
    assert canonical[3, :, 5].all()  # now along project y: file y = 2 -> z = 8 - 1 - 2
    assert canonical[3, 0, 7]  # file (x, y=0, z=0) -> project (x, y=0, z=7)
    # Works on batches too.
    np.testing.assert_array_equal(archive_to_canonical(grid[None])[0], canonical)


def save_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def small_arrays(**changes):
    rng = np.random.default_rng(0)
    arrays = {
        "X_train": rng.integers(0, 2, (6, 4, 4, 4)).astype(np.int32),
        "y_train": np.array([0, 1, 2, 3, 4, 9]),
        "X_test": rng.integers(0, 2, (2, 4, 4, 4)).astype(np.uint8),
        "y_test": np.array([9, 0]),
    }
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


def test_small_archive_round_trip(tmp_path):
    arrays = small_arrays()
    path = save_npz(tmp_path / "a.npz", **arrays)
    archive = load_archive(path, canonical=False)
    np.testing.assert_array_equal(archive.x_train, arrays["X_train"] == 1)
    np.testing.assert_array_equal(archive.y_test, [9, 0])
    assert archive.resolution == 4 and archive.path == str(path)
    canonical = load_archive(path)
    np.testing.assert_array_equal(canonical.x_test, archive_to_canonical(arrays["X_test"] == 1))
    # Fortran-ordered, float 0/1 and bool grids, and explicit class names.
    names = np.array(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"])
    path = save_npz(
        tmp_path / "b.npz",
        **small_arrays(
            X_train=np.asfortranarray(arrays["X_train"].astype(np.float32)),
            X_test=arrays["X_test"].astype(bool),
            class_names=names,
        ),
    )
    other = load_archive(path, canonical=False)
    np.testing.assert_array_equal(other.x_train, archive.x_train)
    assert other.class_names == tuple(names)
    # Labels beyond 9 without names: ModelNet40.
    path = save_npz(tmp_path / "c.npz", **small_arrays(y_test=np.array([39, 0])))
    assert load_archive(path).class_names == MODELNET40_CLASSES


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"y_test": None}, "missing arrays y_test"),
        ({"X_train": np.zeros((6, 4, 4, 5), np.int32)}, "cubic grids"),
        ({"X_train": np.zeros((6, 4, 4), np.int32)}, "cubic grids"),
        ({"X_test": np.zeros((2, 8, 8, 8), np.int32)}, "differ"),
        ({"X_train": np.full((6, 4, 4, 4), 2, np.int32)}, "row 0 holds values other than 0 and 1"),
        ({"X_train": np.full((6, 4, 4, 4), np.nan)}, "values other than 0 and 1"),
        ({"X_train": np.full((6, 4, 4, 4), "1")}, "not a 0/1 occupancy type"),
        ({"y_train": np.array([0, 1, 2])}, "3 labels for 6 grids"),
        ({"y_train": np.zeros(6)}, "integer labels"),
        ({"y_train": np.array([0, 1, 2, 3, 4, -1])}, "labels outside"),
        ({"y_test": np.array([0, 40])}, "label 40 has no ModelNet class"),
        ({"class_names": np.array(["a", "b"])}, "labels outside 0..1"),
        ({"class_names": np.arange(10)}, "class_names: expected a 1-D array of strings"),
    ],
)
def test_broken_archives_raise_data_error(tmp_path, changes, problem):
    path = save_npz(tmp_path / "bad.npz", **small_arrays(**changes))
    with pytest.raises(DataError) as info:
        load_archive(path)
    assert problem in str(info.value) and str(path) in str(info.value)


def test_unreadable_archives_raise_data_error(tmp_path):
    good = save_npz(tmp_path / "good.npz", **small_arrays())
    raw = good.read_bytes()
    cases = {
        "text.npz": b"this is not a zip file",
        "truncated.npz": raw[: len(raw) // 2],
        "tail_cut.npz": raw[:-30],
    }
    # Object arrays: a pickled y_test.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for key, value in small_arrays().items():
            member = io.BytesIO()
            np.save(member, value.astype(object) if key == "y_test" else value, allow_pickle=True)
            zf.writestr(f"{key}.npy", member.getvalue())
    cases["pickled.npz"] = buffer.getvalue()
    # A corrupt byte inside the compressed data of X_train.
    compressed = tmp_path / "compressed.npz"
    np.savez_compressed(compressed, **small_arrays())
    data = bytearray(compressed.read_bytes())
    data[len(data) // 4] ^= 0xFF
    cases["corrupt.npz"] = bytes(data)
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(DataError) as info:
            load_archive(path)
        assert str(path) in str(info.value), name
    with pytest.raises(DataError, match="pickles"):
        load_archive(tmp_path / "pickled.npz")
    with pytest.raises(DataError):
        load_archive(tmp_path / "missing.npz")


# The voxel cache -------------------------------------------------------------


def test_voxelize_split_and_cache(tree, tmp_path, monkeypatch):
    records = index_modelnet(tree, "train")
    cache = tmp_path / "cache" / "train.npz"
    packed = voxelize_split(records, 16, cache, progress=False)
    assert packed.dtype == np.uint8 and packed.shape == (5, 16**3 // 8)
    grids = unpack_grids(packed, 16)
    for record, grid in zip(records, grids):
        np.testing.assert_array_equal(grid, voxelize_mesh(*read_off(record.voxel_path), 16))
    loaded, meta = load_voxel_cache(cache)
    np.testing.assert_array_equal(loaded, packed)
    assert meta.model_ids == tuple(r.model_id for r in records)
    assert meta.categories == ("chair",) * 2 + ("toilet",) * 3
    assert meta.labels.tolist() == [2, 2, 9, 9, 9]
    assert meta.class_names == MODELNET10_CLASSES and meta.resolution == 16
    assert meta.up_axis == "z" and meta.failures == ()
    assert meta.voxel_paths[0] == records[0].voxel_path

    # A second call reuses the cache: no mesh is read.
    def no_reading(path):
        raise AssertionError(f"read {path}")

    monkeypatch.setattr(voxel_cache, "read_off", no_reading)
    np.testing.assert_array_equal(voxelize_split(records, 16, cache, progress=False), packed)
    # Rows follow the order of the records asked for.
    reordered = voxelize_split(records[::-1], 16, cache, progress=False)
    np.testing.assert_array_equal(reordered, packed[::-1])
    # Another resolution or other models: refused without overwrite.
    with pytest.raises(OutputExistsError, match="overwrite"):
        voxelize_split(records, 8, cache, progress=False)
    with pytest.raises(OutputExistsError):
        voxelize_split(records[:2], 16, cache, progress=False)
    monkeypatch.undo()
    packed8 = voxelize_split(records[:2], 8, cache, overwrite=True, progress=False)
    assert packed8.shape == (2, 64)
    assert load_voxel_cache(cache)[1].resolution == 8


def test_pack_order_is_the_project_order():
    grid = np.zeros((4, 4, 4), bool)
    grid[0, 0, 1] = True  # bit 1 of the flattened C-order grid
    packed = pack_grids(grid[None])[0]
    assert packed.shape == (8,) and packed[0] == 0b01000000
    np.testing.assert_array_equal(unpack_grids(packed[None], 4)[0], grid)
    odd = np.random.default_rng(1).random((5, 5, 5)) > 0.5  # 125 bits: padded
    np.testing.assert_array_equal(unpack_grids(pack_grids(odd[None]), 5)[0], odd)


def test_voxelize_split_failures(tree, tmp_path):
    (tree / "chair" / "train" / "chair_0002.off").write_text("OFF\n3 1 0\n0 0 0\n")
    records = index_modelnet(tree, "train")
    with pytest.raises(MeshError, match="chair_0002.off: truncated"):
        voxelize_split(records, 8, tmp_path / "c.npz", progress=False)
    assert not (tmp_path / "c.npz").exists()
    packed = voxelize_split(records, 8, tmp_path / "c.npz", progress=False, skip_failures=True)
    _, meta = load_voxel_cache(tmp_path / "c.npz")
    assert len(packed) == 4 and "chair_0002" not in meta.model_ids
    ((model_id, category, path, problem),) = meta.failures
    assert (model_id, category) == ("chair_0002", "chair") and path.endswith("chair_0002.off")
    assert "truncated" in problem
    # The cache counts the failed mesh as done: a rerun reuses it, unless
    # failures are not to be skipped.
    again = voxelize_split(records, 8, tmp_path / "c.npz", progress=False, skip_failures=True)
    np.testing.assert_array_equal(again, packed)
    with pytest.raises(MeshError, match="chair_0002.off: truncated"):
        voxelize_split(records, 8, tmp_path / "c.npz", progress=False)
    for record in records:
        if record.model_id != "chair_0002":
            pathlib.Path(record.voxel_path).write_text("garbage")
    with pytest.raises(DataError, match="none of the 5 meshes"):
        voxelize_split(records, 8, tmp_path / "d.npz", progress=False, skip_failures=True)


def test_voxel_cache_validation(tree, tmp_path):
    cache = tmp_path / "c.npz"
    voxelize_split(index_modelnet(tree, "test"), 8, cache, progress=False)
    with np.load(cache) as data:
        arrays = dict(data)
    broken = {
        "packed": arrays["packed"][:, :10],
        "labels": np.array([0, 99, 99]),
        "model_ids": arrays["model_ids"][:1],
        "format_version": np.int64(99),
        "failures": np.zeros((1, 3), str),
    }
    for key, value in broken.items():
        path = tmp_path / f"bad_{key}.npz"
        np.savez(path, **{**arrays, key: value})
        with pytest.raises(DataError, match="corrupt voxel cache") as info:
            load_voxel_cache(path)
        assert str(path) in str(info.value)
    path = tmp_path / "missing.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if k != "labels"})
    with pytest.raises(DataError, match="not a voxel cache: missing labels"):
        load_voxel_cache(path)
    (tmp_path / "text.npz").write_text("nope")
    with pytest.raises(DataError, match="cannot read voxel cache"):
        load_voxel_cache(tmp_path / "text.npz")
    with pytest.raises(DataError, match="cannot read voxel cache"):
        load_voxel_cache(tmp_path / "absent.npz")


def test_voxelize_split_real_samples(shared_data, tmp_path):
    records = index_modelnet(shared_data / "ModelNet10", "train")
    packed = voxelize_split(records, 32, tmp_path / "real.npz", progress=False)
    grids = unpack_grids(packed, 32)
    # Same grids as voxelizing directly, and every bathtub spans the grid.
    vertices_faces = read_off(records[1].voxel_path)
    np.testing.assert_array_equal(grids[1], voxelize_mesh(*vertices_faces, 32))
    assert all(np.ptp(np.argwhere(g), axis=0).max() == 31 for g in grids)


# The tool --------------------------------------------------------------------


def run_tool(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "prepare_modelnet.py"), "--noprogress", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_prepare_modelnet_tool(tmp_path):
    tree = make_tree(
        tmp_path / "ModelNet10",
        {"toilet": {"train": 2, "test": 1}, "bed": {"train": 1, "test": 1}},
        broken=["toilet/train/toilet_0002.off"],
    )
    out = tmp_path / "out"
    flags = [f"--modelnet_dir={tree}", f"--output_dir={out}", "--resolution=32"]
    result = run_tool(*flags, "--split=both")
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()
    assert len(summary) == 1
    assert "train 2, test 2 models at 32^3" in summary[0]
    assert "1 failures (toilet_0002.off" in summary[0]
    failures = (out / "failures.txt").read_text().splitlines()
    assert len(failures) == 1 and failures[0].startswith("train\t")
    assert "toilet_0002.off\t" in failures[0] and "truncated" in failures[0]
    packed, meta = load_voxel_cache(out / "modelnet_train_32.npz")
    assert meta.model_ids == ("bed_0001", "toilet_0001") and packed.shape == (2, 4096)
    assert load_voxel_cache(out / "modelnet_test_32.npz")[1].labels.tolist() == [1, 9]

    # Existing caches are not replaced without --overwrite.
    before = (out / "modelnet_test_32.npz").stat().st_mtime_ns
    result = run_tool(*flags, "--split=test")
    assert result.returncode == 1 and "pass --overwrite" in result.stderr
    assert (out / "modelnet_test_32.npz").stat().st_mtime_ns == before

    # --overwrite on one split keeps the other split's failure lines.
    result = run_tool(*flags, "--split=test", "--overwrite")
    assert result.returncode == 0, result.stderr
    assert "test 2 models" in result.stdout and "0 failures" in result.stdout
    assert (out / "failures.txt").read_text().splitlines() == failures

    # A bad root is reported, not a traceback.
    result = run_tool(f"--modelnet_dir={tmp_path / 'nowhere'}", f"--output_dir={out}")
    assert result.returncode == 1 and "not a folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_voxelize_split_in_worker_processes(tree, tmp_path):
    (tree / "toilet" / "train" / "toilet_0003.off").write_text("OFF\n1 0\n")  # counts only
    records = index_modelnet(tree, "train")
    serial = voxelize_split(records, 8, tmp_path / "a.npz", progress=False, skip_failures=True)
    parallel = voxelize_split(
        records, 8, tmp_path / "b.npz", progress=False, skip_failures=True, workers=2
    )
    np.testing.assert_array_equal(parallel, serial)
    assert (
        load_voxel_cache(tmp_path / "b.npz")[1].failures
        == load_voxel_cache(tmp_path / "a.npz")[1].failures
    )
    with pytest.raises(MeshError, match="toilet_0003.off"):
        voxelize_split(records, 8, tmp_path / "c.npz", progress=False, workers=2)


# Archives of other sides -----------------------------------------------------


def test_fit_archive_grids_pads_pools_or_refuses():
    grids = np.zeros((2, 30, 30, 30), bool)
    grids[0, 3:27, 3:27, 3:27] = True  # a 24^3 object padded by 3 (3D ShapeNets)
    grids[1, 10, 20, 5] = True
    lines = []
    out = fit_archive_grids(grids, 32, "x.npz", lines.append)
    assert out.shape == (2, 32, 32, 32) and out.dtype == bool
    # One voxel of zeros each side: the object stays centred, padded by 4.
    np.testing.assert_array_equal(out[:, 1:31, 1:31, 1:31], grids)
    assert out.sum() == grids.sum()
    box = np.argwhere(out[0])
    assert box.min(axis=0).tolist() == [4, 4, 4] and box.max(axis=0).tolist() == [27, 27, 27]
    assert lines == ["x.npz: 30^3 grids padded by one voxel each side to 32^3"]
    # A multiple: max-pooled (any occupied voxel wins).
    big = np.zeros((1, 64, 64, 64), bool)
    big[0, 1, 2, 3] = True
    pooled = fit_archive_grids(big, 32)
    assert pooled.shape == (1, 32, 32, 32) and np.argwhere(pooled[0]).tolist() == [[0, 1, 1]]
    assert fit_archive_grids(big, 64) is big
    # Anything else: a flag the script accepts, or what to do instead.
    with pytest.raises(ConfigError, match="30\\^3 .* needs 64\\^3.*use --resolution=32"):
        fit_archive_grids(grids, 64, "x.npz")
    with pytest.raises(ConfigError, match="40\\^3.*re-voxelize"):
        fit_archive_grids(np.zeros((1, 40, 40, 40), bool), 32)


def write_30_archive(path):
    """A small synthetic archive in the 3D ShapeNets layout: 24^3 boxes padded to 30^3."""
    rng = np.random.default_rng(3)

    def grids(n):
        out = np.zeros((n, 30, 30, 30), np.int32)
        for g in out:
            lo = rng.integers(3, 12, 3)
            hi = lo + rng.integers(4, 15, 3)
            g[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = 1
        return out

    np.savez(path, X_train=grids(6), y_train=[0, 1, 2, 0, 1, 2], X_test=grids(3), y_test=[2, 1, 0])
    return path


def test_30_archive_trains_and_gives_features(tmp_path):
    from enhancer_gan.config import DataConfig, ExperimentConfig
    from enhancer_gan.data.datasets import load_shapes
    from enhancer_gan.evaluation.extract import extract_dataset_features
    from enhancer_gan.evaluation.features import load_features
    from enhancer_gan.training.loop import train
    from tests.helpers import tiny_model_config, tiny_train_config

    archive = str(write_30_archive(tmp_path / "mn10_30.npz"))
    data = DataConfig(kind="archive", data_dir=archive, views_per_model=1)
    lines = []
    shapes = load_shapes(data, 32, log=lines.append)
    assert shapes.packed.shape == (6, 32**3 // 8)
    assert any("padded by one voxel" in line for line in lines)
    run_dir = str(tmp_path / "run")
    config = ExperimentConfig(
        model=tiny_model_config(),
        data=data,
        train=tiny_train_config(num_steps=2, checkpoint_every=10, sample_every=10),
        run_dir=run_dir,
    )
    result = train(config, progress=False, log=lambda *_: None)
    assert result.step == 2
    written = extract_dataset_features(
        run_dir, "archive", archive, str(tmp_path / "feats"), progress=False, log=lambda *_: None
    )
    test = load_features(written[1][0])
    assert test["features"].shape[0] == 3 and np.isfinite(test["features"]).all()
    np.testing.assert_array_equal(test["labels"], [2, 1, 0])
