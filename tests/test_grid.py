"""Tests of grid pooling, centring and the per-source transforms into the canonical frame."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from enhancer_gan.errors import ConfigError
from enhancer_gan.voxels.binvox import read_binvox
from enhancer_gan.voxels.grid import (
    CANONICAL_TRANSFORMS,
    center_occupied,
    downsample,
    occupied_box,
    r2n2_to_canonical,
    shapenet_v2_to_canonical,
    to_canonical,
)

CHAIR_ID = "1a6f615e8b1b5ae4dbbc9440457e303e"  # in every sample folder

# Measured on chair 1a6f615e8b1b5ae4dbbc9440457e303e (128^3 v2 solid grid,
# transformed at 128 and pooled to 32, against the 32^3 ShapeNetVox32 grid):
# IoU 0.849 for the chosen quarter turn; every other candidate that is not its
# mirror image scores 0.350-0.386 (identity 0.380).
IOU_FLOOR = 0.83
WRONG_CEILING = 0.45


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def naive_downsample(grid: np.ndarray, target: int) -> np.ndarray:
    f = grid.shape[0] // target
    out = np.zeros((target,) * 3, dtype=bool)
    for i, j, k in itertools.product(range(target), repeat=3):
        out[i, j, k] = bool(
            grid[i * f : (i + 1) * f, j * f : (j + 1) * f, k * f : (k + 1) * f].any()
        )
    return out


# ---------------------------------------------------------------- downsample


def test_downsample_hand_worked():
    grid = np.zeros((4, 4, 4), dtype=bool)
    grid[0, 0, 0] = True  # block (0, 0, 0)
    grid[3, 2, 1] = True  # block (1, 1, 0)
    expected = np.zeros((2, 2, 2), dtype=bool)
    expected[0, 0, 0] = expected[1, 1, 0] = True
    np.testing.assert_array_equal(downsample(grid, 2), expected)
    # One voxel of 8 is enough (any occupied wins, not a majority vote).
    assert downsample(grid, 1).tolist() == [[[True]]]
    assert not downsample(np.zeros((4, 4, 4), bool), 1).any()


def test_downsample_uint8_and_identity():
    grid = np.zeros((6, 6, 6), dtype=np.uint8)
    grid[5, 5, 5] = 1
    out = downsample(grid, 3)
    assert out.dtype == bool and out.shape == (3, 3, 3)
    assert out.sum() == 1 and out[2, 2, 2]
    same = downsample(grid, 6)
    assert same.dtype == bool and np.array_equal(same, grid.astype(bool))


@pytest.mark.parametrize(
    "shape, target, message",
    [
        ((6, 6, 6), 4, "not a multiple"),
        ((32, 32, 32), 64, "upsample"),
        ((4, 4, 4), 0, "positive"),
        ((4, 4, 4), -2, "positive"),
        ((4, 4, 2), 2, "cubic"),
        ((4, 4), 2, "cubic"),
    ],
)
def test_downsample_errors(shape, target, message):
    with pytest.raises(ValueError, match=message):
        downsample(np.zeros(shape, bool), target)


def test_downsample_refuses_non_integer_target():
    with pytest.raises(TypeError):
        downsample(np.zeros((4, 4, 4), bool), 2.0)


@st.composite
def grid_and_target(draw):
    target = draw(st.integers(1, 4))
    factor = draw(st.integers(1, 4))
    dim = target * factor
    nbytes = (dim**3 + 7) // 8
    bits = np.unpackbits(np.frombuffer(draw(st.binary(min_size=nbytes, max_size=nbytes)), np.uint8))
    # Sparse grids too, where a single voxel decides a block.
    if draw(st.booleans()):
        bits &= np.roll(bits, 1) & np.roll(bits, 2) & np.roll(bits, 3)
    return bits[: dim**3].reshape(dim, dim, dim).astype(bool), target


@given(grid_and_target())
def test_property_downsample_equals_naive_loop(case):
    grid, target = case
    np.testing.assert_array_equal(downsample(grid, target), naive_downsample(grid, target))


# ----------------------------------------------------------- center_occupied


def test_center_occupied_hand_worked():
    grid = np.zeros((5, 5, 5), dtype=bool)
    grid[0, 0, 0] = True
    out = center_occupied(grid)
    assert out.sum() == 1 and out[2, 2, 2]
    # Odd free margin: the extra voxel goes to the high side, wherever it started.
    grid = np.zeros((4, 4, 4), dtype=bool)
    grid[0, 0, 0] = grid[1, 0, 0] = True
    a = center_occupied(grid)
    b = center_occupied(np.roll(grid, 2, axis=0))
    np.testing.assert_array_equal(a, b)
    assert a[1, 1, 1] and a[2, 1, 1] and a.sum() == 2


def test_center_occupied_empty_and_full():
    empty = np.zeros((3, 3, 3), bool)
    out = center_occupied(empty)
    assert not out.any() and out is not empty
    full = np.ones((3, 3, 3), bool)
    np.testing.assert_array_equal(center_occupied(full), full)


@given(
    st.integers(1, 8).flatmap(
        lambda d: st.tuples(st.just(d), st.binary(min_size=d**3, max_size=d**3))
    )
)
def test_property_center_occupied(case):
    dim, raw = case
    # Sparse random grids (about 1 voxel in 16) so that there is room to move.
    grid = (np.frombuffer(raw, np.uint8) < 16).reshape(dim, dim, dim)
    out = center_occupied(grid)
    assert out.shape == grid.shape and out.sum() == grid.sum()
    np.testing.assert_array_equal(center_occupied(out), out)  # idempotent
    box = occupied_box(out)
    if box is None:
        assert not grid.any()
        return
    lo, hi = box
    low_margin, high_margin = lo, dim - 1 - hi
    assert np.all((high_margin - low_margin >= 0) & (high_margin - low_margin <= 1))
    # A pure translation of the occupied voxels.
    shift = lo - occupied_box(grid)[0]
    np.testing.assert_array_equal(np.roll(grid, tuple(shift), axis=(0, 1, 2)), out)


# --------------------------------------------------- transforms, synthetic


def test_v2_transform_voxel_mapping():
    # A grid whose occupied box fills the cube, so centring changes nothing:
    # new[x, y, z] = old[z, y, D - 1 - x].
    dim = 5
    rng = np.random.default_rng(0)
    grid = rng.random((dim, dim, dim)) < 0.3
    grid[0, 0, 0] = grid[-1, -1, -1] = True
    out = shapenet_v2_to_canonical(grid)
    for x, y, z in itertools.product(range(dim), repeat=3):
        assert out[x, y, z] == grid[z, y, dim - 1 - x]


def test_v2_transform_is_a_rotation_not_a_mirror():
    # Four quarter turns give back the grid; a mirror would need only two.
    rng = np.random.default_rng(1)
    grid = rng.random((6, 6, 6)) < 0.4
    grid[0, 0, 0] = grid[-1, -1, -1] = True
    once = shapenet_v2_to_canonical(grid)
    twice = shapenet_v2_to_canonical(once)
    four = shapenet_v2_to_canonical(shapenet_v2_to_canonical(twice))
    np.testing.assert_array_equal(four, grid)
    assert not np.array_equal(twice, grid)
    # Front (-z in v2) becomes +x; up stays up.
    marker = np.zeros((8, 8, 8), bool)
    marker[:, :, 0] = True  # v2 front face
    marker[0, 7, :] = True  # the top row at x = 0
    out = shapenet_v2_to_canonical(marker)
    assert out[7, :, :].all()  # front face now at +x
    assert out[:, 7, 0].all()  # old x = 0 is new z = 0
    assert out.sum() == marker.sum()


def test_v2_transform_centres_a_corner_object():
    grid = np.zeros((8, 8, 8), bool)
    grid[:2, :8, :4] = True  # at the minimum corner, like the v2 files
    out = shapenet_v2_to_canonical(grid)
    lo, hi = occupied_box(out)
    assert np.array_equal(lo, [2, 0, 3]) and np.array_equal(hi, [5, 7, 4])


def test_to_canonical_dispatch():
    rng = np.random.default_rng(2)
    grid = rng.random((4, 4, 4)) < 0.5
    grid[0, 0, 0] = grid[-1, -1, -1] = True
    np.testing.assert_array_equal(to_canonical(grid, "synthetic"), grid)
    np.testing.assert_array_equal(to_canonical(grid, "r2n2"), grid)
    np.testing.assert_array_equal(to_canonical(grid, "shapenet_v2"), shapenet_v2_to_canonical(grid))
    assert set(CANONICAL_TRANSFORMS) == {"r2n2", "shapenet_v2", "synthetic"}
    for bad in ("modelnet", "", None, "R2N2"):
        with pytest.raises(ConfigError, match="no canonical-frame transform"):
            to_canonical(grid, bad)
    with pytest.raises(ValueError, match="cubic"):
        to_canonical(np.zeros((2, 3, 2), bool), "shapenet_v2")


# --------------------------------------------------- transforms, real data


def load_pair(root):
    r2n2 = read_binvox(root / "ShapeNetVox32" / "03001627" / CHAIR_ID / "model.binvox").grid
    v2_path = root / "ShapeNetCore.v2" / "03001627" / CHAIR_ID / "models"
    v2 = read_binvox(v2_path / "model_normalized.solid.binvox").grid
    return r2n2, v2


def test_r2n2_grids_are_already_centred(shared_data):
    files = sorted((shared_data / "ShapeNetVox32").glob("*/*/model.binvox"))
    assert files
    for path in files:
        grid = read_binvox(path).grid
        np.testing.assert_array_equal(center_occupied(grid), grid)
        np.testing.assert_array_equal(r2n2_to_canonical(grid), grid)


def test_cross_source_iou(shared_data):
    r2n2, v2 = load_pair(shared_data)
    assert v2.shape == (128,) * 3 and r2n2.shape == (32,) * 3
    chosen = iou(downsample(to_canonical(v2, "shapenet_v2"), 32), r2n2)
    assert chosen >= IOU_FLOOR, chosen
    # The untransformed grid and the other orientations score far lower.
    raw = downsample(v2, 32)
    assert iou(raw, r2n2) < 0.2  # neither turned nor centred (docs/DESIGN.md#frames: 0.12)
    wrong = {
        "not turned": v2,
        "other quarter turn": v2.transpose(2, 1, 0)[:, :, ::-1],
        "half turn": v2[::-1, :, ::-1],
    }
    for name, grid in wrong.items():
        score = iou(downsample(center_occupied(grid), 32), r2n2)
        assert score < WRONG_CEILING, (name, score)
        assert score < chosen - 0.35, (name, score)


def test_cross_source_all_eight_candidates(shared_data):
    # Of the 8 axis swaps/flips, the best is the chosen turn or its mirror
    # image (the chair is left-right symmetric); all others are far behind.
    r2n2, v2 = load_pair(shared_data)
    scores = {}
    for swap, flip0, flip2 in itertools.product((False, True), repeat=3):
        g = v2.transpose(2, 1, 0) if swap else v2
        g = g[::-1] if flip0 else g
        g = g[:, :, ::-1] if flip2 else g
        scores[(swap, flip0, flip2)] = iou(downsample(center_occupied(g), 32), r2n2)
    assert max(scores, key=scores.get) in {(True, True, False), (True, True, True)}
    assert scores[(True, True, False)] >= IOU_FLOOR
    others = [s for k, s in scores.items() if k not in {(True, True, False), (True, True, True)}]
    assert max(others) < WRONG_CEILING


def backrest_offset(grid: np.ndarray) -> np.ndarray:
    """(3,) mean position of the top quarter's voxels relative to the box centre."""
    lo, hi = occupied_box(grid)
    top = np.argwhere(grid[:, lo[1] + int(0.75 * (hi[1] - lo[1])) :, :])
    return top.mean(axis=0)[[0, 2]] - (lo + hi)[[0, 2]] / 2


