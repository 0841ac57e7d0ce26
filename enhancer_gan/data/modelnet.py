"""ModelNet10/40: the mesh folder layout, voxel archives and the voxel cache.

Three ways ModelNet reaches the project:

  * the official mesh tree `<root>/<class>/{train,test}/<class>_NNNN.off`
    (`index_modelnet`), voxelized once per split into a cache of packed bits
    (`voxelize_split`, `load_voxel_cache`; `tools/prepare_modelnet.py`);
  * ready-made voxel archives, .npz files with X_train, y_train, X_test,
    y_test such as the shared `modelnet10_vox32.npz` (`load_archive`).

Frames. ModelNet meshes are z up; the voxelizer turns them to the project's
y-up frame. The shared archive is NOT in the project frame: matching its
bathtub grids against our voxelization of the same meshes under all 48 axis
permutations/flips finds it stored in the meshes' own frame, grid[x, y, z]
with z up (the best match keeps the mesh axes as they are, IoU up to 0.79;
every permutation that moves z off the up axis scores lower). `load_archive`
therefore applies `archive_to_canonical` unless asked not to. The archive's
rows are not in file-name order (bathtub_0001 matches row 96 best).

Labels are alphabetical class indices. For a tree whose class folders are all
ModelNet10 (or ModelNet40) classes, they index the full official class list,
so a partial tree and the full data set (and the archives) agree.

Nothing here imports TensorFlow; the tf.data pipeline reads these outputs.
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

from enhancer_gan.data.npz import NpzReader, read_npz
from enhancer_gan.data.off import read_off
from enhancer_gan.data.records import ShapeRecord
from enhancer_gan.errors import ConfigError, DataError, MeshError
from enhancer_gan.io_utils import OutputExistsError, atomic_path
from enhancer_gan.voxels.voxelize import voxelize_mesh

MODELNET10_CLASSES = (
    "bathtub",
    "bed",
    "chair",
    "desk",
    "dresser",
    "monitor",
    "night_stand",
    "sofa",
    "table",
    "toilet",
)
MODELNET40_CLASSES = tuple(
    sorted(
        """airplane bathtub bed bench bookshelf bottle bowl car chair cone cup curtain desk
        door dresser flower_pot glass_box guitar keyboard lamp laptop mantel monitor
        night_stand person piano plant radio range_hood sink sofa stairs stool table tent
        toilet tv_stand vase wardrobe xbox""".split()
    )
)
SPLITS = ("train", "test")
MODELNET_UP_AXIS = "z"
# Bumped when the cache layout changes; older caches are then refused.
CACHE_FORMAT_VERSION = 1


# ----------------------------------------------------------------------------
# The mesh tree.


def _check_inside(root_real: str, path: str) -> None:
    """Refuses entries (symbolic links) that lead outside the data set root."""
    real = os.path.realpath(path)
    if os.path.commonpath([root_real, real]) != root_real:
        raise DataError(path, f"leads outside the data set root {root_real} (to {real})")


def _class_folders(root: str) -> list[str]:
    """Names of the class folders of a ModelNet tree (those with a split folder)."""
    if not os.path.isdir(root):
        raise DataError(root, "ModelNet root is not a folder")
    with os.scandir(root) as entries:
        names = [
            e.name
            for e in entries
            if not e.name.startswith((".", "__")) and e.is_dir(follow_symlinks=True)
        ]
    return sorted(n for n in names if any(os.path.isdir(os.path.join(root, n, s)) for s in SPLITS))


def modelnet_classes(root: str | os.PathLike) -> tuple[str, ...]:
    """The label space of a ModelNet tree: labels index into this tuple.

    MODELNET10_CLASSES when every class folder is a ModelNet10 class (unless
    the root's name says ModelNet40), else MODELNET40_CLASSES when every one is
    a ModelNet40 class, else the folders present, alphabetically.

    Args:
      root: the tree's root folder.

    Returns:
      class names in label order.
    """
    root = os.fspath(root)
    present = set(_class_folders(root))
    says_40 = "40" in os.path.basename(os.path.normpath(root))
    if present and present <= set(MODELNET10_CLASSES) and not says_40:
        return MODELNET10_CLASSES
    if present and present <= set(MODELNET40_CLASSES):
        return MODELNET40_CLASSES
    return tuple(sorted(present))


def index_modelnet(
    root: str | os.PathLike, split: str, categories: Sequence[str] = ()
) -> list[ShapeRecord]:
    """Lists the meshes of one split of a ModelNet tree.

    Args:
      root: folder holding `<class>/{train,test}/<class>_NNNN.off`.
      split: 'train' or 'test'.
      categories: class names to keep; empty = all classes present.

    Returns:
      ShapeRecords (source 'modelnet', voxel_path the .off file, label from
      `modelnet_classes`), sorted by class, then file name.

    Raises:
      ConfigError: `split` is not 'train' or 'test'.
      DataError: the root is not a folder, a requested class has no folder,
        an entry leads outside the root, or nothing was found.
    """
    root = os.fspath(root)
    if split not in SPLITS:
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    present = _class_folders(root)
    classes = modelnet_classes(root)
    if categories:
        missing = sorted(set(categories) - set(present))
        if missing:
            raise DataError(
                root,
                f"no class folder for {', '.join(missing)}; present: {', '.join(present) or 'none'}",
            )
        selected = [c for c in present if c in set(categories)]
    else:
        selected = present
    root_real = os.path.realpath(root)
    records = []
    for category in selected:
        folder = os.path.join(root, category, split)
        if not os.path.isdir(folder):
            continue
        _check_inside(root_real, folder)
        with os.scandir(folder) as entries:
            names = sorted(
                e.name
                for e in entries
                if e.name.lower().endswith(".off") and e.is_file(follow_symlinks=True)
            )
        for file_name in names:
            path = os.path.join(folder, file_name)
            _check_inside(root_real, path)
            records.append(
                ShapeRecord(
                    model_id=os.path.splitext(file_name)[0],
                    category=category,
                    voxel_path=path,
                    label=classes.index(category),
                    source="modelnet",
                )
            )
    if not records:
        which = f" in {', '.join(selected)}" if categories else ""
        raise DataError(root, f"no .off meshes for split {split!r}{which}")
    return records


def load_modelnet_grid(record: ShapeRecord, resolution: int) -> np.ndarray:
    """A `records.GridLoader` for ModelNet records: reads and voxelizes the mesh.

    Returns:
      [R, R, R] bool, solid, project frame (y up).
    """
    vertices, faces = read_off(record.voxel_path)
    return voxelize_mesh(
        vertices, faces, resolution, up_axis=MODELNET_UP_AXIS, name=record.voxel_path
    )


# ----------------------------------------------------------------------------
# Voxel archives (.npz with X_train, y_train, X_test, y_test).


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


def archive_grid_loader(archive: VoxelArchive, split: str):
    """A `records.GridLoader` for the records of `archive_records(archive, split)`.

    Grids at another resolution than the archive's are refused: pooling is the
    caller's choice (`grid.downsample`), never a silent one.
    """
    grids = archive.x_train if split == "train" else archive.x_test

    def load(record: ShapeRecord, resolution: int) -> np.ndarray:
        if resolution != archive.resolution:
            raise DataError(
                archive.path,
                f"archive grids are {archive.resolution}^3, {resolution}^3 was asked for",
            )
        return grids[record.archive_index]

    return load


# ----------------------------------------------------------------------------
# The voxel cache: one split voxelized once, packed bits in an .npz.


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


def pack_grid(grid: np.ndarray) -> np.ndarray:
    """[R, R, R] bool -> [ceil(R^3 / 8)] uint8, bits in project (C) order."""
    return np.packbits(np.asarray(grid, dtype=bool).reshape(-1))


def unpack_grids(packed: np.ndarray, resolution: int) -> np.ndarray:
    """[N, ceil(R^3 / 8)] uint8 -> [N, R, R, R] bool (inverse of `pack_grid`)."""
    packed = np.asarray(packed, dtype=np.uint8)
    flat = np.unpackbits(packed, axis=-1, count=resolution**3)
    return flat.reshape(*packed.shape[:-1], resolution, resolution, resolution).view(bool)


def _voxelize_file(path: str, resolution: int, up_axis: str) -> tuple[np.ndarray | None, str]:
    """One mesh -> (packed grid, '') or (None, the problem); runs in workers."""
    try:
        vertices, faces = read_off(path)
        grid = voxelize_mesh(vertices, faces, resolution, up_axis, name=path)
    except MeshError as e:
        return None, e.problem
    return pack_grid(grid), ""


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
    if not records:
        raise ConfigError("voxelize_split needs at least one record")
    keys = [(r.category, r.model_id) for r in records]
    if len(set(keys)) != len(keys):
        raise ConfigError("records hold the same (category, model_id) twice")
    if os.path.exists(cache_path) and not overwrite:
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
    class_names = tuple(class_names) if class_names is not None else _infer_class_names(records)

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
    if not kept:
        raise DataError(cache_path, f"none of the {len(records)} meshes could be voxelized")
    packed = np.stack(rows)
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
    return packed


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
