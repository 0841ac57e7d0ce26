"""Linear-SVM shape classification on fixed features (the paper's Table 1).

The paper trains "a linear SVM" on 57,344-d discriminator features of the
ModelNet training split and reports accuracy on the test split. With
n (<= 9,843) much smaller than d, the fast way to train a linear SVM is in
kernel space: the Gram matrix K = Z Z^T of the standardised features Z and
`sklearn.svm.SVC(kernel="precomputed")` (libsvm). That is the same
optimisation problem as `SVC(kernel="linear")` on Z, only with the kernel
computed once by BLAS instead of per pair inside libsvm (liblinear's
`LinearSVC` is far too slow at this size: docs/DESIGN.md#measured).

Multi-class: SVC trains one binary SVM per pair of classes (one-vs-one,
k(k-1)/2 machines) and predicts by majority vote; ties go to the lowest class
index (libsvm's rule). The small-d `method="primal"` path uses liblinear's
`LinearSVC` (hinge loss, one-vs-rest) and exists to cross-check the kernel path
in tests; it is not meant for 57,344-d features.

Model selection: C is chosen by stratified k-fold cross-validation on the
TRAIN split only (sub-blocks of the same precomputed K); the test features are
touched only after C is fixed. The standardisation statistics are computed on
the whole train split before cross-validation; they use no labels, so this
does not leak label information into the choice of C.

Memory: the features are never copied whole; standardisation and kernels run
over column blocks (`kernels`), so the extra memory is one column block plus
the n x n kernel (9,843^2 float64 = 775 MB for ModelNet40).

This module must not import TensorFlow.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC, LinearSVC

from enhancer_gan.errors import ConfigError, DataError
from enhancer_gan.evaluation.kernels import (
    DEFAULT_BLOCK_BYTES,
    Standardizer,
    check_features,
    check_labels,
    fit_standardizer,
    linear_kernel,
)

DEFAULT_C_VALUES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


@dataclasses.dataclass
class LinearSVMResult:
    """A fitted linear SVM with the statistics needed to apply it.

    Attributes:
      model: the fitted `SVC(kernel="precomputed")` or `LinearSVC`.
      method: 'kernel' or 'primal'.
      c: the chosen regularisation constant C.
      cv_scores: C -> per-fold validation accuracies (empty when only one C
        was given, so nothing was cross-validated).
      standardizer: the train-split standardiser, or None.
      classes: [K] int64, the sorted train labels.
      timings: seconds spent per stage ('standardize', 'kernel', 'cv', 'fit').
      num_train: N, num_features: D of the train split.
      train_x: [N, D] the caller's train features, referenced (not copied) by
        the kernel path to compute test kernels against the support vectors;
        do not modify it while this result is in use.
    """

    model: SVC | LinearSVC
    method: str
    c: float
    cv_scores: dict[float, tuple[float, ...]]
    standardizer: Standardizer | None
    classes: np.ndarray
    timings: dict[str, float]
    num_train: int
    num_features: int
    train_x: np.ndarray | None = None
    block_bytes: int = DEFAULT_BLOCK_BYTES

    @property
    def fit_seconds(self) -> float:
        return float(sum(self.timings.values()))

    def test_kernel(self, test_x: np.ndarray) -> np.ndarray:
        """K(test, train) with only the support-vector columns filled.

        SVC's decision function reads only the columns of its support
        vectors, so the others stay 0 and are never computed.

        Args: test_x: [M, D]. Returns: [M, N_train] float64.
        """
        if self.method != "kernel" or self.train_x is None:
            raise ConfigError("test_kernel needs a result of method='kernel'")
        # support_ is grouped by class, not sorted; sorted, a full set of
        # support vectors is just range(N) and needs no row selection.
        support = np.sort(self.model.support_)
        k = np.zeros((np.shape(test_x)[0], self.train_x.shape[0]), np.float64)
        k[:, support] = linear_kernel(
            test_x,
            self.train_x,
            b_rows=None if support.size == self.train_x.shape[0] else support,
            standardizer=self.standardizer,
            block_bytes=self.block_bytes,
            names=("test_x", "train_x"),
        )
        return k

    def decision_function(self, test_x: np.ndarray) -> np.ndarray:
        """Args: test_x: [M, D]. Returns: sklearn's decision values for the rows."""
        test_x = self._check_test(test_x)
        if self.method == "kernel":
            return self.model.decision_function(self.test_kernel(test_x))
        return self.model.decision_function(self._primal_features(test_x))

    def predict(self, test_x: np.ndarray) -> np.ndarray:
        """Args: test_x: [M, D] features. Returns: [M] int64 predicted labels."""
        test_x = self._check_test(test_x)
        if self.method == "kernel":
            pred = self.model.predict(self.test_kernel(test_x))
        else:
            pred = self.model.predict(self._primal_features(test_x))
        return np.asarray(pred, np.int64)

    def _check_test(self, test_x: np.ndarray) -> np.ndarray:
        test_x = check_features(test_x, "test_x")
        if test_x.shape[1] != self.num_features:
            raise DataError(
                None,
                f"test_x has {test_x.shape[1]} features per row, train_x had {self.num_features}",
            )
        return test_x

    def _primal_features(self, x: np.ndarray) -> np.ndarray:
        z = self.standardizer.transform(x) if self.standardizer else np.asarray(x, np.float64)
        if not np.all(np.isfinite(z)):
            raise DataError(None, "test_x holds NaN or infinity")
        return z


