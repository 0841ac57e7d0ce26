"""Tests of the .off reader/writer: real ModelNet files, quirks, broken files."""

import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enhancer_gan.data.off import MAX_COUNT, parse_off, read_off, write_off
from enhancer_gan.errors import MeshError

REAL_FILES = {
    # file: (vertices, faces) as the header says
    "bathtub/train/bathtub_0001.off": (3514, 3546),
    "bathtub/train/bathtub_0002.off": (700, 664),
    "bathtub/train/bathtub_0003.off": (14963, 19985),
    "bathtub/train/bathtub_0004.off": (2842, 3519),
    "bathtub/train/bathtub_0005.off": (18472, 30734),
    "toilet/test/toilet_0345.off": (6276, 6116),
}
# Hypothesis and the function-scoped `shared_data` fixture: the fixture only
# gives a path, so reusing it across examples is safe.
FIXTURE_OK = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def check_consistent(vertices, faces):
    assert vertices.dtype == np.float64 and vertices.ndim == 2 and vertices.shape[1] == 3
    assert faces.dtype == np.int64 and faces.ndim == 2 and faces.shape[1] == 3
    assert np.isfinite(vertices).all()
    if faces.size:
        assert faces.min() >= 0 and faces.max() < len(vertices)


@pytest.mark.parametrize("relpath", sorted(REAL_FILES))
def test_real_files(shared_data, relpath):
    vertices, faces = read_off(shared_data / "ModelNet10" / relpath)
    check_consistent(vertices, faces)
    assert (len(vertices), len(faces)) == REAL_FILES[relpath]


def test_real_values(shared_data):
    vertices, faces = read_off(shared_data / "ModelNet10/bathtub/train/bathtub_0001.off")
    np.testing.assert_array_equal(vertices[0], [18.5143, -29.8765, -23.0382])
    np.testing.assert_array_equal(faces[0], [13, 14, 15])
    vertices, _ = read_off(shared_data / "ModelNet10/toilet/test/toilet_0345.off")
    np.testing.assert_array_equal(vertices[1], [3, -1.25203, -1.35])


