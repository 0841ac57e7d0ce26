"""Reading and writing .binvox voxel files (dense, any cubic size).

Format (https://www.patrickmin.com/binvox/binvox.html): an ASCII header
`#binvox 1`, `dim D D D`, `translate tx ty tz`, `scale s`, `data`, then pairs
of bytes (value, run length) that run-length encode D^3 voxels stored in
(x, z, y) order with y fastest. This module returns grids in the project's
(x, y, z) order (see `enhancer_gan.voxels`) and never lets a malformed file
through: every problem raises `BinvoxError` naming the file.

It does not resample or re-orient grids; that is `grid.py`'s job.
"""

from __future__ import annotations

import dataclasses
import io
import os
from typing import BinaryIO

import numpy as np

from enhancer_gan.errors import BinvoxError

# A header claiming a larger grid is refused before any allocation: 1024^3
# voxels is already 1 GiB as bool, far past any data set this project reads.
MAX_DIM = 1024
_MAX_HEADER_LINES = 16
_MAX_HEADER_LINE_BYTES = 256


@dataclasses.dataclass(frozen=True)
class VoxelFile:
    """A decoded binvox file.

    Attributes:
      grid: [D, D, D] bool, axes (x, y, z), y up.
      translate: (3,) float64, the file's translate (world position of the
        grid's minimum corner).
      scale: float, the side length of the whole grid in world units.
    """

    grid: np.ndarray
    translate: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0

    @property
    def dim(self) -> int:
        return int(self.grid.shape[0])


def _readline(stream: BinaryIO, name) -> str:
    line = stream.readline(_MAX_HEADER_LINE_BYTES + 1)
    if not line:
        raise BinvoxError(name, "truncated header (file ends before 'data')")
    if len(line) > _MAX_HEADER_LINE_BYTES:
        raise BinvoxError(name, "header line too long; not a binvox file?")
    try:
        return line.decode("ascii").strip()
    except UnicodeDecodeError:
        raise BinvoxError(name, "header contains non-ASCII bytes; not a binvox file?") from None


def _parse_header(stream: BinaryIO, name) -> tuple[int, tuple[float, float, float], float]:
    magic = _readline(stream, name)
    if magic.split() != ["#binvox", "1"]:
        raise BinvoxError(name, f"wrong magic {magic[:20]!r}, expected '#binvox 1'")
    dims = None
    translate = (0.0, 0.0, 0.0)
    scale = 1.0
    for _ in range(_MAX_HEADER_LINES):
        line = _readline(stream, name)
        if not line:
            continue
        key, _, rest = line.partition(" ")
        values = rest.split()
        if key == "data":
            break
        if key not in ("dim", "translate", "scale"):
            raise BinvoxError(name, f"unknown header line {line[:40]!r}")
        try:
            if key == "dim":
                dims = [int(v) for v in values]
            elif key == "translate":
                translate = tuple(float(v) for v in values)
                if len(translate) != 3:
                    raise ValueError
            else:
                (scale,) = (float(v) for v in values)
        except ValueError:
            raise BinvoxError(name, f"malformed header line {line[:40]!r}") from None
    else:
        raise BinvoxError(name, "no 'data' line within the header")
    if dims is None:
        raise BinvoxError(name, "header has no 'dim' line")
    if len(dims) != 3 or len(set(dims)) != 1:
        raise BinvoxError(name, f"grid must be cubic, header says dim {' '.join(map(str, dims))}")
    dim = dims[0]
    if not 1 <= dim <= MAX_DIM:
        raise BinvoxError(name, f"dim {dim} outside the supported range 1..{MAX_DIM}")
    if not all(np.isfinite(translate)) or not np.isfinite(scale) or scale <= 0:
        raise BinvoxError(name, "translate must be finite and scale a positive number")
    return dim, translate, scale