def _check_c_values(c_values: Sequence[float], cv_folds: int) -> tuple[float, ...]:
    c_values = tuple(float(c) for c in c_values)
    if not c_values:
        raise ConfigError("c_values must name at least one C")
    if any(not np.isfinite(c) or c <= 0 for c in c_values):
        raise ConfigError(f"every C must be a positive finite number, got {c_values}")
    if len(set(c_values)) != len(c_values):
        raise ConfigError(f"c_values has duplicates: {c_values}")
    if cv_folds < 2:
        raise ConfigError(f"cv_folds must be at least 2, got {cv_folds}")
    return c_values


def _make_model(method: str, c: float, seed: int, max_iter: int) -> SVC | LinearSVC:
    if method == "kernel":
        return SVC(kernel="precomputed", C=c, cache_size=1000)
    return LinearSVC(C=c, loss="hinge", dual=True, max_iter=max_iter, random_state=seed)


def _select_c(
    method: str,
    c_values: tuple[float, ...],
    labels: np.ndarray,
    cv_folds: int,
    seed: int,
    max_iter: int,
    kernel: np.ndarray | None,
    features: np.ndarray | None,
    n_jobs: int,
) -> tuple[float, dict[float, tuple[float, ...]]]:
    """Stratified k-fold CV over the train split. Ties go to the smaller C."""
    counts = np.bincount(np.unique(labels, return_inverse=True)[1])
    if counts.min() < cv_folds:
        raise DataError(
            None,
            f"train_y: the rarest class has {counts.min()} example(s), fewer than "
            f"cv_folds={cv_folds}; lower cv_folds or pass a single C",
        )
    folds = list(
        StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed).split(
            np.zeros(len(labels)), labels
        )
    )
    fold_scores: dict[float, list[float]] = {c: [] for c in c_values}
    for train_idx, val_idx in folds:
        # The fold's sub-kernels are cut once and shared by every C.
        if method == "kernel":
            fit_x = kernel[np.ix_(train_idx, train_idx)]
            val_x = kernel[np.ix_(val_idx, train_idx)]
        else:
            fit_x, val_x = features[train_idx], features[val_idx]

        def score(c: float, fit_x=fit_x, val_x=val_x, train_idx=train_idx, val_idx=val_idx):
            model = _make_model(method, c, seed, max_iter)
            model.fit(fit_x, labels[train_idx])
            return float(np.mean(model.predict(val_x) == labels[val_idx]))

        if n_jobs > 1:
            # libsvm and liblinear train without the GIL, so threads use the
            # cores that BLAS leaves idle here.
            with concurrent.futures.ThreadPoolExecutor(max_workers=n_jobs) as pool:
                accuracies = list(pool.map(score, c_values))
        else:
            accuracies = [score(c) for c in c_values]
        for c, acc in zip(c_values, accuracies):
            fold_scores[c].append(acc)
    scores = {c: tuple(v) for c, v in fold_scores.items()}
    best = max(np.mean(scores[c]) for c in c_values)
    chosen = min(c for c in c_values if np.mean(scores[c]) == best)
    return chosen, scores


@contextlib.contextmanager
def _stage(timings: dict[str, float], name: str):
    """Records the seconds the block took as timings[name]."""
    start = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - start


def _check_fit_inputs(train_x, train_y, c_values, cv_folds: int, method: str, n_jobs: int):
    """`fit_linear_svm`'s arguments checked: (train_x, train_y, c_values, classes)."""
    if method not in ("kernel", "primal"):
        raise ConfigError(f"method must be 'kernel' or 'primal', got {method!r}")
    if n_jobs < 1:
        raise ConfigError(f"n_jobs must be positive, got {n_jobs}")
    c_values = _check_c_values(c_values, cv_folds)
    train_x = check_features(train_x, "train_x")
    train_y = check_labels(train_y, train_x.shape[0], "train_y")
    classes = np.unique(train_y)
    if classes.size < 2:
        raise DataError(None, f"train_y must hold at least two classes, got {classes.tolist()}")
    return train_x, train_y, c_values, classes


