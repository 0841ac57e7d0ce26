"""Retrieval under three feature scalings, and how concentrated the variance is.

Raw Euclidean retrieval (the paper's) is dominated by the highest-variance
dimensions; if standardising (per-feature mean and std of the TRAIN split, as
the classifier uses) lifts a model's mAP, its features hold the information
but the raw distance does not see it.

This module must not import TensorFlow.
"""

from __future__ import annotations

import numpy as np


def retrieval_scalings(train: dict, test: dict) -> dict[str, float]:
    """mAP (%) of the test split raw / standardised / L2-normalised, and variance share.

    Args:
      train, test: feature files as `evaluation.features.load_features` reads
        them ('features' [N, D], 'labels' [N]).
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
    return {
        "raw": 100 * raw,
        "standardized": 100 * standardized.mean_average_precision,
        "l2": 100 * l2.mean_average_precision,
        "top1pct_variance": float(var[:top].sum() / max(var.sum(), 1e-30)),
        "dims": int(x.shape[1]),
    }
