"""Tests of the .binvox reader/writer on real ShapeNet files and on random input.

The reference decoder below is deliberately naive (one Python step per run,
and the index formula of the binvox documentation instead of a reshape and a
transpose), so that it cannot share a bug with the vectorised one.
"""

import os
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enhancer_gan.errors import BinvoxError
from enhancer_gan.voxels.binvox import (
    MAX_DIM,
    binvox_bytes,
    decode_runs,
    encode_runs,
    read_binvox,
    read_binvox_bytes,
    write_binvox,
)

CHAIR_ID = "1a6f615e8b1b5ae4dbbc9440457e303e"  # in every sample folder

# Hypothesis tests that take the (constant) `shared_data` path keep the
# profile's example count; the fixture is safe to share between examples.
fixture_ok = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def real_files(root):
    """All sample binvox files: [(path, expected dim)]."""
    r2n2 = sorted((root / "ShapeNetVox32").glob("*/*/model.binvox"))
    v2 = sorted((root / "ShapeNetCore.v2").glob("*/*/models/*.binvox"))
    assert len(r2n2) == 6 and len(v2) == 16, "the sample data changed; update these tests"
    return [(p, 32) for p in r2n2] + [(p, 128) for p in v2]


def split_file(raw: bytes) -> tuple[dict[str, list[str]], bytes]:
    """Naive header parse: ({key: values}, body) of a well-formed file."""
    header = {}
    pos = 0
    while True:
        end = raw.index(b"\n", pos)
        line = raw[pos:end].decode("ascii").strip()
        pos = end + 1
        key, *values = line.split()
        header[key] = values
        if key == "data":
            return header, raw[pos:]


