"""Voxel archives: ready-made voxelized data sets in one .npz file.

Keys X_train [N, R, R, R], y_train [N], X_test [M, R, R, R], y_test [M]
(optionally class_names), such as the shared `modelnet10_vox32.npz` or the
common 3D ShapeNets / VoxNet ModelNet10 release (30^3: 24^3 objects padded by
3 voxels each side). `load_archive` reads and checks one; `fit_archive_grids`
brings its grids to the model's resolution (the only place that happens).

Frames. The shared archive is NOT in the project frame: matching its
bathtub grids against our voxelization of the same meshes under all 48 axis
permutations/flips finds it stored in the meshes' own frame, grid[x, y, z]
with z up (the best match keeps the mesh axes as they are, IoU up to 0.79;
every permutation that moves z off the up axis scores lower). `load_archive`
therefore applies `archive_to_canonical` unless asked not to. The archive's
rows are not in file-name order (bathtub_0001 matches row 96 best).

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from enhancer_gan.data.modelnet_classes import MODELNET10_CLASSES, MODELNET40_CLASSES, SPLITS
from enhancer_gan.data.npz import NpzReader
from enhancer_gan.data.records import ShapeRecord
from enhancer_gan.errors import ConfigError, DataError
from enhancer_gan.voxels.grid import downsample

# The sides the model trains at (ModelConfig.resolution).
MODEL_RESOLUTIONS = (32, 64)


@dataclasses.dataclass(frozen=True)
class VoxelArchive:
    """A voxelized data set held in memory.

    Attributes:
      x_train: [N, R, R, R] bool, project frame unless loaded with
        `canonical=False`.
      y_train: [N] int64 labels indexing `class_names`.
      x_test: [M, R, R, R] bool.
      y_test: [M] int64.
      class_names: class names in label order.
      path: the file it came from.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    path: str = ""

    @property
    def resolution(self) -> int:
        return int(self.x_train.shape[1])


def archive_to_canonical(grid: np.ndarray) -> np.ndarray:
    """Turns archive grids (ModelNet's own frame, z up) into the project frame.

    The same rotation as `voxelize.to_y_up(..., 'z')`: project (x, y, z) =
    archive (x, z, -y), i.e. canonical[i, j, k] = archive[i, R - 1 - k, j].

    Args:
      grid: [..., R, R, R], the last three axes an archive grid.

    Returns:
      [..., R, R, R], same dtype (a view where numpy allows).
    """
    grid = np.asarray(grid)
    return np.flip(np.swapaxes(grid, -2, -1), axis=-1)


def _read_grids(npz: NpzReader, key: str, canonical: bool) -> np.ndarray:
    """Streams one [N, R, R, R] 0/1 array out of an archive as bool, block by block.

    Reading in blocks keeps memory at the size of the bool result; np.load
    would first materialise the stored dtype (int32 in the shared archive,
    four times larger).
    """
    header = npz.header(key)
    shape, dtype = header.shape, header.dtype
    if dtype.kind not in "biuf":
        raise DataError(npz.path, f"{key}: dtype {dtype} is not a 0/1 occupancy type")
    if len(shape) != 4 or len(set(shape[1:])) != 1 or shape[1] < 1:
        raise DataError(npz.path, f"{key}: expected [N, R, R, R] cubic grids, got shape {shape}")
    out = np.empty(shape, dtype=bool)
    for start, chunk in npz.read_rows(key):
        binary = (chunk == 0) | (chunk == 1)
        if not binary.all():
            row = start + int(np.flatnonzero(~binary.reshape(len(chunk), -1).all(axis=1))[0])
            raise DataError(npz.path, f"{key}: row {row} holds values other than 0 and 1")
        out[start : start + len(chunk)] = archive_to_canonical(chunk) if canonical else chunk != 0
    return out


def _check_labels(labels: np.ndarray, n: int, key: str, name: str) -> np.ndarray:
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(
            name, f"{key}: expected 1-D integer labels, got {labels.dtype} {labels.shape}"
        )
    if len(labels) != n:
        raise DataError(name, f"{key}: {len(labels)} labels for {n} grids")
    return labels.astype(np.int64)


def _archive_class_names(names: np.ndarray | None, labels: np.ndarray, name: str):
    if names is not None:
        if names.ndim != 1 or names.dtype.kind != "U" or len(names) == 0:
            raise DataError(name, "class_names: expected a 1-D array of strings")
        return tuple(str(s) for s in names)
    top = int(labels.max()) if labels.size else 0
    if top < len(MODELNET10_CLASSES):
        return MODELNET10_CLASSES
    if top < len(MODELNET40_CLASSES):
        return MODELNET40_CLASSES
    raise DataError(name, f"label {top} has no ModelNet class and the file has no class_names")


