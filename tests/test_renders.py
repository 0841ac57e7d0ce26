"""Tests of the 3D-R2N2 render readers: PNG views, renderings.txt, rendering_metadata.txt."""

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from enhancer_gan.data.renders import (
    load_alpha,
    load_view,
    parse_rendering_metadata,
    parse_renderings_list,
)
from enhancer_gan.errors import DataError

CHAIR_ID = "1a6f615e8b1b5ae4dbbc9440457e303e"  # in every sample folder


def render_dirs(root):
    dirs = sorted((root / "ShapeNetRendering" / "03001627").glob("*/rendering"))
    assert len(dirs) == 6, "the sample data changed; update these tests"
    return dirs


def save_png(path, array, mode=None, **params):
    Image.fromarray(array, mode=mode).save(path, format="PNG", **params)
    return path


# ------------------------------------------------------------- real renders


def test_real_metadata(shared_data):
    for folder in render_dirs(shared_data):
        meta = parse_rendering_metadata(folder / "rendering_metadata.txt")
        assert meta.shape == (24, 5) and meta.dtype == np.float64
        azimuth, elevation, in_plane, distance, fov = meta.T
        assert np.all((azimuth >= 0) & (azimuth < 360))
        assert np.all((elevation >= 25) & (elevation <= 30))
        assert np.all(in_plane == 0)
        assert np.all((distance > 0.6) & (distance < 1.0))
        assert np.all(fov == 25)
    chair = shared_data / "ShapeNetRendering" / "03001627" / CHAIR_ID / "rendering"
    first = parse_rendering_metadata(chair / "rendering_metadata.txt")[0]
    np.testing.assert_array_equal(first, [209.190372118, 25.4208381993, 0, 0.848215613661, 25])


def test_real_renderings_list(shared_data):
    for folder in render_dirs(shared_data):
        assert parse_renderings_list(folder / "renderings.txt") == [
            f"{i:02d}.png" for i in range(24)
        ]


def test_real_view_and_alpha(shared_data):
    for folder in render_dirs(shared_data):
        for name in ("00.png", "13.png"):
            path = folder / name
            view = load_view(path)
            assert view.shape == (128, 128, 3) and view.dtype == np.float32
            assert view.min() >= -1 and view.max() <= 1
            # Transparent background composited on white; the chair is darker.
            for corner in (view[0, 0], view[0, -1], view[-1, 0], view[-1, -1]):
                np.testing.assert_array_equal(corner, [1, 1, 1])
            assert view.min() < 0
            alpha = load_alpha(path)
            assert alpha.shape == (137, 137) and alpha.dtype == bool
            assert not alpha[0, 0] and 0.03 < alpha.mean() < 0.5
            # Where the silhouette is off, the pixel is at least half white.
            full = load_view(path, size=137)
            assert full.shape == (137, 137, 3)
            assert full[~alpha].min() >= 0
            assert full[alpha].mean() < full[~alpha].mean()
    small = load_view(render_dirs(shared_data)[0] / "00.png", size=32)
    assert small.shape == (32, 32, 3)


# ----------------------------------------------------- synthetic images


def test_rgba_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = [255, 0, 0, 255]  # opaque red
    rgba[0, 1] = [255, 0, 0, 0]  # transparent red: white
    rgba[0, 2] = [0, 0, 0, 128]  # half-transparent black: mid grey
    rgba[1, :] = [0, 255, 0, 255]
    square = np.zeros((3, 3, 4), np.uint8)
    square[:2] = rgba
    square[2] = [10, 20, 30, 255]
    path = save_png(tmp_path / "b.png", square)
    view = load_view(path, size=3)
    np.testing.assert_allclose(view[0, 0], [1, -1, -1], atol=1e-6)
    np.testing.assert_allclose(view[0, 1], [1, 1, 1], atol=1e-6)
    grey = 255 * (1 - 128 / 255) / 127.5 - 1
    np.testing.assert_allclose(view[0, 2], [grey] * 3, atol=1e-6)
    np.testing.assert_allclose(view[1, 0], [-1, 1, -1], atol=1e-6)
    np.testing.assert_allclose(view[2, 2], np.array([10, 20, 30]) / 127.5 - 1, atol=1e-6)
    alpha = load_alpha(path)
    assert alpha.tolist() == [[True, False, True], [True] * 3, [True] * 3]


@pytest.mark.parametrize("mode", ["RGB", "L", "LA", "P", "I;16"])
def test_other_png_modes(tmp_path, mode):
    values = np.array([[0, 64], [128, 255]], np.uint8)
    path = tmp_path / f"{mode.replace(';', '')}.png"
    if mode == "RGB":
        save_png(path, np.repeat(values[..., None], 3, axis=-1))
    elif mode == "L":
        save_png(path, values)
    elif mode == "LA":
        save_png(path, np.stack([values, np.full_like(values, 255)], axis=-1), mode="LA")
    elif mode == "P":
        image = Image.fromarray(values).convert("P")
        image.save(path, format="PNG")
    else:
        Image.fromarray(values.astype(np.uint16) * 257).save(path, format="PNG")
    with Image.open(path) as check:
        assert check.mode == mode or (mode == "I;16" and check.mode.startswith("I"))
    view = load_view(path, size=2)
    expected = values.astype(np.float64) / 127.5 - 1
    np.testing.assert_allclose(view, np.repeat(expected[..., None], 3, axis=-1), atol=1e-5)
    assert load_alpha(path).all()  # no transparency: fully opaque


