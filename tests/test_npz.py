"""The shared .npz reader (data/npz.py): what it returns and what it refuses.

The property tests of the readers built on it (voxel archives, feature
files, caches) are in test_bad_inputs.py.
"""

import io
import struct
import warnings
import zipfile

import numpy as np
import pytest

from enhancer_gan.data.npz import NpzReader, read_npz
from enhancer_gan.errors import DataError


def npy(array, allow_pickle=False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def write_zip(path, members: dict[str, bytes], method=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


ARRAYS = {
    "bools": np.array([[True, False], [False, True]]),
    "bytes": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    "big_endian": np.arange(5, dtype=">i2"),
    "fortran": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
    "half": np.array([0.5, -2.0], np.float16),
    "scalar": np.int64(7),
    "empty": np.zeros((0, 57344), np.float32),
    "text": np.array(["chair", "\u00e9t\u00e9", ""]),
    "json": np.array('{"step": 7}'),
}


@pytest.mark.parametrize("compressed", [False, True])
def test_reads_back_what_numpy_saved(tmp_path, compressed):
    path = tmp_path / "all.npz"
    (np.savez_compressed if compressed else np.savez)(path, **ARRAYS)
    with NpzReader(path, "test file") as npz:
        assert npz.keys == tuple(sorted(ARRAYS))
        assert npz.missing(["bools", "nope"]) == ["nope"]
        for key, expected in ARRAYS.items():
            header = npz.header(key)
            assert header.shape == np.shape(expected) and header.dtype == np.asarray(expected).dtype
            got = npz.read(key)
            assert got.dtype == np.asarray(expected).dtype
            np.testing.assert_array_equal(got, expected)
        assert npz.read("fortran").flags.f_contiguous


def test_rows_come_in_blocks_that_make_up_the_array(tmp_path):
    grids = np.random.default_rng(0).integers(0, 2, (7, 4, 4, 4)).astype(np.int32)
    path = tmp_path / "g.npz"
    np.savez_compressed(path, grids=grids)
    with NpzReader(path) as npz:
        blocks = list(npz.read_rows("grids", max_bytes=2 * 4**3 * 4))
    assert [start for start, _ in blocks] == [0, 2, 4, 6]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), grids)


def test_read_npz_names_what_is_missing(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(path, a=np.arange(3), b=np.arange(2))
    out = read_npz(path, ["a"], "thing", optional=["b", "c"])
    assert sorted(out) == ["a", "b"]
    with pytest.raises(DataError, match="not a thing: missing c, d") as info:
        read_npz(path, ["a", "c", "d"], "thing")
    assert str(path) in str(info.value)


def _with_directory_field(raw: bytes, offset: int, fmt: str, value: int) -> bytes:
    """Sets a field of the (only) central-directory entry."""
    data = bytearray(raw)
    struct.pack_into(fmt, data, data.find(b"PK\x01\x02") + offset, value)
    return bytes(data)


def _refusals(tmp_path):
    good = npy(np.arange(1000, dtype=np.int64))
    stored = io.BytesIO()
    write_zip(stored, {"a.npy": good})
    deflated = io.BytesIO()
    write_zip(deflated, {"a.npy": good}, zipfile.ZIP_DEFLATED)
    bzip2 = io.BytesIO()
    write_zip(bzip2, {"a.npy": good}, zipfile.ZIP_BZIP2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        twice = io.BytesIO()
        write_zip(twice, {"a.npy": good})
        with zipfile.ZipFile(twice, "a") as zf:
            zf.writestr("a.npy", good)
    header = b"{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }".ljust(117) + b"\n"
    cases = {
        "pickles": ({"a.npy": npy(np.array([{}], dtype=object), True)}, "pickles"),
        "complex": ({"a.npy": npy(np.zeros(2, np.complex64))}, "not supported"),
        "structured": ({"a.npy": npy(np.zeros(2, "i4,f4"))}, "not supported"),
        "bytes": ({"a.npy": npy(np.array([b"x"]))}, "not supported"),
        "bool 2": ({"a.npy": npy(np.array([True, False]))[:-1] + b"\x02"}, "0 and 1"),
        "bad code point": (
            {"a.npy": npy(np.array(["ab"]))[:-4] + struct.pack("<I", 0x110000)},
            "code points",
        ),
        "short data": ({"a.npy": npy(np.arange(3))[:-1]}, "holds 23 bytes"),
        "version 9": ({"a.npy": b"\x93NUMPY\x09\x00" + npy(np.arange(3))[8:]}, "version 9.0"),
        "not a literal": (
            {"a.npy": b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + b"{(".ljust(118)},
            "not a Python literal",
        ),
        "no magic": ({"a.npy": b"PK" + header}, "bad magic"),
    }
    for name, (members, problem) in cases.items():
        yield name, write_zip(io.BytesIO(), members).getvalue(), problem
    yield "text", b"not a zip at all", "not a valid .npz"
    yield "bzip2", bzip2.getvalue(), "compression method 12"
    yield "encrypted", _with_directory_field(stored.getvalue(), 8, "<H", 1), "encrypted"
    yield "sizes", _with_directory_field(stored.getvalue(), 24, "<I", 1 << 30), "disagree"
    yield "ratio", _with_directory_field(deflated.getvalue(), 24, "<I", 1 << 30), "can hold"
    yield "twice", twice.getvalue(), "appears twice"


def test_damaged_or_hostile_members_are_refused_naming_file_and_array(tmp_path):
    for name, raw, problem in _refusals(tmp_path):
        path = tmp_path / "bad.npz"
        path.write_bytes(raw)
        with pytest.raises(DataError) as info:
            with NpzReader(path, "test file") as npz:
                for key in npz.keys:
                    npz.read(key)
        message = str(info.value)
        assert message.startswith(f"{path}: cannot read test file: "), (name, message)
        assert problem in message, (name, message)
    with pytest.raises(DataError, match="cannot read test file: No such file"):
        NpzReader(tmp_path / "absent.npz", "test file")
