"""Tests of picture sheets: tiling images and rendered voxel grids."""

import os

import numpy as np
import pytest
from PIL import Image

from enhancer_gan.errors import DataError
from enhancer_gan.voxels.render import render_voxels
from enhancer_gan.voxels.sheet import image_grid, save_sheet, sheet_image


def _box(dim, lo, hi):
    grid = np.zeros((dim,) * 3, dtype=bool)
    grid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return grid


def _tile(sheet, k, cols, height, width, margin=2):
    r, c = divmod(k, cols)
    top, left = margin + r * (height + margin), margin + c * (width + margin)
    return sheet[top : top + height, left : left + width]


def test_image_grid_layout_and_placement():
    images = np.stack([np.full((5, 7, 3), 10 * k, np.uint8) for k in range(5)])
    sheet = image_grid(images, ncols=3)
    assert sheet.dtype == np.uint8
    assert sheet.shape == (2 * (5 + 2) + 2, 3 * (7 + 2) + 2, 3)
    for k in range(5):
        assert (_tile(sheet, k, 3, 5, 7) == 10 * k).all()
    # The sixth slot and the margins stay white.
    assert (_tile(sheet, 5, 3, 5, 7) == 255).all()
    assert (sheet[:2] == 255).all() and (sheet[:, :2] == 255).all()


def test_image_grid_fewer_images_than_columns():
    sheet = image_grid(np.zeros((2, 4, 4, 3), np.uint8), ncols=8)
    assert sheet.shape == (4 + 4, 2 * (4 + 2) + 2, 3)


def test_image_grid_maps_generator_range_to_bytes():
    images = np.stack([np.full((4, 4, 3), -1.0), np.full((4, 4, 3), 1.0), np.zeros((4, 4, 3))])
    sheet = image_grid(images.astype(np.float32), ncols=3)
    assert (_tile(sheet, 0, 3, 4, 4) == 0).all()
    assert (_tile(sheet, 1, 3, 4, 4) == 255).all()
    assert (_tile(sheet, 2, 3, 4, 4) == 128).all()
    # Out-of-range values are clipped, grey images become RGB.
    grey = image_grid(np.full((1, 4, 4, 1), 3.0), ncols=1)
    assert grey.shape == (8, 8, 3) and (grey == 255).all()


def test_image_grid_rejects_bad_input():
    with pytest.raises(DataError, match="no images"):
        image_grid(np.zeros((0, 4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="shape"):
        image_grid(np.zeros((2, 4, 4, 2), np.uint8))
    with pytest.raises(DataError, match="NaN"):
        image_grid(np.full((1, 4, 4, 3), np.nan))


def test_sheet_tiles_are_renders_and_differ_between_grids():
    tall = _box(16, (6, 0, 6), (10, 16, 10))
    flat = _box(16, (0, 6, 0), (16, 10, 16))
    sheet = sheet_image([tall, flat], ncols=2, size=48)
    assert sheet.shape == (48 + 4, 2 * (48 + 2) + 2, 3) and sheet.dtype == np.uint8
    first, second = _tile(sheet, 0, 2, 48, 48), _tile(sheet, 1, 2, 48, 48)
    np.testing.assert_array_equal(first, render_voxels(tall, 30.0, 25.0, size=48))
    assert (first != second).any(axis=-1).mean() > 0.1


def test_sheet_accepts_channels_last_batches_and_float_occupancy():
    batch = np.zeros((3, 8, 8, 8, 1), np.float32)
    batch[:, 2:6, 2:6, 2:6] = 0.9
    sheet = sheet_image(batch, ncols=3, size=32)
    assert sheet.shape == (32 + 4, 3 * (32 + 2) + 2, 3)
    assert (sheet < 255).any()


def test_titles_add_a_strip_with_text():
    grids = [_box(8, (2, 2, 2), (6, 6, 6))] * 2
    plain = sheet_image(grids, ncols=2, size=32)
    titled = sheet_image(grids, ncols=2, size=32, titles=["epoch 1", "a very long title"])
    assert titled.shape[0] > plain.shape[0] and titled.shape[1] == plain.shape[1]
    strip = titled[2 + 32 : 2 + 32 + 12, 2 : 2 + 32]
    assert (strip < 128).any()  # dark letters were drawn
    with pytest.raises(ValueError, match="titles"):
        sheet_image(grids, titles=["one"])


def test_save_sheet_writes_a_png_atomically(tmp_path):
    path = tmp_path / "sub" / "sheet.png"
    save_sheet(path, [_box(8, (1, 1, 1), (7, 4, 7))], size=24)
    with Image.open(path) as image:
        assert image.format == "PNG"
        loaded = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(loaded, sheet_image([_box(8, (1, 1, 1), (7, 4, 7))], size=24))
    assert os.listdir(path.parent) == ["sheet.png"]
