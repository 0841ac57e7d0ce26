"""Reading .npz files without trusting them: the one reader every .npz input uses.

Voxel archives, the ModelNet voxel cache, feature files, the decoded-grid
cache and archive subsets are all .npz files: zip archives of .npy members.
`np.load` trusts them. A damaged or hostile file makes it raise whatever the
layer underneath happens to raise (zipfile's BadZipFile, NotImplementedError
or RuntimeError, zlib.error, EOFError, SyntaxError or TokenError out of the
header's `literal_eval`, MemoryError...), and a header that claims a huge
shape makes it allocate that shape before a single data byte is read.

`NpzReader` reads the same files and either returns exactly the arrays that
were saved or raises `DataError` naming the file, the array and what is
wrong. It promises:

  * No allocation driven by a claim. Before any array is allocated, the
    bytes its header claims (shape x itemsize) must equal what the zip
    directory says the member holds, and that size must be possible: a
    stored member's size equals its compressed size, a deflated member is
    at most deflate's maximum ratio (1032:1) larger, and the compressed size
    fits in the file. The directory can still lie within those bounds, so
    reads are done in bounded chunks and their lengths checked; the zip's
    CRC-32 is checked at the end of every member.
  * No pickles: only booleans, integers, floats and unicode strings
    (`ALLOWED_DTYPES`); object arrays are refused by name ('pickles'),
    structured, bytes, complex and datetime arrays as unsupported.
  * Values that numpy would misread are refused: booleans other than 0/1,
    strings with code points that are not text.
  * Only what `np.savez` / `np.savez_compressed` write: stored or deflated
    members, .npy format versions 1.0-3.0, headers under 10,000 bytes.

What the arrays mean (shapes, label ranges, JSON) is the caller's to check;
this module only guarantees that they are the arrays in the file.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import math
import os
import re
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator

import numpy as np

from enhancer_gan.errors import DataError

# Simple dtypes only: bool, (un)signed integers, floats, unicode strings.
ALLOWED_DTYPES = "b1, i1/2/4/8, u1/2/4/8, f2/4/8, U<n>"
_DESCR = re.compile(r"[<>|=]?(b1|[iu][1248]|f[248]|U[1-9][0-9]{0,8})")
# .npy versions: the header-length field and the header's encoding.
_HEADER_FORMATS = {(1, 0): ("<H", "latin1"), (2, 0): ("<I", "latin1"), (3, 0): ("<I", "utf8")}
_MAGIC = b"\x93NUMPY"
# numpy's own limit for a header it parses without allow_pickle.
_MAX_HEADER_BYTES = 10_000
# No deflate stream inflates by more than this (zlib's technical notes).
_MAX_DEFLATE_RATIO = 1032
# Data is read (and, for streamed arrays, handed out) in pieces this large.
_CHUNK_BYTES = 16 << 20
_MAX_ARRAY_BYTES = np.iinfo(np.intp).max

# What the zip and decompression layers raise for damaged input. A narrower
# list would let a damaged file through as a crash; these are the
# exceptions zipfile and zlib document or were seen raising on fuzzed files.
_READ_ERRORS = (
    zipfile.BadZipFile,  # bad magic numbers, CRC mismatch, corrupt headers
    zipfile.LargeZipFile,
    NotImplementedError,  # zip versions and compression methods zipfile lacks
    RuntimeError,  # "encrypted, password required"
    EOFError,  # a member that ends early
    OSError,
    ValueError,  # includes UnicodeDecodeError of member names
    OverflowError,  # offsets past what seek() takes
    struct.error,
    zlib.error,
)


@dataclasses.dataclass(frozen=True)
class NpyHeader:
    """One member's validated .npy header.

    Attributes:
      key: the array's name (the member name without '.npy').
      shape: the array's shape, every dimension >= 0.
      dtype: one of `ALLOWED_DTYPES`.
      fortran_order: whether the data is stored column-major.
      nbytes: size of the data in bytes (= the member's size minus the header).
    """

    key: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    nbytes: int


def _describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = str(e) or type(e).__name__
    return text if len(text) <= 200 else text[:200] + "..."


class NpzReader:
    """An open .npz file whose members are read only after checking their claims.

    Use as a context manager:

        with NpzReader(path, "voxel archive") as npz:
            missing = npz.missing(["X_train", "y_train"])
            header = npz.header("X_train")   # shape and dtype, nothing read
            labels = npz.read("y_train")

    Every method raises `DataError(path, 'cannot read <what>: ...')` for a
    file or member that cannot be read as it claims; nothing else.
    """

    def __init__(self, path: str | os.PathLike, what: str = ".npz file"):
        """Opens `path` and reads its zip directory.

        Args:
          path: the .npz file.
          what: what the file is, for messages ('voxel archive').

        Raises:
          DataError: the file is missing, not a zip, or its directory is damaged.
        """
        self.path = os.fspath(path)
        self.what = what
        self._file = None
        self._zip = None
        self._headers: dict[str, NpyHeader] = {}
        self._members: dict[str, zipfile.ZipInfo] = {}
        try:
            try:
                self._file = open(self.path, "rb")
                self._size = os.fstat(self._file.fileno()).st_size
            except OSError as e:
                raise self.error(_describe(e)) from None
            with self._errors(None):
                self._zip = zipfile.ZipFile(self._file)
            for info in self._zip.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[: -len(".npy")]
                if key in self._members:
                    raise self.error(f"{info.filename} appears twice")
                self._members[key] = info
        except BaseException:
            self.close()
            raise

    # -- life cycle ----------------------------------------------------------

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> NpzReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what the file holds -------------------------------------------------

    @property
    def keys(self) -> tuple[str, ...]:
        """Names of the arrays in the file, sorted."""
        return tuple(sorted(self._members))

    def missing(self, keys: Iterable[str]) -> list[str]:
        """Those of `keys` that the file has no array for, in the given order."""
        return [k for k in keys if k not in self._members]

    def error(self, problem: str) -> DataError:
        """A DataError naming the file: 'cannot read <what>: <problem>'."""
        return DataError(self.path, f"cannot read {self.what}: {problem}")

    def header(self, key: str) -> NpyHeader:
        """The validated header of array `key`; reads no data.

        Raises:
          DataError: no such array, an unsupported or damaged member, a
            pickled or otherwise refused dtype, or a header whose shape
            disagrees with the member's real size.
        """
        if key not in self._headers:
            with self._member(key) as (header, _):
                self._headers[key] = header
        return self._headers[key]

    # -- reading -------------------------------------------------------------

    def read(self, key: str) -> np.ndarray:
        """Array `key`, exactly as saved (shape, dtype, order).

        Memory: one array of the size the member really holds (checked
        against the file before allocating).
        """
        with self._member(key) as (header, stream):
            buffer = np.empty(header.nbytes, dtype=np.uint8)
            self._read_into(key, stream, memoryview(buffer))
            self._check_end(key, stream)
        return self._as_array(header, buffer, header.shape)

    def read_rows(self, key: str, max_bytes: int = 64 << 20) -> Iterator[tuple[int, np.ndarray]]:
        """Array `key` in blocks of rows: (first row, [k, *shape[1:]] block).

        Lets a caller convert a large array piece by piece (the voxel
        archive's int32 grids to bool) without holding it whole. A
        Fortran-order or 0-d array comes as one block. The zip's CRC-32 is
        checked after the last block: a caller must not keep results before
        the iteration has ended.
        """
        header = self.header(key)
        if header.fortran_order or not header.shape:
            yield 0, self.read(key)
            return
        n = header.shape[0]
        row_bytes = header.nbytes // n if n else 0
        rows = max(1, max_bytes // row_bytes) if row_bytes else max(n, 1)
        with self._member(key) as (header, stream):
            for start in range(0, n, rows):
                k = min(rows, n - start)
                buffer = np.empty(k * row_bytes, dtype=np.uint8)
                self._read_into(key, stream, memoryview(buffer))
                yield start, self._as_array(header, buffer, (k, *header.shape[1:]))
            self._check_end(key, stream)

    # -- the checks ----------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, key: str | None) -> Iterator[None]:
        """Turns what zipfile, zlib and numpy raise for damaged data into DataError."""
        where = f"{key}: " if key else ""
        try:
            yield
        except DataError:
            raise
        except zipfile.BadZipFile as e:
            raise self.error(
                f"{where}not a valid .npz (zip) file or damaged: {_describe(e)}"
            ) from None
        except _READ_ERRORS as e:
            raise self.error(f"{where}damaged or truncated: {_describe(e)}") from None

    def _check_entry(self, key: str, info: zipfile.ZipInfo) -> None:
        """Refuses a member whose directory entry is unsupported or impossible."""
        if info.flag_bits & 0x1:
            raise self.error(f"{key}: the member is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise self.error(
                f"{key}: compression method {info.compress_type} is not supported "
                "(.npz files are stored or deflated)"
            )
        if info.compress_size > self._size:
            raise self.error(
                f"{key}: the zip directory claims {info.compress_size} compressed bytes "
                f"in a {self._size}-byte file"
            )
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise self.error(
                f"{key}: the zip directory's sizes disagree ({info.file_size} bytes stored "
                f"in {info.compress_size})"
            )
        if info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 1024:
            raise self.error(
                f"{key}: the zip directory claims {info.file_size} bytes, more than "
                f"{info.compress_size} deflated bytes can hold"
            )

    @contextlib.contextmanager
    def _member(self, key: str) -> Iterator[tuple[NpyHeader, object]]:
        """(validated header, stream at the first data byte) of member `key`."""
        info = self._members.get(key)
        if info is None:
            raise self.error(f"no array {key!r}")
        self._check_entry(key, info)
        with self._errors(key), self._zip.open(info) as stream:
            yield self._parse_header(key, info, stream), stream

    def _parse_header(self, key: str, info: zipfile.ZipInfo, stream) -> NpyHeader:
        magic = self._read_bytes(key, stream, len(_MAGIC) + 2)
        if magic[: len(_MAGIC)] != _MAGIC:
            raise self.error(f"{key}: not an .npy array (bad magic string)")
        version = (magic[-2], magic[-1])
        if version not in _HEADER_FORMATS:
            raise self.error(f"{key}: unsupported .npy format version {version[0]}.{version[1]}")
        length_format, encoding = _HEADER_FORMATS[version]
        length_field = self._read_bytes(key, stream, struct.calcsize(length_format))
        (length,) = struct.unpack(length_format, length_field)
        if length > _MAX_HEADER_BYTES:
            raise self.error(f"{key}: .npy header of {length} bytes (at most {_MAX_HEADER_BYTES})")
        offset = len(magic) + len(length_field) + length
        raw = self._read_bytes(key, stream, length)
        try:
            with warnings.catch_warnings():
                # Invalid escapes in a damaged header are refused below, not warned about.
                warnings.simplefilter("ignore")
                fields = ast.literal_eval(raw.decode(encoding))
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
            raise self.error(f"{key}: the .npy header is not a Python literal") from None
        if not isinstance(fields, dict) or set(fields) != {"descr", "fortran_order", "shape"}:
            raise self.error(f"{key}: the .npy header is not a dict of descr, fortran_order, shape")
        shape, fortran, descr = fields["shape"], fields["fortran_order"], fields["descr"]
        if (
            not isinstance(shape, tuple)
            or len(shape) > 32
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise self.error(f"{key}: invalid shape {str(shape)[:100]} in the .npy header")
        if not isinstance(fortran, bool):
            raise self.error(f"{key}: fortran_order is not a bool in the .npy header")
        dtype = self._dtype(key, descr)
        if math.prod(max(d, 1) for d in shape) * dtype.itemsize > _MAX_ARRAY_BYTES:
            raise self.error(f"{key}: shape {shape} is too large for any array")
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes != info.file_size:
            raise self.error(
                f"{key}: the header says shape {shape} {dtype} ({nbytes} bytes) but the "
                f"member holds {info.file_size - offset} bytes of data"
            )
        return NpyHeader(key, shape, dtype, fortran, nbytes)

    def _dtype(self, key: str, descr) -> np.dtype:
        if isinstance(descr, str) and "O" in descr:
            raise self.error(f"{key}: object arrays (pickles) are not allowed")
        if not isinstance(descr, str) or not _DESCR.fullmatch(descr):
            raise self.error(
                f"{key}: dtype {str(descr)[:60]!r} is not supported (only {ALLOWED_DTYPES})"
            )
        try:
            return np.dtype(descr)
        except (TypeError, ValueError):
            raise self.error(f"{key}: dtype {descr!r} is not supported") from None

    def _read_bytes(self, key: str, stream, size: int) -> bytes:
        data = stream.read(size)
        if len(data) != size:
            raise self.error(f"{key}: truncated (member ends early)")
        return data

    def _read_into(self, key: str, stream, buffer: memoryview) -> None:
        """Fills `buffer` from `stream` in bounded reads; DataError if it ends early."""
        pos = 0
        while pos < len(buffer):
            data = stream.read(min(_CHUNK_BYTES, len(buffer) - pos))
            if not data:
                raise self.error(f"{key}: truncated (member ends early)")
            buffer[pos : pos + len(data)] = data
            pos += len(data)

    def _check_end(self, key: str, stream) -> None:
        # Reaching the end also makes zipfile compare the member's CRC-32.
        if stream.read(1):
            raise self.error(f"{key}: data continues past the array")

    def _as_array(self, header: NpyHeader, buffer: np.ndarray, shape: tuple) -> np.ndarray:
        """Bytes -> array of `shape`, refusing values numpy would misread."""
        dtype = header.dtype
        if dtype.kind == "b" and buffer.size and buffer.max() > 1:
            raise self.error(f"{header.key}: booleans other than 0 and 1")
        if dtype.kind == "U" and buffer.size:
            codes = buffer.view(np.dtype(np.uint32).newbyteorder(dtype.byteorder))
            if ((codes >= 0x110000) | ((codes >= 0xD800) & (codes < 0xE000))).any():
                raise self.error(f"{header.key}: strings hold invalid code points")
        array = buffer.view(dtype)
        if header.fortran_order:
            return array.reshape(shape[::-1]).T
        return array.reshape(shape)


def read_npz(
    path: str | os.PathLike, keys: Iterable[str], what: str, optional: Iterable[str] = ()
) -> dict[str, np.ndarray]:
    """Reads the named arrays of an .npz file through `NpzReader`.

    Args:
      path: the file.
      keys: arrays that must be present.
      what: what the file is, for messages ('feature file').
      optional: arrays read when present.

    Returns:
      {key: array} for `keys` and the present `optional` keys.

    Raises:
      DataError: 'not a <what>: missing ...' when a key is absent, or any
        `NpzReader` error.
    """
    keys = list(keys)
    with NpzReader(path, what) as npz:
        missing = npz.missing(keys)
        if missing:
            raise DataError(path, f"not a {what}: missing {', '.join(missing)}")
        present = [k for k in optional if k in npz.keys]
        return {k: npz.read(k) for k in [*keys, *present]}
