"""McNemar's test on the test predictions of two rows, and the predictions files.

Two classifiers (two rows of Table 1, e.g. a trained DM and the random-weight
floor `random_init`) are evaluated on the same test items. Only the items on
which they disagree about correctness say anything about which is better:

  n01: items row `a` gets right and row `b` gets wrong,
  n10: items row `a` gets wrong and row `b` gets right.

Under the null hypothesis (equal accuracy) each discordant item is a fair coin,
so n01 ~ Binomial(n01 + n10, 1/2). `mcnemar` reports the EXACT two-sided
binomial test of that (`scipy.stats.binomtest`), p = 1 when there are no
discordant items, and the difference in accuracy, which is exactly
100 · (n01 − n10) / n points.

`mcnemar_pooled` sums the discordant counts over seeds. This pools TEST ITEMS
across seeds: with the same test split in every seed, one shape is counted
once per seed, and those counts are not independent draws, so the pooled
p-value is optimistic. The primary statistic over seeds stays the paired
t-interval of `seeds.paired`; McNemar is the per-seed check beside it.

Table 1 stores each row's test predictions (`save_predictions`) as
`<results_dir>/predictions/<label>.npz` so that this test can be run later
without refitting any SVM.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from enhancer_gan.errors import ConfigError, DataError

PREDICTIONS_DIR = "predictions"


def predictions_file(label: str) -> str:
    """Where a row's predictions go, relative to the results folder."""
    return f"{PREDICTIONS_DIR}/{label}.npz"


@dataclasses.dataclass(frozen=True)
class McNemarResult:
    """Row `a` against row `b` on the same test items.

    Attributes:
      n: test items (summed over seeds when pooled).
      n01: items `a` classifies correctly and `b` does not.
      n10: items `a` misclassifies and `b` does not.
      p_value: exact two-sided binomial test of n01 out of n01 + n10 at 1/2
        (1.0 when n01 + n10 == 0).
      accuracy_a_pct, accuracy_b_pct: the two accuracies (%).
      groups: how many (seed) comparisons were summed; 1 for `mcnemar`.
    """

    n: int
    n01: int
    n10: int
    p_value: float
    accuracy_a_pct: float
    accuracy_b_pct: float
    groups: int = 1

    @property
    def discordant(self) -> int:
        return self.n01 + self.n10

    @property
    def statistic(self) -> float:
        """The binomial test's statistic: n01 / (n01 + n10); NaN without discordant items."""
        return self.n01 / self.discordant if self.discordant else float("nan")

    @property
    def difference_pct(self) -> float:
        """Accuracy of `a` minus accuracy of `b`, in points: 100 (n01 - n10) / n."""
        return 100.0 * (self.n01 - self.n10) / self.n

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "n01": self.n01,
            "n10": self.n10,
            "discordant": self.discordant,
            "statistic": None if math.isnan(self.statistic) else self.statistic,
            "p_value": self.p_value,
            "accuracy_a_pct": self.accuracy_a_pct,
            "accuracy_b_pct": self.accuracy_b_pct,
            "difference_pct": self.difference_pct,
            "groups": self.groups,
            "test": "exact two-sided binomial on the discordant items",
        }


def exact_p_value(n01: int, n10: int) -> float:
    """Two-sided exact binomial p of n01 successes in n01 + n10 trials at 1/2."""
    if n01 + n10 == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(int(n01), int(n01 + n10), 0.5).pvalue)


