"""Reading 3D-R2N2 renders: the PNG views and the two text files beside them.

A model's `rendering/` folder holds `00.png` .. `23.png` (137x137 RGBA),
`renderings.txt` (one PNG name per line) and `rendering_metadata.txt` (one
line per view: azimuth, elevation, in-plane rotation, distance ratio, field of
view). This module turns them into arrays with everything checked; every
problem raises `DataError` naming the file (and line). It does not decide
which models or views exist (that is `shapenet.py`) and does not draw
anything (that is `voxels/render.py`).

Note on the last metadata column: it says 25 but the renders were made with
Blender's default 35 mm lens (SPEC.md, "Measured here"); it is returned as
written and must not be used as the camera's field of view.
"""

from __future__ import annotations

import io
import os
import re

import numpy as np
from PIL import Image, UnidentifiedImageError

from enhancer_gan.errors import DataError

METADATA_COLUMNS = ("azimuth", "elevation", "in_plane_rotation", "distance_ratio", "field_of_view")

# Text files this module reads are a few hundred bytes; refuse anything huge
# rather than reading it into memory.
_MAX_TEXT_BYTES = 1 << 20
# The largest image accepted (a render is 137x137): far below PIL's
# decompression-bomb limit, so a hostile PNG header cannot make us allocate.
_MAX_IMAGE_SIDE = 4096
# A plain decimal number (no '_' separators, 'nan', 'inf' or hex, which
# Python's float() would also take).
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _read_text(path: str | os.PathLike) -> str:
    """The file's contents as text; DataError if missing, huge or not ASCII/UTF-8."""
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_TEXT_BYTES + 1)
    except OSError as e:
        raise DataError(path, f"cannot read file: {e.strerror or e}") from None
    if len(raw) > _MAX_TEXT_BYTES:
        raise DataError(path, f"larger than {_MAX_TEXT_BYTES} bytes; not a rendering list?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(path, f"not UTF-8 text (byte {e.start})") from None
    if "\x00" in text:
        raise DataError(path, "contains NUL bytes; not a text file")
    return text


def _lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, stripped line) for each line, trailing blank lines dropped.

    Lines are split on '\\n' only (and a trailing '\\r' removed), so line
    numbers are the ones an editor shows.
    """
    lines = [(i + 1, line.strip()) for i, line in enumerate(text.split("\n"))]
    while lines and not lines[-1][1]:
        lines.pop()
    return lines


def parse_rendering_metadata(path: str | os.PathLike) -> np.ndarray:
    """Reads a 3D-R2N2 `rendering_metadata.txt`.

    Args:
      path: the file; one line per view, 5 numbers separated by whitespace.

    Returns:
      [V, 5] float64: azimuth (degrees), elevation (degrees), in-plane
      rotation (degrees), distance ratio (> 0; the camera sits at
      1.75 * ratio), field of view column (as written; see module doc).
      Row v describes view v (the v-th line).

    Raises:
      DataError: missing file, no lines, a blank line between views, a line
        without exactly 5 numbers, a non-finite number, or a distance
        ratio <= 0; the message names the file and the line number.
    """
    rows = []
    for number, line in _lines(_read_text(path)):
        where = f"line {number}"
        if not line:
            raise DataError(path, f"{where}: blank line between views")
        fields = line.split()
        if len(fields) != len(METADATA_COLUMNS):
            raise DataError(
                path,
                f"{where}: expected {len(METADATA_COLUMNS)} numbers "
                f"({', '.join(METADATA_COLUMNS)}), got {len(fields)}",
            )
        values = []
        for column, field in zip(METADATA_COLUMNS, fields):
            if not _NUMBER.fullmatch(field):
                raise DataError(path, f"{where}: {column} {field[:20]!r} is not a number")
            value = float(field)
            if not np.isfinite(value):
                raise DataError(path, f"{where}: {column} {field[:20]!r} is not finite")
            values.append(value)
        if values[3] <= 0:
            raise DataError(path, f"{where}: distance_ratio must be positive, got {values[3]}")
        rows.append(values)
    if not rows:
        raise DataError(path, "no views listed")
    return np.array(rows, dtype=np.float64).reshape(-1, len(METADATA_COLUMNS))


def parse_renderings_list(path: str | os.PathLike) -> list[str]:
    """Reads a 3D-R2N2 `renderings.txt`: the views' file names, in order.

    Args:
      path: the file; one name per line ('00.png').

    Returns:
      the names, blank lines skipped.

    Raises:
      DataError: missing or non-text file, no names, or a name that is not a
        plain file name (a path separator, '.' or '..'), naming the line.
    """
    names = []
    for number, line in _lines(_read_text(path)):
        if not line:
            continue
        if "/" in line or "\\" in line or line in (".", ".."):
            raise DataError(path, f"line {number}: {line[:40]!r} is not a plain file name")
        names.append(line)
    if not names:
        raise DataError(path, "no views listed")
    return names


def _open_png(path: str | os.PathLike) -> Image.Image:
    """Opens, verifies and decodes a PNG; DataError for anything else."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(path, f"cannot read file: {e.strerror or e}") from None
    if not raw:
        raise DataError(path, "empty file")
    try:
        # verify() walks every chunk and checks its CRC, so a truncated or
        # damaged file is refused even where PIL is set to load truncated
        # images; it leaves the image unusable, hence the second open.
        with Image.open(io.BytesIO(raw)) as probe:
            if probe.format != "PNG":
                raise DataError(path, f"not a PNG image ({probe.format} data)")
            width, height = probe.size
            if not (0 < width <= _MAX_IMAGE_SIDE and 0 < height <= _MAX_IMAGE_SIDE):
                raise DataError(path, f"image size {width}x{height} outside 1..{_MAX_IMAGE_SIDE}")
            probe.verify()
        image = Image.open(io.BytesIO(raw))
        image.load()
    except DataError:
        raise
    except Image.DecompressionBombError:
        raise DataError(path, "image too large (PIL's decompression-bomb limit)") from None
    except UnidentifiedImageError:
        raise DataError(path, "not an image file (expected a PNG)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise DataError(path, f"damaged or truncated PNG: {e}") from None
    return image


def _rgba(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(rgb [H, W, 3] float64 in [0, 255], alpha [H, W] float64 in [0, 1])."""
    image = _open_png(path)
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        # 16-bit grey: PIL's own conversion to 8 bits would clip, not scale.
        grey = np.asarray(image, dtype=np.float64)
        grey = np.clip(grey / 257.0 if grey.max() > 255 else grey, 0, 255)
        return np.repeat(grey[..., None], 3, axis=-1), np.ones(grey.shape)
    has_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in image.info
    rgba = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.float64)
    alpha = rgba[..., 3] / 255.0 if has_alpha else np.ones(rgba.shape[:2])
    return rgba[..., :3], alpha


def load_view(path: str | os.PathLike, size: int = 128) -> np.ndarray:
    """Loads one rendered view as a training image.

    Composites on white (the 3D-R2N2 renders are RGBA with a transparent
    background), resizes with an antialiasing filter, scales to [-1, 1].

    Args:
      path: a PNG file, RGBA, RGB, grey (8 or 16 bit), grey+alpha or palette.
      size: output side in pixels.

    Returns:
      [size, size, 3] float32 in [-1, 1]; white is 1.

    Raises:
      DataError: missing, empty, truncated or non-PNG file.
    """
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    rgb, alpha = _rgba(path)
    white = 255.0
    composite = rgb * alpha[..., None] + white * (1.0 - alpha[..., None])
    height, width = alpha.shape
    if (height, width) != (size, size):
        # Float channels through PIL's bilinear filter, which widens its
        # support when shrinking (antialiased, unlike a plain bilinear
        # lookup) and has no negative lobes, so values stay in range.
        composite = np.stack(
            [
                np.asarray(
                    Image.fromarray(composite[..., c].astype(np.float32)).resize(
                        (size, size), Image.Resampling.BILINEAR
                    )
                )
                for c in range(3)
            ],
            axis=-1,
        )
    image = composite.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return np.clip(image, -1.0, 1.0)


def load_alpha(path: str | os.PathLike) -> np.ndarray:
    """The view's silhouette: which pixels are at least half opaque.

    Args:
      path: a PNG file; one without an alpha channel is fully opaque.

    Returns:
      [H, W] bool at the file's own size.

    Raises:
      DataError: missing, empty, truncated or non-PNG file.
    """
    _, alpha = _rgba(path)
    return alpha >= 0.5