def _fit_standardizer(
    train_x: np.ndarray, standardize: bool, method: str, block_bytes: int
) -> Standardizer | None:
    """The train split's standardiser, or None (then 'primal' needs finite features)."""
    if standardize:
        return fit_standardizer(train_x, block_bytes=block_bytes)
    if method == "primal" and not np.all(np.isfinite(train_x)):
        raise DataError(None, "train_x holds NaN or infinity")
    return None


def _fit_inputs(train_x, standardizer, method: str, block_bytes: int):
    """What the SVMs train on: (K = Z Z^T, None) for 'kernel', (None, Z) for 'primal'."""
    if method == "kernel":
        kernel = linear_kernel(
            train_x, standardizer=standardizer, block_bytes=block_bytes, names=("train_x", "")
        )
        return kernel, None
    if standardizer:
        return None, standardizer.transform(train_x)
    return None, np.asarray(train_x, np.float64)


def fit_linear_svm(
    train_x: np.ndarray,
    train_y: np.ndarray,
    c_values: Sequence[float] = DEFAULT_C_VALUES,
    cv_folds: int = 3,
    seed: int = 0,
    standardize: bool = True,
    *,
    method: str = "kernel",
    max_iter: int = 20_000,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    n_jobs: int = 2,
) -> LinearSVMResult:
    """Fits a linear SVM on train features, choosing C by cross-validation.

    Args:
      train_x: [N, D] float features of the train split (float32 keeps the
        kernel's column blocks smallest; other dtypes are converted per block).
      train_y: [N] int class labels.
      c_values: candidate C values; with one value there is no CV.
      cv_folds: k of the stratified k-fold CV on the train split.
      seed: shuffles the CV folds (and seeds liblinear for 'primal').
      standardize: standardise each feature with train mean/std first.
      method: 'kernel' (precomputed Gram matrix, libsvm one-vs-one; for any D)
        or 'primal' (liblinear `LinearSVC`, hinge loss, one-vs-rest; small D
        only, used to cross-check the kernel path).
      max_iter: liblinear's iteration cap ('primal' only).
      block_bytes: memory of one float32 column block while building kernels.
      n_jobs: C values cross-validated at once, in threads (results do not
        depend on it).

    Returns:
      a `LinearSVMResult` refit on the whole train split with the chosen C.

    Raises:
      ConfigError: bad C values, folds or method.
      DataError: malformed features or labels, NaN/inf, fewer than two
        classes, or a class too rare for `cv_folds`.
    """
    train_x, train_y, c_values, classes = _check_fit_inputs(
        train_x, train_y, c_values, cv_folds, method, n_jobs
    )
    timings: dict[str, float] = {}
    with _stage(timings, "standardize"):
        standardizer = _fit_standardizer(train_x, standardize, method, block_bytes)
    with _stage(timings, "kernel"):
        kernel, features = _fit_inputs(train_x, standardizer, method, block_bytes)
    with _stage(timings, "cv"):
        if len(c_values) == 1:
            chosen, scores = c_values[0], {}
        else:
            chosen, scores = _select_c(
                method, c_values, train_y, cv_folds, seed, max_iter, kernel, features, n_jobs
            )
    with _stage(timings, "fit"):
        model = _make_model(method, chosen, seed, max_iter)
        model.fit(kernel if method == "kernel" else features, train_y)
    return LinearSVMResult(
        model=model,
        method=method,
        c=chosen,
        cv_scores=scores,
        standardizer=standardizer,
        classes=classes,
        timings=timings,
        num_train=int(train_x.shape[0]),
        num_features=int(train_x.shape[1]),
        train_x=train_x if method == "kernel" else None,
        block_bytes=block_bytes,
    )


