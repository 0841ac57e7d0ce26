"""Deterministic stratified subsampling, for toy runs on part of a data set.

`subsample_indices` picks rows per class; `subset_archive` writes (or reuses)
a voxel archive holding only those rows, so extraction reads only them.
"""

from __future__ import annotations

import json
import os

import numpy as np

from enhancer_gan.data.npz import read_npz
from enhancer_gan.errors import ConfigError, DataError
from enhancer_gan.io_utils import atomic_path


def subsample_indices(
    labels: np.ndarray, max_count: int, seed: int = 0, min_per_class: int = 3
) -> np.ndarray:
    """At most `max_count` row indices, stratified by label, deterministic.

    Each class gets a share proportional to its size (largest remainders
    break the rounding), but at least min(its size, `min_per_class`) when the
    budget allows, taken from the largest classes. Within a class the rows
    are a seeded random choice.

    Args:
      labels: [N] int.
      max_count: the budget; 0 or >= N keeps every row.
      seed: picks the rows inside each class.
      min_per_class: floor per class: 3 lets the SVM's 3-fold cross-validation
        and retrieval (a query needs another shape of its class) work.

    Returns:
      [M] int64 sorted row indices, M = min(N, max_count).
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    if max_count < 0:
        raise ConfigError(f"max_per_split must be >= 0, got {max_count}")
    if max_count == 0 or max_count >= n:
        return np.arange(n, dtype=np.int64)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    exact = counts * (max_count / n)
    quota = np.floor(exact).astype(np.int64)
    # Largest remainders first; ties to the lower class index (stable sort).
    for c in np.argsort(-(exact - quota), kind="stable")[: max_count - quota.sum()]:
        quota[c] += 1
    floor = np.minimum(counts, min_per_class)
    for c in np.flatnonzero(quota < floor):
        need = floor[c] - quota[c]
        while need > 0:
            spare = quota - floor
            spare[c] = -1
            donor = int(np.argmax(spare))
            if spare[donor] <= 0:
                break  # the budget is too small to give every class its floor
            quota[donor] -= 1
            quota[c] += 1
            need -= 1
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(classes.size):
        rows = np.flatnonzero(inverse == c)
        keep.append(rng.choice(rows, size=int(quota[c]), replace=False))
    return np.sort(np.concatenate(keep)).astype(np.int64)


def subset_archive(
    archive_path: str,
    output_path: str,
    max_per_split: int,
    seed: int = 0,
    min_per_class: int = 3,
) -> str:
    """Writes a stratified subset of a voxel archive (or reuses one already written).

    Extraction then reads only the kept grids. The rows are
    `subsample_indices` of each split; the original row numbers are stored
    as `train_index` / `test_index`, and where they came from as `subset_of`.
    The grids are copied in the file's own frame (the reader turns them).

    Returns:
      `output_path`.
    """
    from enhancer_gan.data.archives import load_archive

    st = os.stat(archive_path)
    origin = {
        "path": os.path.abspath(archive_path),
        "size": st.st_size,
        "mtime": int(st.st_mtime),
        "max_per_split": int(max_per_split),
        "seed": int(seed),
        "min_per_class": int(min_per_class),
    }
    if os.path.exists(output_path):
        try:
            # The archive's own checks run when the subset is loaded; here
            # only its origin decides whether to reuse it.
            stored = read_npz(output_path, ["subset_of"], "archive subset")["subset_of"]
            if stored.shape == () and json.loads(str(stored)) == origin:
                return output_path
        except (DataError, ValueError, RecursionError):
            pass  # unreadable or different: write it again
    archive = load_archive(archive_path, canonical=False)
    train = subsample_indices(archive.y_train, max_per_split, seed, min_per_class)
    test = subsample_indices(archive.y_test, max_per_split, seed, min_per_class)
    with atomic_path(output_path) as tmp:
        np.savez_compressed(
            tmp,
            X_train=archive.x_train[train].astype(np.uint8),
            y_train=archive.y_train[train],
            X_test=archive.x_test[test].astype(np.uint8),
            y_test=archive.y_test[test],
            class_names=np.array(archive.class_names, dtype=str),
            train_index=train,
            test_index=test,
            subset_of=np.array(json.dumps(origin, sort_keys=True)),
        )
    return output_path
