"""Reading and writing Object File Format (.off) triangle meshes (ModelNet).

Format: a magic line `OFF`, a counts line `V F E`, V vertex lines `x y z`,
then F face lines `n i_1 .. i_n [colour]`. Real ModelNet files bend this:
some put the counts on the magic line itself (`OFF490 518 0`), some carry
`#` comments, blank lines or ragged whitespace, some have polygons with more
than three vertices or per-face colours after the indices. All of that is
accepted; polygons are triangulated as fans (i_1, i_k, i_k+1).

Everything else is refused with a `MeshError` naming the file and the line:
a wrong magic, missing or negative counts, fewer vertex/face lines than the
counts claim, content after the faces, non-numeric or non-finite values,
faces with fewer than three vertices or indices out of range. Parsing is one
`str.split` per line and numpy conversions over whole sections, so a
100k-face file reads in a fraction of a second.

This module does not normalise, orient or voxelize meshes; that is
`enhancer_gan.voxels.voxelize`.
"""

from __future__ import annotations

import itertools
import os
import re

import numpy as np

from enhancer_gan.errors import MeshError
from enhancer_gan.io_utils import atomic_write_text

# Counts above this are refused before anything is allocated; the largest
# ModelNet40 meshes have a few hundred thousand faces.
MAX_COUNT = 50_000_000
# A file this large cannot be a mesh this project reads (50M faces of short
# indices is already about 2 GiB of text).
MAX_FILE_BYTES = 4 << 30
# Per-face colours are 1 (colour index), 3 (RGB) or 4 (RGBA) values.
_MAX_FACE_EXTRAS = 4
# Magic words whose vertex lines start with x y z: plain, with colours (C),
# with normals (N). Vertex lines of plain OFF must have exactly three values.
_MAGICS = ("OFF", "COFF", "NOFF", "CNOFF", "NCOFF")
_MAGIC_RE = re.compile(r"([A-Za-z]*)(.*)")