def test_palette_transparency(tmp_path):
    values = np.array([[0, 1], [1, 0]], np.uint8)
    image = Image.fromarray(values, mode="L").convert("P")
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.info["transparency"] = 0
    path = tmp_path / "p.png"
    image.save(path, format="PNG", transparency=0)
    view = load_view(path, size=2)
    np.testing.assert_allclose(view[0, 0], [1, 1, 1])  # transparent index: white
    np.testing.assert_allclose(view[0, 1], [1, -1, -1])
    assert load_alpha(path).tolist() == [[False, True], [True, False]]


def test_resize_is_antialiased(tmp_path):
    # A one-pixel checkerboard shrunk by 2 must become flat grey; a filter
    # that samples without averaging would give black or white.
    board = ((np.indices((256, 256)).sum(axis=0) % 2) * 255).astype(np.uint8)
    view = load_view(save_png(tmp_path / "board.png", board), size=128)
    assert abs(view.mean()) < 0.02 and view.std() < 0.05
    # Upsampling works too and keeps the range.
    up = load_view(save_png(tmp_path / "small.png", board[:8, :8]), size=128)
    assert up.shape == (128, 128, 3) and up.min() >= -1 and up.max() <= 1


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.fixture
def good_png(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (16, 16, 4), dtype=np.uint8)
    return save_png(tmp_path / "good.png", rgba).read_bytes()


