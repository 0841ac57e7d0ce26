"""Tests of the R2N2 camera, the silhouette projection and the voxel renderer.

The real-data tests are the project's proof that ShapeNetVox32 grids (read
in project order x, y up, z) and the 3D-R2N2 renders share one frame: the
projected grid must match each render's alpha mask, and plausible wrong
conventions must not.
"""

import functools

import numpy as np
import pytest
from PIL import Image

from enhancer_gan.errors import DataError
from enhancer_gan.voxels import camera
from enhancer_gan.voxels.binvox import read_binvox
from enhancer_gan.voxels.render import grid_placement, render_voxels, silhouette

CHAIR_ID = "1a6f615e8b1b5ae4dbbc9440457e303e"  # in every sample folder
SAMPLE_CHAIRS = [
    "1a38407b3036795d19fb4103277a6b93",
    "1a6f615e8b1b5ae4dbbc9440457e303e",
    "1a74a83fa6d24b3cacd67ce2c72c02e",
    "1a8bbf2994788e2743e99e0cae970928",
    "1aa07508b731af79814e2be0234da26c",
    "1ab4c6ef68073113cf004563556ddb36",
]


def _box(dim, lo, hi):
    grid = np.zeros((dim,) * 3, dtype=bool)
    grid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return grid


@functools.lru_cache(maxsize=8)
def _chair_views(shared_data, model_id):
    """(VoxelFile, metadata [24, 5], alpha masks [24, 137, 137] bool), cached."""
    voxels = read_binvox(shared_data / "ShapeNetVox32" / "03001627" / model_id / "model.binvox")
    folder = shared_data / "ShapeNetRendering" / "03001627" / model_id / "rendering"
    # Columns: azimuth, elevation, in-plane rotation, distance ratio, fov.
    metadata = np.loadtxt(folder / "rendering_metadata.txt", ndmin=2)
    assert metadata.shape == (24, 5)
    assert np.all(metadata[:, 2] == 0), "in-plane rotation is not modelled"
    alphas = np.stack(
        [np.asarray(Image.open(folder / f"{k:02d}.png"))[..., 3] > 0 for k in range(24)]
    )
    return voxels, metadata, alphas


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


@functools.lru_cache(maxsize=8)
def _right_mean_iou(shared_data, model_id):
    return _view_ious(*_chair_views(shared_data, model_id)).mean()


def _view_ious(
    voxels,
    metadata,
    alphas,
    azimuth_sign=1.0,
    azimuth_offset=0.0,
    focal=camera.R2N2_FOCAL,
    flip_rows=False,
):
    """IoU per view; the keyword arguments give deliberately wrong conventions."""
    ious = []
    for row, alpha in zip(metadata, alphas):
        azimuth = azimuth_sign * row[0] + azimuth_offset
        mask = silhouette(
            voxels.grid, azimuth, row[1], row[3], 137, voxels.translate, voxels.scale, focal=focal
        )
        if flip_rows:
            mask = mask[::-1]
        ious.append(_iou(mask, alpha))
    return np.array(ious)


# ---------------------------------------------------------------- camera


@pytest.mark.parametrize(
    "azimuth, elevation", [(0, 0), (30, 25), (209.19, 25.4), (300, -40), (0, 90)]
)
def test_look_at_camera_is_a_proper_rigid_transform(azimuth, elevation):
    rotation, translation = camera.look_at_camera(azimuth, elevation, 1.5)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)  # not mirrored
    eye = camera.camera_position(azimuth, elevation, 1.5)
    np.testing.assert_allclose(rotation @ eye + translation, 0.0, atol=1e-12)
    # The camera looks at the origin, 1.5 away.
    np.testing.assert_allclose(translation, [0.0, 0.0, 1.5], atol=1e-12)


def test_camera_placement_signs():
    np.testing.assert_allclose(camera.camera_position(0, 0, 2), [2, 0, 0], atol=1e-12)
    np.testing.assert_allclose(camera.camera_position(90, 0, 2), [0, 0, 2], atol=1e-12)
    np.testing.assert_allclose(camera.camera_position(0, 90, 2), [0, 2, 0], atol=1e-12)


