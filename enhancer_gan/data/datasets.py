"""From a DataConfig to shapes in memory: pick the reader, cache, add views.

`load_shapes` turns any supported data set into packed grids in the project
frame plus their records; `load_training_source` adds rendered views (the
data set's own, or the project's renderer's) and returns the
`pipeline.PairSource` the training loop consumes.

The packed-grid cache. Decoded grids are cached as packed bits in
`cache_dir`, one file per category, `grids_<R>_<key>.npz`, the key a hash of
that category's records (model ids, real paths, sizes and times of their
files), so the second run (and every later epoch) reads no voxel file, and a
run on one category reuses what a seven-category run (or
`tools/prepare_shapenet.py`) decoded. A category is decoded in chunks, each
written atomically to `grids_<R>_<key>.parts/` as it completes, so a killed
build resumes where it stopped; the parts are merged into the category's file
and removed at the end. A grid that cannot be decoded is recorded in the
cache with its reason (`DecodedGrids.problems`) rather than aborting the
build; readers decide whether that is an error.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from enhancer_gan.config import SHAPENET_SYNSETS, DataConfig
from enhancer_gan.data.npz import read_npz
from enhancer_gan.data.packing import pack_grids
from enhancer_gan.data.records import ShapeRecord
from enhancer_gan.errors import ConfigError, DataError
from enhancer_gan.io_utils import atomic_path

if TYPE_CHECKING:
    from enhancer_gan.data.pipeline import PairSource

logger = logging.getLogger(__name__)

DEFAULT_SYNTHETIC_DIR = os.path.join("data_cache", "synthetic")


@dataclasses.dataclass(frozen=True)
class ShapeSet:
    """Grids of a data set split, packed, with what identifies them.

    Attributes:
      packed: [N, R^3 / 8] uint8 (see pipeline.pack_grids).
      resolution: R.
      records: N ShapeRecords (model ids, labels, view paths if any).
      class_names: names of the labels, in label order.
      left_out: (model id, reason) of the models the reader found but left
        out (r2n2_v2: in one source only, or a grid that cannot be decoded).
      empty_categories: selected categories without a model (r2n2_v2).
      reused: grids read from the packed-grid cache (or an interrupted
        build's parts) rather than decoded in this call.
    """

    packed: np.ndarray
    resolution: int
    records: tuple[ShapeRecord, ...]
    class_names: tuple[str, ...]
    left_out: tuple[tuple[str, str], ...] = ()
    empty_categories: tuple[str, ...] = ()
    reused: int = 0

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.records], dtype=np.int64)

    @property
    def model_ids(self) -> tuple[str, ...]:
        return tuple(f"{r.category}/{r.model_id}" for r in self.records)


# Bumped when the cache file's layout changes; older files are then rebuilt.
_GRID_CACHE_VERSION = "v2"
# Models per resumable part of a category's cache.
CHUNK_SIZE = 256


def _cache_key(records, resolution: int) -> str:
    h = hashlib.sha1(f"{_GRID_CACHE_VERSION} {resolution}".encode())
    for r in records:
        path = os.path.realpath(r.voxel_path) if r.voxel_path else ""
        st = os.stat(path) if path and os.path.exists(path) else None
        stamp = (st.st_size, int(st.st_mtime)) if st else None
        h.update(repr((r.model_id, r.category, path, r.source, stamp)).encode())
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class DecodedGrids:
    """Packed grids of some records, with the reason any of them is missing.

    Attributes:
      packed: [N, R^3 / 8] uint8, all zeros where a grid could not be decoded.
      problems: N strings, '' for a decoded grid, else the reason.
      reused: how many came from cache files rather than being decoded now.
    """

    packed: np.ndarray
    problems: tuple[str, ...]
    reused: int = 0

    @property
    def ok(self) -> np.ndarray:
        return np.array([not p for p in self.problems], dtype=bool)


def _read_grid_cache(path: str, key: str, shape: tuple[int, int]) -> DecodedGrids | None:
    """The packed grids of a cache file, or None if it is damaged or stale.

    The cache is ours and can always be rebuilt, so any problem (a damaged
    file, another key, a wrong shape) means "rebuild", never an error.
    """
    try:
        arrays = read_npz(path, ("key", "packed", "problems"), "grid cache")
    except DataError:
        return None
    stored, packed, problems = arrays["key"], arrays["packed"], arrays["problems"]
    if stored.shape != () or stored.dtype.kind != "U" or str(stored) != key:
        return None
    if packed.dtype != np.uint8 or packed.shape != shape:
        return None
    if problems.shape != (shape[0],) or (problems.size and problems.dtype.kind != "U"):
        return None
    return DecodedGrids(packed, tuple(str(p) for p in problems))


def _write_grid_cache(path: str, key: str, grids: DecodedGrids) -> None:
    with atomic_path(path) as tmp:
        np.savez(
            tmp,
            packed=grids.packed,
            key=np.array(key),
            problems=np.array(grids.problems, dtype=str).reshape(-1),
        )


def _decode_one(record: ShapeRecord, load_grid, resolution: int) -> tuple[np.ndarray | None, str]:
    """One record -> (packed row, '') or (None, why it failed); runs in workers too."""
    try:
        return pack_grids(load_grid(record, resolution)[None])[0], ""
    except DataError as e:  # BinvoxError, MeshError: a damaged or degenerate file
        return None, f"{type(e).__name__}: {e.problem}"


def _decode(records, load_grid, resolution, pool, bar) -> DecodedGrids:
    job = functools.partial(_decode_one, load_grid=load_grid, resolution=resolution)
    results = pool.map(job, records, chunksize=4) if pool else map(job, records)
    packed = np.zeros((len(records), resolution**3 // 8), dtype=np.uint8)
    problems = []
    for i, (row, problem) in enumerate(results):
        if row is not None:
            packed[i] = row
        problems.append(problem)
        bar.update()
    return DecodedGrids(packed, tuple(problems))


def decode_grids(
    records,
    load_grid,
    resolution: int,
    cache_dir: str,
    progress: bool = True,
    workers: int = 1,
    chunk_size: int = CHUNK_SIZE,
) -> DecodedGrids:
    """Every record's grid as packed bits, through the per-category cache (module doc).

    Args:
      records: ShapeRecords with a voxel_path.
      load_grid: (record, resolution) -> [R, R, R] bool in the project frame;
        a module-level function when `workers` > 1.
      resolution: R.
      cache_dir: folder of the cache files ('' = no cache).
      progress: show a tqdm progress bar.
      workers: processes to decode in (1 = in this process).
      chunk_size: models per resumable part.

    Returns:
      DecodedGrids in the order of `records`.
    """
    from tqdm.auto import tqdm

    records = list(records)
    width = resolution**3 // 8
    by_category: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_category.setdefault(r.category, []).append(i)
    packed = np.zeros((len(records), width), dtype=np.uint8)
    problems = [""] * len(records)
    reused = 0
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(
            tqdm(total=len(records), desc="decoding voxels", disable=not progress)
        )
        pool = None
        for rows in by_category.values():
            group = [records[i] for i in rows]
            key = _cache_key(group, resolution)
            path = (
                os.path.join(cache_dir, f"grids_{resolution}_{key[:16]}.npz") if cache_dir else ""
            )
            done = _read_grid_cache(path, key, (len(group), width)) if path else None
            if done is not None:
                bar.update(len(group))
                reused += len(group)
            else:
                if pool is None and workers > 1:
                    # 'spawn': forking a parent that may hold TensorFlow's threads is unsafe.
                    pool = concurrent.futures.ProcessPoolExecutor(
                        workers, mp_context=multiprocessing.get_context("spawn")
                    )
                    stack.callback(pool.shutdown, wait=True, cancel_futures=True)
                done = _decode_in_parts(
                    group, load_grid, resolution, path, pool, bar, chunk_size, width
                )
                reused += done.reused
            packed[rows] = done.packed
            for i, problem in zip(rows, done.problems):
                problems[i] = problem
    return DecodedGrids(packed, tuple(problems), reused)


def _decode_in_parts(group, load_grid, resolution, path, pool, bar, chunk_size, width):
    """Decodes one category chunk by chunk, each part saved as it completes."""
    if not path:
        return _decode(group, load_grid, resolution, pool, bar)
    parts_dir = path[: -len(".npz")] + ".parts"
    chunks, reused = [], 0
    for start in range(0, len(group), chunk_size):
        chunk = group[start : start + chunk_size]
        key = _cache_key(chunk, resolution)
        part = os.path.join(parts_dir, f"{start:08d}_{key[:16]}.npz")
        done = _read_grid_cache(part, key, (len(chunk), width)) if os.path.exists(part) else None
        if done is None:
            done = _decode(chunk, load_grid, resolution, pool, bar)
            os.makedirs(parts_dir, exist_ok=True)
            _write_grid_cache(part, key, done)
        else:
            bar.update(len(chunk))
            reused += len(chunk)
        chunks.append(done)
    merged = DecodedGrids(
        np.concatenate([c.packed for c in chunks]), tuple(p for c in chunks for p in c.problems)
    )
    _write_grid_cache(path, _cache_key(group, resolution), merged)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return dataclasses.replace(merged, reused=reused)


def cached_packed_grids(
    records, load_grid, resolution: int, cache_dir: str, progress: bool = True
) -> np.ndarray:
    """`decode_grids` for readers that need every grid: the first failure is an error.

    Returns:
      [N, R^3 / 8] uint8.

    Raises:
      DataError: a grid could not be decoded (the message names its file).
    """
    records = list(records)
    grids = decode_grids(records, load_grid, resolution, cache_dir, progress)
    for record, problem in zip(records, grids.problems):
        if problem:
            raise DataError(record.voxel_path, problem)
    return grids.packed


# The built-in data set does not depend on the training seed, so runs with
# different seeds train on the same shapes.
SYNTHETIC_DATA_SEED = 0


def synthetic_root(
    cfg: DataConfig, resolution: int, build: bool = False, progress: bool = True
) -> str:
    """The built-in data set's folder for `cfg`; builds it first if `build`.

    Each (resolution, size, views, categories) has its own folder, so builds
    never clobber each other. A `cfg.data_dir` that holds a complete build at
    `resolution` is used as it is, whatever its other settings (categories
    are then a filter).
    """
    root = cfg.data_dir
    if not root:
        cats = "-".join(sorted(cfg.categories)) or "all"
        name = f"r{resolution}_n{cfg.num_synthetic_per_category}_v{cfg.views_per_model}_{cats}"
        root = os.path.join(DEFAULT_SYNTHETIC_DIR, name)
    elif build:
        from enhancer_gan.data.synthetic import read_marker

        marker = read_marker(root)
        if marker and marker.get("resolution") == resolution:
            return root  # a complete build the user named: read it as it is
    if build:
        from enhancer_gan.data.synthetic import ensure_synthetic_dataset

        ensure_synthetic_dataset(
            root,
            num_per_category=cfg.num_synthetic_per_category,
            seed=SYNTHETIC_DATA_SEED,
            resolution=resolution,
            categories=list(cfg.categories) or None,
            views_per_model=cfg.views_per_model,
            progress=progress,
        )
    return root


def _require_dir(path: str, what: str) -> None:
    if not os.path.isdir(path):
        raise DataError(path, f"{what} folder does not exist")


def shapenet_roots(cfg: DataConfig) -> tuple[str, str]:
    """(voxel root, render root) of r2n2 / r2n2_v2 data.

    `cfg.voxel_dir` / `cfg.render_dir` when given, else the usual folders
    under `cfg.data_dir`: ShapeNetVox32 (r2n2) or ShapeNetCore.v2 (r2n2_v2),
    and ShapeNetRendering.
    """
    from enhancer_gan.data import shapenet

    folder = shapenet.V2_FOLDER if cfg.kind == "r2n2_v2" else shapenet.R2N2_VOXEL_FOLDER
    voxels = cfg.voxel_dir or os.path.join(cfg.data_dir, folder)
    renders = cfg.render_dir or os.path.join(cfg.data_dir, shapenet.R2N2_RENDER_FOLDER)
    return voxels, renders


def load_shapes(
    cfg: DataConfig,
    resolution: int,
    cache_dir: str = "",
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = logger.info,
    workers: int = 1,
    chunk_size: int = CHUNK_SIZE,
) -> ShapeSet:
    """Reads the data set named by `cfg` (its `split` for ModelNet/archives).

    For r2n2_v2, `workers` > 1 decodes grids in that many processes and
    `chunk_size` sets the models per resumable part of the cache. One-line
    summaries (what was indexed, what was left out) go to `log`, by default
    this module's logger at INFO.
    """
    kind = cfg.kind
    if kind in ("synthetic", "r2n2"):
        from enhancer_gan.data import shapenet

        if kind == "synthetic":
            root = synthetic_root(cfg, resolution, build=True, progress=progress)
            roots = (
                os.path.join(root, shapenet.R2N2_VOXEL_FOLDER),
                os.path.join(root, shapenet.R2N2_RENDER_FOLDER),
            )
        else:
            roots = shapenet_roots(cfg)
            for root in roots:
                _require_dir(root, "data")
        index = shapenet.index_r2n2(*roots, cfg.categories)
        log(index.summary())
        records = tuple(index.records)
        if kind == "synthetic":
            # Train on the training split only; the held-out models are the
            # generation report's reference (docs/DESIGN.md#generation-report).
            from enhancer_gan.data.synthetic import model_splits

            splits = model_splits(root)
            records = tuple(r for r in records if splits.get(r.model_id) == cfg.split)
        packed = cached_packed_grids(records, shapenet.load_grid, resolution, cache_dir, progress)
        names = sorted({r.category for r in records})
        return ShapeSet(packed, resolution, records, tuple(names))
    if kind == "r2n2_v2":
        return _load_r2n2_v2(cfg, resolution, cache_dir, progress, log, workers, chunk_size)
    if kind == "shapenet_v2":
        from enhancer_gan.data import shapenet

        _require_dir(cfg.data_dir, "data")
        index = shapenet.index_shapenet_v2(cfg.data_dir, cfg.categories)
        log(index.summary())
        records = tuple(index.records)
        packed = cached_packed_grids(records, shapenet.load_grid, resolution, cache_dir, progress)
        return ShapeSet(packed, resolution, records, tuple(sorted({r.category for r in records})))
    if kind == "modelnet":
        from enhancer_gan.data import modelnet, voxel_cache

        _require_dir(cfg.data_dir, "ModelNet")
        records = tuple(modelnet.index_modelnet(cfg.data_dir, cfg.split, cfg.categories))
        key = _cache_key(records, resolution)[:16]
        cache_path = os.path.join(
            cache_dir or os.path.join(cfg.data_dir, ".cache"),
            f"modelnet_{cfg.split}_{resolution}_{key}.npz",
        )
        packed = voxel_cache.voxelize_split(records, resolution, cache_path, progress=progress)
        names = _class_names(records)
        return ShapeSet(np.asarray(packed), resolution, records, names)
    if kind == "archive":
        from enhancer_gan.data import archives

        archive = archives.load_archive(cfg.data_dir)
        grids = archive.x_train if cfg.split == "train" else archive.x_test
        grids = archives.fit_archive_grids(grids, resolution, cfg.data_dir, log)
        records = tuple(archives.archive_records(archive, cfg.split))
        if cfg.categories:
            unknown = sorted(set(cfg.categories) - set(archive.class_names))
            if unknown:
                raise ConfigError(f"{cfg.data_dir}: no class {', '.join(unknown)} in the archive")
            keep = [i for i, r in enumerate(records) if r.category in cfg.categories]
            records = tuple(records[i] for i in keep)
            grids = grids[keep]
        return ShapeSet(pack_grids(grids), resolution, records, tuple(archive.class_names))
    raise ConfigError(f"unknown dataset kind {kind!r}")


# Why r2n2_v2 models are left out (ShapeSet.left_out reasons start with these).
NO_RENDERS = "no 3D-R2N2 renders"
NO_VOXELS = "no ShapeNetCore v2 solid binvox or mesh"
REJECTED = "rejected"
UNDECODABLE = "grid cannot be decoded"


def _load_r2n2_v2(cfg, resolution, cache_dir, progress, log, workers, chunk_size) -> ShapeSet:
    """The paper's pairs (`shapenet.index_r2n2_v2`); see `load_shapes`."""
    from enhancer_gan.data import shapenet

    roots = shapenet_roots(cfg)
    for root in roots:
        _require_dir(root, "data")
    index = shapenet.index_r2n2_v2(*roots, cfg.categories)
    log(index.summary())
    grids = decode_grids(
        index.records, shapenet.load_grid, resolution, cache_dir, progress, workers, chunk_size
    )
    left_out = [(m, NO_RENDERS) for m in index.missing_renders]
    left_out += [(m, NO_VOXELS) for m in index.missing_voxels]
    left_out += [("", f"{REJECTED}: {why}") for why in index.rejected]
    failed = [
        (r.model_id, f"{UNDECODABLE}: {r.voxel_path}: {p}")
        for r, p in zip(index.records, grids.problems)
        if p
    ]
    if failed:
        log(
            f"{len(failed)} of {len(index.records)} grids could not be decoded and are left out "
            f"(first: {failed[0][1]})"
        )
    keep = grids.ok
    if not keep.any():
        raise DataError(roots[0], f"none of the {len(index.records)} paired grids could be decoded")
    records = tuple(r for r, k in zip(index.records, keep) if k)
    return ShapeSet(
        grids.packed[keep],
        resolution,
        records,
        index.categories,
        left_out=tuple(left_out + failed),
        empty_categories=tuple(index.empty_categories),
        reused=grids.reused,
    )


def _class_names(records) -> tuple[str, ...]:
    by_label = {r.label: r.category for r in records}
    if -1 in by_label or not by_label:
        return tuple(sorted({r.category for r in records}))
    return tuple(by_label.get(i, f"class_{i}") for i in range(max(by_label) + 1))


def load_training_source(
    cfg: DataConfig,
    resolution: int,
    cache_dir: str,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = logger.info,
    image_size: int | None = None,
) -> PairSource:
    """Shapes plus one list of rendered views per shape, ready for the pipeline.

    With `image_size`, the views are also decoded once at that side into a
    memory-mapped cache in `cache_dir` (`view_cache.decoded_views`), so that
    training reads no PNG after the first run.
    """
    from enhancer_gan.data.packing import unpack_grids
    from enhancer_gan.data.pipeline import PairSource

    shapes = load_shapes(cfg, resolution, cache_dir, seed, progress, log)
    views = [r.view_paths for r in shapes.records]
    missing = [i for i, v in enumerate(views) if not v]
    if missing:
        from enhancer_gan.data.views import render_views

        grids = unpack_grids(shapes.packed[missing], resolution)
        ids = [shapes.model_ids[i] for i in missing]
        tag = hashlib.sha1(
            json.dumps([cfg.kind, os.path.realpath(cfg.data_dir), cfg.split, resolution]).encode()
        ).hexdigest()[:10]
        rendered = render_views(
            grids,
            ids,
            os.path.join(cache_dir, f"views_{tag}"),
            views_per_model=cfg.views_per_model,
            seed=seed,
            progress=progress,
        )
        for i, paths in zip(missing, rendered):
            views[i] = paths
    decoded = None
    if image_size:
        from enhancer_gan.data.view_cache import decoded_views

        decoded = decoded_views(views, image_size, cache_dir, progress=progress, log=log)
    return PairSource(
        packed_voxels=shapes.packed,
        resolution=resolution,
        view_paths=tuple(tuple(v) for v in views),
        model_ids=shapes.model_ids,
        labels=shapes.labels,
        views=decoded,
    )


__all__ = [
    "SHAPENET_SYNSETS",
    "ShapeSet",
    "cached_packed_grids",
    "load_shapes",
    "load_training_source",
]
