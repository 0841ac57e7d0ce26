"""Quality of generated voxel grids against held-out real grids.

The paper judges generation by eye (Figure 3). These numbers make that
measurable with the point-cloud GAN literature's set metrics (Achlioptas et
al. 2018; Yang et al. 2019), computed with the IoU distance between voxel grids:

  d(a, b) = 1 - |a & b| / |a | b|,  d = 0 for two empty grids, 1 if one is empty.

- COV (coverage, higher is better): the fraction of real grids that are,
  among the real grids, the nearest to at least one generated grid. Low COV means mode
  collapse.
- MMD (minimum matching distance, lower is better): the mean over real grids
  of the distance to the closest generated grid. High MMD means the real
  shapes are not matched in quality.
- 1-NNA (0.5 ideal): leave-one-out 1-nearest-neighbour classification of
  the union of generated and real grids into "generated" and "real";
  accuracy near 0.5 means the sets are indistinguishable, near 1 that they
  are separable, well below 0.5 that generated grids are near-copies of the
  real ones (each one's nearest neighbour is its twin in the other set).
  A nearest-neighbour tie between the two sets shares the vote: a sample
  whose nearest neighbours (all at the same distance) are g generated and
  r real scores g / (g + r) if it is generated, r / (g + r) if real. This
  keeps the number independent of item order. (Coverage, by contrast,
  takes the lowest-index real grid when a generated grid is equally close
  to several; that matters mostly for empty generated grids.)
- Occupancy: mean fraction of occupied voxels; the fraction of EMPTY samples
  (under 0.1% of voxels occupied: at 64^3 fewer than 262 voxels, far below any
  real ShapeNet shape) and of NEAR-SOLID samples (over 50% of the grid
  occupied: a real solid object normalised into the unit cube rarely fills
  half of it, while a collapsed generator that outputs a blob does). Both are
  reported for the real set too, as the reference.

Occupancy threshold: a voxel is occupied when its value is > 0.5 (the
generator's sigmoid output; bool grids work unchanged).

Intersections are computed as float32 matrix products of 0/1 grids in row
blocks; every partial sum is an integer below 2^24 (64^3 = 262,144 voxels),
so the counts are exact.

This module must not import TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from enhancer_gan.errors import ConfigError, DataError
from enhancer_gan.evaluation import shape_stats

OCCUPANCY_THRESHOLD = 0.5
EMPTY_FRACTION = 0.001
SOLID_FRACTION = 0.5


def _as_grids(grids: Any, name: str) -> np.ndarray:
    """Checks [N, R, R, R] numeric grids. Returns: [N, R^3] bool (occupied)."""
    grids = np.asarray(grids)
    if grids.ndim != 4 or grids.shape[0] == 0 or len(set(grids.shape[1:])) != 1:
        raise DataError(None, f"{name} must be a non-empty [N, R, R, R] array, got {grids.shape}")
    if grids.dtype != bool:
        if not (np.issubdtype(grids.dtype, np.floating) or np.issubdtype(grids.dtype, np.integer)):
            raise DataError(None, f"{name} must be bool or numeric, got dtype {grids.dtype}")
        if np.issubdtype(grids.dtype, np.floating) and np.isnan(grids).any():
            raise DataError(None, f"{name} holds NaN")
        grids = grids > OCCUPANCY_THRESHOLD
    return grids.reshape(grids.shape[0], -1)


def iou_distance_matrix(
    a: np.ndarray, b: np.ndarray, block_size: int = 128, max_bytes: int = 2**30
) -> np.ndarray:
    """IoU distances between two sets of occupancy grids.

    Args:
      a: [N, V] bool, flattened grids.
      b: [M, V] bool.
      block_size: rows converted to float32 at once.
      max_bytes: `b` is converted to float32 once when that fits in this
        many bytes, else block by block for every block of `a`.

    Returns:
      [N, M] float64, 1 - IoU; 0 where both grids are empty.
    """
    if a.shape[1] != b.shape[1]:
        raise DataError(None, f"grids of {a.shape[1]} and {b.shape[1]} voxels cannot be compared")
    count_a = a.sum(axis=1, dtype=np.int64)
    count_b = b.sum(axis=1, dtype=np.int64)
    b_whole = b.astype(np.float32) if b.size * 4 <= max_bytes else None
    inter = np.empty((a.shape[0], b.shape[0]), np.float64)
    for lo in range(0, a.shape[0], block_size):
        a_block = a[lo : lo + block_size].astype(np.float32)
        if b_whole is not None:
            inter[lo : lo + block_size] = a_block @ b_whole.T
            continue
        for col in range(0, b.shape[0], block_size):
            b_block = b[col : col + block_size].astype(np.float32)
            inter[lo : lo + block_size, col : col + block_size] = a_block @ b_block.T
    union = count_a[:, None] + count_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.where(union > 0, 1.0 - inter / np.maximum(union, 1), 0.0)
    return dist


def _one_nna(d_gg: np.ndarray, d_rr: np.ndarray, d_gr: np.ndarray) -> tuple[float, float, float]:
    """Leave-one-out 1-NN accuracy of telling generated from real.

    Returns:
      (accuracy over all samples, accuracy on generated, accuracy on real).
    """

    def scores(same: np.ndarray, other: np.ndarray) -> np.ndarray:
        same = same.copy()
        np.fill_diagonal(same, np.inf)  # leave one out
        nearest = np.minimum(same.min(axis=1), other.min(axis=1))
        # The same tolerance for both sets; exact values are IoU ratios.
        n_same = np.sum(same <= nearest[:, None] + 1e-12, axis=1)
        n_other = np.sum(other <= nearest[:, None] + 1e-12, axis=1)
        return n_same / (n_same + n_other)

    gen = scores(d_gg, d_gr)
    real = scores(d_rr, d_gr.T)
    total = (gen.sum() + real.sum()) / (gen.size + real.size)
    return float(total), float(gen.mean()), float(real.mean())


def _occupancy_stats(flat: np.ndarray, prefix: str) -> dict[str, float]:
    occupancy = flat.mean(axis=1)
    return {
        f"{prefix}_mean_occupancy": float(occupancy.mean()),
        f"{prefix}_empty_fraction": float(np.mean(occupancy < EMPTY_FRACTION)),
        f"{prefix}_solid_fraction": float(np.mean(occupancy > SOLID_FRACTION)),
    }


def generation_report(
    generated: np.ndarray,
    real: np.ndarray,
    seed: int = 0,
    max_samples: int | None = None,
    *,
    block_size: int = 128,
) -> dict[str, Any]:
    """COV, MMD, 1-NNA and occupancy statistics of generated vs real grids.

    Args:
      generated: [N, R, R, R] occupancy probabilities or bool (occupied > 0.5).
      real: [M, R, R, R] held-out real grids, same R.
      seed: picks the subsets when `max_samples` is smaller than a set.
      max_samples: use at most this many grids of each set (None = all);
        the distance matrices cost (N + M)^2 numbers.
      block_size: rows converted to float32 at once.

    Returns:
      a dict with 'cov', 'mmd', 'one_nna', 'one_nna_generated',
      'one_nna_real' (floats in [0, 1]), 'num_generated', 'num_real',
      'resolution', and per set ('generated_', 'real_') 'mean_occupancy',
      'empty_fraction' (< 0.1% occupied), 'solid_fraction' (> 50% occupied),
      and `shape_stats.summarize`'s 'components', 'many_pieces_fraction',
      'largest_share', 'undecided' and 'occupancy' (of all the grids given).

    Raises:
      DataError: malformed grids or mismatched resolutions.
      ConfigError: bad max_samples or block_size.
    """
    if max_samples is not None and max_samples < 1:
        raise ConfigError(f"max_samples must be positive or None, got {max_samples}")
    if block_size < 1:
        raise ConfigError(f"block_size must be positive, got {block_size}")
    gen_shape, real_shape = np.shape(generated), np.shape(real)
    gen = _as_grids(generated, "generated")
    ref = _as_grids(real, "real")
    if gen.shape[1] != ref.shape[1]:
        raise DataError(
            None,
            f"generated grids are {gen_shape[1:]} but real grids are {real_shape[1:]}",
        )
    rng = np.random.default_rng(seed)
    if max_samples is not None:
        if gen.shape[0] > max_samples:
            gen = gen[np.sort(rng.choice(gen.shape[0], max_samples, replace=False))]
        if ref.shape[0] > max_samples:
            ref = ref[np.sort(rng.choice(ref.shape[0], max_samples, replace=False))]

    d_gr = iou_distance_matrix(gen, ref, block_size)
    d_gg = iou_distance_matrix(gen, gen, block_size)
    d_rr = iou_distance_matrix(ref, ref, block_size)

    # COV: which real grid is closest to each generated one (argmin takes the
    # lowest index on a tie).
    matched = np.unique(np.argmin(d_gr, axis=1))
    one_nna, one_nna_gen, one_nna_real = _one_nna(d_gg, d_rr, d_gr)
    report: dict[str, Any] = {
        "cov": float(matched.size / ref.shape[0]),
        "mmd": float(d_gr.min(axis=0).mean()),
        "one_nna": one_nna,
        "one_nna_generated": one_nna_gen,
        "one_nna_real": one_nna_real,
        "num_generated": int(gen.shape[0]),
        "num_real": int(ref.shape[0]),
        "resolution": int(gen_shape[1]),
    }
    report.update(_occupancy_stats(gen, "generated"))
    report.update(_occupancy_stats(ref, "real"))
    # Speckle and indecision (shape_stats) of the raw values, before any subset.
    for who, grids in (("generated", generated), ("real", real)):
        for key, value in shape_stats.summarize(grids).items():
            report[f"{who}_{key}"] = value
    return report
