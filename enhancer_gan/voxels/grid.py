"""Resolution changes and re-framing of voxel grids (project order x, y, z).

The transforms into the canonical frame (`to_canonical`) live here, one per
data source, each pinned by a test against real data: the canonical frame is
ShapeNetVox32's (3D-R2N2's), y up, object centred in its grid, and a chair's
backrest towards -x (it faces +x). This module does not read files; it works
on grids already decoded by `binvox.py`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import numpy as np

from enhancer_gan.errors import ConfigError


def _check_cubic(grid: np.ndarray) -> None:
    if grid.ndim != 3 or len(set(grid.shape)) != 1:
        raise ValueError(f"expected a cubic [D, D, D] grid, got shape {grid.shape}")


def downsample(grid: np.ndarray, target: int) -> np.ndarray:
    """Max-pools a cubic grid to side `target` (any occupied voxel wins).

    Args:
      grid: [D, D, D] bool/uint8, D a multiple of `target`.
      target: the new side, e.g. 64 or 32; never larger than D (this function
        does not upsample).

    Returns:
      [target]*3 bool.
    """
    grid = np.asarray(grid)
    target = operator.index(target)
    _check_cubic(grid)
    dim = grid.shape[0]
    if target <= 0:
        raise ValueError(f"target side must be positive, got {target}")
    if target > dim:
        raise ValueError(f"cannot pool a {dim}^3 grid to {target}^3: that would be an upsample")
    if dim == target:
        return grid.astype(bool, copy=False)
    if dim % target:
        raise ValueError(f"cannot pool a {dim}^3 grid to {target}^3: {dim} is not a multiple")
    f = dim // target
    return grid.reshape(target, f, target, f, target, f).any(axis=(1, 3, 5))


def occupied_box(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Returns (lo, hi) inclusive index bounds of the occupied voxels, or None."""
    idx = np.argwhere(grid)
    if idx.size == 0:
        return None
    return idx.min(axis=0), idx.max(axis=0)


def center_occupied(grid: np.ndarray) -> np.ndarray:
    """Shifts the occupied voxels so their bounding box sits in the grid's middle.

    Voxels never leave the grid (the shift is at most the free margin). When
    the free margin along an axis is odd, the extra voxel goes to the high
    side, so the result does not depend on where the box started.
    """
    box = occupied_box(grid)
    if box is None:
        return grid.copy()
    lo, hi = box
    dim = np.array(grid.shape)
    shift = ((dim - 1 - hi) - lo) // 2
    out = np.zeros_like(grid)
    src = tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi))
    dst = tuple(slice(int(a + s), int(b + s) + 1) for a, b, s in zip(lo, hi, shift))
    out[dst] = grid[src]
    return out


def shapenet_v2_to_canonical(grid: np.ndarray) -> np.ndarray:
    """Brings a ShapeNetCore v2 `model_normalized.solid.binvox` grid into the canonical frame.

    The v2 grid (as `read_binvox` returns it) has its object at the grid's
    minimum corner and faces -z (a chair's backrest is at +z); ShapeNetVox32
    centres the object and faces +x. So: a quarter turn about the up axis,
    new[x, y, z] = old[z, y, D - 1 - x] (front -z goes to +x; a rotation,
    not a mirror), then centring. Chosen by IoU against ShapeNetVox32 for
    chair 1a6f615e8b1b5ae4dbbc9440457e303e over all 8 axis swaps/flips
    (0.85 for this one; <= 0.39 for the others except its own mirror image,
    0.85 too because the chair is left-right symmetric) and checked on the
    backrest side of all 8 sample chairs; see tests/test_grid.py.

    Centre at full resolution before any pooling: centring after pooling
    128 -> 32 snaps the shift to whole coarse voxels and loses IoU
    (0.79 instead of 0.85 for that chair).

    Args:
      grid: [D, D, D] bool, project order, as read from the file.

    Returns:
      [D, D, D] bool in the canonical frame.
    """
    grid = np.asarray(grid)
    _check_cubic(grid)
    turned = grid.transpose(2, 1, 0)[::-1]
    return center_occupied(np.ascontiguousarray(turned))


# The same quarter turn for points (meshes): canonical = V2_TO_CANONICAL @ v2,
# (x, y, z) -> (-z, y, x). `shapenet_v2_to_canonical`'s voxel map
# new[x, y, z] = old[z, y, D - 1 - x] is this rotation applied to voxel
# centres about the grid's middle (tests/test_grid.py checks they agree).
V2_TO_CANONICAL = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def r2n2_to_canonical(grid: np.ndarray) -> np.ndarray:
    """ShapeNetVox32 (3D-R2N2) grids are the canonical frame: the identity.

    They need no centring: on every sample chair both margins are equal on
    every axis (`center_occupied` leaves them unchanged, a tested fact).
    Re-centring anyway would be wrong for grids written in this layout by
    other tools (the synthetic data set) whose views were rendered from the
    grid as written: a one-voxel shift would misalign grid and views.

    Args:
      grid: [D, D, D] bool.

    Returns:
      the same [D, D, D] grid.
    """
    grid = np.asarray(grid)
    _check_cubic(grid)
    return grid


def _identity(grid: np.ndarray) -> np.ndarray:
    grid = np.asarray(grid)
    _check_cubic(grid)
    return grid


# Source name (ShapeRecord.source) -> transform into the canonical frame.
CANONICAL_TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "r2n2": r2n2_to_canonical,
    "shapenet_v2": shapenet_v2_to_canonical,
    # Procedural shapes are generated in the canonical frame.
    "synthetic": _identity,
}


def to_canonical(grid: np.ndarray, source: str) -> np.ndarray:
    """Applies the transform of data source `source` (see CANONICAL_TRANSFORMS).

    Args:
      grid: [D, D, D] bool as read from the source's files.
      source: 'r2n2', 'shapenet_v2' or 'synthetic'.

    Returns:
      [D, D, D] bool in the canonical frame.

    Raises:
      ConfigError: unknown source.
    """
    try:
        transform = CANONICAL_TRANSFORMS[source]
    except (KeyError, TypeError):
        raise ConfigError(
            f"no canonical-frame transform for source {source!r}; "
            f"known: {', '.join(sorted(CANONICAL_TRANSFORMS))}"
        ) from None
    return transform(grid)