def reference_decode(body: bytes, dim: int) -> np.ndarray:
    """Per-run decoder: [dim]*3 bool in project order (x, y, z)."""
    flat = np.zeros(dim**3, dtype=bool)
    pos = 0
    for i in range(0, len(body), 2):
        value, count = body[i], body[i + 1]
        assert value in (0, 1)
        flat[pos : pos + count] = bool(value)
        pos += count
    assert pos == dim**3
    # binvox: index = x * dim^2 + z * dim + y (y fastest), as in docs/DESIGN.md#formats.
    idx = np.arange(dim**3)
    grid = np.zeros((dim, dim, dim), dtype=bool)
    grid[idx // dim**2, idx % dim, (idx // dim) % dim] = flat
    return grid


_CHAIR32 = {}


def chair32_bytes(root) -> bytes:
    """The raw 32^3 R2N2 chair file, read once (hypothesis calls this often)."""
    if root not in _CHAIR32:
        path = root / "ShapeNetVox32" / "03001627" / CHAIR_ID / "model.binvox"
        _CHAIR32[root] = path.read_bytes()
    return _CHAIR32[root]


# ---------------------------------------------------------------- real files


def test_real_files_shape_dtype_and_header(shared_data):
    for path, dim in real_files(shared_data):
        vox = read_binvox(path)
        header, _ = split_file(path.read_bytes())
        assert vox.grid.shape == (dim, dim, dim)
        assert vox.grid.dtype == bool
        assert vox.dim == dim
        assert 0 < vox.grid.sum() < dim**3
        assert vox.translate == tuple(float(v) for v in header["translate"])
        assert vox.scale == float(header["scale"][0])


def test_real_file_known_values(shared_data):
    vox = read_binvox(shared_data / "ShapeNetVox32" / "03001627" / CHAIR_ID / "model.binvox")
    assert vox.translate == (-0.227311, -0.368659, -0.24984)
    assert vox.scale == 0.737318
    assert int(vox.grid.sum()) == 2163
    # The chair stands on y = 0 (y is up) and spans the whole height.
    assert vox.grid[:, 0, :].any() and vox.grid[:, 31, :].any()


def test_real_body_and_file_reencode_byte_exact(shared_data):
    for path, _ in real_files(shared_data):
        raw = path.read_bytes()
        vox = read_binvox(path)
        _, body = split_file(raw)
        assert encode_runs(vox.grid) == body, path
        assert binvox_bytes(vox.grid, vox.translate, vox.scale) == raw, path


def test_reference_decoder_agrees_on_real_files(shared_data):
    for path, dim in real_files(shared_data):
        header, body = split_file(path.read_bytes())
        assert header["dim"] == [str(dim)] * 3
        np.testing.assert_array_equal(read_binvox(path).grid, reference_decode(body, dim))


def test_solid_contains_surface(shared_data):
    # Both v2 grids come from the same mesh: the solid one is the surface
    # one with the inside filled, so a decoding slip would break this.
    for solid in sorted((shared_data / "ShapeNetCore.v2").glob("*/*/models/*.solid.binvox")):
        surface = solid.with_name("model_normalized.surface.binvox")
        s, f = read_binvox(solid).grid, read_binvox(surface).grid
        assert np.all(s | ~f) and s.sum() >= f.sum(), solid


# ------------------------------------------------------- hand-worked encodings


@pytest.mark.parametrize(
    "voxel, flat_index",
    [((0, 0, 0), 0), ((0, 1, 0), 1), ((0, 0, 1), 2), ((1, 0, 0), 4), ((1, 1, 1), 7)],
)
def test_axis_order_single_voxel(voxel, flat_index):
    # 2^3 grid: file index = x * 4 + z * 2 + y.
    grid = np.zeros((2, 2, 2), dtype=bool)
    grid[voxel] = True
    runs = []
    if flat_index:
        runs += [0, flat_index]
    runs += [1, 1]
    if flat_index < 7:
        runs += [0, 7 - flat_index]
    assert encode_runs(grid) == bytes(runs)
    np.testing.assert_array_equal(decode_runs(bytes(runs), 2), grid)


def test_long_runs_split_at_255():
    full = np.ones((8, 8, 8), dtype=bool)
    assert encode_runs(full) == bytes([1, 255, 1, 255, 1, 2])
    np.testing.assert_array_equal(decode_runs(bytes([1, 255, 1, 255, 1, 2]), 8), full)
    # Zero-length runs are legal in the format and change nothing.
    np.testing.assert_array_equal(decode_runs(bytes([0, 0, 1, 255, 1, 255, 1, 2]), 8), full)


@pytest.mark.parametrize("dim", [1, 2, 3, 7, 16, 32, 64, 128])
def test_round_trip_through_file(tmp_path, dim):
    rng = np.random.default_rng(dim)
    grid = rng.random((dim, dim, dim)) < 0.3
    path = tmp_path / f"g{dim}.binvox"
    write_binvox(path, grid, translate=(-0.25, 0.5, 1.125), scale=0.737318)
    vox = read_binvox(path)
    np.testing.assert_array_equal(vox.grid, grid)
    assert vox.translate == (-0.25, 0.5, 1.125)
    assert vox.scale == 0.737318
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left behind


# ---------------------------------------------------------------- properties


@st.composite
def random_grids(draw):
    """[D, D, D] bool, D in 1..12, from sparse to dense (long and short runs)."""
    dim = draw(st.integers(1, 12))
    nbytes = (dim**3 + 7) // 8
    layers = [
        np.unpackbits(np.frombuffer(draw(st.binary(min_size=nbytes, max_size=nbytes)), np.uint8))
        for _ in range(draw(st.integers(1, 3)))
    ]
    bits = np.logical_and.reduce(layers)[: dim**3]
    if draw(st.booleans()):
        bits = ~bits
    return bits.reshape(dim, dim, dim)


@given(
    random_grids(),
    st.tuples(*[st.floats(-10, 10, allow_nan=False) for _ in range(3)]),
    st.floats(1e-3, 10),
)
def test_property_random_grids_round_trip(grid, translate, scale):
    dim = grid.shape[0]
    raw = binvox_bytes(grid, translate, scale)
    vox = read_binvox_bytes(raw)
    np.testing.assert_array_equal(vox.grid, grid)
    _, body = split_file(raw)
    np.testing.assert_array_equal(reference_decode(body, dim), grid)
    # The header keeps 6 significant digits.
    np.testing.assert_allclose(vox.translate, translate, rtol=1e-5, atol=1e-5)
    assert vox.scale == pytest.approx(scale, rel=1e-5)


def decode_or_binvox_error(raw: bytes):
    """Decodes `raw`; returns the VoxelFile or None when BinvoxError was raised."""
    start = time.perf_counter()
    try:
        vox = read_binvox_bytes(raw, name="fuzz.binvox")
    except BinvoxError as e:
        assert "fuzz.binvox" in str(e)
        vox = None
    assert time.perf_counter() - start < 2.0, "decoding took too long"
    if vox is not None:
        dim = vox.dim
        assert vox.grid.shape == (dim, dim, dim) and vox.grid.dtype == bool
        assert 1 <= dim <= MAX_DIM
        assert np.all(np.isfinite(vox.translate)) and np.isfinite(vox.scale)
        _, body = split_file(raw)
        np.testing.assert_array_equal(vox.grid, reference_decode(body, dim))
    return vox


@given(st.binary(max_size=600))
def test_property_random_bytes(raw):
    decode_or_binvox_error(raw)


_header_line = st.one_of(
    st.sampled_from(
        [
            "dim 2 2 2",
            "dim 3 3 3",
            "dim 2 2 3",
            "dim 2",
            "dim",
            "dim -2 -2 -2",
            "dim 0 0 0",
            "dim 100000 100000 100000",
            "dim x y z",
            "translate 0 0 0",
            "translate nan 0 0",
            "translate 1 2",
            "scale 1",
            "scale inf",
            "scale",
            "",
            "bogus",
        ]
    ),
    st.text(alphabet="dimtranslcaeo 0123456789.-\t#", max_size=30),
)


@given(
    st.sampled_from(["#binvox 1", "#binvox", "#binvox 2", "binvox 1", ""]),
    st.lists(_header_line, max_size=5),
    st.booleans(),
    st.binary(max_size=64),
)
def test_property_header_and_body_fuzz(magic, lines, with_data, body):
    text = "\n".join([magic, *lines, *(["data"] if with_data else [])]) + "\n"
    decode_or_binvox_error(text.encode("ascii") + body)


@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 255)), max_size=40),
    st.sampled_from([1, 2, 3, 4]),
)
def test_property_random_runs(runs, dim):
    # Bodies made of (value, count) pairs: valid exactly when every value is
    # 0/1 and the counts add up to dim^3.
    body = bytes(b for pair in runs for b in pair)
    raw = f"#binvox 1\ndim {dim} {dim} {dim}\ndata\n".encode() + body
    vox = decode_or_binvox_error(raw)
    valid = all(v <= 1 for v, _ in runs) and sum(c for _, c in runs) == dim**3
    assert (vox is not None) == valid


