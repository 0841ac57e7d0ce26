"""Voxel grids as packed bits: 8 voxels per byte, the project's in-memory and cache form.

The one implementation of packing and unpacking (the tf.data pipeline,
the grid caches and the evaluation code all use it). No TensorFlow here, so
worker processes that decode or voxelize grids stay light.
"""

from __future__ import annotations

import numpy as np


def pack_grids(grids: np.ndarray) -> np.ndarray:
    """[N, R, R, R] bool -> [N, ceil(R^3 / 8)] uint8 (project order x, y, z, big-endian bits)."""
    grids = np.asarray(grids, dtype=bool)
    return np.packbits(grids.reshape(grids.shape[0], -1), axis=1)


def unpack_grids(packed: np.ndarray, resolution: int) -> np.ndarray:
    """Inverse of `pack_grids`: [..., ceil(R^3 / 8)] uint8 -> [..., R, R, R] bool.

    Exact for any R (the padding bits of R^3 not a multiple of 8 are dropped);
    the result is a view of the unpacked bits, no second copy.
    """
    packed = np.asarray(packed, dtype=np.uint8)
    flat = np.unpackbits(packed, axis=-1, count=resolution**3)
    return flat.reshape(*packed.shape[:-1], resolution, resolution, resolution).view(bool)
