"""Pictures of voxel grids under the 3D-R2N2 camera, in pure numpy.

Two uses: `silhouette` projects a grid to the mask that a 3D-R2N2 render of
the same shape would have (the tested proof that grids and renders share
axes), and `render_voxels` draws a shaded grey picture on white that stands
in for a render where a data set has none (the enhancer's image domain) and
shows generated shapes to people.

Both rasterise the voxels' exposed faces, each a small quad on screen, with
a vectorised point-in-quad test at pixel centres; `render_voxels` keeps the
nearest face per pixel (a z-buffer with exact per-pixel depth from each
face's plane). The camera and its conventions are in `camera.py`.

World placement of a grid [D, D, D] (axes x, y up, z): voxel i along an axis
spans [i, i + 1) * voxel_size, then the whole grid is shifted so that the
occupied voxels' bounding box is centred on the origin. The voxel size is
`scale / D` when a file's `scale` is known (ShapeNetVox32 binvox), otherwise
it is chosen so that the occupied box has a unit diagonal: ShapeNet
normalises every model that way before 3D-R2N2 rendered it (the six sample
chairs' ShapeNetVox32 boxes have diagonals 1.00-1.04), so a grid drawn here
fills the frame about as much as the real render of the same shape, however
much empty margin the grid has. `fit="cube"` instead maps the whole grid to
the unit cube.

This module does not read files and does not resample grids.
"""

from __future__ import annotations

import numpy as np

from enhancer_gan.errors import DataError
from enhancer_gan.voxels import camera

_FITS = ("diagonal", "cube")

# Shading of `render_voxels`: Lambertian, lights fixed relative to the
# camera (x right, y down, z forward) so every view of every shape is lit the
# same way: a key light from above left behind the viewer and a weak fill
# from below. The directions were searched so that at the R2N2 elevations
# (15-40 degrees, any azimuth) the face orientations in clear view (normal
# within 75 degrees of the viewing axis) differ by at least 24 grey levels;
# with one light, faces turned away from it would share the ambient grey.
_KEY_LIGHT = np.array([-0.5, -np.sqrt(0.5), -0.5])
_FILL_LIGHT = np.array([0.25, np.sqrt(0.75), -np.sqrt(0.1875)])
_ALBEDO = 0.9
_AMBIENT = 0.25
_KEY = 0.65
_FILL = 0.2


def _face_shade(normal_cam: np.ndarray) -> float:
    """Grey level in [0, 1] of a face with this camera-space normal."""
    key = max(0.0, float(normal_cam @ _KEY_LIGHT))
    fill = max(0.0, float(normal_cam @ _FILL_LIGHT))
    return _ALBEDO * (_AMBIENT + _KEY * key + _FILL * fill)


# Face directions: (axis, sign) for the outward normal of each of the six.
_DIRECTIONS = [(axis, sign) for axis in range(3) for sign in (-1, 1)]


def _as_occupancy(grid: np.ndarray, caller: str) -> np.ndarray:
    """Validates a cubic grid and returns it as [D, D, D] bool."""
    grid = np.asarray(grid)
    if grid.ndim != 3 or len(set(grid.shape)) != 1 or grid.shape[0] == 0:
        raise DataError(
            None, f"{caller} needs a cubic [D, D, D] voxel grid, got shape {grid.shape}"
        )
    if grid.dtype == bool:
        return grid
    if not np.issubdtype(grid.dtype, np.number):
        raise DataError(None, f"{caller} needs a bool or numeric grid, got dtype {grid.dtype}")
    if np.issubdtype(grid.dtype, np.floating) and not np.all(np.isfinite(grid)):
        raise DataError(None, f"{caller}: grid contains NaN or infinite values")
    # Occupancy in [0, 1] (e.g. the generator's sigmoid output) is cut at 0.5.
    return grid > 0.5


def grid_placement(
    occupancy: np.ndarray, scale: float | None = None, fit: str = "diagonal"
) -> tuple[np.ndarray, float] | None:
    """Where a grid's voxels sit in the world (see the module docstring).

    Args:
      occupancy: [D, D, D] bool.
      scale: world side length of the whole grid (a binvox file's `scale`),
        or None to choose it by `fit`.
      fit: 'diagonal' (occupied box gets a unit diagonal) or 'cube' (the whole
        grid spans a unit cube); used only when `scale` is None.

    Returns:
      (origin [3] float64, voxel_size float): voxel corner index i (0..D)
      along each axis lies at origin + i * voxel_size. None for an empty grid.
    """
    if fit not in _FITS:
        raise ValueError(f"fit must be one of {_FITS}, got {fit!r}")
    idx = np.argwhere(occupancy)
    if idx.size == 0:
        return None
    lo = idx.min(axis=0)
    hi = idx.max(axis=0) + 1
    dim = occupancy.shape[0]
    if scale is not None:
        voxel_size = float(scale) / dim
    elif fit == "cube":
        voxel_size = 1.0 / dim
    else:
        voxel_size = 1.0 / float(np.linalg.norm(hi - lo))
    origin = -(lo + hi) / 2.0 * voxel_size
    return origin, voxel_size


