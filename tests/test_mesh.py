"""Tests of voxel -> mesh conversion and the .obj / .ply writers."""

import os

import numpy as np
import pytest
import trimesh

from enhancer_gan.errors import DataError
from enhancer_gan.voxels.binvox import read_binvox
from enhancer_gan.voxels.mesh import mesh_summary, voxels_to_mesh, write_obj, write_ply

CHAIR_ID = "1a6f615e8b1b5ae4dbbc9440457e303e"  # in every sample folder


def _box(dim, lo, hi):
    grid = np.zeros((dim,) * 3, dtype=bool)
    grid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return grid


def test_box_mesh_is_closed_outward_and_has_the_voxel_bounds():
    grid = _box(8, (2, 1, 3), (5, 7, 6))
    vertices, faces = voxels_to_mesh(grid)
    assert vertices.dtype == np.float32 and faces.dtype == np.int64
    assert vertices.shape[1] == 3 and faces.shape[1] == 3
    mesh = trimesh.Trimesh(vertices, faces, process=True)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # outward normals
    # The surface runs along the occupied voxels' outer faces, in unit-cube
    # coordinates with axes in project order (x, y, z).
    np.testing.assert_allclose(vertices.min(axis=0), np.array([2, 1, 3]) / 8, atol=1e-6)
    np.testing.assert_allclose(vertices.max(axis=0), np.array([5, 7, 6]) / 8, atol=1e-6)
    # Marching cubes bevels the edges, so the volume is a little under the
    # box's 3 * 6 * 3 voxels.
    assert 0.8 * 54 / 512 < mesh.volume < 54 / 512


def test_grid_touching_the_border_still_gives_a_closed_surface():
    full = np.ones((6, 6, 6), dtype=bool)
    vertices, faces = voxels_to_mesh(full)
    mesh = trimesh.Trimesh(vertices, faces, process=True)
    assert mesh.is_watertight and mesh.volume > 0
    np.testing.assert_allclose(vertices.min(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(vertices.max(axis=0), 1.0, atol=1e-6)


def test_float_occupancy_uses_the_threshold():
    rng = np.random.default_rng(0)
    occupancy = rng.random((10, 10, 10)).astype(np.float32)
    v_float, f_float = voxels_to_mesh(occupancy, threshold=0.7)
    assert len(f_float) > 0
    # Lower the threshold -> more inside -> larger enclosed volume.
    v_low, f_low = voxels_to_mesh(occupancy, threshold=0.3)
    volume_high = trimesh.Trimesh(v_float, f_float).volume
    volume_low = trimesh.Trimesh(v_low, f_low).volume
    assert volume_low > volume_high > 0


def test_empty_grid_gives_an_empty_mesh_that_writes(tmp_path):
    vertices, faces = voxels_to_mesh(np.zeros((16, 16, 16), dtype=bool))
    assert vertices.shape == (0, 3) and faces.shape == (0, 3)
    write_obj(tmp_path / "empty.obj", vertices, faces)
    write_ply(tmp_path / "empty.ply", vertices, faces)
    text = (tmp_path / "empty.ply").read_text()
    assert "element vertex 0" in text and "element face 0" in text


@pytest.mark.parametrize("writer, suffix", [(write_obj, ".obj"), (write_ply, ".ply")])
def test_written_files_load_back_in_trimesh(tmp_path, writer, suffix):
    grid = _box(8, (1, 1, 1), (4, 6, 3)) | _box(8, (4, 1, 4), (7, 3, 7))
    vertices, faces = voxels_to_mesh(grid)
    path = tmp_path / f"shape{suffix}"
    writer(path, vertices, faces)
    loaded = trimesh.load(path, process=False, force="mesh")
    assert len(loaded.vertices) == len(vertices)
    assert len(loaded.faces) == len(faces)
    np.testing.assert_allclose(loaded.vertices, vertices, atol=1e-5)
    np.testing.assert_array_equal(loaded.faces, faces)
    # Nothing but the file itself is left in the folder (atomic write).
    assert os.listdir(tmp_path) == [path.name]


def test_writer_refuses_bad_faces_and_names_the_file(tmp_path):
    vertices = np.zeros((3, 3))
    with pytest.raises(DataError, match="out.obj.*out of range"):
        write_obj(tmp_path / "out.obj", vertices, np.array([[0, 1, 3]]))
    with pytest.raises(DataError, match="out.ply.*NaN"):
        write_ply(tmp_path / "out.ply", np.full((3, 3), np.nan), np.array([[0, 1, 2]]))
    assert not list(tmp_path.iterdir())


def test_voxels_to_mesh_rejects_bad_grids():
    with pytest.raises(DataError, match="cubic"):
        voxels_to_mesh(np.zeros((4, 4, 5)))
    with pytest.raises(DataError, match="NaN"):
        voxels_to_mesh(np.full((4, 4, 4), np.nan))
    with pytest.raises(ValueError, match="threshold"):
        voxels_to_mesh(np.zeros((4, 4, 4)), threshold=1.0)


def test_real_chair_mesh_is_closed_and_upright(shared_data):
    grid = read_binvox(shared_data / "ShapeNetVox32" / "03001627" / CHAIR_ID / "model.binvox").grid
    vertices, faces = voxels_to_mesh(grid)
    mesh = trimesh.Trimesh(vertices, faces, process=True)
    assert mesh.is_watertight and mesh.volume > 0
    # The chair is taller (y) than it is wide or deep: y is up in the mesh.
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    assert extent[1] == extent.max()


def test_mesh_summary_reads_back_from_the_event_file(tmp_path):
    """The mesh plugin's vertex and face tensors are in the event file, equal
    to voxels_to_mesh's output shifted to the origin; empty grids are skipped."""
    import tensorflow as tf

    grids = np.zeros((3, 6, 6, 6), bool)
    grids[0, 1:4, 2:5, 1:3] = True
    grids[2, 2:4, 2:4, 2:4] = True  # grids[1] is empty
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=7):
        assert mesh_summary("samples/meshes", grids, max_outputs=3) == 2
    writer.close()
    found = {}
    for path in tmp_path.iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found[value.tag] = (event.step, tf.make_ndarray(value.tensor))
    assert set(found) == {
        "samples/meshes/0_VERTEX",
        "samples/meshes/0_FACE",
        "samples/meshes/2_VERTEX",
        "samples/meshes/2_FACE",
    }
    for i in (0, 2):
        vertices, faces = voxels_to_mesh(grids[i])
        step, got_vertices = found[f"samples/meshes/{i}_VERTEX"]
        assert step == 7
        np.testing.assert_allclose(got_vertices, (vertices - 0.5)[None], atol=1e-6)
        np.testing.assert_array_equal(found[f"samples/meshes/{i}_FACE"][1], faces[None])
    # The box 1:4 x 2:5 x 1:3 spans these voxel faces, centred on the origin.
    v0 = found["samples/meshes/0_VERTEX"][1][0]
    np.testing.assert_allclose(v0.min(0), np.array([1, 2, 1]) / 6 - 0.5, atol=1e-6)
    np.testing.assert_allclose(v0.max(0), np.array([4, 5, 3]) / 6 - 0.5, atol=1e-6)