def _vector(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise DataError(None, f"{name} must be a 1-D array of labels, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":  # np.asarray([]) is float64
        raise DataError(None, f"{name} must hold integer class labels, got dtype {arr.dtype}")
    return arr


def _counts(labels, pred_a, pred_b) -> tuple[int, int, int, int, int]:
    """(n, n01, n10, correct a, correct b) after checking the three vectors."""
    labels = _vector(labels, "labels")
    pred_a, pred_b = _vector(pred_a, "pred_a"), _vector(pred_b, "pred_b")
    if not labels.size:
        raise DataError(None, "no test items: labels is empty")
    if not pred_a.size == pred_b.size == labels.size:
        raise DataError(
            None,
            f"labels, pred_a and pred_b must have the same length, got "
            f"{labels.size}, {pred_a.size} and {pred_b.size}",
        )
    right_a, right_b = pred_a == labels, pred_b == labels
    return (
        int(labels.size),
        int(np.sum(right_a & ~right_b)),
        int(np.sum(~right_a & right_b)),
        int(right_a.sum()),
        int(right_b.sum()),
    )


def _result(n, n01, n10, right_a, right_b, groups) -> McNemarResult:
    return McNemarResult(
        n=n,
        n01=n01,
        n10=n10,
        p_value=exact_p_value(n01, n10),
        accuracy_a_pct=100.0 * right_a / n,
        accuracy_b_pct=100.0 * right_b / n,
        groups=groups,
    )


def mcnemar(labels, pred_a, pred_b) -> McNemarResult:
    """McNemar's exact test of predictions `pred_a` against `pred_b` on one test split.

    Args:
      labels: [M] int true labels.
      pred_a, pred_b: [M] int predicted labels of the two rows, same item order.

    Raises:
      DataError: a vector is not 1-D integer, the lengths differ, or M == 0.
    """
    return _result(*_counts(labels, pred_a, pred_b), groups=1)


def mcnemar_pooled(items: Sequence[tuple]) -> McNemarResult:
    """McNemar's exact test with the discordant counts summed over seeds.

    Pools the TEST ITEMS of all seeds as if they were independent; with one
    test split shared by the seeds each shape counts once per seed, so the
    p-value is optimistic. The paired t-interval over seeds is the primary
    statistic; this is a summary beside it.

    Args:
      items: one (labels, pred_a, pred_b) per seed, as `mcnemar`.

    Raises:
      ConfigError: no seeds given.
      DataError: a seed's vectors are bad (the message names the seed's index).
    """
    if not items:
        raise ConfigError("mcnemar_pooled needs at least one (labels, pred_a, pred_b)")
    totals = np.zeros(5, dtype=np.int64)
    for i, item in enumerate(items):
        if len(item) != 3:
            raise ConfigError(f"seed {i}: expected (labels, pred_a, pred_b), got {len(item)} items")
        try:
            totals += np.array(_counts(*item), dtype=np.int64)
        except DataError as e:
            raise DataError(None, f"seed {i}: {e.problem}") from None
    return _result(*(int(t) for t in totals), groups=len(items))


# ----------------------------------------------------------------------------
# Predictions files.


def save_predictions(path: str, labels, predictions, model_ids: Sequence[str] | None = None):
    """Writes one row's test labels and predictions (int64) as .npz, atomically.

    `model_ids` (one str per test item) is stored when given, so a later
    comparison can check that two rows saw the same items in the same order.
    """
    from enhancer_gan.io_utils import atomic_path

    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.ndim != 1 or labels.shape != predictions.shape:
        raise DataError(
            path, f"labels {labels.shape} and predictions {predictions.shape} must be equal 1-D"
        )
    arrays = {"labels": labels, "predictions": predictions}
    if model_ids is not None:
        if len(model_ids) != labels.size:
            raise DataError(path, f"{len(model_ids)} model ids for {labels.size} test items")
        arrays["model_ids"] = np.array(list(model_ids), dtype=str)
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def load_predictions(path: str) -> dict[str, Any]:
    """Reads `save_predictions`'s file: {'labels', 'predictions', 'model_ids' (tuple or None)}.

    Raises:
      DataError: unreadable, or the arrays are not what `save_predictions` writes.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise DataError(path, "no predictions file") from None
    except (OSError, ValueError, EOFError) as e:
        raise DataError(path, f"cannot read predictions: {e}") from None
    labels, predictions = arrays.get("labels"), arrays.get("predictions")
    if labels is None or predictions is None:
        raise DataError(path, f"needs 'labels' and 'predictions', has {sorted(arrays)}")
    if labels.ndim != 1 or labels.shape != predictions.shape or labels.dtype.kind not in "iu":
        raise DataError(
            path,
            f"labels {labels.dtype} {labels.shape} and predictions {predictions.dtype} "
            f"{predictions.shape} must be integer 1-D arrays of one length",
        )
    model_ids = arrays.get("model_ids")
    if model_ids is not None and model_ids.shape != labels.shape:
        raise DataError(path, f"{model_ids.shape} model ids for {labels.size} test items")
    return {
        "labels": labels.astype(np.int64),
        "predictions": predictions.astype(np.int64),
        "model_ids": None if model_ids is None else tuple(str(m) for m in model_ids),
    }


def paired_predictions(path_a: str, path_b: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, pred_a, pred_b) of two predictions files holding the same test items.

    Raises:
      DataError: a file is bad, or the two hold different test items (labels
        or, where both files have them, model ids differ).
    """
    a, b = load_predictions(path_a), load_predictions(path_b)
    same_ids = a["model_ids"] is None or b["model_ids"] is None or a["model_ids"] == b["model_ids"]
    same_labels = a["labels"].shape == b["labels"].shape and bool(
        np.array_equal(a["labels"], b["labels"])
    )
    if not (same_ids and same_labels):
        raise DataError(
            path_b, f"not the test items of {os.fspath(path_a)} (labels or model ids differ)"
        )
    return a["labels"], a["predictions"], b["predictions"]


def compare_files(path_a: str, path_b: str) -> McNemarResult:
    """McNemar of two predictions files of one results folder (`paired_predictions`)."""
    return mcnemar(*paired_predictions(path_a, path_b))