def decode_runs(data: bytes, dim: int, name=None) -> np.ndarray:
    """Decodes the run-length body of a binvox file.

    Args:
      data: the bytes after the 'data' line.
      dim: the grid side D.
      name: file name for error messages.

    Returns:
      [D, D, D] bool grid in the project's (x, y, z) order.
    """
    if len(data) % 2:
        raise BinvoxError(name, "truncated data: odd number of bytes in the run-length body")
    pairs = np.frombuffer(data, dtype=np.uint8).reshape(-1, 2)
    values, counts = pairs[:, 0], pairs[:, 1].astype(np.int64)
    if values.size and values.max() > 1:
        bad = int(values[values > 1][0])
        raise BinvoxError(name, f"voxel value {bad} in data; only 0 and 1 are allowed")
    total = int(counts.sum())
    expected = dim**3
    if total != expected:
        problem = "truncated data" if total < expected else "too much data"
        raise BinvoxError(
            name, f"{problem}: run lengths add up to {total} voxels, dim {dim} needs {expected}"
        )
    flat = np.repeat(values.astype(bool), counts)
    # File order is (x, z, y) with y fastest; the project's order is (x, y, z).
    return np.ascontiguousarray(flat.reshape(dim, dim, dim).transpose(0, 2, 1))


def encode_runs(grid: np.ndarray) -> bytes:
    """Run-length encodes a [D, D, D] grid (project order) as binvox data."""
    flat = np.ascontiguousarray(np.asarray(grid, dtype=bool).transpose(0, 2, 1)).reshape(-1)
    flat = flat.astype(np.uint8)
    if flat.size == 0:
        return b""
    change = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [flat.size]]))
    values = flat[starts]
    # A run longer than 255 is split into pieces of at most 255.
    pieces = (lengths + 254) // 255
    out_values = np.repeat(values, pieces)
    out_lengths = np.full(int(pieces.sum()), 255, dtype=np.int64)
    last = np.cumsum(pieces) - 1
    out_lengths[last] = lengths - 255 * (pieces - 1)
    return np.stack([out_values, out_lengths.astype(np.uint8)], axis=1).tobytes()


def read_binvox_bytes(raw: bytes, name=None) -> VoxelFile:
    """Decodes a whole binvox file held in memory."""
    stream = io.BytesIO(raw)
    dim, translate, scale = _parse_header(stream, name)
    grid = decode_runs(stream.read(), dim, name)
    return VoxelFile(grid=grid, translate=translate, scale=scale)


def read_binvox(path: str | os.PathLike) -> VoxelFile:
    """Reads a .binvox file.

    Raises:
      BinvoxError: the file is missing, malformed or truncated (the message
        names the file).
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise BinvoxError(path, f"cannot read file: {e.strerror or e}") from None
    return read_binvox_bytes(raw, name=os.fspath(path))


def binvox_bytes(grid: np.ndarray, translate=(0.0, 0.0, 0.0), scale: float = 1.0) -> bytes:
    """Encodes a [D, D, D] grid (project order) as a complete binvox file."""
    grid = np.asarray(grid)
    if grid.ndim != 3 or len(set(grid.shape)) != 1:
        raise ValueError(f"binvox needs a cubic [D, D, D] grid, got shape {grid.shape}")
    dim = grid.shape[0]
    if not 1 <= dim <= MAX_DIM:
        raise ValueError(f"binvox grids must have 1 <= dim <= {MAX_DIM}, got {dim}")
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"binvox scale must be a positive number, got {scale}")
    header = (
        f"#binvox 1\ndim {dim} {dim} {dim}\n"
        f"translate {translate[0]:.6g} {translate[1]:.6g} {translate[2]:.6g}\n"
        f"scale {scale:.6g}\ndata\n"
    )
    return header.encode("ascii") + encode_runs(grid > 0)


def write_binvox(
    path: str | os.PathLike, grid: np.ndarray, translate=(0.0, 0.0, 0.0), scale: float = 1.0
) -> None:
    """Writes a grid atomically (temporary name, then rename)."""
    from enhancer_gan.io_utils import atomic_write_bytes

    atomic_write_bytes(path, binvox_bytes(grid, translate, scale))
