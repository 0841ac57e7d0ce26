"""Errors about bad inputs are one clean line naming the file, with no warning first.

A bad PNG view must not carry TensorFlow's op, node and device names; NaN or
infinite mesh vertices must not make numpy print a RuntimeWarning before the
error that names the mesh.
"""

import os
import warnings

import numpy as np
import pytest

from enhancer_gan.errors import DataError, MeshError, tensorflow_reason
from tests.helpers import tiny_source

TF_INTERNALS = ("function_node", "Op:", "device", "[[", "{{", "Iterator::")


def assert_clean(message: str, path) -> None:
    assert "\n" not in message and "\r" not in message, message
    assert str(path) in message, message
    for word in TF_INTERNALS:
        assert word not in message, (word, message)


def raises_without_warnings(error_type, call):
    """The error `call` raises; fails if any warning was emitted on the way."""
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="warn"):
        warnings.simplefilter("always")
        with pytest.raises(error_type) as info:
            call()
    assert not caught, [f"{w.category.__name__}: {w.message}" for w in caught]
    return str(info.value)


# ---------------------------------------------------------------------------
# TensorFlow's wording.

EAGER = (
    "{{function_node __wrapped__DecodePng_device_/job:localhost/replica:0/task:0/"
    "device:CPU:0}} Invalid PNG. Failed to initialize decoder. [Op:DecodePng] name: "
)
ITERATOR = (
    "{{function_node __wrapped__IteratorGetNext_output_types_1_device_/job:localhost/"
    "replica:0/task:0/device:CPU:0}} Error in user-defined function passed to MapDataset:1 "
    "transformation with iterator: Iterator::Root::ParallelMapV2: Invalid PNG. Failed to "
    "initialize decoder.\n\t [[{{node DecodePng}}]] [Op:IteratorGetNext] name: "
)


class FakeOpError(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.message = message


@pytest.mark.parametrize("text", [EAGER, ITERATOR, "Invalid PNG. Failed to initialize decoder."])
def test_tensorflow_reason_keeps_only_what_tensorflow_said(text):
    assert tensorflow_reason(FakeOpError(text)) == "Invalid PNG. Failed to initialize decoder."


def test_tensorflow_reason_of_nothing_is_the_error_type():
    assert tensorflow_reason(FakeOpError("{{node X}} [Op:X] name: x")) == "FakeOpError"
    assert tensorflow_reason(ValueError("plain\nwords")) == "plain words"


# ---------------------------------------------------------------------------
# Views that do not decode.


def _decode_all(source, cache_dir):
    from enhancer_gan.data.view_cache import decoded_views

    return decoded_views(source.view_paths, 16, str(cache_dir), progress=False)


def _damage(kind: str, path: str) -> None:
    if kind == "not a png":
        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n not really")
    elif kind == "truncated":
        data = open(path, "rb").read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
    elif kind == "text":
        with open(path, "w") as f:
            f.write("hello")
    elif kind == "missing":
        os.remove(path)


@pytest.mark.parametrize("kind", ["not a png", "truncated", "text", "missing"])
def test_bad_view_is_one_clean_line_naming_the_file(tmp_path, kind):
    source, _ = tiny_source(str(tmp_path / "png"), n=3, res=8, views=2)
    bad = source.view_paths[1][1]
    _damage(kind, bad)
    message = raises_without_warnings(DataError, lambda: _decode_all(source, tmp_path / "c"))
    assert_clean(message, bad)
    what = "cannot read view: " if kind == "missing" else "cannot decode view: "
    assert message.startswith(f"{bad}: {what}"), message
    reason = message.removeprefix(f"{bad}: {what}")
    assert reason and bad not in reason, message  # TensorFlow's words, the path once
    if kind == "not a png":
        assert reason == "Invalid PNG. Failed to initialize decoder.", message


def test_good_views_still_decode(tmp_path):
    source, _ = tiny_source(str(tmp_path / "png"), n=2, res=8, views=2)
    views = _decode_all(source, tmp_path / "c")
    assert views.shape == (4, 16, 16, 3)
    assert views[0, 0, 0].tolist() == [255, 255, 255]  # transparent corner on white


# ---------------------------------------------------------------------------
# Meshes with NaN or infinite vertices.

BAD_VALUES = ["nan", "inf", "-inf"]


@pytest.mark.parametrize("value", BAD_VALUES)
def test_off_mesh_with_a_bad_vertex(tmp_path, value):
    from enhancer_gan.data.off import read_off

    path = tmp_path / "m.off"
    path.write_text(f"OFF\n3 1 0\n0 0 0\n1 0 0\n0 {value} 0\n3 0 1 2\n")
    message = raises_without_warnings(MeshError, lambda: read_off(path))
    assert_clean(message, path)
    assert "not finite" in message


@pytest.mark.parametrize("value", BAD_VALUES)
def test_obj_mesh_with_a_bad_vertex(tmp_path, value):
    from enhancer_gan.data.shapenet import read_obj, voxelize_v2_mesh

    path = tmp_path / "model_normalized.obj"
    path.write_text(f"v 0 0 0\nv 1 0 0\nv 0 {value} 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\n")
    for call in (lambda: read_obj(path), lambda: voxelize_v2_mesh(path, 8)):
        message = raises_without_warnings(MeshError, call)
        assert_clean(message, path)
        assert "vertex 3 is not finite" in message


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_voxelizer_refuses_bad_vertices_without_warnings(value):
    from enhancer_gan.voxels.voxelize import normalize_to_grid, voxelize_mesh

    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, value, 0], [0, 0, 1.0]])
    faces = np.array([[0, 1, 2], [0, 1, 3]])
    message = raises_without_warnings(
        MeshError, lambda: voxelize_mesh(vertices, faces, 8, "z", name="m.off")
    )
    assert message == "m.off: cannot voxelize: vertices are not all finite"
    message = raises_without_warnings(MeshError, lambda: normalize_to_grid(vertices, 8, "m.off"))
    assert message == "m.off: cannot voxelize: vertices are not all finite"