def test_project_rows_grow_downwards_and_centre_is_centre():
    points = np.array([[0.0, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, -0.2, 0.0]])
    uv, depth = camera.project(points, 30.0, 25.0, 1.4, 137)
    np.testing.assert_allclose(uv[0], [68.5, 68.5])
    assert uv[1, 1] < uv[0, 1] < uv[2, 1]  # up in the world is up in the image
    np.testing.assert_allclose(uv[1:, 0], 68.5, atol=1e-9)  # vertical stays vertical
    assert depth[0] == pytest.approx(1.4)


def test_project_focal_length_in_pixels():
    # A point 0.1 to the camera's right at depth 1 lands focal * size / 2 * 0.1
    # pixels right of the centre: 2.1875 -> about 15 px on a 137 px image.
    rotation, translation = camera.look_at_camera(0.0, 0.0, 1.0)
    right = rotation[0]
    uv, _ = camera.project(0.1 * right[None], 0.0, 0.0, 1.0, 137)
    assert uv[0, 0] - 68.5 == pytest.approx(0.1 * 2.1875 * 68.5)
    assert camera.R2N2_FOCAL == 2.1875


def test_azimuth_turns_the_view_clockwise_seen_from_above():
    # A point on +z is to the camera's right at azimuth 0 (camera on +x looking
    # towards -x, y up), and nearest the camera at azimuth 90.
    point = np.array([[0.0, 0.0, 0.3]])
    uv, _ = camera.project(point, 0.0, 0.0, 2.0, 100)
    assert uv[0, 0] < 50.0  # +z is on the left when looking along -x with y up
    _, depth90 = camera.project(point, 90.0, 0.0, 2.0, 100)
    _, depth270 = camera.project(point, 270.0, 0.0, 2.0, 100)
    assert depth90[0] < depth270[0]


# ---------------------------------------------------------------- silhouette


def test_silhouette_of_empty_grid_is_empty():
    mask = silhouette(np.zeros((8, 8, 8), bool), 30.0, 25.0, 0.8, 64)
    assert mask.shape == (64, 64) and mask.dtype == bool and not mask.any()


def test_silhouette_of_centred_cube_is_centred_and_symmetric():
    grid = _box(16, (4, 4, 4), (12, 12, 12))
    mask = silhouette(grid, 45.0, 0.0, 0.8, 64)
    assert mask[32, 32]
    # Seen diagonally at zero elevation, a cube is left-right symmetric.
    np.testing.assert_array_equal(mask, mask[:, ::-1])
    rows, cols = np.nonzero(mask)
    assert abs(rows.mean() - 31.5) < 1.0 and abs(cols.mean() - 31.5) < 1.0
    # Face-on the cube is as symmetric and centred, but narrower: turned by 45
    # degrees it shows its diagonal (40 pixels wide against 36; an azimuth
    # that is ignored, or read as radians, fails here or above).
    front = silhouette(grid, 0.0, 0.0, 0.8, 64)
    np.testing.assert_array_equal(front, front[:, ::-1])
    front_cols = np.nonzero(front.any(axis=0))[0]
    assert len(np.nonzero(mask.any(axis=0))[0]) >= len(front_cols) + 3
    assert abs(front_cols.mean() - 31.5) < 1.0


def test_silhouette_matches_projected_voxel_centres():
    rng = np.random.default_rng(0)
    grid = rng.random((12, 12, 12)) < 0.05
    mask = silhouette(grid, 123.0, 28.0, 0.8, 96, scale=0.7)
    origin, size = grid_placement(grid, scale=0.7)
    centres = origin + (np.argwhere(grid) + 0.5) * size
    uv, _ = camera.project(centres, 123.0, 28.0, 0.8 * 1.75, 96)
    cols, rows = np.floor(uv).astype(int).T
    assert mask[rows, cols].all()


def test_silhouette_rejects_non_cubic_grid():
    with pytest.raises(DataError, match="cubic"):
        silhouette(np.zeros((8, 8, 4), bool), 0.0, 0.0, 0.8)


def test_silhouette_matches_real_renders_of_the_spec_chair(shared_data):
    voxels, metadata, alphas = _chair_views(shared_data, CHAIR_ID)
    ious = _view_ious(voxels, metadata, alphas)
    # Measured: mean 0.910, worst 0.870 over all 24 views.
    assert ious.mean() >= 0.88
    assert ious.min() >= 0.85


