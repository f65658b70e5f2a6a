"""Tests that kill the surviving mutants of the transferability estimators (then analysis/transferability.py, now the analysis/transferability/ package) that were real gaps (benchmarks/mutation.py; each one and why: benchmarks/mutation-survivors.md)."""

import math

import numpy as np
import pytest
from test_transferability import _evidence_supremum, _marginal_by_svd, _tmi_direct

from imprint.analysis.agreement import weighted_kendall_tau
from imprint.analysis.transferability.common import EstimatorUndefined
from imprint.analysis.transferability.linear import h_score, logme
from imprint.analysis.transferability.ncti import ncti_components, ncti_scores
from imprint.analysis.transferability.neighbours import loo_knn_accuracy, tmi


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

    from imprint.analysis.transferability.collapse_measures import collapse_estimate

    stats = SimpleNamespace(counts=np.array([3, 3]))
    with pytest.raises(EstimatorUndefined, match="VCI is undefined"):
        collapse_estimate("vci", stats, {"vci": 0.5, "rank_between": 0})
    assert collapse_estimate("nc1", stats, {"nc1": 0.5, "rank_between": 1}) == 0.5


def test_logme_counts_a_residual_below_the_scaled_rank_cut_off_as_an_exact_fit():
    # kills: `rest <= max(n, dim) * _EPS * norms[k]` → `... * _EPS / norms[k]` (logme 48)
    rng = np.random.default_rng(0)
    y = np.arange(30) % 3  # ‖y‖² = 10 for each one-hot target
    target = (y == 0).astype(float)
    f = rng.normal(size=(30, 4))
    noise = rng.normal(size=30)
    basis = np.c_[target, f[:, 1:]]
    noise -= basis @ np.linalg.lstsq(basis, noise, rcond=None)[0]
    f[:, 0] = target + 1e-7 * noise / np.linalg.norm(noise)
    off = target - f @ np.linalg.lstsq(f, target, rcond=None)[0]
    rest, cut = off @ off, 30 * np.finfo(np.float64).eps  # documented: zero at ≤ max(n, D)·eps·‖y‖²
    assert cut / 10 < rest < cut * 10  # inside the exact-fit cut-off only when scaled by ‖y‖²
    with pytest.raises(EstimatorUndefined, match="LogME is unbounded"):
        logme(f, y)


@pytest.mark.parametrize("shape", [(40, 6), (10, 25)])  # FᵀF (n ≥ D) and FFᵀ (n < D)
def test_logme_of_features_of_tiny_scale_is_the_supremum(shape):
    # kills: `sigma.max(initial=0.0)` → `sigma.max(initial=1.0)` (_eigen_projection 10, 26)
    rng = np.random.default_rng(2)
    y = np.arange(shape[0]) % 2
    f = rng.normal(size=shape) + y[:, None]
    # The evidence's supremum over α does not change when F is scaled (α absorbs the scale).
    assert logme(f * 1e-10, y) == pytest.approx(_supremum(f, y), abs=1e-7)


def _loo_correct(x, y, k, temperature=0.07):
    """Whether each row's leave-one-out weighted kNN vote (cosine, ties to the lower row)
    gives its own class, by direct numpy."""
    xn = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    sims = xn @ xn.T
    np.fill_diagonal(sims, -np.inf)
    n = len(y)
    order = np.lexsort((np.broadcast_to(np.arange(n), (n, n)), -sims), axis=1)[:, :k]
    correct = np.zeros(n, dtype=bool)
    for i in range(n):
        votes = np.zeros(y.max() + 1)
        np.add.at(votes, y[order[i]], np.exp(sims[i, order[i]] / temperature))
        correct[i] = votes.argmax() == y[i]
    return correct


def test_leave_one_out_knn_draws_its_query_rows_with_seed_0_by_default():
    # kills: `seed: int = 0,` → `seed: int = 1,` (loo_knn_accuracy 3)
    rng = np.random.default_rng(4)
    y = np.arange(40) % 3
    x = (rng.normal(size=(40, 5)) + 0.4 * y[:, None]).astype(np.float32)
    correct = _loo_correct(x, y, 5)

    def expected(seed):  # the documented seeded draw of `queries` rows
        return 100.0 * correct[np.random.default_rng(seed).choice(40, 7, replace=False)].mean()

    assert expected(0) != expected(1)  # the input tells the two seeds apart
    assert loo_knn_accuracy(x, y, k=5, queries=7) == pytest.approx(expected(0))


def test_leave_one_out_knn_drops_the_last_neighbour_when_duplicates_push_the_query_out():
    # kills: `own[~own.any(dim=1), -1] = True` → `own[~own.any(dim=1), +1] = True` (loo 83)
    x = np.tile(np.float32([1.0, 2.0]), (5, 1))  # k + 2 identical rows, k = 3: ties by row
    y = np.array([0, 0, 1, 1, 0])
    # By hand: rows 0-3 see the other three of rows 0-3 and are all wrong ([0, 1, 1] or
    # [0, 0, 1] against their own class); row 4 sees rows 0-3, keeps 0, 1, 2 → [0, 0, 1]:
    # right. 1 of 5 (dropping row 1 instead would give [0, 1, 1]: wrong, 0 %).
    assert loo_knn_accuracy(x, y, k=3, queries=None) == pytest.approx(20.0)