def load_archive(path: str | os.PathLike, canonical: bool = True) -> VoxelArchive:
    """Reads a voxel archive such as the shared `modelnet10_vox32.npz`.

    Keys X_train [N, R, R, R], y_train [N], X_test [M, R, R, R], y_test [M];
    grids of any 0/1 dtype, labels integers. An optional `class_names` array
    of strings names the labels; without it labels 0-9 are ModelNet10's
    classes and larger labels ModelNet40's (alphabetical, as in the archive).

    Args:
      path: the .npz file.
      canonical: turn the grids into the project frame (y up) with
        `archive_to_canonical`; False keeps the file's z-up frame.

    Returns:
      a VoxelArchive with bool grids and int64 labels.

    Raises:
      DataError: not a zip, truncated or corrupt, pickled object arrays,
        missing keys, shapes that disagree, values other than 0/1, labels out
        of range. The message names the file.
    """
    name = os.fspath(path)
    keys = ("X_train", "y_train", "X_test", "y_test")
    with NpzReader(name, "voxel archive") as npz:
        missing = npz.missing(keys)
        if missing:
            raise DataError(
                name,
                f"missing arrays {', '.join(missing)}; the file has "
                f"{', '.join(npz.keys) or 'none'}",
            )
        x_train = _read_grids(npz, "X_train", canonical)
        x_test = _read_grids(npz, "X_test", canonical)
        y_train = npz.read("y_train")
        y_test = npz.read("y_test")
        names = npz.read("class_names") if "class_names" in npz.keys else None
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            name, f"X_train grids {x_train.shape[1:]} and X_test grids {x_test.shape[1:]} differ"
        )
    y_train = _check_labels(y_train, len(x_train), "y_train", name)
    y_test = _check_labels(y_test, len(x_test), "y_test", name)
    class_names = _archive_class_names(names, np.concatenate([y_train, y_test]), name)
    for key, labels in (("y_train", y_train), ("y_test", y_test)):
        if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise DataError(
                name,
                f"{key}: labels outside 0..{len(class_names) - 1} ({len(class_names)} classes)",
            )
    return VoxelArchive(x_train, y_train, x_test, y_test, class_names, path=name)


def archive_records(archive: VoxelArchive, split: str) -> list[ShapeRecord]:
    """One ShapeRecord per archive row of a split.

    Args:
      archive: a loaded VoxelArchive.
      split: 'train' or 'test'.

    Returns:
      records with model_id '<split>_<row, 4 digits, from 0>', the class name
      as category, source 'archive', voxel_path '' and archive_index = row.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    labels = archive.y_train if split == "train" else archive.y_test
    return [
        ShapeRecord(
            model_id=f"{split}_{i:04d}",
            category=archive.class_names[label],
            voxel_path="",
            label=int(label),
            source="archive",
            archive_index=i,
        )
        for i, label in enumerate(labels.tolist())
    ]


def _reachable(side: int, resolution: int) -> str:
    """How a side-`side` archive grid becomes side `resolution`: 'same', 'pad', 'pool' or ''."""
    if side == resolution:
        return "same"
    if resolution - side == 2:
        return "pad"
    if side > resolution and side % resolution == 0:
        return "pool"
    return ""


def fit_archive_grids(grids: np.ndarray, resolution: int, path: str = "", log=None) -> np.ndarray:
    """Brings archive grids to the model's resolution, in one documented way per side.

      * same side: as they are;
      * two voxels short (30 -> 32): one voxel of zero padding on each side,
        the 3D ShapeNets convention (its 24^3 objects are padded by 3 to 30;
        padding by one more keeps them centred);
      * a multiple of the resolution (64 -> 32, 96 -> 32, 128 -> 64): max-pooling
        (`grid.downsample`, any occupied voxel wins);
      * anything else: a ConfigError naming a --resolution that would work,
        or saying that none does.

    Args:
      grids: [N, S, S, S] bool.
      resolution: R.
      path: the archive, for messages.
      log: one line saying what was done (None: silent).

    Returns:
      [N, R, R, R] bool.
    """
    side = int(grids.shape[1])
    how = _reachable(side, resolution)
    if how == "same":
        return grids
    if not how:
        works = [r for r in MODEL_RESOLUTIONS if _reachable(side, r)]
        fix = (
            f"use --resolution={works[0]}"
            if works
            else "re-voxelize the meshes at 32 or 64 (tools/prepare_modelnet.py --resolution=64)"
        )
        raise ConfigError(
            f"{path}: archive grids are {side}^3 and the model needs {resolution}^3, which "
            f"neither padding (30 -> 32) nor max-pooling (a multiple) reaches; {fix}"
        )
    if how == "pad":
        out = np.pad(grids, [(0, 0)] + [(1, 1)] * 3)
        if log:
            log(f"{path}: {side}^3 grids padded by one voxel each side to {resolution}^3")
        return out
    out = np.zeros((len(grids),) + (resolution,) * 3, dtype=bool)
    for i, grid in enumerate(grids):
        out[i] = downsample(grid, resolution)
    if log:
        log(f"{path}: {side}^3 grids max-pooled to {resolution}^3")
    return out
