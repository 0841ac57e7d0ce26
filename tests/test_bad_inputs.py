"""Damaged and hostile inputs: voxel archives, feature files, voxel caches, data roots.

The promise tested here: every input either loads correctly or raises the
project's own error (an `EnhancerGanError`) whose message names the file;
no other exception, no hang, no allocation driven by a header's claims. The
binvox, OFF and render-metadata readers have their property tests beside
their modules (test_binvox.py, test_off.py, test_renders.py); this file adds
the .npz readers and the paths read out of data files.

Property tests run the hypothesis profile's example count: 1,000 in CI
(HYPOTHESIS_PROFILE=ci), 100 by default.
"""

import io
import os
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enhancer_gan.data.archives import load_archive
from enhancer_gan.data.modelnet_classes import MODELNET10_CLASSES
from enhancer_gan.errors import DataError, EnhancerGanError

# Tests that write into a per-test folder reuse it across examples (each
# example writes the same file name first), which is safe here.
reuse_tmp = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

# ---------------------------------------------------------------------------
# Building .npz files byte by byte.


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def raw_npy(descr: str, shape: tuple, fortran: bool, body: bytes, version=(1, 0)) -> bytes:
    """An .npy member with an arbitrary (possibly lying) header."""
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": fortran, "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buffer, header)
    else:
        np.lib.format.write_array_header_2_0(buffer, header)
    return buffer.getvalue() + body


def zip_bytes(members: dict[str, bytes], compressed: bool = False) -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def archive_arrays():
    rng = np.random.default_rng(0)
    return {
        "X_train": rng.integers(0, 2, (3, 4, 4, 4)).astype(np.uint8),
        "y_train": np.array([0, 1, 9]),
        "X_test": rng.integers(0, 2, (2, 4, 4, 4)).astype(np.int32),
        "y_test": np.array([9, 0]),
    }


def archive_members(**changes) -> dict[str, bytes]:
    members = {f"{k}.npy": npy_bytes(v) for k, v in archive_arrays().items()}
    members.update({f"{k}.npy": v for k, v in changes.items()})
    return {k: v for k, v in members.items() if v is not None}


def mutate(raw: bytes, edits, cut, insert) -> bytes:
    data = bytearray(raw)
    for pos, value in edits:
        data[pos % len(data)] = value
    if insert is not None:
        pos, extra = insert
        data[pos % len(data) : pos % len(data)] = extra
    if cut is not None:
        del data[cut % len(data) :]
    return bytes(data)


_edits = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=4)
_cut = st.one_of(st.none(), st.integers(0, 1 << 16))
_insert = st.one_of(
    st.none(), st.tuples(st.integers(0, 1 << 16), st.binary(min_size=1, max_size=8))
)


def loads_or_names_the_file(load, path):
    """load(path)'s result, or None after checking the error names the file."""
    try:
        return load(path)
    except EnhancerGanError as e:
        assert isinstance(e, DataError), type(e)
        assert str(path) in str(e), str(e)
        return None


# ---------------------------------------------------------------------------
# Voxel archives (data/modelnet.py load_archive).


def check_archive(archive, expected=None):
    assert archive.x_train.dtype == bool and archive.x_test.dtype == bool
    assert archive.x_train.ndim == 4 and archive.x_train.shape[1:] == archive.x_test.shape[1:]
    assert len(set(archive.x_train.shape[1:])) == 1
    for x, y in ((archive.x_train, archive.y_train), (archive.x_test, archive.y_test)):
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert ((y >= 0) & (y < len(archive.class_names))).all()
    if expected is not None:
        np.testing.assert_array_equal(archive.x_train, expected["X_train"] == 1)
        np.testing.assert_array_equal(archive.x_test, expected["X_test"] == 1)
        np.testing.assert_array_equal(archive.y_train, expected["y_train"])
        np.testing.assert_array_equal(archive.y_test, expected["y_test"])


@reuse_tmp
@given(compressed=st.booleans(), edits=_edits, cut=_cut, insert=_insert)
def test_property_mutated_archive_loads_the_same_or_raises(
    tmp_path, compressed, edits, cut, insert
):
    path = tmp_path / "archive.npz"
    path.write_bytes(mutate(zip_bytes(archive_members(), compressed), edits, cut, insert))
    archive = loads_or_names_the_file(lambda p: load_archive(p, canonical=False), path)
    if archive is not None:
        # The zip's CRC-32 covers every member: what loads is what was saved.
        check_archive(archive, archive_arrays())


_descrs = st.sampled_from(
    ["|u1", "|b1", "<i4", ">i2", "<f8", "<f2", "|O", "<U4", "|S3", "|V8", "<c8", "<m8[s]", "<i4x"]
)
_dims = st.one_of(st.integers(0, 6), st.integers(0, 1 << 62))


