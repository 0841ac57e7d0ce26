"""Tests of the 3D-R2N2 render-folder reader: renderings.txt."""

import pytest

from enhancer_gan.data.renders import parse_renderings_list
from enhancer_gan.errors import DataError


def render_dirs(root):
    dirs = sorted((root / "ShapeNetRendering" / "03001627").glob("*/rendering"))
    assert len(dirs) == 6, "the sample data changed; update these tests"
    return dirs


def test_real_renderings_list(shared_data):
    for folder in render_dirs(shared_data):
        assert parse_renderings_list(folder / "renderings.txt") == [
            f"{i:02d}.png" for i in range(24)
        ]


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


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