@fixture_ok
@given(
    # Values 0 and 1 often: a flipped voxel value is the corruption that still decodes.
    edits=st.lists(
        st.tuples(st.integers(0, 10_000), st.one_of(st.integers(0, 1), st.integers(0, 255))),
        min_size=1,
        max_size=4,
    ),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
    insert=st.one_of(
        st.none(), st.tuples(st.integers(0, 10_000), st.binary(min_size=1, max_size=4))
    ),
)
def test_property_corrupted_real_file(shared_data, edits, cut, insert):
    raw = bytearray(chair32_bytes(shared_data))
    for pos, value in edits:
        raw[pos % len(raw)] = value
    if insert is not None:
        pos, extra = insert
        raw[pos % len(raw) : pos % len(raw)] = extra
    if cut is not None:
        del raw[cut % len(raw) :]
    decode_or_binvox_error(bytes(raw))


def test_every_truncation_of_a_real_file_is_refused(shared_data):
    raw = chair32_bytes(shared_data)
    for end in range(len(raw)):
        with pytest.raises(BinvoxError, match="chair.binvox"):
            read_binvox_bytes(raw[:end], name="chair.binvox")


# ---------------------------------------------------------------- validation


def test_huge_dim_is_refused_without_allocating(tmp_path):
    for dim in (100_000, MAX_DIM + 1):
        path = tmp_path / f"huge{dim}.binvox"
        path.write_bytes(f"#binvox 1\ndim {dim} {dim} {dim}\ndata\n".encode() + b"\x01\xff" * 8)
        tracemalloc.start()
        try:
            with pytest.raises(BinvoxError, match=str(dim)) as err:
                read_binvox(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert str(path) in str(err.value)
        assert peak < 1 << 20, f"{peak} bytes allocated for a refused header"


def test_max_dim_with_short_body_is_refused_without_allocating(tmp_path):
    # The dim is allowed, but the runs do not add up: refuse before np.repeat.
    path = tmp_path / "short.binvox"
    path.write_bytes(f"#binvox 1\ndim {MAX_DIM} {MAX_DIM} {MAX_DIM}\ndata\n".encode() + b"\x01\xff")
    tracemalloc.start()
    try:
        with pytest.raises(BinvoxError, match="truncated data"):
            read_binvox(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


GOOD_HEADER = b"#binvox 1\ndim 2 2 2\ntranslate 0 0 0\nscale 1\ndata\n"

BAD_FILES = {
    "wrong_magic": (b"#voxbin 1\ndim 2 2 2\ndata\n\x00\x08", "wrong magic"),
    "empty_file": (b"", "truncated header"),
    "missing_dim": (b"#binvox 1\ntranslate 0 0 0\nscale 1\ndata\n\x00\x08", "no 'dim'"),
    "non_cubic_dim": (b"#binvox 1\ndim 2 2 3\ndata\n\x00\x0c", "cubic"),
    "two_numbers_dim": (b"#binvox 1\ndim 2 2\ndata\n\x00\x08", "cubic"),
    "zero_dim": (b"#binvox 1\ndim 0 0 0\ndata\n", "outside"),
    "text_dim": (b"#binvox 1\ndim a b c\ndata\n\x00\x08", "malformed header"),
    "runs_too_short": (GOOD_HEADER + b"\x00\x07", "truncated data"),
    "runs_too_long": (GOOD_HEADER + b"\x00\x08\x01\x01", "too much data"),
    "value_2": (GOOD_HEADER + b"\x02\x08", "value 2"),
    "odd_body": (GOOD_HEADER + b"\x00\x08\x00", "odd number"),
    "no_body": (GOOD_HEADER, "truncated data"),
    "no_data_line": (b"#binvox 1\ndim 2 2 2\n", "truncated header"),
    "header_too_long": (b"#binvox 1\n" + b"scale 1\n" * 20, "no 'data' line"),
    "long_line": (b"#binvox 1\ndim " + b"2" * 300 + b"\ndata\n", "too long"),
    "non_ascii": (b"#binvox 1\ndim 2 2 2\xff\ndata\n\x00\x08", "non-ASCII"),
    "nan_translate": (b"#binvox 1\ndim 2 2 2\ntranslate nan 0 0\ndata\n\x00\x08", "finite"),
    "inf_scale": (b"#binvox 1\ndim 2 2 2\nscale inf\ndata\n\x00\x08", "finite"),
    "short_translate": (b"#binvox 1\ndim 2 2 2\ntranslate 0 0\ndata\n\x00\x08", "malformed"),
    # binvox.py means to say "unknown header line" here, but its `except
    # ValueError` also catches its own BinvoxError (a ValueError) and says
    # "malformed header line"; both name the line.
    "unknown_line": (
        b"#binvox 1\ndim 2 2 2\ncolour red\ndata\n\x00\x08",
        "header line 'colour red'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_validation_error_names_the_file(tmp_path, case):
    content, problem = BAD_FILES[case]
    path = tmp_path / f"{case}.binvox"
    path.write_bytes(content)
    with pytest.raises(BinvoxError) as err:
        read_binvox(path)
    assert err.value.path == str(path)
    assert str(path) in str(err.value)
    assert problem in str(err.value)


def test_good_header_is_accepted():
    # The positive control of the table above.
    vox = read_binvox_bytes(GOOD_HEADER + b"\x00\x07\x01\x01")
    assert vox.grid.sum() == 1 and vox.grid[1, 1, 1]


def test_missing_file_and_directory(tmp_path):
    for path in (tmp_path / "absent.binvox", tmp_path):
        with pytest.raises(BinvoxError, match="cannot read file") as err:
            read_binvox(path)
        assert err.value.path == str(path)


def test_in_memory_error_says_so():
    with pytest.raises(BinvoxError, match="<in-memory data>"):
        read_binvox_bytes(b"nonsense")
