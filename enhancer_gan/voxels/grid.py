"""Resolution changes and re-framing of voxel grids (project order x, y, z)."""

from __future__ import annotations

import numpy as np


def downsample(grid: np.ndarray, target: int) -> np.ndarray:
    """Max-pools a cubic grid to side `target` (any occupied voxel wins).

    Args:
      grid: [D, D, D] bool/uint8, D a multiple of `target`.
      target: the new side, e.g. 64 or 32.

    Returns:
      [target]*3 bool.
    """
    grid = np.asarray(grid)
    dim = grid.shape[0]
    if grid.ndim != 3 or len(set(grid.shape)) != 1:
        raise ValueError(f"expected a cubic [D, D, D] grid, got shape {grid.shape}")
    if dim == target:
        return grid.astype(bool, copy=False)
    if target <= 0 or dim % target:
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

    Voxels never leave the grid (the shift is at most the free margin).
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