def bad_image_cases(good: bytes) -> dict[str, tuple[bytes, str]]:
    jpeg = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(jpeg, format="JPEG")
    gif = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(gif, format="GIF")
    idat = good.index(b"IDAT")
    flipped = bytearray(good)
    flipped[idat + 10] ^= 0xFF

    def header_only(side):
        # A valid PNG claiming a huge image (no pixel data): refused before decoding.
        ihdr = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b""))
            + png_chunk(b"IEND", b"")
        )

    return {
        "empty": (b"", "empty file"),
        "text": (b"hello, not an image\n", "not an image"),
        "jpeg": (jpeg.getvalue(), "not a PNG"),
        "gif": (gif.getvalue(), "not a PNG"),
        "truncated_half": (good[: len(good) // 2], "PNG"),
        "truncated_header": (good[:20], "PNG"),
        "no_iend": (good[:-12], "PNG"),
        "bad_crc": (bytes(flipped), "PNG"),
        "large_header": (header_only(5000), "outside"),
        "bomb_header": (header_only(100_000), "too large"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "empty",
        "text",
        "jpeg",
        "gif",
        "truncated_half",
        "truncated_header",
        "no_iend",
        "bad_crc",
        "large_header",
        "bomb_header",
    ],
)
def test_bad_images_raise_data_error(tmp_path, good_png, case):
    content, problem = bad_image_cases(good_png)[case]
    path = tmp_path / f"{case}.png"
    path.write_bytes(content)
    for load in (load_view, load_alpha):
        with pytest.raises(DataError, match=problem) as err:
            load(path)
        assert err.value.path == str(path) and str(path) in str(err.value)


def test_good_png_loads(tmp_path, good_png):
    # The positive control of the cases above.
    path = tmp_path / "ok.png"
    path.write_bytes(good_png)
    assert load_view(path, size=16).shape == (16, 16, 3)


def test_missing_image_and_directory(tmp_path):
    for path in (tmp_path / "absent.png", tmp_path):
        with pytest.raises(DataError, match="cannot read file") as err:
            load_view(path)
        assert err.value.path == str(path)


def _fuzz_png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.arange(16 * 16 * 4, dtype=np.uint8).reshape(16, 16, 4)).save(out, "PNG")
    return out.getvalue()


FUZZ_PNG = _fuzz_png()


@given(st.integers(0, 2000), st.binary(min_size=1, max_size=8))
def test_property_damaged_png_loads_or_raises(tmp_path_factory, position, patch):
    folder = tmp_path_factory.getbasetemp()
    raw = bytearray(FUZZ_PNG)
    position %= len(raw)
    raw[position : position + len(patch)] = patch
    path = folder / "damaged.png"
    path.write_bytes(bytes(raw))
    try:
        view = load_view(path, size=8)
    except DataError as e:
        assert str(path) in str(e)
    else:
        assert view.shape == (8, 8, 3) and np.all(np.abs(view) <= 1)


# ------------------------------------------------------------- text files


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


GOOD_LINE = "209.19 25.42 0 0.848 25"


@pytest.mark.parametrize(
    "text, problem",
    [
        (f"{GOOD_LINE}\n1 2 3 4\n", "line 2: expected 5 numbers"),
        (f"{GOOD_LINE}\n1 2 3 4 5 6\n", "line 2: expected 5 numbers"),
        ("1 2 abc 0.5 25\n", "line 1: in_plane_rotation 'abc' is not a number"),
        ("1 2 0 0.5 25\n1 2 0 nan 25\n", "line 2: distance_ratio 'nan' is not a number"),
        ("1 2 0 0.5 1e999\n", "line 1: field_of_view '1e999' is not finite"),
        ("1 2 0 -0.5 25\n", "line 1: distance_ratio must be positive"),
        ("1 2 0 0 25\n", "line 1: distance_ratio must be positive"),
        ("1 2 0 0.5 1_0\n", "line 1: field_of_view '1_0' is not a number"),
        (f"{GOOD_LINE}\n\n{GOOD_LINE}\n", "line 2: blank line"),
        ("", "no views"),
        ("\n  \n", "no views"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
        (b"1 2 0 0.5 25\x00\n", "NUL"),
    ],
)
def test_metadata_validation(tmp_path, text, problem):
    path = write(tmp_path, "rendering_metadata.txt", text)
    with pytest.raises(DataError) as err:
        parse_rendering_metadata(path)
    assert err.value.path == str(path)
    assert problem in str(err.value), str(err.value)


def test_metadata_accepts_crlf_tabs_and_trailing_blank_lines(tmp_path):
    path = write(tmp_path, "m.txt", "1\t2 0 0.5 25\r\n3 4 0 .75 25.0\r\n\r\n\n")
    np.testing.assert_array_equal(
        parse_rendering_metadata(path), [[1, 2, 0, 0.5, 25], [3, 4, 0, 0.75, 25]]
    )


def test_metadata_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read file"):
        parse_rendering_metadata(tmp_path / "absent.txt")


_METADATA_ALPHABET = "0123456789.-+eE \t\n\rnaifx_"


_TOKEN = st.sampled_from(
    [
        "1",
        "-2.5",
        ".5",
        "1e3",
        "0",
        "-0",
        "+7",
        "1.",
        "0.848",
        "nan",
        "inf",
        "abc",
        "1e999",
        "e5",
        "-",
    ]
)
_TOKEN_LINE = st.builds(
    lambda tokens, sep: sep.join(tokens),
    st.lists(_TOKEN, min_size=4, max_size=6),
    st.sampled_from([" ", "\t", "  ", " \t"]),
)
# Lines of number-like tokens (these often parse) mixed with raw text.
_METADATA_TEXT = st.one_of(
    st.text(alphabet=_METADATA_ALPHABET, max_size=120),
    st.builds(
        lambda lines, end: "\n".join(lines) + end,
        st.lists(_TOKEN_LINE, max_size=5),
        st.sampled_from(["", "\n", "\r\n", "\n\n"]),
    ),
)


@given(_METADATA_TEXT)
def test_property_metadata_parses_or_raises(tmp_path_factory, text):
    path = tmp_path_factory.getbasetemp() / "fuzz_metadata.txt"
    path.write_text(text, newline="")
    try:
        meta = parse_rendering_metadata(path)
    except DataError as e:
        assert str(path) in str(e)
        return
    lines = [line for line in text.split("\n") if line.strip()]
    assert meta.shape == (len(lines), 5)
    assert np.all(np.isfinite(meta)) and np.all(meta[:, 3] > 0)
    for row, line in zip(meta, lines):
        np.testing.assert_array_equal(row, [float(v) for v in line.split()])


@given(
    st.lists(
        st.tuples(
            st.floats(0, 360, exclude_max=True),
            st.floats(-90, 90),
            st.floats(-180, 180),
            st.floats(1e-6, 10),
            st.floats(1, 179),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_property_metadata_round_trip(tmp_path_factory, rows):
    path = tmp_path_factory.getbasetemp() / "roundtrip_metadata.txt"
    path.write_text("".join(" ".join(repr(v) for v in row) + "\n" for row in rows))
    np.testing.assert_array_equal(parse_rendering_metadata(path), np.array(rows))


def test_renderings_list(tmp_path):
    path = write(tmp_path, "renderings.txt", "00.png\r\n\n01.png\n  02.png  \n\n")
    assert parse_renderings_list(path) == ["00.png", "01.png", "02.png"]
    for text, problem in [
        ("00.png\n../../etc/passwd\n", "line 2"),
        ("sub/00.png\n", "line 1"),
        ("..\n", "line 1"),
        ("\n\n", "no views"),
        (b"\xff\xfe\x00", "not UTF-8"),
    ]:
        path = write(tmp_path, "bad.txt", text)
        with pytest.raises(DataError, match=problem) as err:
            parse_renderings_list(path)
        assert str(path) in str(err.value)
