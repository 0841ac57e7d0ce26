"""Voxel grids to triangle meshes: .obj / .ply writers and TensorBoard meshes.

Generated shapes are exported as meshes for people to look at in any 3D
viewer. Marching cubes runs on the grid padded with one empty voxel on
every side, so a shape touching the grid's border still gives a closed
surface. Coordinates are the unit cube: voxel i's centre along an axis lies
at (i + 0.5) / D, axes in the project's order (x, y up, z), so a mesh opens
upright in y-up viewers.

`mesh_summary` writes the same meshes to TensorBoard's mesh plugin, so
generated samples can be turned around in the browser beside the rendered
PNG sheets.

It does not read meshes (ModelNet's .off reader lives with the data code).
"""

from __future__ import annotations

import os

import numpy as np
from skimage import measure

from enhancer_gan.errors import DataError
from enhancer_gan.io_utils import atomic_path


def voxels_to_mesh(
    grid: np.ndarray, threshold: float = 0.5, dtype=np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """The iso-surface of an occupancy grid (the project's one marching cubes).

    Args:
      grid: [D, D, D] bool or float occupancy in [0, 1]; axes (x, y up, z).
      threshold: iso-level; voxels above it are inside.
      dtype: of the vertices (the coordinates are computed in float64).

    Returns:
      vertices: [V, 3] `dtype` in the unit cube [0, 1]^3, axes (x, y, z).
      faces: [F, 3] int64 vertex indices, counter-clockwise seen from
        outside (outward normals by the right-hand rule). Both are empty for
        a grid with nothing above the threshold.
    """
    grid = np.asarray(grid)
    if grid.ndim != 3 or len(set(grid.shape)) != 1 or grid.shape[0] == 0:
        raise DataError(
            None, f"voxels_to_mesh needs a cubic [D, D, D] grid, got shape {grid.shape}"
        )
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    if grid.dtype.kind == "f" and not np.all(np.isfinite(grid)):
        raise DataError(None, "voxels_to_mesh: grid contains NaN or infinite values")
    with np.errstate(over="ignore"):  # checked just below, without a numpy warning
        values = grid.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise DataError(None, "voxels_to_mesh: grid values exceed the float32 range")
    empty = np.zeros((0, 3), dtype), np.zeros((0, 3), np.int64)
    if not values.max() > threshold:
        # Nothing inside. (A grid full everywhere still has a surface: the
        # padding below puts empty voxels around it.)
        return empty
    dim = grid.shape[0]
    # Padding with empty voxels closes surfaces that touch the border.
    padded = np.pad(values, 1, constant_values=0.0)
    verts, faces, _, _ = measure.marching_cubes(
        padded, level=threshold, gradient_direction="ascent"
    )
    # With 'ascent' the triangles wind counter-clockwise seen from the empty
    # side (outward normals, positive signed volume); tests/test_mesh.py
    # checks this with trimesh.
    # Padded index p is voxel p - 1, whose centre is at (p - 1 + 0.5) / D.
    verts = (verts.astype(np.float64) - 0.5) / dim
    return verts.astype(dtype), faces.astype(np.int64)


def _check_mesh(path, vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(faces).reshape(-1, 3)
    if faces.size and not np.issubdtype(faces.dtype, np.integer):
        raise DataError(path, f"faces must be integer vertex indices, got dtype {faces.dtype}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise DataError(
            path,
            f"face index out of range: indices span {faces.min()}..{faces.max()}, "
            f"{len(vertices)} vertices",
        )
    if not np.all(np.isfinite(vertices)):
        raise DataError(path, "vertices contain NaN or infinite values")
    return vertices, faces.astype(np.int64)


def write_obj(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Writes an ASCII Wavefront .obj atomically (1-based face indices).

    Args:
      path: output file.
      vertices: [V, 3] float.
      faces: [F, 3] int, 0-based.
    """
    vertices, faces = _check_mesh(path, vertices, faces)
    lines = [f"# enhancer-gan mesh: {len(vertices)} vertices, {len(faces)} faces\n"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in faces]
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="ascii") as f:
            f.writelines(lines)


def write_ply(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Writes an ASCII .ply atomically.

    Args:
      path: output file.
      vertices: [V, 3] float.
      faces: [F, 3] int, 0-based.
    """
    vertices, faces = _check_mesh(path, vertices, faces)
    header = (
        "ply\nformat ascii 1.0\ncomment enhancer-gan mesh\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    lines = [header]
    lines += [f"{x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in vertices]
    lines += [f"3 {a} {b} {c}\n" for a, b, c in faces]
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="ascii") as f:
            f.writelines(lines)


def mesh_summary(name: str, grids, max_outputs: int = 4, threshold: float = 0.5) -> int:
    """Writes the first grids' marching-cubes meshes as TensorBoard mesh summaries.

    Call it under a default writer with a default step (`writer.as_default(step=)`).
    Each shape is its own summary, `<name>/<i>` (TensorBoard groups a mesh's
    vertex and face tensors under `<name>/<i>_VERTEX` and `_FACE`), because
    shapes differ in vertex count. Vertices are centred on the origin (the unit
    cube shifted by -0.5), axes (x, y up, z). An empty grid writes nothing.

    Args:
      name: summary name prefix, e.g. 'samples/meshes'.
      grids: [N, D, D, D] occupancy (bool or float in [0, 1]).
      max_outputs: at most this many shapes, the first ones.
      threshold: iso-level, as in `voxels_to_mesh`.

    Returns:
      How many meshes were written.
    """
    from tensorboard.plugins.mesh import summary_v2

    written = 0
    for i, grid in enumerate(list(grids)[:max_outputs]):
        vertices, faces = voxels_to_mesh(np.asarray(grid), threshold)
        if not len(faces):
            continue
        summary_v2.mesh(
            f"{name}/{i}",
            vertices=(vertices - 0.5)[None],
            faces=faces.astype(np.int32)[None],
        )
        written += 1
    return written
