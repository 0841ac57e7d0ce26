"""Tests of COV, MMD, 1-NNA and occupancy statistics on hand-worked sets."""

from fractions import Fraction as F

import numpy as np
import pytest

from enhancer_gan.errors import ConfigError, DataError
from enhancer_gan.evaluation.generation_metrics import generation_report, iou_distance_matrix


def _grid(r, *voxels):
    g = np.zeros((r, r, r), bool)
    for v in voxels:
        g[v] = True
    return g


def _brute_iou_distance(a, b):
    out = np.zeros((len(a), len(b)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            union = np.logical_or(x, y).sum()
            out[i, j] = 0.0 if union == 0 else 1 - np.logical_and(x, y).sum() / union
    return out


def test_iou_distance_matrix_matches_brute_force():
    rng = np.random.default_rng(0)
    a = rng.random((7, 6, 6, 6)) < 0.3
    b = rng.random((5, 6, 6, 6)) < 0.5
    a[0] = False  # empty vs non-empty
    expected = _brute_iou_distance(a, b)
    got = iou_distance_matrix(a.reshape(7, -1), b.reshape(5, -1), block_size=3)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    # b converted block by block (too big for the byte budget) gives the same.
    got = iou_distance_matrix(a.reshape(7, -1), b.reshape(5, -1), block_size=2, max_bytes=8)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert np.all(got[0] == 1.0)


def test_empty_grids_have_distance_zero_to_each_other_and_one_to_others():
    empty = np.zeros((2, 27), bool)
    full = np.ones((1, 27), bool)
    np.testing.assert_array_equal(iou_distance_matrix(empty, empty), np.zeros((2, 2)))
    np.testing.assert_array_equal(iou_distance_matrix(empty, full), np.ones((2, 1)))
    # Two half-overlapping grids: IoU 1/3.
    a = np.zeros((1, 27), bool)
    b = np.zeros((1, 27), bool)
    a[0, :2] = True
    b[0, 1:3] = True
    assert iou_distance_matrix(a, b)[0, 0] == pytest.approx(2 / 3)


def test_generated_equal_to_real_gives_full_coverage_and_zero_distance():
    rng = np.random.default_rng(1)
    real = rng.random((6, 5, 5, 5)) < 0.4  # distinct random shapes
    report = generation_report(real.copy(), real)
    assert report["cov"] == 1.0
    assert report["mmd"] == 0.0
    # Every grid's only neighbour at distance 0 is its twin in the other set,
    # so leave-one-out 1-NN is always wrong: 1-NNA = 0 (copies, not 0.5).
    assert report["one_nna"] == 0.0
    assert report["one_nna_generated"] == 0.0 and report["one_nna_real"] == 0.0
    assert report["generated_mean_occupancy"] == report["real_mean_occupancy"]


def test_hand_worked_collapse_case():
    r = 4
    real = np.stack(
        [
            _grid(r, (0, 0, 0)),  # r0
            _grid(r, (0, 0, 0), (0, 0, 1)),  # r1: IoU 1/2 with r0
            _grid(r, (3, 3, 3), (3, 3, 2)),  # r2: disjoint from all
        ]
    )
    generated = np.stack([_grid(r, (0, 0, 0)), _grid(r, (0, 0, 0))])  # mode collapse onto r0
    report = generation_report(generated.astype(np.float32), real)
    # Both generated grids match r0 only.
    assert report["cov"] == pytest.approx(1 / 3)
    # Nearest generated distance of r0, r1, r2: 0, 1/2, 1.
    assert report["mmd"] == pytest.approx(0.5)
    # Leave-one-out 1-NN, ties sharing the vote:
    #   g0: g1 (same) and r0 (other) at 0 -> 1/2; g1 likewise 1/2;
    #   r0: g0, g1 at 0 -> 0; r1: g0, g1, r0 at 1/2 -> 1/3;
    #   r2: everything at 1 -> r0, r1 of 4 -> 1/2.
    expected_gen = F(1, 2)
    expected_real = (F(0) + F(1, 3) + F(1, 2)) / 3
    expected = (2 * F(1, 2) + F(0) + F(1, 3) + F(1, 2)) / 5
    assert report["one_nna_generated"] == pytest.approx(float(expected_gen))
    assert report["one_nna_real"] == pytest.approx(float(expected_real))
    assert report["one_nna"] == pytest.approx(float(expected))
    assert report["num_generated"] == 2 and report["num_real"] == 3
    assert report["resolution"] == 4


def test_disjoint_sets_are_told_apart():
    r = 6
    # Generated: blobs sharing a corner voxel; real: blobs sharing the
    # opposite corner. Within a set grids overlap (distance 2/3), across
    # sets they are disjoint (distance 1).
    generated = np.stack([_grid(r, (0, 0, 0), (0, 1, i)) for i in range(4)])
    real = np.stack([_grid(r, (5, 5, 5), (5, 4, i)) for i in range(4)])
    report = generation_report(generated, real)
    assert report["mmd"] == 1.0
    assert report["one_nna"] == 1.0  # every grid's nearest neighbours share its set
    # Each generated grid is at distance 1 from all real ones: argmin takes r0.
    assert report["cov"] == pytest.approx(1 / 4)


def test_occupancy_threshold_and_empty_and_solid_fractions():
    r = 10  # 1000 voxels: empty means < 1 occupied voxel, solid > 500
    probs = np.zeros((4, r, r, r), np.float32)
    probs[0] = 0.5  # exactly 0.5 is not occupied -> empty
    probs[1, :6] = 0.9  # 60% occupied -> near-solid
    probs[2, :2] = 0.51  # 20%
    probs[3, 0, 0, 0] = 1.0  # one voxel: 0.1%, not empty
    real = np.zeros((1, r, r, r), bool)
    real[0, :3] = True
    report = generation_report(probs, real)
    assert report["generated_empty_fraction"] == pytest.approx(0.25)
    assert report["generated_solid_fraction"] == pytest.approx(0.25)
    assert report["generated_mean_occupancy"] == pytest.approx((0 + 0.6 + 0.2 + 0.001) / 4)
    assert report["real_mean_occupancy"] == pytest.approx(0.3)
    assert report["real_empty_fraction"] == 0.0 and report["real_solid_fraction"] == 0.0


def test_all_empty_generated_grids():
    real = np.zeros((2, 4, 4, 4), bool)
    real[0, 1, 1, 1] = True  # real[1] stays empty
    report = generation_report(np.zeros((3, 4, 4, 4)), real)
    # real[0] is at distance 1 from every empty grid, real[1] at 0.
    assert report["mmd"] == pytest.approx(0.5)
    assert report["cov"] == pytest.approx(0.5)
    assert report["generated_empty_fraction"] == 1.0


def test_max_samples_subsamples_deterministically():
    rng = np.random.default_rng(2)
    generated = rng.random((20, 4, 4, 4))
    real = rng.random((15, 4, 4, 4)) < 0.5
    a = generation_report(generated, real, seed=3, max_samples=8)
    b = generation_report(generated, real, seed=3, max_samples=8)
    assert a == b
    assert a["num_generated"] == 8 and a["num_real"] == 8
    full = generation_report(generated, real, max_samples=100)
    assert full["num_generated"] == 20 and full["num_real"] == 15


def test_bad_inputs_raise_project_errors():
    grids = np.zeros((2, 4, 4, 4))
    with pytest.raises(DataError, match="generated"):
        generation_report(np.zeros((4, 4, 4)), grids)
    with pytest.raises(DataError, match="real"):
        generation_report(grids, np.zeros((2, 4, 4, 5)))
    with pytest.raises(DataError, match="cannot be compared|but real grids"):
        generation_report(grids, np.zeros((2, 8, 8, 8)))
    with pytest.raises(DataError, match="NaN"):
        generation_report(np.full((1, 2, 2, 2), np.nan), grids[:, :2, :2, :2])
    with pytest.raises(DataError, match="non-empty"):
        generation_report(np.zeros((0, 4, 4, 4)), grids)
    with pytest.raises(ConfigError):
        generation_report(grids, grids, max_samples=0)
