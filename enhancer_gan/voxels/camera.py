"""The 3D-R2N2 rendering camera, in the project's frame (x, y up, z).

3D-R2N2's `ShapeNetRendering` images were made in Blender from ShapeNetCore
v1 meshes normalised to a unit bounding-box diagonal. Blender loads an .obj
turned 90 degrees about x (y-up becomes z-up) and the render script places
the camera by azimuth about the vertical and elevation above the ground,
looking at the origin. Mesh R-CNN's and PyTorch3D's R2N2 code rebuild that
camera with the azimuth negated; turned back into ShapeNet's y-up frame the
camera centre is

    d * (cos(el) cos(az), sin(el), cos(el) sin(az))        (x, y up, z)

so azimuth 0 looks from +x, azimuth 90 from +z, and azimuth turns
clockwise seen from above. The distance d is `distance_ratio * 1.75`
(`MAX_CAMERA_DISTANCE` of the render script) and the lens is Blender's
default 35 mm on a 32 mm sensor: a focal length of 2 * 35 / 32 = 2.1875 in
normalised image coordinates (the image spans [-1, 1]), NOT the "25" of the
metadata's last column.

These signs were measured, not assumed: with them the projected
ShapeNetVox32 grids of the six sample chairs match the renders' alpha masks
(24 views each) at silhouette IoU 0.906 on average; the opposite azimuth
sign gives 0.565, azimuth offset by 90 or 180 degrees 0.58 or 0.61, rows
growing upwards 0.52, and the metadata's 25 degrees as field of view 0.27
(tests/test_render.py). One ambiguity remains: chairs are mirror-symmetric,
so a mirrored image with the opposite azimuth sign scores almost the same
(0.905); the camera here is a proper (unmirrored) one, as Blender's is.

Camera coordinates follow OpenCV: x right, y DOWN (image rows grow
downwards), z forward (positive depth in front of the camera). Pixel
coordinates are continuous: pixel [row, col] covers u in [col, col + 1),
v in [row, row + 1), so the image centre is (W / 2, H / 2).

This module only does geometry; rasterising lives in `render.py`.
"""

from __future__ import annotations

import numpy as np

# Blender's default lens (35 mm) over its default sensor width (32 mm), times
# two because normalised image coordinates span [-1, 1].
R2N2_FOCAL = 2.0 * 35.0 / 32.0
# The render script's MAX_CAMERA_DISTANCE: metadata distances are ratios of it.
R2N2_MAX_DISTANCE = 1.75


def camera_position(azimuth_deg: float, elevation_deg: float, distance: float) -> np.ndarray:
    """The camera centre in world coordinates.

    Args:
      azimuth_deg: rotation about the up (y) axis; 0 looks from +x, 90 from +z.
      elevation_deg: angle above the ground (x-z) plane.
      distance: distance from the origin, world units.

    Returns:
      [3] float64.
    """
    az = np.deg2rad(azimuth_deg)
    el = np.deg2rad(elevation_deg)
    return distance * np.array(
        [np.cos(el) * np.cos(az), np.sin(el), np.cos(el) * np.sin(az)], dtype=np.float64
    )


def look_at_camera(
    azimuth_deg: float, elevation_deg: float, distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """World -> camera transform of a camera looking at the origin, y up.

    A world point X maps to camera coordinates `R @ X + t` (x right, y down,
    z forward).

    Args:
      azimuth_deg, elevation_deg, distance: see `camera_position`.

    Returns:
      R: [3, 3] float64 rotation (rows are the camera's right, down and
        forward axes in world coordinates).
      t: [3] float64 translation.
    """
    center = camera_position(azimuth_deg, elevation_deg, distance)
    forward = -center / np.linalg.norm(center)
    az = np.deg2rad(azimuth_deg)
    # The right axis is horizontal and depends on the azimuth alone; taking it
    # from the azimuth (rather than forward x up) keeps the camera defined
    # when it looks straight down or up.
    right = np.array([np.sin(az), 0.0, -np.cos(az)])
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    return rotation, -rotation @ center


def project(
    points: np.ndarray,
    azimuth_deg: float,
    elevation_deg: float,
    distance: float,
    image_size: int,
    focal: float = R2N2_FOCAL,
) -> tuple[np.ndarray, np.ndarray]:
    """Perspective projection of world points into a square image.

    Args:
      points: [N, 3] float world coordinates (x, y up, z).
      azimuth_deg, elevation_deg, distance: the camera (see `camera_position`).
      image_size: side of the square image in pixels.
      focal: focal length in normalised image coordinates (image spans
        [-1, 1]); the default is the R2N2 renders' 2.1875.

    Returns:
      uv: [N, 2] float64 continuous pixel coordinates (column, row); see the
        module docstring for the pixel convention.
      depth: [N] float64 distance along the viewing axis (positive in front).
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    rotation, translation = look_at_camera(azimuth_deg, elevation_deg, distance)
    cam = points @ rotation.T + translation
    depth = cam[:, 2]
    f_px = focal * image_size / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = image_size / 2.0 + f_px * cam[:, :2] / depth[:, None]
    return uv, depth
