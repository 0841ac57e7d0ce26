"""ModelNet10/40: the official mesh tree and its label space.

`index_modelnet` lists the meshes of `<root>/<class>/{train,test}/<class>_NNNN.off`
as ShapeRecords. Related modules: `archives.py` reads ready-made voxel
archives (.npz with X_train, y_train, X_test, y_test such as the shared
`modelnet10_vox32.npz`); `voxel_cache.py` voxelizes a split's meshes once
(in worker processes) into a cache of packed bits
(`tools/prepare_modelnet.py`).

Frames. ModelNet meshes are z up; the voxelizer turns them to the project's
y-up frame (`modelnet_classes.MODELNET_UP_AXIS`).

Labels are alphabetical class indices (the class lists live in
`modelnet_classes.py`, which the archive and cache readers share). For a tree whose class folders are all
ModelNet10 (or ModelNet40) classes, they index the full official class list,
so a partial tree and the full data set (and the archives) agree.

Nothing here imports TensorFlow; the tf.data pipeline reads these outputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from enhancer_gan.data.modelnet_classes import MODELNET10_CLASSES, MODELNET40_CLASSES, SPLITS
from enhancer_gan.data.records import ShapeRecord
from enhancer_gan.errors import ConfigError, DataError

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
