"""Tests of retrieval mAP and precision-recall curves."""

import json
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import average_precision_score

from enhancer_gan.errors import ConfigError, DataError
from enhancer_gan.evaluation.retrieval import retrieval_map, squared_distances


def _reference(features, labels, levels):
    """Plain per-query loop: AP, interpolated precision and raw curves.

    Tied distances form one cut-off, credited with the precision at the end
    of the tie group (the module's documented rule).
    """
    x = np.asarray(features, np.float64)
    n = len(x)
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    aps, interp, prec_curves, rec_curves = [], [], [], []
    for q in range(n):
        others = [i for i in range(n) if i != q]
        dq = {i: d[q, i] for i in others}
        n_rel = sum(labels[i] == labels[q] for i in others)
        if n_rel == 0:
            aps.append(np.nan)
            continue
        precision, recall, rel = [], [], []
        ranked = sorted(others, key=lambda i: dq[i])
        for i in ranked:
            # the cut-off is the end of i's tie group
            end = max(j for j, other in enumerate(ranked) if dq[other] == dq[i])
            hits = sum(labels[o] == labels[q] for o in ranked[: end + 1])
            precision.append(hits / (end + 1))
            recall.append(hits / n_rel)
            rel.append(labels[i] == labels[q])
        aps.append(sum(p for p, r in zip(precision, rel) if r) / n_rel)
        interp.append(
            [max(p for p, r in zip(precision, recall) if r >= lv - 1e-12) for lv in levels]
        )
        prec_curves.append(precision)
        rec_curves.append(recall)
    if not interp:  # every query skipped
        return np.array(aps), None, None, None
    return (
        np.array(aps),
        np.mean(interp, axis=0),
        np.mean(prec_curves, axis=0),
        np.mean(rec_curves, axis=0),
    )


def test_hand_worked_case_without_ties():
    # 1-D features; squared distance ranks as absolute difference does.
    x = np.array([[0.0], [1.0], [2.7], [4.3], [9.0]])
    y = np.array([0, 1, 0, 1, 0])
    report = retrieval_map(x, y, recall_levels=[0.0, 0.5, 1.0])
    # q0 ranks 1 2 3 4: hits at ranks 2, 4 -> (1/2 + 2/4) / 2
    # q1 ranks 0 2 3 4: hit at rank 3 -> 1/3
    # q2 ranks 3 1 0 4: hits at ranks 3, 4 -> (1/3 + 2/4) / 2
    # q3 ranks 2 1 0 4: hit at rank 2 -> 1/2
    # q4 ranks 3 2 1 0: hits at ranks 2, 4 -> (1/2 + 2/4) / 2
    expected = [F(1, 2), F(1, 3), F(5, 12), F(1, 2), F(1, 2)]
    np.testing.assert_allclose(report.average_precision, [float(v) for v in expected])
    assert report.mean_average_precision == pytest.approx(float(F(9, 20)))
    assert report.num_queries == 5 and report.num_skipped == 0
    # Raw curves: nobody's first item is relevant; after two items q0, q3, q4
    # have half, all, half of their relevant items.
    assert report.mean_precision_at_rank[0] == 0.0
    assert report.mean_precision_at_rank[1] == pytest.approx(float(F(3, 10)))
    assert report.mean_recall_at_rank[1] == pytest.approx(float(F(2, 5)))
    assert report.mean_recall_at_rank[-1] == pytest.approx(1.0)
    # Interpolated: q1 is 1/3 at every level, the others 1/2.
    np.testing.assert_allclose(report.interpolated_precision, [float(F(7, 15))] * 3)
    np.testing.assert_allclose(report.per_class_map, [float(F(17, 36)), float(F(5, 12))])


def test_hand_worked_case_with_a_tie():
    # C (3) is at squared distance 9 from both A (0, other class) and D (6,
    # same class): the tie is one cut-off with precision 1/3, whatever the
    # items' order.
    x = np.array([[0.0], [1.0], [3.0], [6.0]])
    y = np.array([0, 0, 1, 1])
    report = retrieval_map(x, y)
    np.testing.assert_allclose(report.average_precision, [1, 1, float(F(1, 3)), 1])
    assert report.mean_average_precision == pytest.approx(float(F(5, 6)))
    for perm in ([3, 2, 1, 0], [2, 0, 3, 1]):
        permuted = retrieval_map(x[perm], y[perm])
        np.testing.assert_allclose(permuted.average_precision, report.average_precision[perm])


def test_interpolation_takes_the_best_precision_at_higher_recall():
    # Query 0's class-mates are at ranks 1 and 4 (of 4): precision 1, 1/2,
    # 1/3, 1/2 at recall 1/2, 1/2, 1/2, 1.
    x = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    y = np.array([0, 0, 1, 2, 0])
    levels = [0.0, 0.5, 0.75, 1.0]
    report = retrieval_map(x, y, recall_levels=levels)
    ap, interp, prec, rec = _reference(x, y, levels)
    assert ap[0] == pytest.approx(float((F(1) + F(2, 4)) / 2))
    np.testing.assert_allclose(report.average_precision, ap)
    np.testing.assert_allclose(report.interpolated_precision, interp)
    # queries 2 and 3 are alone in their class
    assert report.num_skipped == 2 and np.isnan(report.average_precision[[2, 3]]).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn_average_precision_on_random_data(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 6))
    y = rng.integers(0, 4, 40)
    report = retrieval_map(x, y, block_size=7, tie_tolerance=0.0)
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    for q in range(len(x)):
        others = np.arange(len(x)) != q
        if not np.any(y[others] == y[q]):
            assert np.isnan(report.average_precision[q])
            continue
        expected = average_precision_score(y[others] == y[q], -d[q, others])
        assert report.average_precision[q] == pytest.approx(expected, abs=1e-12)


