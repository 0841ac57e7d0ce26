"""Contact sheets: many voxel grids, or many images, tiled into one picture.

Used for sample pictures during training (generated voxels and GE's images),
for TensorBoard image summaries and for figures. Rendering is
`render.render_voxels`; this module only tiles, titles and saves.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from enhancer_gan.errors import DataError
from enhancer_gan.io_utils import atomic_path
from enhancer_gan.voxels.render import render_voxels

_MARGIN = 2
_TITLE_HEIGHT = 12
_TITLE_FONT_SIZE = 10


def _to_uint8_images(images) -> np.ndarray:
    """[N, H, W], [N, H, W, 1] or [N, H, W, 3]; uint8, or float in [-1, 1] -> uint8 RGB."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(
            None, f"image_grid needs [N, H, W, 3] (or 1 channel) images, got shape {images.shape}"
        )
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.floating):
            raise DataError(None, f"image_grid needs uint8 or float images, got {images.dtype}")
        if not np.all(np.isfinite(images)):
            raise DataError(None, "image_grid: images contain NaN or infinite values")
        # The generator's tanh range [-1, 1] maps to [0, 255].
        images = np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images


def image_grid(images, ncols: int = 8, margin: int = _MARGIN) -> np.ndarray:
    """Tiles images row by row on white, `margin` pixels between and around.

    Args:
      images: [N, H, W, 3] uint8, or float in [-1, 1] (GE's output range);
        1-channel or [N, H, W] images are shown in grey.
      ncols: tiles per row (fewer rows are used when N is smaller).
      margin: white pixels between tiles and around the sheet.

    Returns:
      [rows * (H + margin) + margin, cols * (W + margin) + margin, 3] uint8,
      with rows = ceil(N / cols) and cols = min(ncols, N).
    """
    images = _to_uint8_images(images)
    count, height, width, _ = images.shape
    if count == 0:
        raise DataError(None, "image_grid: no images to tile")
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    cols = min(ncols, count)
    rows = -(-count // cols)
    sheet = np.full(
        (rows * (height + margin) + margin, cols * (width + margin) + margin, 3), 255, np.uint8
    )
    for k, image in enumerate(images):
        r, c = divmod(k, cols)
        top = margin + r * (height + margin)
        left = margin + c * (width + margin)
        sheet[top : top + height, left : left + width] = image
    return sheet


def _title_strip(text: str, width: int) -> np.ndarray:
    """[_TITLE_HEIGHT, width, 3] uint8: `text` in small black letters on white."""
    strip = Image.new("RGB", (width, _TITLE_HEIGHT), (255, 255, 255))
    font = ImageFont.load_default(size=_TITLE_FONT_SIZE)
    draw = ImageDraw.Draw(strip)
    # Long titles are cut to fit rather than overflowing into the next tile.
    while text and draw.textlength(text, font=font) > width - 2:
        text = text[:-1]
    draw.text((1, 0), text, fill=(0, 0, 0), font=font)
    return np.asarray(strip)


def sheet_image(
    grids: Sequence[np.ndarray],
    ncols: int = 8,
    size: int = 128,
    azimuth_deg: float = 30.0,
    elevation_deg: float = 25.0,
    titles: Sequence[str] | None = None,
) -> np.ndarray:
    """Renders voxel grids and tiles the pictures.

    Args:
      grids: N grids, each [D, D, D] (or [D, D, D, 1], the networks'
        channels-last layout), bool or occupancy in [0, 1]; a [N, D, D, D(, 1)]
        array works too. Sizes may differ between grids.
      ncols: tiles per row.
      size: side of each rendered tile in pixels.
      azimuth_deg, elevation_deg: the view (see `render.render_voxels`).
      titles: optional N strings, drawn small under each tile.

    Returns:
      [H, W, 3] uint8 sheet (see `image_grid` for the layout; each tile is
      `size` wide and `size` high, plus a title strip when titles are given).
    """
    grids = list(grids)
    if titles is not None and len(titles) != len(grids):
        raise ValueError(f"got {len(titles)} titles for {len(grids)} grids")
    tiles = []
    for k, grid in enumerate(grids):
        grid = np.asarray(grid)
        if grid.ndim == 4 and grid.shape[-1] == 1:
            grid = grid[..., 0]
        tile = render_voxels(grid, azimuth_deg, elevation_deg, size=size)
        if titles is not None:
            tile = np.concatenate([tile, _title_strip(str(titles[k]), size)], axis=0)
        tiles.append(tile)
    if not tiles:
        raise DataError(None, "sheet_image: no grids to draw")
    return image_grid(np.stack(tiles), ncols)


def save_sheet(path: str | os.PathLike, grids: Sequence[np.ndarray], **kwargs) -> None:
    """Writes `sheet_image(grids, **kwargs)` as a PNG, atomically."""
    image = sheet_image(grids, **kwargs)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
