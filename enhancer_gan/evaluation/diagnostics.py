"""Retrieval under four feature scalings, and how concentrated the variance is.

Raw Euclidean retrieval (the paper's) is dominated by the highest-variance
dimensions; if standardising (per-feature mean and std of the TRAIN split, as
the classifier uses) lifts a model's mAP, its features hold the information
but the raw distance does not see it. Block-L2 scales each of DM's pooled
layers to unit norm, so that no layer dominates, without fitting anything.

This module must not import TensorFlow.
"""

from __future__ import annotations

import numpy as np


def retrieval_scalings(train: dict, test: dict, block_sizes=None) -> dict[str, float]:
    """mAP (%) of the test split raw / standardised / L2 / block-L2, and variance share.

    Args:
      train, test: feature files as `evaluation.features.load_features` reads
        them ('features' [N, D], 'labels' [N]).
      block_sizes: the length of each of DM's pooled layers in the feature
        (`features.feature_block_sizes`; feature files record it in their
        source); 'block_l2' is given only with it.
    """
    from enhancer_gan.evaluation.kernels import fit_standardizer
    from enhancer_gan.evaluation.retrieval import retrieval_map

    x, y = test["features"], test["labels"]
    raw = retrieval_map(x, y).mean_average_precision
    standardized = retrieval_map(fit_standardizer(train["features"]).transform(x), y)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    l2 = retrieval_map(x / np.maximum(norms, 1e-12), y)
    var = np.sort(x.var(axis=0))[::-1]
    top = max(1, len(var) // 100)
    out = {
        "raw": 100 * raw,
        "standardized": 100 * standardized.mean_average_precision,
        "l2": 100 * l2.mean_average_precision,
        "top1pct_variance": float(var[:top].sum() / max(var.sum(), 1e-30)),
        "dims": int(x.shape[1]),
    }
    if block_sizes:
        blocks = retrieval_map(block_l2_normalize(x, block_sizes), y)
        out["block_l2"] = 100 * blocks.mean_average_precision
    return out


def block_l2_normalize(features: np.ndarray, block_sizes) -> np.ndarray:
    """Each layer's block of every feature row scaled to unit L2 norm (zero blocks stay 0).

    DM's three pooled layers differ in scale by orders of magnitude, so raw
    Euclidean distances are dominated by one of them; this transform gives
    each layer the same weight without fitting anything.
    """
    features = np.asarray(features, dtype=np.float32)
    if sum(block_sizes) != features.shape[1]:
        raise ValueError(f"blocks {tuple(block_sizes)} do not add up to {features.shape[1]}")
    out = np.empty_like(features)
    start = 0
    for size in block_sizes:
        block = features[:, start : start + size]
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        out[:, start : start + size] = block / np.maximum(norms, 1e-12)
        start += size
    return out
