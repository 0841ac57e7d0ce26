"""Figures of the evaluation: confusion matrices, PR curves, per-class accuracy.

Figures are drawn on matplotlib `Figure` objects with the Agg canvas (no
pyplot, no global state, no display needed) and written atomically: the PNG
goes to a temporary name beside `path` and is renamed over it, so a reader
never sees a half-written file and a failed plot leaves an old one intact.

This module must not import TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from enhancer_gan.errors import DataError
from enhancer_gan.io_utils import atomic_path

_DPI = 100


def _save(fig: Figure, path: str | os.PathLike) -> None:
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI, bbox_inches="tight")


def plot_confusion_matrix(
    cm: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike,
    title: str = "Confusion matrix",
    normalize: bool = True,
) -> None:
    """Draws a confusion matrix as a heat map.

    Args:
      cm: [K, K] counts, rows = true class, columns = predicted class.
      class_names: K names.
      path: output .png.
      title: figure title.
      normalize: colour by the fraction of each true class (row) instead of
        raw counts, so rare classes are as readable as common ones; the
        cells still print the counts when K <= 20.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise DataError(None, f"confusion matrix must be [K, K], got shape {cm.shape}")
    k = cm.shape[0]
    if len(class_names) != k:
        raise DataError(None, f"{len(class_names)} class names for a {k}x{k} confusion matrix")
    values = cm.astype(np.float64)
    if normalize:
        rows = values.sum(axis=1, keepdims=True)
        values = np.divide(values, rows, out=np.zeros_like(values), where=rows > 0)
    side = max(4.0, 0.32 * k + 2.5)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(
        image,
        ax=ax,
        fraction=0.046,
        pad=0.04,
        label="fraction of true class" if normalize else "count",
    )
    ax.set_xticks(range(k), labels=class_names, rotation=90, fontsize=8)
    ax.set_yticks(range(k), labels=class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if k <= 20:
        peak = values.max() if values.size else 1.0
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    dark = values[i, j] > 0.5 * peak
                    ax.text(
                        j,
                        i,
                        str(int(cm[i, j])),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if dark else "black",
                    )
    _save(fig, path)


def plot_pr_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    title: str = "Precision-recall",
) -> None:
    """Precision-recall curves, one line per method (the paper's Figure 4).

    Args:
      curves: method name -> (recall [L], precision [L]), e.g.
        `RetrievalReport.pr_curve()`.
      path: output .png.
      title: figure title (e.g. 'ModelNet10').
    """
    if not curves:
        raise DataError(None, "plot_pr_curves needs at least one curve")
    fig = Figure(figsize=(5.0, 4.5))
    ax = fig.add_subplot()
    for name, (recall, precision) in curves.items():
        recall = np.asarray(recall, np.float64)
        precision = np.asarray(precision, np.float64)
        if recall.ndim != 1 or recall.shape != precision.shape:
            raise DataError(
                None,
                f"curve {name!r}: recall {recall.shape} and precision {precision.shape} "
                "must be 1-D of one length",
            )
        ax.plot(recall, precision, marker="o", markersize=3, linewidth=1.5, label=name)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    _save(fig, path)


def plot_per_class_accuracy(
    per_class_accuracy: Mapping[str, Sequence[float]] | Sequence[float],
    class_names: Sequence[str],
    path: str | os.PathLike,
    title: str = "Per-class accuracy",
) -> None:
    """Bar chart of accuracy per class; several methods side by side.

    Args:
      per_class_accuracy: [K] accuracies in [0, 1] (NaN = no test examples),
        or method name -> [K] accuracies.
      class_names: K names.
      path: output .png.
      title: figure title.
    """
    if not isinstance(per_class_accuracy, Mapping):
        per_class_accuracy = {"": per_class_accuracy}
    if not per_class_accuracy:
        raise DataError(None, "plot_per_class_accuracy needs at least one series")
    k = len(class_names)
    series = {}
    for name, values in per_class_accuracy.items():
        values = np.asarray(values, np.float64)
        if values.shape != (k,):
            raise DataError(
                None, f"series {name!r} has shape {values.shape}, expected ({k},) for the classes"
            )
        series[name] = values
    fig = Figure(figsize=(max(5.0, 0.3 * k * len(series) + 2.0), 4.0))
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    x = np.arange(k)
    for i, (name, values) in enumerate(series.items()):
        ax.bar(
            x + (i - (len(series) - 1) / 2) * width,
            np.nan_to_num(values),
            width,
            label=name or None,
        )
    if k > 10:
        ax.set_xticks(x, labels=class_names, rotation=90, fontsize=8)
    else:
        ax.set_xticks(
            x, labels=class_names, rotation=45, ha="right", rotation_mode="anchor", fontsize=8
        )
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    if len(series) > 1 or next(iter(series)):
        ax.legend(fontsize=8)
    _save(fig, path)