def test_agrees_with_reference_loop_including_ties():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(30, 2)).astype(np.float32)  # many exact ties
    y = rng.integers(0, 3, 30)
    levels = np.linspace(0, 1, 11)
    report = retrieval_map(x, y, block_size=4, recall_levels=levels)
    ap, interp, prec, rec = _reference(x, y, levels)
    np.testing.assert_allclose(report.average_precision, ap, atol=1e-12)
    np.testing.assert_allclose(report.interpolated_precision, interp, atol=1e-12)
    np.testing.assert_allclose(report.mean_precision_at_rank, prec, atol=1e-12)
    np.testing.assert_allclose(report.mean_recall_at_rank, rec, atol=1e-12)


@given(
    data=st.data(),
    n=st.integers(2, 9),
    d=st.integers(1, 3),
)
def test_property_matches_reference_and_ignores_item_order(data, n, d):
    # Small integer features: exact ties are common.
    x = data.draw(hnp.arrays(np.float32, (n, d), elements=st.integers(-2, 2).map(float)))
    y = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, 2)))
    perm = np.asarray(data.draw(st.permutations(range(n))))
    levels = np.array([0.0, 0.3, 0.5, 1.0])
    report = retrieval_map(x, y, block_size=3, recall_levels=levels)
    ap, interp, prec, rec = _reference(x, y, levels)
    np.testing.assert_allclose(report.average_precision, ap, atol=1e-12)
    if report.num_queries:
        np.testing.assert_allclose(report.interpolated_precision, interp, atol=1e-12)
        np.testing.assert_allclose(report.mean_precision_at_rank, prec, atol=1e-12)
    evaluated = ~np.isnan(report.average_precision)
    assert np.all(
        (report.average_precision[evaluated] > 0) & (report.average_precision[evaluated] <= 1)
    )
    permuted = retrieval_map(x[perm], y[perm], recall_levels=levels)
    np.testing.assert_allclose(
        permuted.average_precision, report.average_precision[perm], atol=1e-12
    )
    assert permuted.num_skipped == report.num_skipped == int(np.sum(~evaluated))


def test_ties_do_not_reward_a_class_sorted_order():
    # Identical features (like all-empty grids) in several classes, listed
    # class by class as ModelNet is: reversing the order must not change AP.
    rng = np.random.default_rng(4)
    x = np.repeat(rng.normal(size=(1, 300)), 12, axis=0).astype(np.float32)
    x = np.concatenate([x, rng.normal(size=(12, 300)).astype(np.float32) * 5 + 1])
    y = np.r_[np.repeat([0, 1, 2], 4), np.repeat([0, 1, 2], 4)]
    forward = retrieval_map(x, y)
    perm = rng.permutation(len(y))
    backward = retrieval_map(x[perm], y[perm])
    np.testing.assert_allclose(backward.average_precision, forward.average_precision[perm])
    # A duplicate query finds 11 duplicates at distance 0, 3 of its class:
    # every one is credited with precision 3/11.
    assert forward.average_precision[0] < 0.5


def test_perfect_clustering_gives_map_one():
    rng = np.random.default_rng(5)
    centers = rng.normal(size=(4, 50)) * 100
    y = np.repeat(np.arange(4), 6)
    x = centers[y] + rng.normal(size=(24, 50))
    report = retrieval_map(x, y)
    assert report.mean_average_precision == pytest.approx(1.0)
    np.testing.assert_allclose(report.interpolated_precision, 1.0)
    np.testing.assert_allclose(report.per_class_map, 1.0)
    # Recall reaches 1 after 5 items (the class-mates), then precision falls.
    assert report.mean_recall_at_rank[4] == pytest.approx(1.0)
    assert report.mean_precision_at_rank[-1] == pytest.approx(5 / 23)
    assert json.loads(json.dumps(report.to_dict()))["mean_average_precision"] == pytest.approx(1)


def test_block_size_does_not_change_results():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(25, 8)).astype(np.float32)
    y = rng.integers(0, 3, 25)
    a = retrieval_map(x, y, block_size=1)
    b = retrieval_map(x, y, block_size=25, block_bytes=4 * 50 * 3)  # tiny column blocks too
    np.testing.assert_allclose(a.average_precision, b.average_precision)
    np.testing.assert_allclose(a.interpolated_precision, b.interpolated_precision)


def test_squared_distances_survive_a_large_common_offset():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(10, 20))
    d = squared_distances((x + 1e4).astype(np.float32))
    expected = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.testing.assert_allclose(d, expected, rtol=1e-2, atol=1e-2)
    assert np.all(np.diag(d) == 0) and np.all(d >= 0)


def test_bad_inputs_raise_project_errors():
    x = np.zeros((5, 3))
    y = np.arange(5)
    with pytest.raises(DataError, match="NaN or infinity"):
        retrieval_map(np.where(np.eye(5, 3) > 0, np.nan, 0.0), y)
    with pytest.raises(DataError, match="labels must have shape"):
        retrieval_map(x, y[:4])
    with pytest.raises(DataError, match="at least 2 items"):
        retrieval_map(x[:1], y[:1])
    with pytest.raises(DataError, match=r"\[N, D\]"):
        retrieval_map(np.zeros(5), y)
    with pytest.raises(ConfigError):
        retrieval_map(x, y, block_size=0)
    with pytest.raises(ConfigError):
        retrieval_map(x, y, recall_levels=[0.0, 1.5])
