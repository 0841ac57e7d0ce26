"""From a DataConfig to shapes in memory: pick the reader, cache, add views.

`load_shapes` turns any supported data set into packed grids in the project
frame plus their records; `load_training_source` adds rendered views (the
data set's own, or the project's renderer's) and returns the
`pipeline.PairSource` the training loop consumes. Decoded grids are cached
as packed bits in `cache_dir`, keyed by the files they came from, so the
second run (and every later epoch) reads no voxel file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np

from enhancer_gan.config import SHAPENET_SYNSETS, DataConfig
from enhancer_gan.data.npz import read_npz
from enhancer_gan.data.pipeline import PairSource, pack_grids
from enhancer_gan.data.records import ShapeRecord
from enhancer_gan.errors import ConfigError, DataError
from enhancer_gan.io_utils import atomic_path

DEFAULT_SYNTHETIC_DIR = os.path.join("data_cache", "synthetic")


@dataclasses.dataclass(frozen=True)
class ShapeSet:
    """Grids of a data set split, packed, with what identifies them.

    Attributes:
      packed: [N, R^3 / 8] uint8 (see pipeline.pack_grids).
      resolution: R.
      records: N ShapeRecords (model ids, labels, view paths if any).
      class_names: names of the labels, in label order.
    """

    packed: np.ndarray
    resolution: int
    records: tuple[ShapeRecord, ...]
    class_names: tuple[str, ...]

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.records], dtype=np.int64)

    @property
    def model_ids(self) -> tuple[str, ...]:
        return tuple(f"{r.category}/{r.model_id}" for r in self.records)


def _cache_key(records, resolution: int) -> str:
    h = hashlib.sha1(f"v1 {resolution}".encode())
    for r in records:
        st = os.stat(r.voxel_path) if r.voxel_path and os.path.exists(r.voxel_path) else None
        stamp = (st.st_size, int(st.st_mtime)) if st else None
        h.update(repr((r.model_id, r.category, r.voxel_path, r.source, stamp)).encode())
    return h.hexdigest()


def _read_grid_cache(path: str, key: str, shape: tuple[int, int]) -> np.ndarray | None:
    """The packed grids of a cache file, or None if it is damaged or stale.

    The cache is ours and can always be rebuilt, so any problem (a damaged
    file, another key, a wrong shape) means "rebuild", never an error.
    """
    try:
        arrays = read_npz(path, ("key", "packed"), "grid cache")
    except DataError:
        return None
    stored, packed = arrays["key"], arrays["packed"]
    if stored.shape != () or stored.dtype.kind != "U" or str(stored) != key:
        return None
    if packed.dtype != np.uint8 or packed.shape != shape:
        return None
    return packed


def cached_packed_grids(
    records, load_grid, resolution: int, cache_dir: str, progress: bool = True
) -> np.ndarray:
    """Decodes every record's grid once into packed bits, cached on disk.

    Args:
      records: ShapeRecords with a voxel_path.
      load_grid: (record, resolution) -> [R, R, R] bool in the project frame.
      resolution: R.
      cache_dir: folder of the cache file ('' = no cache).

    Returns:
      [N, R^3 / 8] uint8.
    """
    from tqdm.auto import tqdm

    key = _cache_key(records, resolution)
    path = os.path.join(cache_dir, f"grids_{resolution}_{key[:16]}.npz") if cache_dir else ""
    if path and os.path.exists(path):
        cached = _read_grid_cache(path, key, (len(records), resolution**3 // 8))
        if cached is not None:
            return cached
    packed = np.zeros((len(records), resolution**3 // 8), dtype=np.uint8)
    for i, r in enumerate(tqdm(records, desc="decoding voxels", disable=not progress)):
        packed[i] = pack_grids(load_grid(r, resolution)[None])[0]
    if path:
        with atomic_path(path) as tmp:
            np.savez(tmp, packed=packed, key=np.array(key))
    return packed


# The built-in data set does not depend on the training seed, so runs with
# different seeds train on the same shapes.
SYNTHETIC_DATA_SEED = 0


def synthetic_root(
    cfg: DataConfig, resolution: int, build: bool = False, progress: bool = True
) -> str:
    """The built-in data set's folder for `cfg`; builds it first if `build`.

    Each (resolution, size, views, categories) has its own folder, so builds
    never clobber each other.
    """
    root = cfg.data_dir
    if not root:
        cats = "-".join(sorted(cfg.categories)) or "all"
        name = f"r{resolution}_n{cfg.num_synthetic_per_category}_v{cfg.views_per_model}_{cats}"
        root = os.path.join(DEFAULT_SYNTHETIC_DIR, name)
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


def load_shapes(
    cfg: DataConfig,
    resolution: int,
    cache_dir: str = "",
    seed: int = 0,
    progress: bool = True,
    log=print,
) -> ShapeSet:
    """Reads the data set named by `cfg` (its `split` for ModelNet/archives)."""
    kind = cfg.kind
    if kind in ("synthetic", "r2n2"):
        from enhancer_gan.data import shapenet

        if kind == "synthetic":
            root = synthetic_root(cfg, resolution, build=True, progress=progress)
        else:
            root = cfg.data_dir
            _require_dir(root, "data")
        index = shapenet.index_r2n2(
            os.path.join(root, "ShapeNetVox32"),
            os.path.join(root, "ShapeNetRendering"),
            cfg.categories,
        )
        log(index.summary())
        records = tuple(index.records)
        packed = cached_packed_grids(records, shapenet.load_grid, resolution, cache_dir, progress)
        names = sorted({r.category for r in records})
        return ShapeSet(packed, resolution, records, tuple(names))
    if kind == "shapenet_v2":
        from enhancer_gan.data import shapenet

        _require_dir(cfg.data_dir, "data")
        index = shapenet.index_shapenet_v2(cfg.data_dir, cfg.categories)
        log(index.summary())
        records = tuple(index.records)
        packed = cached_packed_grids(records, shapenet.load_grid, resolution, cache_dir, progress)
        return ShapeSet(packed, resolution, records, tuple(sorted({r.category for r in records})))
    if kind == "modelnet":
        from enhancer_gan.data import modelnet

        _require_dir(cfg.data_dir, "ModelNet")
        records = tuple(modelnet.index_modelnet(cfg.data_dir, cfg.split, cfg.categories))
        key = _cache_key(records, resolution)[:16]
        cache_path = os.path.join(
            cache_dir or os.path.join(cfg.data_dir, ".cache"),
            f"modelnet_{cfg.split}_{resolution}_{key}.npz",
        )
        packed = modelnet.voxelize_split(records, resolution, cache_path, progress=progress)
        names = _class_names(records)
        return ShapeSet(np.asarray(packed), resolution, records, names)
    if kind == "archive":
        from enhancer_gan.data import modelnet

        archive = modelnet.load_archive(cfg.data_dir)
        grids = archive.x_train if cfg.split == "train" else archive.x_test
        if grids.shape[1] != resolution:
            raise ConfigError(
                f"{cfg.data_dir}: archive grids are {grids.shape[1]}^3, the model needs "
                f"{resolution}^3; use --resolution={grids.shape[1]}"
            )
        records = tuple(modelnet.archive_records(archive, cfg.split))
        if cfg.categories:
            unknown = sorted(set(cfg.categories) - set(archive.class_names))
            if unknown:
                raise ConfigError(f"{cfg.data_dir}: no class {', '.join(unknown)} in the archive")
            keep = [i for i, r in enumerate(records) if r.category in cfg.categories]
            records = tuple(records[i] for i in keep)
            grids = grids[keep]
        return ShapeSet(pack_grids(grids), resolution, records, tuple(archive.class_names))
    raise ConfigError(f"unknown dataset kind {kind!r}")


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
    log=print,
    image_size: int | None = None,
) -> PairSource:
    """Shapes plus one list of rendered views per shape, ready for the pipeline.

    With `image_size`, the views are also decoded once at that side into a
    memory-mapped cache in `cache_dir` (`view_cache.decoded_views`), so that
    training reads no PNG after the first run.
    """
    from enhancer_gan.data.pipeline import unpack_grids

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