@reuse_tmp
@given(
    key=st.sampled_from(["X_train", "y_train", "X_test", "class_names"]),
    descr=_descrs,
    shape=st.lists(_dims, max_size=5).map(tuple),
    fortran=st.booleans(),
    body=st.one_of(st.binary(max_size=200), st.sampled_from([b"\x00" * 64, b"\x01" * 192])),
    version=st.sampled_from([(1, 0), (2, 0)]),
)
def test_property_archive_headers_cannot_crash_or_allocate(
    tmp_path, key, descr, shape, fortran, body, version
):
    path = tmp_path / "archive.npz"
    try:
        member = raw_npy(descr, shape, fortran, body, version)
    except ValueError:  # numpy refuses to write this descr at all
        member = b"\x93NUMPY\x01\x00" + struct.pack("<H", 16) + b"{'descr': 1}    " + body
    path.write_bytes(zip_bytes(archive_members(**{key: member})))
    tracemalloc.start()
    try:
        archive = loads_or_names_the_file(lambda p: load_archive(p, canonical=False), path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak} bytes allocated for a {len(body)}-byte member"
    if archive is not None:
        check_archive(archive)


def with_lying_directory(raw: bytes, member: str, file_size: int) -> bytes:
    """Rewrites a stored member's uncompressed size in the zip's central directory."""
    data = bytearray(raw)
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46 : pos + 46 + name_len] == member.encode():
            struct.pack_into("<I", data, pos + 24, file_size)
            return bytes(data)
        pos = data.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(member)


@pytest.mark.parametrize("key", ["X_train", "y_train"])
def test_huge_claims_are_refused_without_allocating(tmp_path, key):
    # A header claiming a huge array, and a zip directory claiming the member
    # is that large too (the same lie twice, so the sizes agree).
    shape = (1 << 20, 256, 256, 256) if key == "X_train" else (1 << 36,)
    descr = "|u1" if key == "X_train" else "<i8"
    member = raw_npy(descr, shape, False, b"\x00" * 64)
    header = len(member) - 64
    claimed = header + int(np.prod(shape, dtype=object)) * np.dtype(descr).itemsize
    raw = zip_bytes(archive_members(**{key: member}))
    path = tmp_path / "huge.npz"
    path.write_bytes(with_lying_directory(raw, f"{key}.npy", min(claimed, 0xFFFFFFFF)))
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as info:
            load_archive(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value) and key in str(info.value)
    assert peak < 16 << 20


def test_pickled_arrays_are_refused(tmp_path):
    pickled = io.BytesIO()
    np.save(pickled, np.array([0, 1, 9], dtype=object), allow_pickle=True)
    for key in ("y_train", "X_train"):
        path = tmp_path / f"pickled_{key}.npz"
        path.write_bytes(zip_bytes(archive_members(**{key: pickled.getvalue()})))
        with pytest.raises(DataError, match="pickles") as info:
            load_archive(path)
        assert str(path) in str(info.value)


def test_real_archive_mutations(shared_data, tmp_path):
    """A few damaged copies of the real archive's first kilobytes and its end."""
    raw = (shared_data / "modelnet10_vox32.npz").read_bytes()
    rng = np.random.default_rng(7)
    for i in range(6):
        data = bytearray(raw)
        # Central directory and the first member's header: where damage is
        # cheap to find.
        pos = int(rng.integers(0, 2048)) if i % 2 else len(data) - int(rng.integers(1, 500))
        data[pos] ^= 1 << int(rng.integers(0, 8))
        path = tmp_path / f"m{i}.npz"
        path.write_bytes(bytes(data))
        archive = loads_or_names_the_file(load_archive, path)
        if archive is not None:
            check_archive(archive)
            assert archive.class_names == MODELNET10_CLASSES
            assert archive.x_train.shape == (3991, 32, 32, 32)


# ---------------------------------------------------------------------------
# Feature files (evaluation/features.py load_features).


def feature_arrays():
    return {
        "features": np.arange(12, dtype=np.float32).reshape(3, 4),
        "labels": np.array([0, 1, 0], dtype=np.int64),
        "class_names": np.array(["a", "b"]),
        "model_ids": np.array(["x", "y", "z"]),
        "source": np.array('{"step": 7}'),
    }


def feature_members(**changes):
    members = {f"{k}.npy": npy_bytes(v) for k, v in feature_arrays().items()}
    members.update({f"{k}.npy": v for k, v in changes.items()})
    return {k: v for k, v in members.items() if v is not None}