def _visible_faces(
    occupancy: np.ndarray, origin: np.ndarray, voxel_size: float, eye: np.ndarray
) -> list[tuple[int, int, np.ndarray]]:
    """Exposed voxel faces that face the eye.

    Returns:
      A list of (axis, sign, corners) per face direction, corners
      [F, 4, 3] float64 world coordinates of each face's quad, in order
      around the quad.
    """
    padded = np.pad(occupancy, 1)
    dim = occupancy.shape[0]
    inner = (slice(1, dim + 1),) * 3
    out = []
    for axis, sign in _DIRECTIONS:
        # A face is exposed where the neighbour across it is empty.
        neighbour = np.roll(padded, -sign, axis=axis)[inner]
        idx = np.argwhere(occupancy & ~neighbour)
        if idx.size == 0:
            continue
        plane_index = idx[:, axis] + (1 if sign > 0 else 0)
        plane = origin[axis] + plane_index * voxel_size
        # Back faces can never be seen: keep those whose outward normal points
        # towards the eye.
        keep = sign * (eye[axis] - plane) > 0
        idx = idx[keep]
        if idx.size == 0:
            continue
        b, c = (axis + 1) % 3, (axis + 2) % 3
        base = idx.astype(np.float64)
        base[:, axis] = plane_index[keep]
        corners = np.repeat(base[:, None, :], 4, axis=1)
        corners[:, 1, b] += 1
        corners[:, 2, b] += 1
        corners[:, 2, c] += 1
        corners[:, 3, c] += 1
        out.append((axis, sign, origin + corners * voxel_size))
    return out


