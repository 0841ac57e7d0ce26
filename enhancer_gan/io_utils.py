"""Small file-system helpers: atomic writes and overwrite protection.

Every result file of the project (features, tables, exports, data caches) is
written to a temporary name in the same folder and renamed into place, so a
crash or a full disk never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from enhancer_gan.errors import EnhancerGanError


class OutputExistsError(EnhancerGanError, FileExistsError):
    """An output exists and the caller did not ask to overwrite it."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path next to `path`; renames it to `path` on success.

    On any exception the temporary file is removed and `path` is untouched.
    The temporary name keeps `path`'s extension, so writers that append one
    (np.savez, PIL) see the name they expect.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    stem, ext = os.path.splitext(base)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{ext}", dir=folder)
    os.close(fd)
    # mkstemp makes the file 0600; results are ordinary files (0666 - umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def check_can_write(path: str | os.PathLike, overwrite: bool) -> None:
    """Refuses to replace an existing output unless `overwrite` is set."""
    if os.path.exists(path) and not overwrite:
        raise OutputExistsError(f"{os.fspath(path)}: exists; pass --overwrite to replace it")