def test_voxel_cache_of_a_mesh_with_nan_names_it(tmp_path):
    from enhancer_gan.data.records import ShapeRecord
    from enhancer_gan.data.voxel_cache import voxelize_split

    path = tmp_path / "chair" / "train" / "chair_0001.off"
    path.parent.mkdir(parents=True)
    path.write_text("OFF\n4 2 0\n0 0 0\n1 0 0\n0 nan 0\n0 0 1\n3 0 1 2\n3 0 1 3\n")
    record = ShapeRecord("chair_0001", "chair", str(path), label=2, source="modelnet")
    message = raises_without_warnings(
        MeshError,
        lambda: voxelize_split([record], 8, tmp_path / "cache.npz", progress=False),
    )
    assert_clean(message, path)
    assert "not finite" in message


@pytest.mark.parametrize("writer", ["write_obj", "write_ply", "write_off"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_mesh_writers_refuse_bad_vertices_without_warnings(tmp_path, writer, value):
    from enhancer_gan.data import off
    from enhancer_gan.voxels import mesh

    write = getattr(off if writer == "write_off" else mesh, writer)
    path = tmp_path / f"out.{writer[6:]}"
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, value, 0]])
    message = raises_without_warnings(DataError, lambda: write(path, vertices, [[0, 1, 2]]))
    assert_clean(message, path)
    assert not path.exists()


@pytest.mark.parametrize(
    "value, problem",
    [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"), (1e300, "float32 range")],
)
def test_voxels_to_mesh_refuses_bad_grids_without_warnings(value, problem):
    from enhancer_gan.voxels.mesh import voxels_to_mesh

    grid = np.zeros((4, 4, 4))
    grid[1, 2, 3] = value
    message = raises_without_warnings(DataError, lambda: voxels_to_mesh(grid))
    assert "\n" not in message and problem in message, message


def test_a_clean_mesh_still_voxelizes_and_meshes_without_warnings(tmp_path):
    from enhancer_gan.data.shapenet import voxelize_v2_mesh
    from enhancer_gan.voxels.mesh import voxels_to_mesh

    path = tmp_path / "box.obj"
    corners = [(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)]
    faces = [
        (1, 2, 4), (1, 4, 3), (5, 7, 8), (5, 8, 6), (1, 5, 6), (1, 6, 2),
        (3, 4, 8), (3, 8, 7), (1, 3, 7), (1, 7, 5), (2, 6, 8), (2, 8, 4),
    ]  # fmt: skip
    path.write_text(
        "".join(f"v {x} {y} {z}\n" for x, y, z in corners)
        + "".join(f"f {a} {b} {c}\n" for a, b, c in faces)
    )
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        grid = voxelize_v2_mesh(path, 8)
        vertices, _ = voxels_to_mesh(grid)
    assert grid.all() and len(vertices)
