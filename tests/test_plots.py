"""Tests of the evaluation figures: what is drawn, valid PNGs, atomic replacement.

`drawn` records every Figure handed to `plots._save`, so a test reads back the
plotted data (line points, image values, bar heights, cell labels) and checks
it against the input, beside the PNG checks.
"""

import os

import numpy as np
import pytest
from PIL import Image

from enhancer_gan.errors import DataError
from enhancer_gan.evaluation import plots
from enhancer_gan.evaluation.plots import (
    plot_confusion_matrix,
    plot_per_class_accuracy,
    plot_pr_curves,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png(path, min_side=200, max_side=4000):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        w, h = image.size
        pixels = np.asarray(image.convert("L"))
    assert min_side <= w <= max_side and min_side <= h <= max_side, (w, h)
    assert pixels.std() > 5  # something was drawn, not a blank canvas
    return w, h


@pytest.fixture
def drawn(monkeypatch):
    """The figures saved during the test, in order."""
    figures = []
    save = plots._save

    def record(fig, path):
        figures.append(fig)
        save(fig, path)

    monkeypatch.setattr(plots, "_save", record)
    return figures


def _no_temp_files(folder):
    return [name for name in os.listdir(folder) if ".tmp" in name] == []


def test_confusion_matrix_png(tmp_path, drawn):
    cm = np.array([[5, 1, 0], [0, 3, 2], [1, 0, 7]])
    path = tmp_path / "cm.png"
    plot_confusion_matrix(cm, ["bathtub", "bed", "chair"], path, "ModelNet10")
    _check_png(path)
    ax = drawn[0].axes[0]
    # Colours are the fraction of each true class (rows), cells print counts.
    np.testing.assert_allclose(ax.images[0].get_array(), cm / cm.sum(axis=1, keepdims=True))
    cells = {(t.get_position(), t.get_text()) for t in ax.texts}
    expected = {((j, i), str(cm[i, j])) for i in range(3) for j in range(3) if cm[i, j]}
    assert cells == expected
    assert [t.get_text() for t in ax.get_xticklabels()] == ["bathtub", "bed", "chair"]
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    assert ax.get_title() == "ModelNet10"
    # 40 classes (ModelNet40): a bigger figure, no per-cell labels.
    big = np.random.default_rng(0).integers(1, 20, (40, 40))
    big_path = tmp_path / "cm40.png"
    plot_confusion_matrix(big, [f"class_{i}" for i in range(40)], big_path, "ModelNet40")
    assert len(drawn[1].axes[0].texts) == 0
    small_w, _ = _check_png(path)
    big_w, _ = _check_png(big_path, min_side=400)
    assert big_w > small_w
    assert _no_temp_files(tmp_path)


def test_pr_curves_png(tmp_path, drawn):
    recall = np.linspace(0, 1, 21)
    curves = {
        "ours (with enhancer)": (recall, 0.9 - 0.6 * recall),
        "without enhancer": (recall, 0.85 - 0.6 * recall),
        "LFD": (recall, 0.7 - 0.6 * recall),
    }
    path = tmp_path / "figure4" / "pr_modelnet10.png"  # folder is created
    plot_pr_curves(curves, path, "ModelNet10")
    _check_png(path)
    ax = drawn[0].axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == list(curves)
    for line, (r, p) in zip(lines, curves.values()):
        np.testing.assert_allclose(line.get_xdata(), r)  # x = recall
        np.testing.assert_allclose(line.get_ydata(), p)  # y = precision
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(curves)
    assert ax.get_xlim() == (0.0, 1.0) and ax.get_ylim() == (0.0, 1.0)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Recall", "Precision")


def test_pr_curve_pixels_follow_the_curve(tmp_path):
    """In the PNG itself: a steep falling line crosses the middle column high
    on the left and low on the right, in the first colour of the cycle."""
    path = tmp_path / "pr.png"
    plot_pr_curves({"a": (np.array([0.0, 1.0]), np.array([1.0, 0.0]))}, path, "t")
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB")).astype(int)
    blue = np.array([31, 119, 180])  # matplotlib's C0
    mask = np.abs(rgb - blue).sum(axis=-1) < 60
    rows, cols = np.nonzero(mask)
    assert rows.size > 50
    # The line runs from the top-left to the bottom-right of the axes.
    left, right = cols < np.percentile(cols, 20), cols > np.percentile(cols, 80)
    assert rows[left].mean() < rows[right].mean()
    slope = np.polyfit(cols, rows, 1)[0]
    assert 0.5 < slope < 2.0  # about 45 degrees in a near-square axes, rows growing down


def test_per_class_accuracy_png(tmp_path, drawn):
    names = ["bathtub", "bed", "chair", "desk"]
    path = tmp_path / "per_class.png"
    plot_per_class_accuracy([0.9, 0.8, np.nan, 1.0], names, path, "ModelNet10")
    _check_png(path)
    bars = drawn[0].axes[0].patches
    np.testing.assert_allclose([b.get_height() for b in bars], [0.9, 0.8, 0.0, 1.0])
    np.testing.assert_allclose([b.get_x() + b.get_width() / 2 for b in bars], range(4))
    series = {"with": [0.9, 0.8, 0.7, 1.0], "without": [0.8, 0.7, 0.7, 0.9]}
    plot_per_class_accuracy(series, names, path)
    _check_png(path)
    ax = drawn[1].axes[0]
    heights = [b.get_height() for b in ax.patches]
    np.testing.assert_allclose(heights, series["with"] + series["without"])
    centres = [b.get_x() + b.get_width() / 2 for b in ax.patches]
    # Side by side: 'with' left of each class's tick, 'without' right of it.
    np.testing.assert_allclose(centres[:4], np.arange(4) - 0.2)
    np.testing.assert_allclose(centres[4:], np.arange(4) + 0.2)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["with", "without"]


def test_existing_output_is_replaced_atomically(tmp_path):
    path = tmp_path / "pr.png"
    path.write_bytes(b"old contents")
    recall = np.linspace(0, 1, 5)
    plot_pr_curves({"a": (recall, 1 - recall)}, path, "t")
    _check_png(path)
    first = path.read_bytes()
    # A second, different plot replaces the first in place.
    plot_pr_curves({"a": (recall, 1 - recall), "b": (recall, recall)}, path, "t")
    assert path.read_bytes() != first
    _check_png(path)
    # A plot that fails leaves the previous file untouched and no temp file.
    before = path.read_bytes()
    with pytest.raises(DataError):
        plot_pr_curves({"a": (recall, np.ones(3))}, path, "t")
    assert path.read_bytes() == before
    assert _no_temp_files(tmp_path)


def test_failure_while_saving_leaves_old_file(tmp_path, monkeypatch):
    path = tmp_path / "cm.png"
    path.write_bytes(b"previous figure")
    from matplotlib.figure import Figure

    def broken_savefig(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot_confusion_matrix(np.eye(2, dtype=int), ["a", "b"], path, "t")
    assert path.read_bytes() == b"previous figure"
    assert _no_temp_files(tmp_path)


def test_bad_inputs_raise_data_errors(tmp_path):
    path = tmp_path / "x.png"
    with pytest.raises(DataError, match=r"\[K, K\]"):
        plot_confusion_matrix(np.zeros((2, 3)), ["a", "b"], path, "t")
    with pytest.raises(DataError, match="class names"):
        plot_confusion_matrix(np.zeros((2, 2)), ["a"], path, "t")
    with pytest.raises(DataError, match="at least one"):
        plot_pr_curves({}, path, "t")
    with pytest.raises(DataError, match="expected"):
        plot_per_class_accuracy([0.5, 0.5], ["a", "b", "c"], path, "t")
    assert not path.exists()
