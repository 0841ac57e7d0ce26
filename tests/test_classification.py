"""Tests of the linear-SVM classifier (kernel path, primal path, model selection)."""

import json

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix
from sklearn.svm import SVC

from enhancer_gan.errors import ConfigError, DataError
from enhancer_gan.evaluation import classification
from enhancer_gan.evaluation.classification import classify, evaluate, fit_linear_svm
from enhancer_gan.evaluation.kernels import fit_standardizer, linear_kernel


def _blobs(seed, n_train=120, n_test=60, k=3, d=20, spread=1.0, offset=3.0):
    """Gaussian classes around random means; labels 0..k-1."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d)) * spread
    y = rng.integers(0, k, n_train)
    y[:k] = np.arange(k)  # every class present
    yt = rng.integers(0, k, n_test)
    x = means[y] + rng.normal(size=(n_train, d)) + offset
    xt = means[yt] + rng.normal(size=(n_test, d)) + offset
    return x.astype(np.float32), y, xt.astype(np.float32), yt


def test_separable_toy_data_is_classified_perfectly():
    x, y, xt, yt = _blobs(0, spread=10.0)
    for method in ("kernel", "primal"):
        report = classify(x, y, xt, yt, c_values=(0.01, 1.0), method=method)
        assert report.accuracy == 1.0, method
        np.testing.assert_array_equal(report.per_class_accuracy, [1.0, 1.0, 1.0])
        np.testing.assert_array_equal(np.diag(report.confusion), np.bincount(yt, minlength=3))


def test_kernel_path_agrees_with_sklearn_linear_svc():
    x, y, xt, yt = _blobs(1, k=4, d=15, spread=0.6)
    c = 0.05
    result = fit_linear_svm(x, y, c_values=(c,))
    mean, std = x.astype(np.float64).mean(0), x.astype(np.float64).std(0)
    reference = SVC(kernel="linear", C=c).fit((x - mean) / std, y)
    expected = reference.predict((xt - mean) / std)
    np.testing.assert_array_equal(result.predict(xt), expected)
    np.testing.assert_allclose(
        result.decision_function(xt), reference.decision_function((xt - mean) / std), atol=1e-3
    )
    # Not a trivial problem: some test rows are misclassified.
    assert np.mean(expected == yt) < 1.0


@pytest.mark.parametrize("c", [1e-6, 1e-2])
def test_predictions_match_sklearn_whether_or_not_every_row_is_a_support_vector(c):
    # A tiny C makes every train row a support vector (the test kernel then
    # spans all train columns); a larger one leaves some out.
    x, _, xt, _ = _blobs(13, n_train=90, k=3, d=40, spread=0.4)
    y = np.tile(np.arange(3), 30)  # balanced, so tiny C bounds every alpha at C
    x = x + 0.5 * y[:, None]
    result = fit_linear_svm(x, y, c_values=(c,))
    mean, std = x.astype(np.float64).mean(0), x.astype(np.float64).std(0)
    reference = SVC(kernel="linear", C=c).fit((x - mean) / std, y)
    assert (result.model.support_.size == len(y)) == (c == 1e-6)
    for features in (x, xt):
        np.testing.assert_array_equal(
            result.predict(features), reference.predict((features - mean) / std)
        )


def test_kernel_and_primal_paths_agree_on_a_small_problem():
    # Two classes: one-vs-one and one-vs-rest are then the same single
    # machine, so libsvm on the Gram matrix and liblinear on the features
    # solve nearly the same problem (liblinear also penalises the bias).
    x, y, xt, yt = _blobs(0, n_train=300, n_test=200, k=2, d=10, spread=0.5)
    kernel = classify(x, y, xt, yt, c_values=(0.1,), method="kernel")
    primal = classify(x, y, xt, yt, c_values=(0.1,), method="primal")
    assert 0.6 < kernel.accuracy < 1.0  # not a trivial problem
    assert abs(kernel.accuracy - primal.accuracy) <= 0.01
    assert np.mean(kernel.predictions == primal.predictions) >= 0.98
    # Several classes: the multi-class schemes differ near the boundaries only.
    x, y, xt, yt = _blobs(2, n_train=300, n_test=200, k=3, d=10, spread=0.8)
    kernel = classify(x, y, xt, yt, c_values=(0.1,), method="kernel")
    primal = classify(x, y, xt, yt, c_values=(0.1,), method="primal")
    assert abs(kernel.accuracy - primal.accuracy) <= 0.05
    assert np.mean(kernel.predictions == primal.predictions) >= 0.85


def test_cross_validation_never_looks_at_the_test_set():
    x, y, xt, yt = _blobs(3, n_train=150, k=3, d=30, spread=0.5)
    c_values = (1e-4, 1e-3, 1e-2, 1e-1)
    first = classify(x, y, xt, yt, c_values=c_values)
    rng = np.random.default_rng(0)
    permuted = classify(x, y, xt, rng.permutation(yt), c_values=c_values)
    garbage = classify(x, y, rng.normal(size=xt.shape) * 100, yt, c_values=c_values)
    for other in (permuted, garbage):
        assert other.chosen_c == first.chosen_c
        assert other.cv_scores == first.cv_scores
    # The C values really differ in CV accuracy, so the choice means something.
    means = [np.mean(first.cv_scores[c]) for c in c_values]
    assert max(means) > min(means)
    assert first.chosen_c == c_values[int(np.argmax(means))]


def test_threaded_cross_validation_gives_the_same_scores():
    x, y, _, _ = _blobs(14, n_train=150, spread=0.5)
    for method in ("kernel", "primal"):
        one = fit_linear_svm(x, y, c_values=(1e-3, 1e-2, 1e-1), n_jobs=1, method=method)
        two = fit_linear_svm(x, y, c_values=(1e-3, 1e-2, 1e-1), n_jobs=2, method=method)
        assert one.cv_scores == two.cv_scores and one.c == two.c


def test_cv_ties_choose_the_smallest_c():
    x, y, _, _ = _blobs(4, spread=10.0)
    result = fit_linear_svm(x, y, c_values=(10.0, 1.0, 100.0))
    assert all(np.mean(s) == 1.0 for s in result.cv_scores.values())
    assert result.c == 1.0


def test_standardisation_uses_train_statistics_only():
    x, y, xt, yt = _blobs(6)
    x[:, 3] = 7.0  # constant on train
    result = fit_linear_svm(x, y, c_values=(0.1,))
    np.testing.assert_allclose(result.standardizer.mean, x.mean(axis=0), rtol=1e-6)
    std = x.astype(np.float64).std(axis=0)
    expected_inv = np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 0.0)
    np.testing.assert_allclose(result.standardizer.inv_scale, expected_inv, rtol=1e-5)
    assert result.standardizer.inv_scale[3] == 0.0
    assert result.standardizer.num_constant == 1
    # The constant column cannot matter on test, however wild its test values.
    wild = xt.copy()
    wild[:, 3] = np.random.default_rng(0).normal(size=len(xt)) * 1e6
    np.testing.assert_array_equal(result.predict(wild), result.predict(xt))
    # Shifting the whole test set moves predictions: it is not re-standardised
    # with its own statistics.
    shifted = result.predict(xt + 5 * np.abs(x.std(axis=0)))
    assert not np.array_equal(shifted, result.predict(xt))


def test_fit_standardizer_matches_numpy_with_tiny_blocks():
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(50, 37)) * rng.uniform(0.1, 10, 37) + 1000).astype(np.float32)
    st = fit_standardizer(x, block_bytes=50 * 8 * 3)  # 3 float64 columns per block
    np.testing.assert_allclose(st.mean, x.astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(st.inv_scale, 1 / x.astype(np.float64).std(0), rtol=1e-5)


@pytest.mark.parametrize("block_bytes", [4 * 30 * 1, 4 * 30 * 7, 2**20])
def test_linear_kernel_matches_direct_products(block_bytes):
    rng = np.random.default_rng(8)
    a = rng.normal(size=(10, 23)).astype(np.float32)
    b = rng.normal(size=(20, 23)).astype(np.float32)
    st = fit_standardizer(a)
    za, zb = st.transform(a).astype(np.float64), st.transform(b).astype(np.float64)
    np.testing.assert_allclose(
        linear_kernel(a, standardizer=st, block_bytes=block_bytes), za @ za.T, atol=1e-4
    )
    np.testing.assert_allclose(
        linear_kernel(a, b, standardizer=st, block_bytes=block_bytes), za @ zb.T, atol=1e-4
    )
    rows = np.array([3, 0, 17])
    np.testing.assert_allclose(
        linear_kernel(a, b, b_rows=rows, block_bytes=block_bytes), a @ b[rows].T, atol=1e-4
    )
    c = a.mean(axis=0)
    np.testing.assert_allclose(
        linear_kernel(a, center=c, block_bytes=block_bytes), (a - c) @ (a - c).T, atol=1e-4
    )


def test_report_fields_are_consistent():
    x, y, xt, yt = _blobs(9, k=4, spread=0.7)
    names = ("a", "b", "c", "d")
    report = classify(x, y, xt, yt, c_values=(0.01, 0.1), class_names=names)
    np.testing.assert_array_equal(report.confusion, confusion_matrix(yt, report.predictions))
    assert report.accuracy == pytest.approx(np.trace(report.confusion) / len(yt))
    support = report.confusion.sum(axis=1)
    np.testing.assert_allclose(report.per_class_accuracy, np.diag(report.confusion) / support)
    assert report.mean_class_accuracy == pytest.approx(report.per_class_accuracy.mean())
    assert report.num_train == len(y) and report.num_test == len(yt)
    assert report.num_features == x.shape[1]
    assert report.fit_seconds > 0 and report.predict_seconds > 0
    assert set(report.timings) == {"standardize", "kernel", "cv", "fit"}
    d = json.loads(json.dumps(report.to_dict()))
    assert d["class_names"] == list(names)
    assert d["chosen_c"] == report.chosen_c


def test_evaluate_applies_the_fitted_model_and_never_looks_at_test_labels():
    """evaluate() predicts with the model it is given: the predictions are an
    independent SVC's (same C, train standardisation), the accuracy is their
    hit rate, and relabelling the test rows changes the scores, not the
    predictions (no refit, no peeking)."""
    x, y, xt, yt = _blobs(10, k=3, d=12, spread=0.5)
    result = fit_linear_svm(x, y, c_values=(0.1,))
    mean, std = x.astype(np.float64).mean(0), x.astype(np.float64).std(0)
    expected = SVC(kernel="linear", C=0.1).fit((x - mean) / std, y).predict((xt - mean) / std)
    report = evaluate(result, xt, yt)
    np.testing.assert_array_equal(report.predictions, expected)
    assert report.accuracy == np.count_nonzero(expected == yt) / len(yt)
    assert 0.4 < report.accuracy < 1.0  # neither trivial nor chance
    shifted = (yt + 1) % 3
    relabelled = evaluate(result, xt, shifted)
    np.testing.assert_array_equal(relabelled.predictions, expected)
    assert relabelled.accuracy == np.count_nonzero(expected == shifted) / len(yt)
    assert relabelled.accuracy < report.accuracy


def test_float_labels_holding_integers_are_accepted():
    x, y, xt, yt = _blobs(11)
    a = classify(x, y, xt, yt, c_values=(0.1,))
    b = classify(x, y.astype(np.float64), xt, yt.astype(np.float32), c_values=(0.1,))
    np.testing.assert_array_equal(a.predictions, b.predictions)


def test_bad_inputs_raise_project_errors():
    x, y, xt, yt = _blobs(12)
    nan_x = x.copy()
    nan_x[4, 2] = np.nan
    with pytest.raises(DataError, match="NaN or infinity"):
        fit_linear_svm(nan_x, y)
    with pytest.raises(DataError, match="NaN or infinity"):
        fit_linear_svm(nan_x, y, standardize=False, c_values=(1.0,))
    inf_test = xt.copy()
    inf_test[0, 0] = np.inf
    with pytest.raises(DataError, match="test_x"):
        classify(x, y, inf_test, yt, c_values=(1.0,))
    with pytest.raises(DataError, match="train_y must have shape"):
        fit_linear_svm(x, y[:-1])
    with pytest.raises(DataError, match="integer class labels"):
        fit_linear_svm(x, y + 0.5)
    with pytest.raises(DataError, match="at least two classes"):
        fit_linear_svm(x, np.zeros_like(y))
    with pytest.raises(DataError, match=r"\[N, D\]"):
        fit_linear_svm(x[0], y[:1])
    with pytest.raises(DataError, match="features per row"):
        classify(x, y, xt[:, :-1], yt)
    with pytest.raises(DataError, match="never seen in training"):
        classify(x, y, xt, np.where(yt == 0, 9, yt), c_values=(1.0,))
    with pytest.raises(DataError, match="rarest class"):
        fit_linear_svm(x, np.r_[y[:-1], 7], cv_folds=3)
    with pytest.raises(ConfigError):
        fit_linear_svm(x, y, c_values=(0.0, 1.0))
    with pytest.raises(ConfigError):
        fit_linear_svm(x, y, c_values=())
    with pytest.raises(ConfigError):
        fit_linear_svm(x, y, cv_folds=1)
    with pytest.raises(ConfigError):
        fit_linear_svm(x, y, method="rbf")
    with pytest.raises(ConfigError):
        fit_linear_svm(x, y, n_jobs=0)
    with pytest.raises(ConfigError):
        classify(x, y, xt, yt, c_values=(1.0,), class_names=("only one",))


def test_default_c_grid_spans_regularised_to_hard_margin_on_high_dim_features():
    """On standardised high-dimensional features (kernel entries ~ D) the
    useful C values are small. The default grid must span the whole range:
    at its smallest C every multiplier sits at the bound C (fully
    regularised), at its largest the SVM fits the train split exactly with no
    multiplier at the bound (hard margin), so CV can choose between them."""
    rng = np.random.default_rng(3)
    n, d = 60, 4000
    y = np.arange(n) % 2
    x = rng.normal(size=(n, d)) + 0.15 * y[:, None]
    z = (x - x.mean(0)) / x.std(0)
    kernel = z @ z.T
    assert np.median(np.diag(kernel)) == pytest.approx(d, rel=0.1)

    def fit(c):
        return SVC(kernel="precomputed", C=c).fit(kernel, y)

    smallest, largest = min(classification.DEFAULT_C_VALUES), max(classification.DEFAULT_C_VALUES)
    low = fit(smallest)
    assert low.support_.size == n
    np.testing.assert_allclose(np.abs(low.dual_coef_), smallest)
    high = fit(largest)
    assert np.all(high.predict(kernel) == y)
    assert np.all(np.abs(high.dual_coef_) < largest * (1 - 1e-6))