def read_off(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Reads an .off mesh.

    Args:
      path: the .off file.

    Returns:
      vertices: [V, 3] float64, finite.
      faces: [F, 3] int64, triangles indexing `vertices` (polygons are split
        into fans, so F may exceed the file's face count).

    Raises:
      MeshError: the file is missing, malformed or truncated; the message
        names the file and, where it applies, the line.
    """
    name = os.fspath(path)
    try:
        size = os.path.getsize(name)
        if size > MAX_FILE_BYTES:
            raise MeshError(name, f"file is {size} bytes, larger than {MAX_FILE_BYTES}")
        with open(name, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise MeshError(name, f"cannot read file: {e.strerror or e}") from None
    return parse_off(raw, name=name)


def parse_off(data: bytes | str, name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Parses the contents of an .off file; see `read_off`.

    Args:
      data: the whole file, bytes or text.
      name: the file name for error messages (None for in-memory data).

    Returns:
      (vertices [V, 3] float64, faces [F, 3] int64).
    """
    if isinstance(data, bytes):
        # Undecodable bytes become U+FFFD and then fail as non-numeric values
        # on the line where they are, which is the more useful message.
        data = data.decode("utf-8", errors="replace")
    text = data.replace("\r\n", "\n").replace("\r", "\n")
    if "#" in text:
        raw_lines = [line.partition("#")[0].strip() for line in text.split("\n")]
    else:
        raw_lines = [line.strip() for line in text.split("\n")]
    if raw_lines:
        raw_lines[0] = raw_lines[0].lstrip("\ufeff").strip()
    # Non-blank lines and their 1-based line numbers in the file.
    numbers = [i + 1 for i, line in enumerate(raw_lines) if line]
    lines = [raw_lines[i - 1] for i in numbers]
    if not lines:
        raise MeshError(name, "empty file, expected 'OFF'")

    magic, rest = _MAGIC_RE.match(lines[0]).groups()
    if magic not in _MAGICS:
        raise MeshError(name, f"line {numbers[0]}: expected 'OFF', got {lines[0][:20]!r}")
    pos = 1
    count_tokens = rest.split()
    count_line = numbers[0]
    if not count_tokens:
        if len(lines) < 2:
            raise MeshError(name, "file ends after the 'OFF' line, expected the counts 'V F E'")
        count_tokens = lines[1].split()
        count_line = numbers[1]
        pos = 2
    nv, nf = _parse_counts(count_tokens, name, count_line)

    available = len(lines) - pos
    if available < nv + nf:
        if available < nv:
            what = f"{available} vertex lines, the header (line {count_line}) claims {nv}"
        else:
            what = f"{available - nv} face lines, the header (line {count_line}) claims {nf}"
        raise MeshError(name, f"truncated: the file ends after {what}")
    if available > nv + nf:
        extra = numbers[pos + nv + nf]
        raise MeshError(
            name,
            f"line {extra}: unexpected content after the {nv} vertices and {nf} faces "
            f"that the header (line {count_line}) claims",
        )

    vertices = _parse_vertices(lines[pos : pos + nv], numbers[pos : pos + nv], magic == "OFF", name)
    faces = _parse_faces(lines[pos + nv :], numbers[pos + nv :], nv, name)
    return vertices, faces


def _parse_counts(tokens: list[str], name, line_number: int) -> tuple[int, int]:
    where = f"line {line_number}"
    if len(tokens) not in (2, 3):
        raise MeshError(
            name, f"{where}: expected the counts 'V F E', got {' '.join(tokens)[:40]!r}"
        )
    counts = []
    for token in tokens:
        try:
            value = int(token)
        except ValueError:
            raise MeshError(name, f"{where}: count {token[:20]!r} is not an integer") from None
        if value < 0:
            raise MeshError(name, f"{where}: negative count {value}")
        if value > MAX_COUNT:
            raise MeshError(name, f"{where}: count {value} exceeds the limit {MAX_COUNT}")
        counts.append(value)
    return counts[0], counts[1]


def _parse_vertices(lines: list[str], numbers: list[int], exact: bool, name) -> np.ndarray:
    """Vertex lines -> [V, 3] float64 (extra values of COFF/NOFF ignored)."""
    if not lines:
        return np.zeros((0, 3), np.float64)
    tokens = [line.split() for line in lines]
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    bad = np.flatnonzero(lengths != 3) if exact else np.flatnonzero(lengths < 3)
    if bad.size:
        i = int(bad[0])
        expected = "3" if exact else "at least 3"
        raise MeshError(
            name, f"line {numbers[i]}: vertex {i} has {lengths[i]} values, expected {expected}"
        )
    if exact:
        flat = list(itertools.chain.from_iterable(tokens))
    else:
        flat = [t for row in tokens for t in row[:3]]
    try:
        vertices = np.array(flat, dtype=np.float64).reshape(-1, 3)
    except (ValueError, OverflowError):
        i = _first_bad_row([row[:3] for row in tokens], np.float64)
        raise MeshError(
            name, f"line {numbers[i]}: vertex {i} has a non-numeric value {lines[i][:60]!r}"
        ) from None
    finite = np.isfinite(vertices).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise MeshError(name, f"line {numbers[i]}: vertex {i} is not finite {lines[i][:60]!r}")
    return vertices


def _parse_faces(lines: list[str], numbers: list[int], nv: int, name) -> np.ndarray:
    """Face lines -> [F, 3] int64 triangles (polygons as fans, colours dropped)."""
    if not lines:
        return np.zeros((0, 3), np.int64)
    tokens = [line.split() for line in lines]
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    faces = None
    face_of_triangle = None
    if (lengths == 4).all():
        # The common case (every ModelNet file we have seen): all triangles.
        try:
            table = np.array(list(itertools.chain.from_iterable(tokens)), dtype=np.int64)
            table = table.reshape(-1, 4)
        except (ValueError, OverflowError):
            table = None
        if table is not None and (table[:, 0] == 3).all():
            faces = table[:, 1:]
    if faces is None:
        faces, face_of_triangle = _triangulate(tokens, lengths, lines, numbers, name)
    if faces.size:
        out_of_range = (faces < 0) | (faces >= nv)
        if out_of_range.any():
            t = int(np.flatnonzero(out_of_range.any(axis=1))[0])
            i = t if face_of_triangle is None else int(face_of_triangle[t])
            value = int(faces[t][out_of_range[t]][0])
            raise MeshError(
                name,
                f"line {numbers[i]}: face {i} uses vertex {value}, outside 0..{nv - 1}",
            )
    return faces


def _triangulate(tokens, lengths, lines, numbers, name) -> tuple[np.ndarray, np.ndarray]:
    """General face lines -> ([T, 3] int64 fan triangles, [T] source face index)."""
    if (lengths == 0).any():  # cannot happen for non-blank lines; kept for safety
        i = int(np.flatnonzero(lengths == 0)[0])
        raise MeshError(name, f"line {numbers[i]}: empty face")
    try:
        sizes = np.array([row[0] for row in tokens], dtype=np.int64)
    except (ValueError, OverflowError):
        i = _first_bad_row([row[:1] for row in tokens], np.int64)
        raise MeshError(
            name, f"line {numbers[i]}: face {i} does not start with a vertex count"
        ) from None
    if (sizes < 3).any():
        i = int(np.flatnonzero(sizes < 3)[0])
        raise MeshError(
            name, f"line {numbers[i]}: face {i} has {sizes[i]} vertices, at least 3 needed"
        )
    # Written as differences so that absurd counts (2**63 - 1) cannot overflow.
    short = sizes > lengths - 1
    if short.any():
        i = int(np.flatnonzero(short)[0])
        raise MeshError(
            name,
            f"line {numbers[i]}: face {i} claims {sizes[i]} vertices but lists {lengths[i] - 1}",
        )
    long = lengths - 1 - sizes > _MAX_FACE_EXTRAS
    if long.any():
        i = int(np.flatnonzero(long)[0])
        raise MeshError(
            name,
            f"line {numbers[i]}: face {i} has {lengths[i] - 1 - sizes[i]} values after its "
            f"{sizes[i]} indices, at most {_MAX_FACE_EXTRAS} colour values are allowed",
        )
    rows = [row[1 : 1 + n] for row, n in zip(tokens, sizes.tolist())]
    try:
        flat = np.array(list(itertools.chain.from_iterable(rows)), dtype=np.int64)
    except (ValueError, OverflowError):
        i = _first_bad_row(rows, np.int64)
        raise MeshError(
            name, f"line {numbers[i]}: face {i} has a non-integer index {lines[i][:60]!r}"
        ) from None
    # Fan triangulation: face i with n vertices starting at flat[s] gives the
    # n - 2 triangles (flat[s], flat[s + k], flat[s + k + 1]), k = 1 .. n - 2.
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    per_face = sizes - 2
    face_of_triangle = np.repeat(np.arange(len(sizes)), per_face)
    first_triangle = np.concatenate([[0], np.cumsum(per_face)[:-1]])
    k = np.arange(face_of_triangle.size) - first_triangle[face_of_triangle] + 1
    s = starts[face_of_triangle]
    faces = np.stack([flat[s], flat[s + k], flat[s + k + 1]], axis=1)
    return faces, face_of_triangle


def _first_bad_row(rows: list[list[str]], dtype) -> int:
    """Index of the first row numpy cannot convert to `dtype` (slow path, errors only)."""
    for i, row in enumerate(rows):
        try:
            np.array(row, dtype=dtype)
        except (ValueError, OverflowError):
            return i
    return 0


def write_off(
    path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray, digits: int = 17
) -> None:
    """Writes a mesh as a plain .off file, atomically.

    The synthetic data set's ModelNet-style meshes are written with it.
    With the default 17 significant digits `read_off` gives back exactly
    the same float64 values.

    Args:
      path: the output file.
      vertices: [V, 3] float, finite.
      faces: [F, n] int, n >= 3 (all faces have the same number of vertices),
        indices in 0..V-1.
      digits: significant digits of the coordinates.

    Raises:
      MeshError: the arrays are not a valid mesh (names `path`).
    """
    name = os.fspath(path)
    vertices = np.asarray(vertices)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or not np.isfinite(vertices).all():
        raise MeshError(name, f"cannot write: vertices must be finite [V, 3], got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] < 3 or (faces.size and faces.dtype.kind not in "iu"):
        raise MeshError(name, f"cannot write: faces must be integer [F, n>=3], got {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise MeshError(name, f"cannot write: face indices outside 0..{len(vertices) - 1}")
    parts = [f"OFF\n{len(vertices)} {len(faces)} 0\n"]
    if len(vertices):
        parts.append("\n".join(" ".join(f"{c:.{digits}g}" for c in v) for v in vertices.tolist()))
        parts.append("\n")
    if len(faces):
        n = faces.shape[1]
        parts.append("\n".join(f"{n} " + " ".join(map(str, f)) for f in faces.tolist()))
        parts.append("\n")
    atomic_write_text(name, "".join(parts))
