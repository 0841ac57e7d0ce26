"""The ModelNet voxel cache: one split's meshes voxelized once into packed bits.

`voxelize_split` reads and voxelizes the .off meshes of a split (optionally in
worker processes), leaves out (and records) meshes that cannot be read, and
writes one compressed .npz: the packed grids (`packing.pack_grids`) plus
what they are (`VoxelCacheMeta`). `load_voxel_cache` reads and validates it.
`tools/prepare_modelnet.py` is the command; `datasets.load_shapes` builds
and reads the same caches when training on a ModelNet tree.

Nothing here imports TensorFlow (worker processes stay light).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import math
import multiprocessing
import os
from collections.abc import Sequence

import numpy as np

from enhancer_gan.data.modelnet_classes import (
    MODELNET10_CLASSES,
    MODELNET40_CLASSES,
    MODELNET_UP_AXIS,
)
from enhancer_gan.data.npz import read_npz
from enhancer_gan.data.off import read_off
from enhancer_gan.data.packing import pack_grids
from enhancer_gan.data.records import ShapeRecord
from enhancer_gan.errors import ConfigError, DataError, MeshError
from enhancer_gan.io_utils import OutputExistsError, atomic_path
from enhancer_gan.voxels.voxelize import voxelize_mesh

# Bumped when the cache layout changes; older caches are then refused.
CACHE_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class VoxelCacheMeta:
    """What a voxel cache holds besides the bits.

    Attributes:
      model_ids: [N] model ids, in the order of the packed rows.
      categories: [N] class names.
      labels: [N] int64 labels indexing `class_names`.
      voxel_paths: [N] the meshes the grids were made from.
      class_names: the label space.
      resolution: R.
      up_axis: the meshes' up axis used when voxelizing.
      failures: (model_id, category, path, problem) of the meshes that could
        not be read or voxelized and were left out.
    """

    model_ids: tuple[str, ...]
    categories: tuple[str, ...]
    labels: np.ndarray
    voxel_paths: tuple[str, ...]
    class_names: tuple[str, ...]
    resolution: int
    up_axis: str
    failures: tuple[tuple[str, str, str, str], ...] = ()


def cache_filename(split: str, resolution: int) -> str:
    """The cache file name that `tools/prepare_modelnet.py` writes for a split."""
    return f"modelnet_{split}_{resolution}.npz"


def _voxelize_file(path: str, resolution: int, up_axis: str) -> tuple[np.ndarray | None, str]:
    """One mesh -> (packed grid, '') or (None, the problem); runs in workers."""
    try:
        vertices, faces = read_off(path)
        grid = voxelize_mesh(vertices, faces, resolution, up_axis, name=path)
    except MeshError as e:
        return None, e.problem
    return pack_grids(grid[None])[0], ""


def _infer_class_names(records: Sequence[ShapeRecord]) -> tuple[str, ...]:
    pairs = {(r.category, r.label) for r in records}
    for candidate in (MODELNET10_CLASSES, MODELNET40_CLASSES, tuple(sorted({c for c, _ in pairs}))):
        if all(0 <= label < len(candidate) and candidate[label] == c for c, label in pairs):
            return candidate
    raise ConfigError(
        "cannot tell the class list from the records' labels; pass class_names explicitly"
    )


def voxelize_split(
    records: Sequence[ShapeRecord],
    resolution: int,
    cache_path: str | os.PathLike,
    overwrite: bool = False,
    progress: bool = True,
    skip_failures: bool = False,
    class_names: Sequence[str] | None = None,
    up_axis: str = MODELNET_UP_AXIS,
    workers: int = 1,
) -> np.ndarray:
    """Voxelizes a split's meshes once into a packed-bit cache.

    An existing cache made from the same models at the same resolution is
    loaded instead of recomputed; one made from anything else is refused
    unless `overwrite`.

    Args:
      records: ModelNet records (voxel_path an .off file).
      resolution: R.
      cache_path: the .npz to write (atomically).
      overwrite: recompute and replace an existing cache.
      progress: show a tqdm progress bar.
      skip_failures: leave out meshes that cannot be read or voxelized
        (listed in the cache's `failures`) instead of raising.
      class_names: the label space; None infers it (ModelNet10/40 lists, or
        the records' categories).
      up_axis: the meshes' up axis ('z' for ModelNet).
      workers: processes to voxelize in (1 = in this process).

    Returns:
      [N, ceil(R^3 / 8)] uint8 packed grids (np.packbits of the flattened
      [R, R, R] project-frame grid), one row per record in the order of
      `records`, failed meshes left out (their ids: `load_voxel_cache(
      cache_path)[1].failures`).

    Raises:
      MeshError: a mesh failed and `skip_failures` is False.
      OutputExistsError: a different cache exists and `overwrite` is False.
      DataError: no mesh could be voxelized.
    """
    cache_path = os.fspath(cache_path)
    records = list(records)
    keys = _record_keys(records)
    if os.path.exists(cache_path) and not overwrite:
        return _reuse_cache(cache_path, keys, resolution, up_axis, skip_failures)
    class_names = tuple(class_names) if class_names is not None else _infer_class_names(records)
    rows, kept, failures = _voxelize_records(
        records, resolution, up_axis, skip_failures, workers, progress, cache_path
    )
    if not kept:
        raise DataError(cache_path, f"none of the {len(records)} meshes could be voxelized")
    packed = np.stack(rows)
    _write_cache(cache_path, packed, kept, failures, class_names, resolution, up_axis)
    return packed


def _record_keys(records: list[ShapeRecord]) -> list[tuple[str, str]]:
    """(category, model_id) of each record; refuses no records or a repeated key."""
    if not records:
        raise ConfigError("voxelize_split needs at least one record")
    keys = [(r.category, r.model_id) for r in records]
    if len(set(keys)) != len(keys):
        raise ConfigError("records hold the same (category, model_id) twice")
    return keys


def _reuse_cache(
    cache_path: str,
    keys: list[tuple[str, str]],
    resolution: int,
    up_axis: str,
    skip_failures: bool,
) -> np.ndarray:
    """The rows of an existing cache for `keys`, in their order, if it was made from them.

    Raises:
      MeshError: it records a failed mesh and `skip_failures` is False.
      OutputExistsError: it holds other models, resolution or up axis.
    """
    packed, meta = load_voxel_cache(cache_path)
    done = sorted(
        [*zip(meta.categories, meta.model_ids)] + [(c, m) for m, c, _, _ in meta.failures]
    )
    if meta.resolution == resolution and meta.up_axis == up_axis and done == sorted(keys):
        if meta.failures and not skip_failures:
            _, _, path, problem = meta.failures[0]
            raise MeshError(path, problem)
        # Rows in the order of `records`, whatever order the cache was made in.
        row_of = {key: i for i, key in enumerate(zip(meta.categories, meta.model_ids))}
        return packed[[row_of[key] for key in keys if key in row_of]]
    raise OutputExistsError(
        f"{cache_path}: exists and holds other models or another resolution; "
        "pass overwrite=True (--overwrite) to replace it"
    )


def _voxelize_records(records, resolution, up_axis, skip_failures, workers, progress, cache_path):
    """Voxelizes every record's mesh (in `workers` processes when > 1).

    Returns:
      (packed rows, the records they belong to, (model_id, category, path,
      problem) of the meshes that failed), rows in the order of `records`.

    Raises:
      MeshError: the first failed mesh, unless `skip_failures`.
    """
    from tqdm import tqdm

    paths = [r.voxel_path for r in records]
    job = functools.partial(_voxelize_file, resolution=resolution, up_axis=up_axis)
    rows, kept, failures = [], [], []
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(
            tqdm(
                total=len(records),
                desc=f"voxelizing {os.path.basename(cache_path)}",
                disable=not progress,
            )
        )
        if workers > 1:
            # 'spawn': forking a parent that may hold TensorFlow's threads is unsafe.
            pool = concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn")
            )
            # On an error, drop the queued meshes instead of finishing them.
            stack.callback(pool.shutdown, wait=True, cancel_futures=True)
            results = pool.map(job, paths, chunksize=4)
        else:
            results = map(job, paths)
        for record, (row, problem) in zip(records, results):
            bar.update()
            if row is None:
                if not skip_failures:
                    raise MeshError(record.voxel_path, problem)
                failures.append((record.model_id, record.category, record.voxel_path, problem))
                continue
            rows.append(row)
            kept.append(record)
    return rows, kept, failures


def _write_cache(cache_path, packed, kept, failures, class_names, resolution, up_axis) -> None:
    """Writes the cache file atomically (see `load_voxel_cache` for its arrays)."""
    arrays = {
        "format_version": np.int64(CACHE_FORMAT_VERSION),
        "packed": packed,
        "resolution": np.int64(resolution),
        "up_axis": np.array(up_axis),
        "model_ids": np.array([r.model_id for r in kept], dtype=str),
        "categories": np.array([r.category for r in kept], dtype=str),
        "labels": np.array([r.label for r in kept], dtype=np.int64),
        "voxel_paths": np.array([r.voxel_path for r in kept], dtype=str),
        "class_names": np.array(class_names, dtype=str),
        # [K, 4]: model_id, category, path, problem of the meshes left out.
        "failures": np.array(failures, dtype=str).reshape(-1, 4),
    }
    with atomic_path(cache_path) as tmp:
        np.savez_compressed(tmp, **arrays)


def load_voxel_cache(cache_path: str | os.PathLike) -> tuple[np.ndarray, VoxelCacheMeta]:
    """Reads and validates a cache written by `voxelize_split`.

    Returns:
      packed: [N, ceil(R^3 / 8)] uint8.
      meta: a VoxelCacheMeta.

    Raises:
      DataError: missing, not an npz, wrong version, or inconsistent arrays.
    """
    name = os.fspath(cache_path)
    keys = (
        "format_version",
        "packed",
        "resolution",
        "up_axis",
        "model_ids",
        "categories",
        "labels",
        "voxel_paths",
        "class_names",
        "failures",
    )
    a = read_npz(name, keys, "voxel cache")

    def fail(problem):
        raise DataError(name, f"corrupt voxel cache: {problem}")

    version = a["format_version"]
    if version.shape != () or version.dtype.kind not in "iu" or version != CACHE_FORMAT_VERSION:
        fail(f"format version {version!r}, expected {CACHE_FORMAT_VERSION}")
    if a["resolution"].shape != () or a["resolution"].dtype.kind not in "iu":
        fail("resolution is not an integer")
    resolution = int(a["resolution"])
    packed = a["packed"]
    width = math.ceil(resolution**3 / 8) if resolution > 0 else -1
    if resolution < 1 or packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != width:
        fail(f"packed must be uint8 [N, {width}], got {packed.dtype} {packed.shape}")
    if a["up_axis"].shape != () or a["up_axis"].dtype.kind != "U":
        fail("up_axis is not a string")
    n = len(packed)
    for key in ("model_ids", "categories", "voxel_paths", "class_names"):
        if a[key].ndim != 1 or (a[key].size and a[key].dtype.kind != "U"):
            fail(f"{key} must be a 1-D array of strings")
    if a["labels"].ndim != 1:
        fail("labels must be a 1-D array")
    for key in ("model_ids", "categories", "voxel_paths", "labels"):
        if len(a[key]) != n:
            fail(f"{key} has {len(a[key])} entries for {n} grids")
    labels = a["labels"]
    class_names = tuple(str(s) for s in a["class_names"])
    if labels.dtype.kind not in "iu" or (
        n and (labels.min() < 0 or labels.max() >= len(class_names))
    ):
        fail(f"labels must be integers in 0..{len(class_names) - 1}")
    failures = a["failures"]
    if (
        failures.ndim != 2
        or failures.shape[1] != 4
        or (failures.size and failures.dtype.kind != "U")
    ):
        fail(f"failures must be a [K, 4] array of strings, got {failures.shape}")
    meta = VoxelCacheMeta(
        model_ids=tuple(str(s) for s in a["model_ids"]),
        categories=tuple(str(s) for s in a["categories"]),
        labels=labels.astype(np.int64),
        voxel_paths=tuple(str(s) for s in a["voxel_paths"]),
        class_names=class_names,
        resolution=resolution,
        up_axis=str(a["up_axis"]),
        failures=tuple(tuple(str(v) for v in row) for row in failures),
    )
    return packed, meta