@dataclasses.dataclass(frozen=True)
class ClassificationReport:
    """Test-split results of a linear SVM.

    Attributes:
      accuracy: fraction of test examples classified correctly (Table 1).
      mean_class_accuracy: mean of `per_class_accuracy` (ModelNet's other
        customary number).
      per_class_accuracy: [K] float64, recall of each class in `classes`
        (NaN for a class without test examples).
      classes: [K] int64, sorted train labels.
      confusion: [K, K] int64, rows = true class, columns = predicted class.
      predictions: [M] int64 predicted labels of the test rows.
      chosen_c: the C picked by cross-validation.
      cv_scores: C -> per-fold validation accuracies on the train split.
      method: 'kernel' or 'primal'.
      fit_seconds: standardisation + kernel + CV + final fit.
      predict_seconds: test kernel + prediction.
      timings: per-stage seconds of the fit.
      num_train, num_test, num_features: sizes.
      class_names: optional names, one per class.
    """

    accuracy: float
    mean_class_accuracy: float
    per_class_accuracy: np.ndarray
    classes: np.ndarray
    confusion: np.ndarray
    predictions: np.ndarray
    chosen_c: float
    cv_scores: dict[float, tuple[float, ...]]
    method: str
    fit_seconds: float
    predict_seconds: float
    timings: dict[str, float]
    num_train: int
    num_test: int
    num_features: int
    class_names: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no predictions)."""
        return {
            "accuracy": self.accuracy,
            "mean_class_accuracy": self.mean_class_accuracy,
            "per_class_accuracy": [
                None if np.isnan(v) else float(v) for v in self.per_class_accuracy
            ],
            "classes": self.classes.tolist(),
            "class_names": list(self.class_names),
            "confusion": self.confusion.tolist(),
            "chosen_c": self.chosen_c,
            "cv_scores": {repr(c): list(s) for c, s in self.cv_scores.items()},
            "cv_mean": {repr(c): float(np.mean(s)) for c, s in self.cv_scores.items()},
            "method": self.method,
            "fit_seconds": self.fit_seconds,
            "predict_seconds": self.predict_seconds,
            "timings": dict(self.timings),
            "num_train": self.num_train,
            "num_test": self.num_test,
            "num_features": self.num_features,
        }


def evaluate(
    result: LinearSVMResult,
    test_x: np.ndarray,
    test_y: np.ndarray,
    class_names: Sequence[str] = (),
) -> ClassificationReport:
    """Applies a fitted SVM to the test split.

    Args:
      result: from `fit_linear_svm`.
      test_x: [M, D] test features.
      test_y: [M] int test labels, all of them seen in training.
      class_names: optional, one name per class in `result.classes`.

    Returns:
      a `ClassificationReport`.
    """
    test_x = check_features(test_x, "test_x")
    test_y = check_labels(test_y, test_x.shape[0], "test_y")
    unseen = np.setdiff1d(np.unique(test_y), result.classes)
    if unseen.size:
        raise DataError(None, f"test_y holds classes never seen in training: {unseen.tolist()}")
    if class_names and len(class_names) != result.classes.size:
        raise ConfigError(f"{len(class_names)} class names given for {result.classes.size} classes")
    start = time.perf_counter()
    pred = result.predict(test_x)
    predict_seconds = time.perf_counter() - start

    confusion = confusion_matrix(test_y, pred, labels=result.classes).astype(np.int64)
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)
    return ClassificationReport(
        accuracy=float(np.mean(pred == test_y)),
        mean_class_accuracy=float(np.nanmean(per_class)),
        per_class_accuracy=per_class,
        classes=result.classes,
        confusion=confusion,
        predictions=pred,
        chosen_c=result.c,
        cv_scores=result.cv_scores,
        method=result.method,
        fit_seconds=result.fit_seconds,
        predict_seconds=predict_seconds,
        timings=dict(result.timings),
        num_train=result.num_train,
        num_test=int(test_x.shape[0]),
        num_features=result.num_features,
        class_names=tuple(class_names),
    )


def classify(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    c_values: Sequence[float] = DEFAULT_C_VALUES,
    cv_folds: int = 3,
    seed: int = 0,
    standardize: bool = True,
    *,
    method: str = "kernel",
    class_names: Sequence[str] = (),
    max_iter: int = 20_000,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    n_jobs: int = 2,
) -> ClassificationReport:
    """Fits on train (C by CV on train only), then reports on test.

    Args: as `fit_linear_svm` and `evaluate`; test_x: [M, D], test_y: [M].

    Returns:
      a `ClassificationReport`.
    """
    # Check the test split before the (long) fit, not after it.
    test_x = check_features(test_x, "test_x")
    train_x = check_features(train_x, "train_x")
    if test_x.shape[1] != train_x.shape[1]:
        raise DataError(
            None,
            f"test_x has {test_x.shape[1]} features per row, train_x has {train_x.shape[1]}",
        )
    check_labels(test_y, test_x.shape[0], "test_y")
    result = fit_linear_svm(
        train_x,
        train_y,
        c_values,
        cv_folds,
        seed,
        standardize,
        method=method,
        max_iter=max_iter,
        block_bytes=block_bytes,
        n_jobs=n_jobs,
    )
    return evaluate(result, test_x, test_y, class_names)
