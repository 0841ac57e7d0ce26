"""Per-grid shape statistics: speckle, fragmentation, indecision, occupancy.

The set metrics of `generation_metrics` (COV, MMD, 1-NNA) say how close
generated grids are to real ones; these say what is wrong with them when
they are not. Real solid objects are one piece; a generator that has not
learnt the data scatters speckle around a blob, and leaves many voxels
undecided (probabilities near 0.5) that thresholding turns into noise.

For a grid (occupied = value > 0.5, `generation_metrics.OCCUPANCY_THRESHOLD`):
  components:      26-connected components of occupied voxels (0 if empty);
  largest_share:   occupied voxels in the largest component / all occupied
                   (1 for an empty grid: nothing is scattered);
  undecided:       share of voxels with 0.2 < p < 0.8 before thresholding
                   (0 for bool grids);
  occupancy:       share of occupied voxels.
A set is summarised by the means, and by the share of grids in more than
`MANY_PIECES` components.

`extra_pieces` describes every component but the largest (its size, its
most confident voxel, its gap to the largest), to tell a fringe of
undecided specks from whole detached parts.

`keep_largest_component` is display post-processing (3D-GAN's release shows
samples that way); reports always measure the raw samples.

This module must not import TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from enhancer_gan.errors import DataError

OCCUPANCY_THRESHOLD = 0.5
UNDECIDED_LOW, UNDECIDED_HIGH = 0.2, 0.8
MANY_PIECES = 3
PIECES_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)  # pieces_report's sweep
_CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)

SUMMARY_KEYS = (
    "components",
    "many_pieces_fraction",
    "largest_share",
    "undecided",
    "occupancy",
)


def _check(grids: Any) -> np.ndarray:
    grids = np.asarray(grids)
    if grids.ndim == 5 and grids.shape[-1] == 1:
        grids = grids[..., 0]
    if grids.ndim != 4 or grids.shape[0] == 0:
        raise DataError(None, f"grids must be a non-empty [N, R, R, R] array, got {grids.shape}")
    if not (grids.dtype == bool or np.issubdtype(grids.dtype, np.number)):
        raise DataError(None, f"grids must be bool or numeric, got dtype {grids.dtype}")
    return grids


def occupied(grids: Any, threshold: float = OCCUPANCY_THRESHOLD) -> np.ndarray:
    """[N, R, R, R] (or [N, R, R, R, 1]) values -> bool, occupied where > threshold."""
    grids = _check(grids)
    return grids if grids.dtype == bool else grids > threshold


def component_sizes(grid: np.ndarray) -> np.ndarray:
    """Voxel counts of the 26-connected components of one bool grid, largest first."""
    labels, count = ndimage.label(grid, structure=_CONNECTIVITY_26)
    if count == 0:
        return np.zeros(0, np.int64)
    return np.sort(np.bincount(labels.ravel())[1:])[::-1]


def per_grid_stats(grids: Any, threshold: float = OCCUPANCY_THRESHOLD) -> dict[str, np.ndarray]:
    """Each statistic of the module docstring, one value per grid: {name: [N]}."""
    grids = _check(grids)
    solid = occupied(grids, threshold)
    components = np.zeros(len(grids), np.int64)
    largest = np.ones(len(grids), np.float64)
    for i, grid in enumerate(solid):
        sizes = component_sizes(grid)
        components[i] = sizes.size
        if sizes.size:
            largest[i] = sizes[0] / sizes.sum()
    if grids.dtype == bool:
        undecided = np.zeros(len(grids), np.float64)
    else:
        p = grids.reshape(len(grids), -1)
        undecided = np.mean((p > UNDECIDED_LOW) & (p < UNDECIDED_HIGH), axis=1)
    return {
        "components": components,
        "largest_share": largest,
        "undecided": undecided,
        "occupancy": solid.reshape(len(grids), -1).mean(axis=1),
    }


def summarize(grids: Any, threshold: float = OCCUPANCY_THRESHOLD) -> dict[str, float]:
    """The set's means of `per_grid_stats` and its share of grids in > 3 pieces."""
    stats = per_grid_stats(grids, threshold)
    return {
        "components": float(stats["components"].mean()),
        "many_pieces_fraction": float(np.mean(stats["components"] > MANY_PIECES)),
        "largest_share": float(stats["largest_share"].mean()),
        "undecided": float(stats["undecided"].mean()),
        "occupancy": float(stats["occupancy"].mean()),
    }