def test_silhouette_matches_real_renders_of_all_sample_chairs(shared_data):
    per_chair = []
    for model_id in SAMPLE_CHAIRS:
        voxels, metadata, alphas = _chair_views(shared_data, model_id)
        ious = _view_ious(voxels, metadata, alphas)
        per_chair.append(ious.mean())
        # Voxels only ever fatten thin parts, so the grid covers the render:
        # nearly every rendered pixel lies inside the projected grid.
        for row, alpha in zip(metadata, alphas):
            mask = silhouette(voxels.grid, row[0], row[1], row[3], 137, None, voxels.scale)
            assert (mask & alpha).sum() / alpha.sum() >= 0.95, model_id
    # Measured per chair: 0.934 0.910 0.824 0.933 0.893 0.940 (1a74a83f is a
    # cantilever chair of thin tubes that 32^3 voxels thicken).
    assert np.mean(per_chair) >= 0.85
    assert min(per_chair) >= 0.80


@pytest.mark.parametrize(
    "wrong",
    [
        {"azimuth_sign": -1.0},
        {"azimuth_offset": 90.0},  # azimuth 0 looking from +z
        {"azimuth_offset": 180.0},  # azimuth 0 looking from -x
        {"focal": 1.0 / np.tan(np.radians(12.5))},  # the metadata's "25" as fov
        {"flip_rows": True},  # rows growing upwards
    ],
)
def test_wrong_conventions_score_clearly_lower(shared_data, wrong):
    right_ious, wrong_ious = [], []
    for model_id in SAMPLE_CHAIRS:
        voxels, metadata, alphas = _chair_views(shared_data, model_id)
        right_ious.append(_right_mean_iou(shared_data, model_id))
        wrong_ious.append(_view_ious(voxels, metadata, alphas, **wrong).mean())
    assert np.mean(wrong_ious) < 0.75, wrong
    assert np.mean(right_ious) - np.mean(wrong_ious) > 0.15, wrong


# ---------------------------------------------------------------- render_voxels


def test_render_empty_grid_is_white():
    image = render_voxels(np.zeros((16, 16, 16), bool), size=48)
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    assert (image == 255).all()


def test_render_object_is_near_the_centre_and_shaded():
    image = render_voxels(_box(16, (3, 5, 6), (13, 11, 10)), size=64)
    covered = (image < 255).any(axis=-1)
    rows, cols = np.nonzero(covered)
    assert covered[32, 32]
    assert abs(rows.mean() - 32) < 6 and abs(cols.mean() - 32) < 6
    # Three visible face orientations -> three distinct greys.
    greys = np.unique(image[covered].reshape(-1, 3), axis=0)
    assert len(greys) == 3
    assert np.diff(greys[:, 0].astype(int)).min() >= 20
    assert np.all(greys[:, 0] == greys[:, 1]) and np.all(greys[:, 1] == greys[:, 2])


def test_render_is_deterministic_and_float_occupancy_is_cut_at_half():
    rng = np.random.default_rng(1)
    occupancy = rng.random((20, 20, 20)).astype(np.float32)
    first = render_voxels(occupancy, 40.0, 20.0, size=64)
    np.testing.assert_array_equal(first, render_voxels(occupancy, 40.0, 20.0, size=64))
    np.testing.assert_array_equal(first, render_voxels(occupancy > 0.5, 40.0, 20.0, size=64))


def _ray_cast_normals(grid, azimuth, elevation, distance_ratio, size):
    """Oracle: the outward normal (axis * 2 + (sign > 0)) of the first voxel
    face each pixel's ray enters, found by fine ray marching; -1 for a miss
    and -2 where the step was too coarse to tell."""
    origin, voxel_size = grid_placement(grid)
    distance = distance_ratio * 1.75
    rotation, _ = camera.look_at_camera(azimuth, elevation, distance)
    eye = camera.camera_position(azimuth, elevation, distance)
    f_px = camera.R2N2_FOCAL * size / 2
    v, u = np.mgrid[0:size, 0:size] + 0.5
    rays = np.stack([(u - size / 2) / f_px, (v - size / 2) / f_px, np.ones_like(u)], -1)
    rays = rays.reshape(-1, 3) @ rotation  # camera -> world directions
    steps = np.arange(distance - 1.0, distance + 1.0, voxel_size / 25)
    points = eye + steps[None, :, None] * rays[:, None, :]
    index = np.floor((points - origin) / voxel_size).astype(int)
    dim = grid.shape[0]
    inside = np.all((index >= 0) & (index < dim), axis=-1)
    clipped = np.clip(index, 0, dim - 1)
    hit = inside & grid[clipped[..., 0], clipped[..., 1], clipped[..., 2]]
    first = hit.argmax(axis=1)
    normals = np.full(len(rays), -1)
    for ray in np.flatnonzero(hit.any(axis=1)):
        changed = np.flatnonzero(index[ray, first[ray]] != index[ray, first[ray] - 1])
        if len(changed) != 1:
            normals[ray] = -2
            continue
        axis = changed[0]
        normals[ray] = axis * 2 + (rays[ray, axis] < 0)  # entering against the ray
    return normals.reshape(size, size)


