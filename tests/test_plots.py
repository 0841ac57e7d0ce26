"""Tests of the evaluation figures: valid PNGs, atomic replacement."""

import os

import numpy as np
import pytest
from PIL import Image

from enhancer_gan.errors import DataError
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


def _no_temp_files(folder):
    return [name for name in os.listdir(folder) if ".tmp" in name] == []


def test_confusion_matrix_png(tmp_path):
    cm = np.array([[5, 1, 0], [0, 3, 2], [1, 0, 7]])
    path = tmp_path / "cm.png"
    plot_confusion_matrix(cm, ["bathtub", "bed", "chair"], path, "ModelNet10")
    _check_png(path)
    # 40 classes (ModelNet40): a bigger figure, still sensible.
    big = np.random.default_rng(0).integers(0, 20, (40, 40))
    big_path = tmp_path / "cm40.png"
    plot_confusion_matrix(big, [f"class_{i}" for i in range(40)], big_path, "ModelNet40")
    small_w, _ = _check_png(path)
    big_w, _ = _check_png(big_path, min_side=400)
    assert big_w > small_w
    assert _no_temp_files(tmp_path)


def test_pr_curves_png(tmp_path):
    recall = np.linspace(0, 1, 21)
    curves = {
        "ours (with enhancer)": (recall, 0.9 - 0.6 * recall),
        "without enhancer": (recall, 0.85 - 0.6 * recall),
        "LFD": (recall, 0.7 - 0.6 * recall),
    }
    path = tmp_path / "figure4" / "pr_modelnet10.png"  # folder is created
    plot_pr_curves(curves, path, "ModelNet10")
    _check_png(path)


def test_per_class_accuracy_png(tmp_path):
    names = ["bathtub", "bed", "chair", "desk"]
    path = tmp_path / "per_class.png"
    plot_per_class_accuracy([0.9, 0.8, np.nan, 1.0], names, path, "ModelNet10")
    _check_png(path)
    plot_per_class_accuracy(
        {"with": [0.9, 0.8, 0.7, 1.0], "without": [0.8, 0.7, 0.7, 0.9]}, names, path
    )
    _check_png(path)


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