def test_every_sample_chair_faces_plus_x(shared_data):
    # Chairs' backrests are their tallest part: after the transform, every v2
    # chair has it at -x like every ShapeNetVox32 chair (8 + 6 chairs; only
    # one chair is in both folders, so this covers the others).
    r2n2 = sorted((shared_data / "ShapeNetVox32").glob("*/*/model.binvox"))
    v2 = sorted((shared_data / "ShapeNetCore.v2").glob("*/*/models/model_normalized.solid.binvox"))
    assert len(r2n2) == 6 and len(v2) == 8
    for path in r2n2:
        dx, dz = backrest_offset(read_binvox(path).grid)
        assert dx < -1 and abs(dz) < 1, (path, dx, dz)
    for path in v2:
        grid = downsample(to_canonical(read_binvox(path).grid, "shapenet_v2"), 32)
        dx, dz = backrest_offset(grid)
        assert dx < -1 and abs(dz) < 1, (path, dx, dz)


def test_v2_point_rotation_matches_the_grid_transform():
    from enhancer_gan.voxels.grid import V2_TO_CANONICAL

    # The meshes' turn (V2_TO_CANONICAL) is the voxel map of
    # shapenet_v2_to_canonical applied to voxel centres about the grid's middle.
    dim = 6
    grid = np.zeros((dim,) * 3, bool)
    grid[tuple(np.random.default_rng(0).integers(0, dim, (3, 7)))] = True
    turned = grid.transpose(2, 1, 0)[::-1]  # the transform before centring
    centres = np.argwhere(grid) + 0.5 - dim / 2
    moved = np.floor(centres @ V2_TO_CANONICAL.T + dim / 2).astype(int)
    expected = np.zeros_like(grid)
    expected[tuple(moved.T)] = True
    np.testing.assert_array_equal(expected, turned)
    assert np.linalg.det(V2_TO_CANONICAL) == pytest.approx(1.0)  # a rotation, not a mirror