@pytest.mark.parametrize("azimuth, elevation", [(30.0, 25.0), (200.0, 40.0), (315.0, -20.0)])
def test_render_shows_the_nearest_face_like_a_ray_caster(azimuth, elevation):
    # A lumpy random shape hides many of its own front-facing faces; the
    # renderer must show, at every pixel, the face a ray cast meets first.
    rng = np.random.default_rng(2)
    grid = np.kron(rng.random((6, 6, 6)) < 0.4, np.ones((2, 2, 2), bool))
    size = 64
    image = render_voxels(grid, azimuth, elevation, size=size)
    normals = _ray_cast_normals(grid, azimuth, elevation, 0.8, size)
    covered = (image < 255).any(-1)
    assert np.mean(covered == (normals != -1)) > 0.97
    grey = image[..., 0]
    both = covered & (normals >= 0)
    # Each visible normal has one grey; the greys must follow the oracle.
    agree = 0
    for normal in np.unique(normals[both]):
        values, counts = np.unique(grey[both & (normals == normal)], return_counts=True)
        agree += counts.max()
    assert agree / both.sum() > 0.97
    assert len(np.unique(grey[both])) == len(np.unique(normals[both]))


def test_render_close_up_fills_the_projected_outline_exactly():
    # One voxel seen from close by covers a large part of the image, so its
    # faces are big quads: the picture must be the convex outline of its
    # projected corners, without holes or spill.
    from scipy.spatial import ConvexHull

    grid = np.zeros((8, 8, 8), bool)
    grid[3, 4, 2] = True
    image = render_voxels(grid, 75.0, 35.0, size=96, distance_ratio=1.0)
    covered = (image < 255).any(-1)
    origin, voxel_size = grid_placement(grid)
    corners = origin + (np.array([3, 4, 2]) + np.indices((2, 2, 2)).reshape(3, -1).T) * voxel_size
    uv, _ = camera.project(corners, 75.0, 35.0, 1.75, 96)
    hull = ConvexHull(uv)
    assert abs(covered.sum() - hull.volume) < 0.02 * hull.volume
    rows, cols = np.nonzero(covered)
    assert uv[:, 0].min() - 1 < cols.min() and cols.max() < uv[:, 0].max()
    assert uv[:, 1].min() - 1 < rows.min() and rows.max() < uv[:, 1].max()
    assert len(np.unique(image[covered].reshape(-1, 3), axis=0)) == 3


@pytest.mark.parametrize("dim", [8, 17, 32, 64, 128])
def test_render_any_cubic_size(dim):
    grid = np.zeros((dim,) * 3, bool)
    grid[dim // 4 : 3 * dim // 4, : dim // 2, dim // 3 : 2 * dim // 3] = True
    image = render_voxels(grid, size=32)
    assert image.shape == (32, 32, 3)
    assert 0.05 < (image < 255).any(-1).mean() < 0.9


def test_render_rejects_bad_grids():
    with pytest.raises(DataError, match="cubic"):
        render_voxels(np.zeros((4, 4), bool))
    with pytest.raises(DataError, match="NaN"):
        render_voxels(np.full((8, 8, 8), np.nan, np.float32))


def test_render_fills_the_frame_like_the_real_renders(shared_data):
    # Same views, same camera: the fraction of the frame the object covers
    # must be close to that of the real renders. Measured ratios (ours /
    # real) 1.02-1.19; voxels thicken thin parts, so ours is a bit larger.
    for model_id in SAMPLE_CHAIRS:
        voxels, metadata, alphas = _chair_views(shared_data, model_id)
        ours = [
            (render_voxels(voxels.grid, row[0], row[1], 137, row[3]) < 255).any(-1).mean()
            for row in metadata
        ]
        ratio = np.mean(ours) / alphas.mean()
        assert 0.85 < ratio < 1.3, (model_id, ratio)