def check_features(out, expected=None):
    f = out["features"]
    assert f.dtype == np.float32 and f.ndim == 2 and np.isfinite(f).all()
    n = len(f)
    assert out["labels"].dtype == np.int64 and out["labels"].shape == (n,)
    assert len(out["model_ids"]) == n and all(isinstance(m, str) for m in out["model_ids"])
    assert all(isinstance(c, str) for c in out["class_names"])
    assert ((out["labels"] >= 0) & (out["labels"] < len(out["class_names"]))).all()
    assert isinstance(out["source"], dict)
    if expected is not None:
        np.testing.assert_array_equal(f, expected["features"])
        np.testing.assert_array_equal(out["labels"], expected["labels"])
        assert out["class_names"] == ("a", "b") and out["model_ids"] == ("x", "y", "z")
        assert out["source"] == {"step": 7}


def _load_features(path):
    from enhancer_gan.evaluation.features import load_features

    return load_features(str(path))


@reuse_tmp
@given(compressed=st.booleans(), edits=_edits, cut=_cut, insert=_insert)
def test_property_mutated_feature_file_loads_the_same_or_raises(
    tmp_path, compressed, edits, cut, insert
):
    path = tmp_path / "features.npz"
    path.write_bytes(mutate(zip_bytes(feature_members(), compressed), edits, cut, insert))
    out = loads_or_names_the_file(_load_features, path)
    if out is not None:
        check_features(out, feature_arrays())


_values = st.one_of(
    st.just(None),
    st.sampled_from(
        [
            np.zeros((3, 4), np.float64),
            np.zeros((3,), np.float32),
            np.zeros((0, 4), np.float32),
            np.full((3, 4), np.nan, np.float32),
            np.zeros((3, 4), np.int32),
            np.array(["1", "2", "3"]),
            np.array([0.5, 1.5, 0.0]),
            np.array([0, 5, 1]),
            np.array([-1, 0, 1]),
            np.array([0, 1]),
            np.array(5),
            np.array("not json {"),
            np.array("[1, 2]"),
            np.array([b"x", b"y", b"z"]),
            np.array(["a"]),
            np.zeros((2, 2), "<U2"),
        ]
    ),
)


@reuse_tmp
@given(st.dictionaries(st.sampled_from(list(feature_arrays())), _values, max_size=3))
def test_property_feature_file_contents_are_validated(tmp_path, changes):
    path = tmp_path / "features.npz"
    members = feature_members(
        **{k: None if v is None else npy_bytes(v) for k, v in changes.items()}
    )
    path.write_bytes(zip_bytes(members))
    out = loads_or_names_the_file(_load_features, path)
    if out is not None:
        check_features(out)


