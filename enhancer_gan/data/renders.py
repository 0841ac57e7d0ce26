"""Reading 3D-R2N2 render folders: the list of views, checked.

A model's `rendering/` folder holds `00.png` .. `23.png` (137x137 RGBA),
`renderings.txt` (one PNG name per line) and `rendering_metadata.txt` (one
line per view: azimuth, elevation, in-plane rotation, distance ratio, field of
view). The index (`shapenet.py`) reads `renderings.txt` through
`parse_renderings_list`, which refuses anything but plain file names; every
problem raises `DataError` naming the file and line. The PNGs themselves are
decoded by the input pipeline (`pipeline.decode_view_uint8`, once, into the
decoded-view cache); the camera metadata is used only by the tests that pin
the frame (`camera.py` documents it: its last column says 25 but the renders
were made with Blender's default 35 mm lens).
"""

from __future__ import annotations

import os

from enhancer_gan.errors import DataError

# Text files this module reads are a few hundred bytes; refuse anything huge
# rather than reading it into memory.
_MAX_TEXT_BYTES = 1 << 20


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
