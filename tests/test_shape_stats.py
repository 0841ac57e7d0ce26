"""Speckle measures on grids whose answers are known by construction."""

import pathlib

import numpy as np
import pytest

from enhancer_gan.errors import DataError
from enhancer_gan.evaluation import shape_stats


def _grid(r=16):
    return np.zeros((r, r, r), bool)


def _cube(g, lo, hi):
    g[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return g


def test_components_use_26_connectivity():
    g = _grid()
    g[2, 2, 2] = g[3, 3, 3] = True  # corner neighbours: one piece under 26-connectivity
    g[8, 8, 8] = g[8, 8, 10] = True  # a gap of one voxel: two pieces
    stats = shape_stats.per_grid_stats(g[None])
    assert stats["components"].tolist() == [3]
    assert stats["largest_share"][0] == pytest.approx(2 / 4)


def test_one_solid_shape_with_speckle():
    g = _cube(_grid(), (2, 2, 2), (8, 8, 8))  # 216 voxels
    for i in range(5):  # five isolated voxels, none touching the cube or each other
        g[12, 2 + 3 * i, 12] = True
    stats = shape_stats.per_grid_stats(g[None])
    assert stats["components"][0] == 6
    assert stats["largest_share"][0] == pytest.approx(216 / 221)
    assert stats["occupancy"][0] == pytest.approx(221 / 16**3)


def test_summary_shares_and_empty_grids():
    one = _cube(_grid(), (1, 1, 1), (5, 5, 5))
    four = one.copy()
    for k in range(3):
        four[10, 10, 2 + 4 * k] = True  # 4 pieces
    five = four.copy()
    five[14, 14, 14] = True  # 5 pieces
    empty = _grid()
    s = shape_stats.summarize(np.stack([one, four, five, empty]))
    assert s["components"] == pytest.approx((1 + 4 + 5 + 0) / 4)
    assert s["many_pieces_fraction"] == pytest.approx(2 / 4)  # > 3 pieces: four and five
    assert s["largest_share"] == pytest.approx((1 + 64 / 67 + 64 / 68 + 1) / 4)


def test_undecided_counts_soft_voxels_only():
    p = np.zeros((2, 4, 4, 4), np.float32)
    p[0, 0, 0, :] = [0.1, 0.3, 0.5, 0.9]  # 0.3 and 0.5 undecided
    p[1] = 1.0
    stats = shape_stats.per_grid_stats(p)
    assert stats["undecided"].tolist() == pytest.approx([2 / 64, 0.0])
    assert stats["occupancy"].tolist() == pytest.approx([1 / 64, 1.0])  # > 0.5 only
    assert shape_stats.per_grid_stats(p > 0.5)["undecided"].tolist() == [0.0, 0.0]


def test_accepts_a_channel_axis_and_refuses_bad_shapes():
    g = _cube(_grid(8), (1, 1, 1), (3, 3, 3))
    assert shape_stats.summarize(g[None, ..., None])["components"] == 1
    with pytest.raises(DataError):
        shape_stats.summarize(np.zeros((8, 8, 8)))
    with pytest.raises(DataError):
        shape_stats.summarize(np.zeros((0, 8, 8, 8)))


def test_keep_largest_component():
    g = _cube(_grid(), (2, 2, 2), (6, 6, 6))
    speck = g.copy()
    speck[12, 12, 12] = speck[14, 2, 9] = True
    out = shape_stats.keep_largest_component(np.stack([speck, _grid()]))
    assert out.dtype == bool
    assert np.array_equal(out[0], g)
    assert not out[1].any()
    # Probabilities are thresholded first.
    soft = np.where(speck, 0.9, 0.4).astype(np.float32)
    assert np.array_equal(shape_stats.keep_largest_component(soft[None])[0], g)


def test_extra_pieces_size_confidence_and_gap():
    soft = np.zeros((2, 16, 16, 16), np.float32)
    soft[0, 2:8, 2:8, 2:8] = 0.95  # the largest piece: x 2..7
    soft[0, 9, 4, 4] = 0.6  # a speck one empty voxel (x = 8) from it: gap 2
    soft[0, 13:15, 4, 4] = [0.7, 0.99]  # a 2-voxel part, nearest voxel x = 13: gap 6
    soft[1, 1:4, 1:4, 1:4] = 0.9  # one piece only: no extra pieces
    extra = shape_stats.extra_pieces(soft)
    order = np.argsort(extra["size"])
    assert extra["size"][order].tolist() == [1, 2]
    np.testing.assert_allclose(extra["max_p"][order], [0.6, 0.99], rtol=1e-6)
    np.testing.assert_allclose(extra["gap"][order], [2.0, 6.0])
    # Bool grids: every piece's confidence is 1; empty or one-piece sets have none.
    extra = shape_stats.extra_pieces(soft > 0.5)
    assert extra["max_p"].tolist() == [1.0, 1.0]
    assert shape_stats.extra_pieces(np.zeros((1, 8, 8, 8)))["size"].size == 0


def test_speckle_pieces_summary():
    soft = np.zeros((2, 16, 16, 16), np.float32)
    soft[:, 2:8, 2:8, 2:8] = 0.95
    soft[0, 12, 12, 12] = 0.55  # a speck that only low thresholds keep
    s = shape_stats.pieces_report(soft)
    assert s["thresholds"]["0.5"]["components"] == 1.5
    assert s["thresholds"]["0.6"]["components"] == 1.0
    assert (s["extra_pieces"], s["size_1"], s["max_p_lt_0.7"], s["gap_gt_5"]) == (1, 1, 1, 1)
    assert "1 extra pieces" in shape_stats.format_pieces_report("run", s)


def test_speckle_pieces_script_needs_a_run(tmp_path):
    import subprocess
    import sys

    script = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "speckle_pieces.py"
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: --run_dirs is required"
    missing = tmp_path / "no_run"
    result = subprocess.run(
        [sys.executable, str(script), f"--run_dirs={missing}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(missing) in last
    assert "Traceback" not in result.stderr