def keep_largest_component(grids: Any, threshold: float = OCCUPANCY_THRESHOLD) -> np.ndarray:
    """Post-processing for display: each grid's largest 26-connected component only.

    Returns: [N, R, R, R] bool. Empty grids stay empty; on a tie the component
    met first in scan order is kept.
    """
    solid = occupied(grids, threshold)
    out = np.zeros_like(solid)
    for i, grid in enumerate(solid):
        labels, count = ndimage.label(grid, structure=_CONNECTIVITY_26)
        if count:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            out[i] = labels == int(np.argmax(sizes))
    return out


def extra_pieces(grids: Any, threshold: float = OCCUPANCY_THRESHOLD) -> dict[str, np.ndarray]:
    """Every 26-connected component but each grid's largest, over all grids.

    Returns {name: [P]} for the P extra pieces: 'size' (voxels), 'max_p' (the
    highest value in the piece before thresholding; 1 for bool grids) and
    'gap' (the Euclidean distance between voxel centres from the piece's
    nearest voxel to its grid's largest piece; at least 2, since voxels of two
    26-connected pieces are never neighbours: 2 is one empty voxel between).
    """
    grids = _check(grids)
    solid = occupied(grids, threshold)
    values = grids.astype(np.float64) if grids.dtype != bool else solid.astype(np.float64)
    size, max_p, gap = [], [], []
    for grid, value in zip(solid, values):
        labels, count = ndimage.label(grid, structure=_CONNECTIVITY_26)
        if count < 2:
            continue
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        largest = int(np.argmax(sizes))
        distance = ndimage.distance_transform_edt(labels != largest)
        for k in range(1, count + 1):
            if k == largest:
                continue
            piece = labels == k
            size.append(int(sizes[k]))
            max_p.append(float(value[piece].max()))
            gap.append(float(distance[piece].min()))
    return {
        "size": np.asarray(size, np.int64),
        "max_p": np.asarray(max_p, np.float64),
        "gap": np.asarray(gap, np.float64),
    }


def pieces_report(samples: Any) -> dict:
    """Occupancy grids [N, R, R, R] -> pieces per grid at each of PIECES_THRESHOLDS
    and shares of the `extra_pieces` by size, confidence and gap
    (experiments/speckle_pieces.py)."""
    sweep = {}
    for t in PIECES_THRESHOLDS:
        s = summarize(samples, threshold=t)
        sweep[str(t)] = {k: s[k] for k in ("components", "many_pieces_fraction", "occupancy")}
    extra = extra_pieces(samples)
    size, max_p, gap = extra["size"], extra["max_p"], extra["gap"]

    def share(mask):
        return float(np.mean(mask)) if len(size) else 0.0

    return {
        "num_samples": int(len(samples)),
        "thresholds": sweep,
        "extra_pieces": int(len(size)),
        "size_median": float(np.median(size)) if len(size) else 0.0,
        "size_1": share(size == 1),
        "size_le_3": share(size <= 3),
        "size_gt_10": share(size > 10),
        "max_p_lt_0.7": share(max_p < 0.7),
        "max_p_gt_0.9": share(max_p > 0.9),
        "gap_le_2": share(gap <= 2),
        "gap_gt_5": share(gap > 5),
    }


def format_pieces_report(name: str, s: dict) -> str:
    lines = [f"{name}: {s['num_samples']} samples"]
    for t, v in s["thresholds"].items():
        lines.append(
            f"  threshold {t}: {v['components']:.2f} pieces per sample, "
            f"{v['many_pieces_fraction']:.2f} in > 3, occupancy {v['occupancy']:.4f}"
        )
    lines.append(
        f"  {s['extra_pieces']} extra pieces: median size {s['size_median']:g}; "
        f"1 voxel {s['size_1']:.2f}, <= 3 {s['size_le_3']:.2f}, > 10 {s['size_gt_10']:.2f}; "
        f"max p < 0.7 {s['max_p_lt_0.7']:.2f}, > 0.9 {s['max_p_gt_0.9']:.2f}; "
        f"gap to the largest <= 2 {s['gap_le_2']:.2f}, > 5 {s['gap_gt_5']:.2f}"
    )
    return "\n".join(lines)