def read_text(tmp_path, text, name="m.off"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return read_off(path)


TRIANGLE = "0 0 0\n1 0 0\n0 1 0\n"


@pytest.mark.parametrize(
    "text",
    [
        "OFF\n3 1 0\n" + TRIANGLE + "3 0 1 2\n",
        "OFF3 1 0\n" + TRIANGLE + "3 0 1 2\n",  # counts on the magic line
        "OFF 3 1 0\n" + TRIANGLE + "3 0 1 2\n",
        "OFF\n3 1\n" + TRIANGLE + "3 0 1 2\n",  # no edge count
        "# made by hand\nOFF # magic\n\n  3   1   0  \n# vertices\n0 0 0\n\n1\t0 0\n0 1 0 # last\n"
        "3 0 1 2   \n\n\n",
        "OFF\r\n3 1 0\r\n0 0 0\r\n1 0 0\r\n0 1 0\r\n3 0 1 2\r\n",  # Windows line ends
        "\ufeffOFF\n3 1 0\n" + TRIANGLE + "3 0 1 2",  # byte order mark, no final newline
        "OFF\n3 1 0\n" + TRIANGLE + "3 0 1 2 255 0 0\n",  # face colour
        "OFF\n3 1 0\n" + TRIANGLE + "3 0 1 2 0.5 0.5 0.5 1.0\n",  # RGBA colour
        "COFF\n3 1 0\n0 0 0 255 0 0 255\n1 0 0 0 255 0 255\n0 1 0 0 0 255 255\n3 0 1 2\n",
        "OFF\n3 1 0\n0.0e0 +0 -0\n1E0 0 0\n0 1.000 0\n3 0 1 2\n",
    ],
)
def test_quirks_accepted(tmp_path, text):
    vertices, faces = read_text(tmp_path, text)
    np.testing.assert_array_equal(vertices, [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(faces, [[0, 1, 2]])


def test_polygons_are_fans(tmp_path):
    text = (
        "OFF\n6 3 0\n" + "0 0 0\n1 0 0\n1 1 0\n0 1 0\n0 2 0\n1 2 0\n"
        "4 0 1 2 3\n3 3 2 5\n5 0 1 2 5 4 7 7 7\n"  # a quad, a triangle, a coloured pentagon
    )
    _, faces = read_text(tmp_path, text)
    np.testing.assert_array_equal(
        faces, [[0, 1, 2], [0, 2, 3], [3, 2, 5], [0, 1, 2], [0, 2, 5], [0, 5, 4]]
    )


def test_empty_mesh_reads_as_empty_arrays(tmp_path):
    vertices, faces = read_text(tmp_path, "OFF\n0 0 0\n")
    assert vertices.shape == (0, 3) and faces.shape == (0, 3)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "empty file"),
        ("\n\n# only a comment\n", "empty file"),
        ("PLY\n3 1 0\n" + TRIANGLE + "3 0 1 2\n", "line 1: expected 'OFF'"),
        ("STOFF\n3 1 0\n" + TRIANGLE + "3 0 1 2\n", "line 1: expected 'OFF'"),
        ("OFF\n", "file ends after the 'OFF' line"),
        ("OFF\n3\n" + TRIANGLE + "3 0 1 2\n", "line 2: expected the counts"),
        ("OFF\n3 1 0 7\n" + TRIANGLE + "3 0 1 2\n", "line 2: expected the counts"),
        ("OFF\n3 x 0\n" + TRIANGLE + "3 0 1 2\n", "line 2: count 'x' is not an integer"),
        ("OFF\n3 1.5 0\n" + TRIANGLE + "3 0 1 2\n", "is not an integer"),
        ("OFF\n-3 1 0\n" + TRIANGLE + "3 0 1 2\n", "line 2: negative count -3"),
        (f"OFF\n{MAX_COUNT + 1} 1 0\n", f"count {MAX_COUNT + 1} exceeds the limit"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n", "truncated: the file ends after 2 vertex lines"),
        ("OFF\n3 2 0\n" + TRIANGLE + "3 0 1 2\n", "truncated: the file ends after 1 face lines"),
        ("OFF\n3 1 0\n" + TRIANGLE + "3 0 1 2\n3 0 1 2\n", "line 7: unexpected content"),
        ("OFF\n3 1 0\n0 0 0\n1 0\n0 1 0\n3 0 1 2\n", "line 4: vertex 1 has 2 values"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0 1\n0 1 0\n3 0 1 2\n", "line 4: vertex 1 has 4 values"),
        ("OFF\n3 1 0\n0 0 0\n1 zero 0\n0 1 0\n3 0 1 2\n", "line 4: vertex 1 has a non-numeric"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 nan 0\n3 0 1 2\n", "line 5: vertex 2 is not finite"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1e999 0\n3 0 1 2\n", "line 5: vertex 2 is not finite"),
        ("OFF\n3 1 0\n" + TRIANGLE + "3 0 1 3\n", "line 6: face 0 uses vertex 3, outside 0..2"),
        ("OFF\n3 1 0\n" + TRIANGLE + "3 0 -1 2\n", "uses vertex -1"),
        ("OFF\n3 1 0\n" + TRIANGLE + "2 0 1\n", "line 6: face 0 has 2 vertices, at least 3"),
        ("OFF\n3 1 0\n" + TRIANGLE + "4 0 1 2\n", "line 6: face 0 claims 4 vertices but lists 3"),
        ("OFF\n3 1 0\n" + TRIANGLE + "3 0 1 2 1 2 3 4 5\n", "at most 4 colour values"),
        ("OFF\n3 1 0\n" + TRIANGLE + "3 0 1.0 2\n", "line 6: face 0 has a non-integer index"),
        ("OFF\n3 1 0\n" + TRIANGLE + "x 0 1 2\n", "does not start with a vertex count"),
        ("OFF\n3 1 0\n" + TRIANGLE + "9223372036854775807 0 1 2\n", "claims 9223372036854775807"),
        ("OFF\n3 1 0\n" + TRIANGLE + "3 0 1 99999999999999999999\n", "non-integer index"),
    ],
)
def test_broken_files_raise_mesh_error(tmp_path, text, problem):
    with pytest.raises(MeshError) as info:
        read_text(tmp_path, text, name="broken.off")
    assert problem in str(info.value)
    assert info.value.path == str(tmp_path / "broken.off")
    assert str(tmp_path / "broken.off") in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(MeshError, match="cannot read file"):
        read_off(tmp_path / "nope.off")


def test_truncated_real_file(shared_data, tmp_path):
    raw = (shared_data / "ModelNet10/bathtub/train/bathtub_0002.off").read_bytes()
    with pytest.raises(MeshError, match="truncated"):
        read_text(tmp_path, raw[: len(raw) // 2])


def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(50, 3)) * 1e3
    faces = rng.integers(0, 50, size=(80, 3))
    write_off(tmp_path / "out.off", vertices, faces)
    v, f = read_off(tmp_path / "out.off")
    np.testing.assert_array_equal(v, vertices)  # exact: 17 significant digits
    np.testing.assert_array_equal(f, faces)
    assert not list(pathlib.Path(tmp_path).glob(".*tmp*"))  # no temporary left behind
    # Fewer digits (the synthetic data set's meshes): the given precision.
    write_off(tmp_path / "short.off", vertices, faces, digits=9)
    v9, _ = read_off(tmp_path / "short.off")
    np.testing.assert_allclose(v9, vertices, rtol=5e-9)
    assert not np.array_equal(v9, vertices)
    assert (tmp_path / "short.off").stat().st_size < (tmp_path / "out.off").stat().st_size


def test_write_refuses_invalid_meshes(tmp_path):
    with pytest.raises(MeshError, match="face indices outside"):
        write_off(tmp_path / "a.off", np.zeros((3, 3)), [[0, 1, 3]])
    with pytest.raises(MeshError, match="vertices must be finite"):
        write_off(tmp_path / "a.off", [[0, 0, np.inf]], np.zeros((0, 3), int))
    assert not (tmp_path / "a.off").exists()


# Property tests --------------------------------------------------------------


@st.composite
def off_meshes(draw):
    """A random valid mesh as OFF text with random quirks, and its expected arrays."""
    nv = draw(st.integers(3, 12))
    vertices = draw(
        st.lists(
            st.tuples(*[st.floats(-1e6, 1e6, allow_nan=False, width=32)] * 3),
            min_size=nv,
            max_size=nv,
        )
    )
    polygons = draw(
        st.lists(st.lists(st.integers(0, nv - 1), min_size=3, max_size=6), min_size=0, max_size=8)
    )
    colours = draw(st.lists(st.integers(0, 4), min_size=len(polygons), max_size=len(polygons)))
    space = st.sampled_from([" ", "  ", "\t", " \t "])
    counts_on_magic = draw(st.booleans())
    lines = [f"OFF{len(vertices)} {len(polygons)} 0" if counts_on_magic else "OFF"]
    if not counts_on_magic:
        lines.append(f"{len(vertices)}{draw(space)}{len(polygons)} 0")
    lines += [draw(space).join(repr(c) for c in v) for v in vertices]
    lines += [
        draw(space).join(map(str, [len(p), *p, *([1] * c)])) for p, c in zip(polygons, colours)
    ]
    out = []
    for line in lines:
        if draw(st.integers(0, 5)) == 0:
            out.append(draw(st.sampled_from(["", "# comment", "   ", "#"])))
        suffix = draw(st.sampled_from(["", " ", "# trailing comment", " #"]))
        out.append(line + suffix)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    expected = [[p[0], p[k], p[k + 1]] for p in polygons for k in range(1, len(p) - 1)]
    return newline.join(out), np.array(vertices, float), np.array(expected, int).reshape(-1, 3)


@given(off_meshes())
def test_random_valid_meshes_parse_exactly(mesh):
    text, vertices, faces = mesh
    v, f = parse_off(text.encode())
    np.testing.assert_array_equal(v, vertices)
    np.testing.assert_array_equal(f, faces)


@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_random_input_parses_or_raises_mesh_error(data):
    try:
        vertices, faces = parse_off(data, name="random.off")
    except MeshError as e:
        assert str(e).startswith("random.off: ")
    else:
        check_consistent(vertices, faces)


@given(
    st.lists(st.text(alphabet="OF0123456789 -.e#\n\tnaix", max_size=40), min_size=1, max_size=12)
)
def test_near_off_text_parses_or_raises_mesh_error(lines):
    # Text that looks like OFF (its alphabet) reaches deeper than random bytes.
    data = "OFF\n" + "\n".join(lines)
    try:
        vertices, faces = parse_off(data)
    except MeshError:
        pass
    else:
        check_consistent(vertices, faces)


@FIXTURE_OK
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["delete", "insert", "replace", "truncate"]),
            st.integers(0, 30_000),
            st.integers(1, 200),
            st.binary(min_size=1, max_size=20),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_mutated_real_file_parses_or_raises_mesh_error(shared_data, mutations):
    data = bytearray((shared_data / "ModelNet10/bathtub/train/bathtub_0002.off").read_bytes())
    for kind, at, length, blob in mutations:
        at %= len(data) + 1
        if kind == "delete":
            del data[at : at + length]
        elif kind == "insert":
            data[at:at] = blob
        elif kind == "replace":
            data[at : at + len(blob)] = blob
        else:
            del data[at:]
    try:
        vertices, faces = parse_off(bytes(data), name="mutated.off")
    except MeshError as e:
        assert e.path == "mutated.off"
    else:
        check_consistent(vertices, faces)
