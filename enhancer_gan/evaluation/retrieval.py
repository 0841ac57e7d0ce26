"""Shape retrieval: mean average precision and precision-recall curves.

The paper's protocol (Table 2, Figure 4): every test model queries all the
OTHER models of the test set, ranked by ascending Euclidean distance between
their 57,344-d features; a retrieved model is relevant when it has the query's
class. The score is the mean over queries of the non-interpolated average
precision

    AP(q) = (1 / R_q) * sum over relevant items r of precision@rank(r),

R_q the number of other items of q's class. Queries with R_q = 0 (a class
with one member) have no AP; they are skipped and counted.

Ties: items at the same distance from a query are one cut-off, as in
`sklearn.metrics.average_precision_score`: every item of a tie group is
credited with the precision reached at the END of its group. The result
depends only on the distances, never on the order of the items, so a data set
sorted by class (ModelNet's is) gains nothing from ties; for example all
empty grids have identical features and sit at one distance from any query.
Ranked distances closer together than `tie_tolerance` times the mean squared
distance count as tied (a chain of such small gaps is one group), so that
identical features are tied even when BLAS rounds their dot products
differently.

Precision-recall curves: per query, recall and precision at every cut-off
(tie groups as above); the report gives
  - `interpolated_precision`: at fixed recall levels r = 0, 0.05, ..., 1 the
    mean over queries of max{precision at a cut-off with recall >= r}, the
    standard interpolation of PR plots such as the paper's Figure 4 (it makes
    every query's curve non-increasing, and it is defined at every r);
  - `mean_precision_at_rank` / `mean_recall_at_rank`: the raw, un-interpolated
    mean precision and mean recall after k = 1 .. N-1 retrieved items.

Speed: one symmetric Gram matrix of the centred features (BLAS, float32
column blocks added in float64), then squared distances
||a||^2 + ||b||^2 - 2ab, an argsort per block of queries, and AP for the
whole block from cumulative sums of relevance, with no Python loop per query.

This module must not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from enhancer_gan.errors import ConfigError, DataError
from enhancer_gan.evaluation.kernels import check_features, check_labels, linear_kernel

RECALL_LEVELS = np.round(np.linspace(0.0, 1.0, 21), 10)


@dataclasses.dataclass(frozen=True)
class RetrievalReport:
    """Retrieval results of one feature set.

    Attributes:
      mean_average_precision: mean AP over the evaluated queries (Table 2).
      average_precision: [N] float64 AP of every item as a query; NaN for a
        skipped query (no other item of its class).
      classes: [K] int64 sorted labels; per_class_map: [K] float64 mean AP of
        the queries of each class (NaN when all of them were skipped).
      recall_levels: [L] float64, 0 .. 1.
      interpolated_precision: [L] float64, mean over queries of the maximum
        precision at recall >= level.
      mean_precision_at_rank: [N-1] float64, mean precision after k retrieved.
      mean_recall_at_rank: [N-1] float64, mean recall after k retrieved.
      num_queries: queries evaluated; num_skipped: queries without any
        relevant item.
      seconds: wall time.
    """

    mean_average_precision: float
    average_precision: np.ndarray
    classes: np.ndarray
    per_class_map: np.ndarray
    recall_levels: np.ndarray
    interpolated_precision: np.ndarray
    mean_precision_at_rank: np.ndarray
    mean_recall_at_rank: np.ndarray
    num_queries: int
    num_skipped: int
    seconds: float

    def pr_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """The interpolated curve as (recall [L], precision [L]) for plotting."""
        return self.recall_levels, self.interpolated_precision

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no per-query or per-rank arrays)."""

        def clean(v: np.ndarray) -> list[float | None]:
            return [None if np.isnan(x) else float(x) for x in v]

        return {
            "mean_average_precision": self.mean_average_precision,
            "classes": self.classes.tolist(),
            "per_class_map": clean(self.per_class_map),
            "recall_levels": self.recall_levels.tolist(),
            "interpolated_precision": clean(self.interpolated_precision),
            "num_queries": self.num_queries,
            "num_skipped": self.num_skipped,
            "seconds": self.seconds,
        }


def squared_distances(features: np.ndarray, block_bytes: int = 256 * 2**20) -> np.ndarray:
    """All pairwise squared Euclidean distances of one feature set.

    Args:
      features: [N, D] float.
      block_bytes: memory of one float32 column block.

    Returns:
      [N, N] float64, symmetric, zero diagonal, non-negative.
    """
    features = check_features(features, "features")
    # Centring changes no distance but keeps ||a||^2 + ||b||^2 - 2ab from
    # cancelling catastrophically when all features share a large offset.
    center = np.mean(features, axis=0, dtype=np.float64)
    if not np.all(np.isfinite(center)):
        raise DataError(None, "features hold NaN or infinity")
    gram = linear_kernel(features, center=center, block_bytes=block_bytes, names=("features", ""))
    sq = np.diag(gram).copy()
    dist = sq[:, None] + sq[None, :] - 2.0 * gram
    np.maximum(dist, 0.0, out=dist)
    np.fill_diagonal(dist, 0.0)
    return dist