def _rasterize_quads(uv: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels whose centres fall inside convex screen quads.

    Args:
      uv: [F, 4, 2] float64 quad corners in pixel coordinates, in order
        around each quad (either orientation).
      image_size: side of the square image.

    Returns:
      face: [M] int64 index of the quad of each fragment.
      pixel: [M] int64 flat pixel index (row * image_size + col).
    """
    lo = np.ceil(uv.min(axis=1) - 0.5).astype(np.int64)
    hi = np.floor(uv.max(axis=1) - 0.5).astype(np.int64)
    lo = np.clip(lo, 0, image_size)
    hi = np.clip(hi, -1, image_size - 1)
    extent = np.maximum(hi - lo + 1, 0).max(axis=1)
    faces_out, pixels_out = [], []
    # Quads are grouped by their screen size so each group tests a window
    # only as large as its biggest member (voxel faces are all about the
    # same size, so this is usually one or two groups).
    window = np.where(extent > 0, 2 ** np.ceil(np.log2(np.maximum(extent, 1))), 0).astype(np.int64)
    for size in np.unique(window):
        if size == 0:
            continue
        members = np.flatnonzero(window == size)
        offsets = np.arange(size)
        col = lo[members, 0][:, None, None] + offsets[None, None, :]
        row = lo[members, 1][:, None, None] + offsets[None, :, None]
        centre_u = col + 0.5
        centre_v = row + 0.5
        quad = uv[members]
        inside_pos = np.ones(col.shape[:1] + (size, size), dtype=bool)
        inside_neg = inside_pos.copy()
        for k in range(4):
            p = quad[:, k][:, None, None, :]
            q = quad[:, (k + 1) % 4][:, None, None, :]
            edge = (q[..., 0] - p[..., 0]) * (centre_v - p[..., 1]) - (q[..., 1] - p[..., 1]) * (
                centre_u - p[..., 0]
            )
            inside_pos &= edge >= 0
            inside_neg &= edge <= 0
        inside = (inside_pos | inside_neg) & (col <= hi[members, 0][:, None, None])
        inside &= row <= hi[members, 1][:, None, None]
        f, r, c = np.nonzero(inside)
        faces_out.append(members[f])
        pixels_out.append((lo[members[f], 1] + r) * image_size + lo[members[f], 0] + c)
    if not faces_out:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(faces_out), np.concatenate(pixels_out)


def silhouette(
    grid: np.ndarray,
    azimuth_deg: float,
    elevation_deg: float,
    distance_ratio: float,
    image_size: int = 137,
    translate=None,
    scale: float | None = None,
    *,
    focal: float = camera.R2N2_FOCAL,
    fit: str = "diagonal",
) -> np.ndarray:
    """The mask a 3D-R2N2 render of this grid would have.

    Args:
      grid: [D, D, D] bool (or occupancy, cut at 0.5), axes (x, y up, z).
      azimuth_deg, elevation_deg, distance_ratio: a view's columns 1, 2 and 4
        of `rendering_metadata.txt` (the camera distance is distance_ratio *
        1.75).
      image_size: side of the square image (137 for R2N2 renders).
      translate: the binvox file's translate. Accepted for symmetry with the
        file; it has no effect because the occupied box is centred anyway.
      scale: the binvox file's scale (world side of the grid), or None to
        normalise the occupied box to a unit diagonal (see `fit`).
      focal: focal length in normalised image coordinates.
      fit: placement when `scale` is None; see `grid_placement`.

    Returns:
      [image_size, image_size] bool, rows growing downwards.
    """
    del translate  # Cancelled by centring the occupied box (module docstring).
    occupancy = _as_occupancy(grid, "silhouette")
    mask = np.zeros(image_size * image_size, dtype=bool)
    placement = grid_placement(occupancy, scale, fit)
    if placement is None:
        return mask.reshape(image_size, image_size)
    distance = distance_ratio * camera.R2N2_MAX_DISTANCE
    eye = camera.camera_position(azimuth_deg, elevation_deg, distance)
    for _, _, corners in _visible_faces(occupancy, *placement, eye):
        uv, _ = camera.project(
            corners.reshape(-1, 3), azimuth_deg, elevation_deg, distance, image_size, focal
        )
        _, pixels = _rasterize_quads(uv.reshape(-1, 4, 2), image_size)
        mask[pixels] = True
    return mask.reshape(image_size, image_size)


def render_voxels(
    grid: np.ndarray,
    azimuth_deg: float = 30.0,
    elevation_deg: float = 25.0,
    size: int = 128,
    distance_ratio: float = 0.8,
    *,
    focal: float = camera.R2N2_FOCAL,
    fit: str = "diagonal",
) -> np.ndarray:
    """A shaded grey picture of the occupied voxels on white.

    The camera is the R2N2 one (`camera.py`), so a view here frames a shape
    like the 3D-R2N2 render from the same azimuth, elevation and distance.

    Args:
      grid: [D, D, D] bool, or float occupancy cut at 0.5; axes (x, y up, z).
      azimuth_deg, elevation_deg: the view (R2N2 renders use elevations of
        25-30 degrees).
      size: side of the square output image in pixels.
      distance_ratio: camera distance as a fraction of 1.75 (R2N2 renders use
        0.65-0.95).
      focal: focal length in normalised image coordinates.
      fit: grid placement; see `grid_placement`.

    Returns:
      [size, size, 3] uint8 RGB; an empty grid gives an all-white image.
    """
    occupancy = _as_occupancy(grid, "render_voxels")
    image = np.full((size * size, 3), 255, dtype=np.uint8)
    placement = grid_placement(occupancy, None, fit)
    if placement is None:
        return image.reshape(size, size, 3)
    distance = distance_ratio * camera.R2N2_MAX_DISTANCE
    eye = camera.camera_position(azimuth_deg, elevation_deg, distance)
    rotation, translation = camera.look_at_camera(azimuth_deg, elevation_deg, distance)
    f_px = focal * size / 2.0

    all_pixels, all_depth, all_shade = [], [], []
    for axis, sign, corners in _visible_faces(occupancy, *placement, eye):
        uv, _ = camera.project(
            corners.reshape(-1, 3), azimuth_deg, elevation_deg, distance, size, focal
        )
        faces, pixels = _rasterize_quads(uv.reshape(-1, 4, 2), size)
        if pixels.size == 0:
            continue
        normal_cam = rotation[:, axis] * sign
        # Exact depth of the face's plane along each pixel's ray: the plane is
        # normal_cam . X = offset (camera coordinates), the ray X = depth *
        # (x_n, y_n, 1), so depth = offset / (normal_cam . (x_n, y_n, 1)).
        offset = (corners[faces, 0] @ rotation.T + translation) @ normal_cam
        x_n = (pixels % size + 0.5 - size / 2.0) / f_px
        y_n = (pixels // size + 0.5 - size / 2.0) / f_px
        denom = normal_cam[0] * x_n + normal_cam[1] * y_n + normal_cam[2]
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = offset / denom
        # Grazing faces (denominator ~ 0) give no reliable depth; they cover
        # next to nothing, so they lose every depth test.
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.inf)
        shade = _face_shade(normal_cam)
        all_pixels.append(pixels)
        all_depth.append(depth)
        all_shade.append(np.full(pixels.shape, shade))
    if not all_pixels:
        return image.reshape(size, size, 3)
    pixels = np.concatenate(all_pixels)
    depth = np.concatenate(all_depth)
    shade = np.concatenate(all_shade)
    # Z-buffer: the nearest fragment per pixel wins.
    nearest = np.full(size * size, np.inf)
    np.minimum.at(nearest, pixels, depth)
    winner = depth <= nearest[pixels]
    grey = np.clip(np.round(shade[winner] * 255.0), 0, 255).astype(np.uint8)
    image[pixels[winner]] = grey[:, None]
    return image.reshape(size, size, 3)
