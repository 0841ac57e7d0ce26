"""Triangle mesh -> solid voxel grid in the project frame (x, y, z, y up).

The steps (docs/DESIGN.md#mesh-to-voxels):

  1. rotate the mesh from its up axis to y (ModelNet is z up: a proper
     rotation of -90 degrees about x, (x, y, z) -> (x, z, -y), the inverse of
     the turn Blender applies when it imports a y-up .obj);
  2. normalise: centre the bounding box in the grid and scale its longest
     side to R - 1 voxels, so the shape touches the middle of the first and
     last voxel along that axis (a margin of half a voxel on each side, which
     keeps rounding from pushing surface points out of the grid). `span=R`
     instead fills the grid edge to edge along the longest side, the
     placement of binvox files (ShapeNetCore v2's `model_normalized.*.binvox`
     span their models' longest side exactly: header `scale` = that side);
  3. voxelize the surface: every triangle is cut into a barycentric grid of
     sub-triangles with edges of at most half a voxel, and every voxel that
     holds a grid point is marked. Any surface point is then within 0.29
     voxel of a marked sample of its own triangle, which is closer than any
     face-to-face step between two voxel centres can pass, so the marked
     surface has no 6-connected leaks;
  4. fill the inside (`scipy.ndimage.binary_fill_holes`, a flood fill of the
     background from the grid's border). Meshes that are not closed keep
     their open cavities empty (a bathtub's basin stays a basin).

This module does not read files (`enhancer_gan.data.off` does) and does not
cache grids (`enhancer_gan.data.modelnet` does).
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from enhancer_gan.errors import ConfigError, MeshError

# Proper rotations (det +1) taking each up axis of a mesh to the project's y.
UP_AXIS_ROTATIONS = {
    "y": np.eye(3),
    # (x, y, z) -> (x, z, -y): new y = old z.
    "z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),
    # (x, y, z) -> (-y, x, z): new y = old x.
    "x": np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
}

# Sub-triangle edges of at most this many voxels (see the module docstring).
_MAX_SAMPLE_SPACING = 0.5
# Upper bound on sample points held at once, to bound memory on huge faces.
_CHUNK_POINTS = 1 << 21


def to_y_up(vertices: np.ndarray, up_axis: str = "z") -> np.ndarray:
    """Rotates vertices so that `up_axis` becomes the project's y (up).

    Args:
      vertices: [V, 3] float.
      up_axis: 'x', 'y' or 'z', the mesh's up axis (ModelNet: 'z').

    Returns:
      [V, 3] float64.
    """
    if up_axis not in UP_AXIS_ROTATIONS:
        raise ConfigError(f"up_axis must be one of {sorted(UP_AXIS_ROTATIONS)}, got {up_axis!r}")
    return np.asarray(vertices, dtype=np.float64) @ UP_AXIS_ROTATIONS[up_axis].T


def normalize_to_grid(
    vertices: np.ndarray, resolution: int, name=None, span: float | None = None
) -> np.ndarray:
    """Maps vertices into grid coordinates [0, R]^3, bounding box centred.

    The longest side of the bounding box spans [0.5, R - 0.5] (or `span`
    voxels about the centre); a point at coordinate c lies in voxel floor(c).

    Args:
      vertices: [V, 3] float64, V >= 1, finite.
      resolution: R.
      name: file name for error messages.
      span: voxels the longest side spans, in (0, R]; None = R - 1.

    Returns:
      [V, 3] float64 grid coordinates.

    Raises:
      MeshError: a vertex is NaN or infinite, the bounding box has no extent
        (all vertices equal) or its size is not a finite number.
    """
    if not np.isfinite(vertices).all():
        raise MeshError(name, "cannot voxelize: vertices are not all finite")
    lo = vertices.min(axis=0)
    hi = vertices.max(axis=0)
    with np.errstate(over="ignore", invalid="ignore"):
        extent = hi - lo
        longest = float(extent.max())
        centre = (lo + hi) / 2
    if not np.isfinite(longest) or not np.isfinite(centre).all():
        raise MeshError(name, "cannot voxelize: the mesh's bounding box is too large to represent")
    if longest <= 0 or longest < 1e-12 * max(1.0, float(np.abs(centre).max())):
        raise MeshError(name, "cannot voxelize: all vertices are at the same point")
    scale = (resolution - 1 if span is None else span) / longest
    return (vertices - centre) * scale + resolution / 2


def surface_voxels(tri: np.ndarray, resolution: int) -> np.ndarray:
    """Marks the voxels that the triangles pass through.

    Args:
      tri: [F, 3 corners, 3 coordinates] float64, in grid coordinates.
      resolution: R.

    Returns:
      [R, R, R] bool surface grid.
    """
    grid = np.zeros((resolution,) * 3, dtype=bool)
    edges = np.stack([tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 1], tri[:, 0] - tri[:, 2]], axis=1)
    longest = np.sqrt((edges**2).sum(axis=2)).max(axis=1)
    splits = np.maximum(1, np.ceil(longest / _MAX_SAMPLE_SPACING)).astype(np.int64)
    for n in np.unique(splits).tolist():
        group = tri[splits == n]
        # Barycentric grid (i, j) / n with i + j <= n: (n + 1)(n + 2) / 2 points,
        # as corner + steps along two edges, so that a triangle lying in a
        # plane x = c gives points with exactly x = c (no 1 - 1e-16 rounding
        # into the neighbouring voxel layer).
        i, j = np.triu_indices(n + 1)
        weights = np.stack([i / n, (j - i) / n], axis=1)  # [K, 2]
        per_chunk = max(1, _CHUNK_POINTS // len(weights))
        for start in range(0, len(group), per_chunk):
            part = group[start : start + per_chunk]
            steps = np.stack([part[:, 1] - part[:, 0], part[:, 2] - part[:, 0]], axis=1)
            points = part[:, None, 0] + np.einsum("ke,fed->fkd", weights, steps)
            index = np.clip(np.floor(points.reshape(-1, 3)), 0, resolution - 1).astype(np.intp)
            grid[index[:, 0], index[:, 1], index[:, 2]] = True
    return grid


def voxelize_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    resolution: int,
    up_axis: str = "z",
    fill: bool = True,
    name: str | None = None,
    span: float | None = None,
) -> np.ndarray:
    """Voxelizes a triangle mesh into a solid grid in the project frame.

    Args:
      vertices: [V, 3] float, finite, in the mesh's own frame.
      faces: [F, 3] int, triangles indexing `vertices`.
      resolution: R, the grid side (32, 64 or any size >= 2).
      up_axis: the mesh's up axis, 'z' for ModelNet, 'y' for meshes already
        in the ShapeNet frame.
      fill: fill the inside (True, the paper's solid grids) or return only the
        surface voxels.
      name: the mesh's file name, for error messages.
      span: voxels the longest side of the bounding box spans, in (0, R];
        None = R - 1 (half a voxel of margin each side); R = edge to edge,
        as binvox places a mesh (surface points on the far faces fall in
        the last voxel).

    Returns:
      [R, R, R] bool, grid[x, y, z] with y up; the bounding box is centred and
      its longest side spans the grid.

    Raises:
      MeshError: degenerate meshes: no faces, all vertices at one point, or
        zero total area; or arrays of the wrong shape or with invalid values.
    """
    if int(resolution) != resolution or resolution < 2:
        raise ConfigError(f"resolution must be an integer >= 2, got {resolution}")
    resolution = int(resolution)
    if span is not None and not 0 < span <= resolution:
        raise ConfigError(f"span must be in (0, {resolution}], got {span}")
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise MeshError(name, f"cannot voxelize: vertices must be [V, 3], got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise MeshError(name, f"cannot voxelize: faces must be [F, 3], got {faces.shape}")
    if len(faces) == 0:
        raise MeshError(name, "cannot voxelize: the mesh has no faces")
    if faces.dtype.kind not in "iu":
        raise MeshError(name, f"cannot voxelize: face indices must be integers, got {faces.dtype}")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise MeshError(name, f"cannot voxelize: face indices outside 0..{len(vertices) - 1}")
    if not np.isfinite(vertices).all():
        raise MeshError(name, "cannot voxelize: vertices are not all finite")

    # Only vertices that faces use decide the box; stray points would shrink
    # the shape inside the grid.
    used = np.unique(faces)
    points = normalize_to_grid(to_y_up(vertices[used], up_axis), resolution, name, span)
    remap = np.zeros(len(vertices), dtype=np.int64)
    remap[used] = np.arange(len(used))
    tri = points[remap[faces]]  # [F, 3, 3]

    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = 0.5 * float(np.sqrt((cross**2).sum(axis=1)).sum())
    # In grid units a real surface has an area of order R^2; 1e-9 is rounding.
    if not area > 1e-9:
        raise MeshError(name, "cannot voxelize: the mesh has zero surface area")

    grid = surface_voxels(tri, resolution)
    if fill:
        grid = scipy.ndimage.binary_fill_holes(grid)
    return grid