def _block_metrics(
    dist: np.ndarray,
    query_rows: np.ndarray,
    labels: np.ndarray,
    tie_step: float,
    recall_levels: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """AP, interpolated precision and raw curves for a block of queries.

    Args:
      dist: [B, N] squared distances of the queries to every item.
      query_rows: [B] int, the queries' own indices (excluded from ranking).
      labels: [N] int.
      tie_step: consecutive ranked distances at most this far apart are tied.
      recall_levels: [L].

    Returns:
      ap [B] (NaN where skipped), interpolated [B, L], precision [B, N-1],
      recall [B, N-1], valid [B] bool.
    """
    b, n = dist.shape
    dist = dist.copy()
    dist[np.arange(b), query_rows] = np.inf  # the query itself ranks last, then is dropped
    # Not stable: the order inside a tie group is arbitrary, and the
    # tie-group rule below makes every score independent of it. (numpy's
    # default sort is several times faster than its stable one here.)
    order = np.argsort(dist, axis=1)[:, : n - 1]
    sorted_dist = np.take_along_axis(dist, order, axis=1)
    relevant = labels[order] == labels[query_rows][:, None]
    num_relevant = relevant.sum(axis=1)
    valid = num_relevant > 0

    # Index of the last item of each position's tie group.
    positions = np.arange(n - 1)
    is_group_end = np.ones((b, n - 1), bool)
    # A new group starts where the next distance is more than tie_step away
    # (gaps, not rounding to a grid, so values near a grid line never split).
    is_group_end[:, :-1] = np.diff(sorted_dist, axis=1) > tie_step
    group_end = np.where(is_group_end, positions, n - 1)
    group_end = np.minimum.accumulate(group_end[:, ::-1], axis=1)[:, ::-1]

    hits = np.cumsum(relevant, axis=1, dtype=np.int64)
    hits_at_cutoff = np.take_along_axis(hits, group_end, axis=1)
    precision = hits_at_cutoff / (group_end + 1.0)
    safe_r = np.maximum(num_relevant, 1)[:, None]
    recall = hits_at_cutoff / safe_r

    ap = np.where(valid, (relevant * precision).sum(axis=1) / safe_r[:, 0], np.nan)

    # Max precision at any cut-off with recall >= level: a running max from
    # the end, read at the first cut-off that reaches the level. Levels are
    # compared as hit counts (integers), so 3/20 >= 0.15 holds exactly.
    best_after = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    interpolated = np.empty((b, recall_levels.size))
    for i, level in enumerate(recall_levels):
        needed = np.ceil(level * num_relevant - 1e-9)[:, None]
        first = np.argmax(hits_at_cutoff >= needed, axis=1)
        interpolated[:, i] = best_after[np.arange(b), first]
    return ap, interpolated, precision, recall, valid


def retrieval_map(
    features: np.ndarray,
    labels: np.ndarray,
    block_size: int = 512,
    *,
    recall_levels: np.ndarray = RECALL_LEVELS,
    tie_tolerance: float = 1e-6,
    block_bytes: int = 256 * 2**20,
) -> RetrievalReport:
    """Every item queries all the other items; relevant = same label.

    Args:
      features: [N, D] float features (N >= 2).
      labels: [N] int class labels.
      block_size: queries ranked at once (memory about 100 * block_size * N
        bytes, besides the N x N float64 distances).
      recall_levels: [L] in [0, 1], where the interpolated curve is read.
      tie_tolerance: consecutive ranked squared distances closer than this
        times the mean squared distance count as tied (0 = exact ties only).
      block_bytes: memory of one float32 column block for the Gram matrix.

    Returns:
      a `RetrievalReport`.

    Raises:
      DataError: malformed features/labels, NaN or infinity, fewer than 2 items.
      ConfigError: bad block size, recall levels or tolerance.
    """
    start = time.perf_counter()
    if block_size < 1:
        raise ConfigError(f"block_size must be positive, got {block_size}")
    if not 0 <= tie_tolerance < 1:
        raise ConfigError(f"tie_tolerance must be in [0, 1), got {tie_tolerance}")
    recall_levels = np.asarray(recall_levels, np.float64)
    if recall_levels.ndim != 1 or np.any((recall_levels < 0) | (recall_levels > 1)):
        raise ConfigError("recall_levels must be a 1-D array of values in [0, 1]")
    features = check_features(features, "features")
    labels = check_labels(labels, features.shape[0], "labels")
    n = features.shape[0]
    if n < 2:
        raise DataError(None, f"retrieval needs at least 2 items, got {n}")

    dist = squared_distances(features, block_bytes)
    mean_dist = dist.sum() / (n * (n - 1))
    tie_step = tie_tolerance * mean_dist

    ap = np.empty(n)
    interpolated_sum = np.zeros(recall_levels.size)
    precision_sum = np.zeros(n - 1)
    recall_sum = np.zeros(n - 1)
    for lo in range(0, n, block_size):
        rows = np.arange(lo, min(lo + block_size, n))
        block_ap, interp, precision, recall, valid = _block_metrics(
            dist[rows], rows, labels, tie_step, recall_levels
        )
        ap[rows] = block_ap
        interpolated_sum += interp[valid].sum(axis=0)
        precision_sum += precision[valid].sum(axis=0)
        recall_sum += recall[valid].sum(axis=0)

    evaluated = ~np.isnan(ap)
    num_queries = int(evaluated.sum())
    classes = np.unique(labels)
    per_class = np.array(
        [
            np.nan if not np.any(evaluated & (labels == c)) else np.nanmean(ap[labels == c])
            for c in classes
        ]
    )
    denom = max(num_queries, 1)
    nan_if_none = np.nan if num_queries == 0 else 1.0
    return RetrievalReport(
        mean_average_precision=float(np.nanmean(ap)) if num_queries else float("nan"),
        average_precision=ap,
        classes=classes,
        per_class_map=per_class,
        recall_levels=recall_levels,
        interpolated_precision=interpolated_sum / denom * nan_if_none,
        mean_precision_at_rank=precision_sum / denom * nan_if_none,
        mean_recall_at_rank=recall_sum / denom * nan_if_none,
        num_queries=num_queries,
        num_skipped=n - num_queries,
        seconds=time.perf_counter() - start,
    )
