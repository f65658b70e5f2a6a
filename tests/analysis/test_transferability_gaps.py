"""Tests that kill the surviving mutants of transferability.py that were real gaps (benchmarks/mutation.py; each one and why: benchmarks/mutation-survivors.md)."""

import math

import numpy as np
import pytest
from test_transferability import _evidence_supremum, _marginal_by_svd, _tmi_direct

from imprint.analysis.agreement import weighted_kendall_tau
from imprint.analysis.transferability import (
    EstimatorUndefined,
    h_score,
    logme,
    loo_knn_accuracy,
    ncti_components,
    ncti_scores,
    tmi,
)


def _supremum(f, y):
    f = np.asarray(f, np.float64)
    marginal = _marginal_by_svd(f)
    per_class = [_evidence_supremum(f, (y == c).astype(float), marginal) for c in np.unique(y)]
    return np.mean(per_class) / len(y)


def test_logme_on_weakly_informative_features_with_more_rows_than_dimensions():
    rng = np.random.default_rng(0)
    f, y = rng.normal(size=(200, 8)), rng.integers(0, 4, 200)
    assert logme(f, y) == pytest.approx(_supremum(f, y), abs=1e-7)


def test_logme_of_a_near_exact_fit_is_finite_and_the_supremum():
    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    f = rng.normal(size=(30, 4))
    f[:, 0] = (y == 0) + 1e-4 * rng.normal(size=30)
    assert logme(f, y) == pytest.approx(_supremum(f, y), abs=1e-7)


def test_logme_of_repeated_rows_is_the_supremum():
    rng = np.random.default_rng(1)
    f, y = np.repeat(rng.normal(size=(8, 5)), 2, axis=0), np.repeat(np.arange(8) % 2, 2)
    assert logme(f, y) == pytest.approx(_supremum(f, y), abs=1e-8)


def test_h_score_is_scale_invariant_and_ignores_a_constant_column():
    rng = np.random.default_rng(3)
    y = np.arange(60) % 3
    f = rng.normal(size=(60, 5)) + y[:, None]
    assert h_score(f * 1e-8, y) == pytest.approx(h_score(f, y), rel=1e-9)
    with_constant = np.c_[f, np.full(60, 0.1)]
    assert h_score(with_constant, y) == pytest.approx(h_score(f, y), rel=1e-9)


def _loo_vectorised(x, y, k, temperature=0.07):
    xn = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    sims = xn @ xn.T
    np.fill_diagonal(sims, -np.inf)
    n, classes = len(y), y.max() + 1
    order = np.lexsort((np.broadcast_to(np.arange(n), (n, n)), -sims), axis=1)[:, :k]
    votes = np.zeros((n, classes))
    for i in range(n):
        np.add.at(votes[i], y[order[i]], np.exp(sims[i, order[i]] / temperature))
    return 100.0 * np.mean(votes.argmax(axis=1) == y)


def test_leave_one_out_knn_over_more_than_one_block_of_queries():
    rng = np.random.default_rng(1)
    y = np.arange(2100) % 3
    x = (rng.normal(size=(2100, 4)) + y[:, None] * 0.7).astype(np.float32)
    got = loo_knn_accuracy(x, y, k=5, queries=None)
    assert got == pytest.approx(_loo_vectorised(x, y, 5))


def test_leave_one_out_knn_defaults_and_bounds():
    from imprint.engine.vocabulary import KNN_MIN_TEMPERATURE

    rng = np.random.default_rng(0)
    y = np.arange(300) % 5
    x = (rng.normal(size=(300, 70)) + y[:, None] * 0.3).astype(np.float32)
    assert loo_knn_accuracy(x, y, queries=None) == pytest.approx(_loo_vectorised(x, y, 20))
    loo_knn_accuracy(x, y, temperature=KNN_MIN_TEMPERATURE)  # the bound itself is allowed
    assert loo_knn_accuracy(x[:2], np.array([0, 1])) == 0.0  # two rows: the smallest input


def test_ncti_of_float32_features_is_computed_in_float64():
    r = np.random.default_rng([7, 12, 50])
    y = np.repeat(np.arange(3), 4)
    x = (r.standard_normal((12, 50)) + y[:, None]).astype(np.float32)
    got, ref = ncti_components(x, y), ncti_components(x.astype(np.float64), y)
    assert got == pytest.approx(ref, rel=1e-12)


def test_ncti_scores_of_an_undefined_term_contribute_nothing():
    nan = float("nan")
    assert ncti_scores([1, 2, 4], [1, 1, 2], [nan, nan, nan]).tolist() == [0.0, 1 / 3, 2.0]


def test_tmi_leaves_out_small_classes_wherever_they_come():
    rng = np.random.default_rng(5)
    y = np.r_[[0], [1, 1], [2, 2, 2], np.repeat(3, 8), np.repeat(4, 6)]
    x = rng.normal(size=(len(y), 3)).astype(np.float32)
    assert tmi(x, y) == pytest.approx(_tmi_direct(x.astype(np.float64), y), rel=1e-9)
    with pytest.raises(EstimatorUndefined):
        tmi(x[:6], y[:6])  # largest class of exactly k = 3 rows


def test_weighted_tau_of_values_one_apart():
    assert weighted_kendall_tau([1, 2, 1, 2], [3, 4, 3.5, 5]) == pytest.approx(
        weighted_kendall_tau([10, 20, 10, 20], [3, 4, 3.5, 5])
    )
    assert not math.isnan(weighted_kendall_tau([1, 2, 1], [3, 4, 3]))


def test_collapse_estimate_refuses_coinciding_means_even_with_a_finite_value():
    from types import SimpleNamespace

    from imprint.analysis.transferability import collapse_estimate

    stats = SimpleNamespace(counts=np.array([3, 3]))
    with pytest.raises(EstimatorUndefined, match="VCI is undefined"):
        collapse_estimate("vci", stats, {"vci": 0.5, "rank_between": 0})
    assert collapse_estimate("nc1", stats, {"nc1": 0.5, "rank_between": 1}) == 0.5