@reuse_tmp
@given(
    key=st.sampled_from(list(feature_arrays())),
    descr=_descrs,
    shape=st.lists(_dims, max_size=3).map(tuple),
    body=st.binary(max_size=100),
)
def test_property_feature_headers_cannot_crash_or_allocate(tmp_path, key, descr, shape, body):
    path = tmp_path / "features.npz"
    try:
        member = raw_npy(descr, shape, False, body)
    except ValueError:
        member = b"\x93NUMPY\x01\x00" + struct.pack("<H", 16) + b"{'descr': 1}    " + body
    path.write_bytes(zip_bytes(feature_members(**{key: member})))
    tracemalloc.start()
    try:
        out = loads_or_names_the_file(_load_features, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak
    if out is not None:
        check_features(out)


def test_feature_file_with_objects_or_huge_claims_is_refused(tmp_path):
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    path = tmp_path / "pickled.npz"
    path.write_bytes(zip_bytes(feature_members(model_ids=pickled.getvalue())))
    with pytest.raises(DataError, match="pickles") as info:
        _load_features(path)
    assert str(path) in str(info.value)

    member = raw_npy("<f4", (1 << 30, 57344), False, b"\x00" * 64)
    claimed = len(member) - 64 + 4 * (1 << 30) * 57344
    raw = zip_bytes(feature_members(features=member))
    path = tmp_path / "huge.npz"
    path.write_bytes(with_lying_directory(raw, "features.npy", min(claimed, 0xFFFFFFFF)))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="features") as info:
            _load_features(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20 and str(path) in str(info.value)


# ---------------------------------------------------------------------------
# The decoded-grid cache of the training data (data/datasets.py): a damaged
# cache is rebuilt, never trusted and never fatal.


@reuse_tmp
@given(edits=_edits, cut=_cut, insert=_insert)
def test_property_damaged_grid_cache_is_rebuilt(tmp_path, edits, cut, insert):
    from enhancer_gan.data import datasets
    from enhancer_gan.data.records import ShapeRecord

    records = [ShapeRecord(model_id=f"m{i}", category="chair", voxel_path="") for i in range(3)]
    grids = np.random.default_rng(1).random((3, 8, 8, 8)) < 0.3

    def load_grid(record, resolution):
        return grids[int(record.model_id[1:])]

    cache = tmp_path / "cache"
    for old in cache.glob("*") if cache.exists() else []:
        old.unlink()
    fresh = datasets.cached_packed_grids(records, load_grid, 8, str(cache), progress=False)
    (path,) = cache.glob("*.npz")
    path.write_bytes(mutate(path.read_bytes(), edits, cut, insert))
    again = datasets.cached_packed_grids(records, load_grid, 8, str(cache), progress=False)
    np.testing.assert_array_equal(again, fresh)


# ---------------------------------------------------------------------------
# Paths read from data files stay inside the data root (data/shapenet.py).

CHAIR = "03001627"

_nasty_names = st.sampled_from(
    [
        "00.png",
        "01.png",
        "../../../../etc/passwd",
        "/etc/passwd",
        "..",
        ".",
        "../01.png",
        "sub/00.png",
        "..\\..\\secret.png",
        "escape.png",
        "dirlink",
        "",
        " 00.png ",
        "00.png\x00",
        "%2e%2e/etc/passwd",
    ]
)


@reuse_tmp
@given(st.lists(_nasty_names, min_size=1, max_size=6), st.booleans())
def test_property_rendering_lists_cannot_leave_the_root(tmp_path, names, crlf):
    import shutil

    from enhancer_gan.data.shapenet import index_r2n2
    from enhancer_gan.voxels.binvox import write_binvox

    shutil.rmtree(tmp_path / "data", ignore_errors=True)
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.png").write_bytes(b"secret")
    root = tmp_path / "data"
    vox = root / "ShapeNetVox32" / CHAIR
    ren = root / "ShapeNetRendering" / CHAIR
    grid = np.zeros((4, 4, 4), bool)
    grid[1:3, 1:3, 1:3] = True
    for model in ("good", "nasty"):
        write_binvox(vox / model / "model.binvox", grid)
        folder = ren / model / "rendering"
        folder.mkdir(parents=True)
        for v in ("00.png", "01.png"):
            (folder / v).write_bytes(b"png")
    (ren / "good" / "rendering" / "renderings.txt").write_text("00.png\n01.png\n")
    nasty = ren / "nasty" / "rendering"
    os.symlink(outside / "secret.png", nasty / "escape.png")  # a file link out
    os.symlink(outside, nasty / "dirlink")  # a folder link out
    newline = "\r\n" if crlf else "\n"
    (nasty / "renderings.txt").write_text(newline.join(names) + newline)

    result = index_r2n2(root / "ShapeNetVox32", root / "ShapeNetRendering", ["chair"])
    real_root = os.path.realpath(root) + os.sep
    for record in result.records:
        for path in (record.voxel_path, *record.view_paths):
            assert os.path.realpath(path).startswith(real_root), path
            assert os.path.isfile(path)
    by_id = {r.model_id: r for r in result.records}
    assert [os.path.basename(p) for p in by_id["good"].view_paths] == ["00.png", "01.png"]
    if "nasty" in by_id:
        assert {os.path.basename(p) for p in by_id["nasty"].view_paths} <= {"00.png", "01.png"}
    else:
        assert "nasty" in result.missing_renders and result.rejected


def test_links_out_of_the_root_are_reported(tmp_path):
    from enhancer_gan.data.shapenet import index_r2n2
    from enhancer_gan.voxels.binvox import write_binvox

    outside = tmp_path / "outside"
    grid = np.ones((2, 2, 2), bool)
    write_binvox(outside / "model.binvox", grid)
    (outside / "00.png").write_bytes(b"png")
    root = tmp_path / "data"
    for model in ("a", "b"):
        folder = root / "ShapeNetRendering" / CHAIR / model / "rendering"
        folder.mkdir(parents=True)
        (root / "ShapeNetVox32" / CHAIR / model).mkdir(parents=True)
    write_binvox(root / "ShapeNetVox32" / CHAIR / "a" / "model.binvox", grid)
    (root / "ShapeNetRendering" / CHAIR / "a" / "rendering" / "00.png").write_bytes(b"png")
    # Model b: its grid and its only view are links to files outside the root.
    os.symlink(outside / "model.binvox", root / "ShapeNetVox32" / CHAIR / "b" / "model.binvox")
    os.symlink(
        outside / "00.png", root / "ShapeNetRendering" / CHAIR / "b" / "rendering" / "00.png"
    )
    result = index_r2n2(root / "ShapeNetVox32", root / "ShapeNetRendering", ["chair"])
    assert [r.model_id for r in result.records] == ["a"]
    assert "b" in result.missing_voxels
    assert any("model.binvox: leads outside" in r for r in result.rejected), result.rejected