def _ncti_direct(x, y):
    """NCTI's three terms as documented, with PCA by numpy's SVD of the centred rows (exact)
    and scikit-learn's unshrunk 'svd' LDA (the shrinkage floor: asserted)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    xc = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    dims = min(64, *x.shape)
    variance = s[:dims] ** 2 / (len(x) - 1)
    assert math.exp(-variance[:32].sum()) < 1e-10  # the floor: the 'svd' solver
    assert (variance > variance.max() * max(x.shape) * np.finfo(np.float64).eps).all()
    z = u[:, :dims] * s[:dims]
    lda = LinearDiscriminantAnalysis(solver="svd").fit(z, y)
    projected = lda.transform(z)
    posterior = lda.predict_proba(z)
    return {
        "ncti_etf": np.linalg.norm(projected - projected.mean(axis=0), ord="nuc"),
        "ncti_ncc": posterior[np.arange(len(y)), y].mean(),
        "ncti_vc": math.log(sum(np.linalg.norm(posterior[y == c], ord="nuc") for c in set(y))),
    }


def test_ncti_uses_an_exact_pca():
    # kills: `PCA(n_components=dims, svd_solver="covariance_eigh")` → `PCA(n_components=dims, )`
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    y = np.arange(600) % 4
    x = rng.standard_normal((600, 100)) + 0.1 * y[:, None]  # scikit-learn's pick: randomised
    with threadpool_limits(limits=1, user_api="blas"):  # BLAS threads beside torch's: seconds
        got, ref = ncti_components(x, y), _ncti_direct(x, y)
    assert got == pytest.approx(ref, rel=1e-8)


def test_ncti_keeps_a_small_component_above_the_rounding_cut_off():
    # kills: `variance.max(initial=0.0)` → `variance.max(initial=1.0)` (ncti_components 87)
    rng = np.random.default_rng(3)
    n = 200
    y = np.arange(n) % 2
    # Orthonormal centred columns, the last one carrying the classes; PCA variances 0.745 to
    # 0.725 (33: the 32 leading ones sum to 23.5, past the shrinkage floor exp(-23.03)) and
    # 3.85e-14: above λ_max · max(n, D) · eps = 3.31e-14 (not noise: kept), below
    # max(n, D) · eps = 4.44e-14.
    signal = (y - 0.5) + 0.3 * rng.standard_normal(n)
    q, _ = np.linalg.qr(np.c_[np.ones(n), rng.standard_normal((n, 33)), signal])
    variance = np.r_[np.linspace(0.745, 0.725, 33), 3.85e-14]
    x = q[:, 1:] * np.sqrt(variance * (n - 1))
    got, ref = ncti_components(x, y), _ncti_direct(x, y)
    assert got == pytest.approx(ref, rel=1e-6)


def test_tmi_computes_in_float32_where_float64_rows_coincide():
    # kills: `np.ascontiguousarray(features, dtype=np.float32)` → dtype=None / no dtype (tmi 3, 5)
    from scipy.special import digamma

    rows = np.array([[1.0, 2.0], [3.0, -1.0]])
    x = np.repeat(rows, 5, axis=0) + np.c_[np.tile(np.arange(5) * 1e-10, 2), np.zeros(10)]
    y = np.repeat([0, 1], 5)
    assert (x.astype(np.float32) == np.repeat(rows, 5, axis=0)).all()  # identical in float32
    # By hand: every k-th distance is 0, raised to min_distance; h_c = −ψ(3) + ψ(5) +
    # (2 / 5) · 5 · log(2 · 1e-12) for both classes, each weighted 5 / 10.
    h = -digamma(3) + digamma(5) + 2 * math.log(2e-12)
    assert tmi(x, y, min_distance=1e-12) == pytest.approx(0.5 * h, rel=1e-6)


# Run of 2026-12-07 at e7146e6 (benchmarks/mutation-survivors.md, top section).
def test_ncti_of_classes_of_two_rows_is_computed():
    # kills `counts.max() < 2` → `<= 2` / `< 3` (_check_within_class_variation 6, 7): the
    # largest class has exactly 2 rows, which is enough for a within-class covariance
    rng = np.random.default_rng(7)
    y = np.array([0, 0, 1, 1, 2, 2])
    x = 30.0 * rng.standard_normal((6, 3)) + 10.0 * y[:, None]
    assert ncti_components(x, y) == pytest.approx(_ncti_direct(x, y), rel=1e-8)


def test_ncti_counts_a_varying_class_of_two_rows():
    # kills `np.flatnonzero(counts > 1)` → `counts > 2` (_check_within_class_variation 23):
    # the only class whose rows differ has 2 rows; the class of 3 has identical rows
    y = np.array([0, 0, 1, 1, 1])
    x = np.array([[0.0, 40.0], [50.0, -30.0], [90.0, 80.0], [90.0, 80.0], [90.0, 80.0]])
    assert ncti_components(x, y) == pytest.approx(_ncti_direct(x, y), rel=1e-8)
