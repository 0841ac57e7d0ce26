"""Rendered views decoded once into a memory-mapped uint8 array on disk.

Decoding a view (PNG decode, composite on white, antialiased resize) costs
about 3 ms of one core; at batch 64 and two generator updates per step that
caps the pipeline near 300 pairs/s on two cores. Every epoch decodes the same
files again, so the views are decoded once, stored as
`[V, S, S, 3] uint8` in one `.npy` file, and memory-mapped: the pipeline then
only gathers rows (`pipeline.make_pair_dataset` with `PairSource.views`).

Stored as uint8, a view is exactly what `pipeline.decode_view_uint8` gives,
and the pipeline's uncached path goes through the same uint8 step, so a run
with the cache sees bit-identical images to one without.

The file is keyed by the image side and every view file's real path, size
and modification time, written to a temporary name and renamed (a crash never
leaves a half-written cache under the final name), and checked when opened;
a damaged or stale cache is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence

import numpy as np

from enhancer_gan.errors import DataError, tensorflow_reason
from enhancer_gan.io_utils import atomic_path

logger = logging.getLogger(__name__)

FORMAT = "decoded-views v1"
_BUILD_BATCH = 256


def cache_key(paths: Sequence[str], image_size: int) -> str:
    """SHA-1 of the format, the side and each file's real path, size and mtime."""
    h = hashlib.sha1(f"{FORMAT} {int(image_size)} {len(paths)}".encode())
    for p in paths:
        try:
            st = os.stat(p)
            stamp = (st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = None
        h.update(repr((os.path.realpath(p), stamp)).encode())
    return h.hexdigest()


def cache_path(cache_dir: str, paths: Sequence[str], image_size: int) -> str:
    key = cache_key(paths, image_size)[:16]
    return os.path.join(cache_dir, f"decoded_views_{int(image_size)}px_{key}.npy")


def _open(path: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """The memory-mapped cache, or None when it is missing, damaged or not this shape."""
    if not os.path.isfile(path):
        return None
    try:
        views = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if not isinstance(views, np.ndarray) or views.dtype != np.uint8 or views.shape != shape:
        return None
    return views


def _find_bad_view(paths: Sequence[str], image_size: int) -> DataError:
    """The first of `paths` that does not decode, as a DataError naming it."""
    import tensorflow as tf

    from enhancer_gan.data.pipeline import decode_view_uint8

    for p in paths:
        try:
            decode_view_uint8(tf.io.read_file(p), image_size).numpy()
        except OSError as e:
            return DataError(p, f"cannot read view: {e.strerror or e}")
        except tf.errors.NotFoundError as e:
            reason = tensorflow_reason(e).removeprefix(f"{p};").strip()
            return DataError(p, f"cannot read view: {reason}")
        except tf.errors.OpError as e:
            return DataError(p, f"cannot decode view: {tensorflow_reason(e)}")
    return DataError(paths[0] if paths else None, "cannot decode a view of this batch")


def _build(path: str, paths: Sequence[str], image_size: int, progress: bool) -> None:
    import tensorflow as tf
    from tqdm.auto import tqdm

    from enhancer_gan.data.pipeline import decode_view_uint8

    shape = (len(paths), image_size, image_size, 3)
    ds = (
        tf.data.Dataset.from_tensor_slices(tf.constant(list(paths)))
        .map(
            lambda p: decode_view_uint8(tf.io.read_file(p), image_size),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .batch(_BUILD_BATCH)
        .prefetch(2)
    )
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        try:
            start = 0
            with tqdm(
                total=len(paths), desc="decoding views", unit="view", disable=not progress
            ) as bar:
                iterator = iter(ds)
                while start < len(paths):
                    try:
                        batch = next(iterator).numpy()
                    except tf.errors.OpError:
                        raise _find_bad_view(
                            paths[start : start + _BUILD_BATCH], image_size
                        ) from None
                    out[start : start + len(batch)] = batch
                    start += len(batch)
                    bar.update(len(batch))
            out.flush()
        finally:
            del out


def decoded_views(
    view_paths: Sequence[Sequence[str]],
    image_size: int,
    cache_dir: str,
    progress: bool = True,
    log: Callable[[str], None] = logger.info,
) -> np.ndarray:
    """Every view of every model, decoded, as a read-only memory-mapped array.

    Args:
      view_paths: per model, its PNG view paths (as `PairSource.view_paths`).
      image_size: side S of the decoded views.
      cache_dir: folder of the cache file.
      progress: show a progress bar while building.
      log: where a one-line message about a rebuilt cache goes (default: this
        module's logger, INFO).

    Returns:
      [V, S, S, 3] uint8, V the total number of views, rows in the order of
      `view_paths` flattened model by model.

    Raises:
      DataError: a view that does not decode, named.
    """
    flat = [p for views in view_paths for p in views]
    path = cache_path(cache_dir, flat, image_size)
    shape = (len(flat), image_size, image_size, 3)
    views = _open(path, shape)
    if views is not None:
        return views
    if os.path.exists(path):
        log(f"{path}: damaged view cache; decoding the views again")
    _build(path, flat, image_size, progress)
    views = _open(path, shape)
    if views is None:
        raise DataError(path, "the view cache just written cannot be read back")
    return views
