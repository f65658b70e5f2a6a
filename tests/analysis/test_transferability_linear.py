"""LogME and H-score (analysis/transferability/linear.py) against direct computations of their
papers' equations, on ordinary and on degenerate data."""

import math

import numpy as np
import pytest
from test_transferability import (
    _degenerate,
    _evidence_supremum,
    _h_score_direct,
    _logme_direct,
    _marginal,
)

from imprint.analysis.transferability.linear import h_score, logme


@pytest.mark.parametrize("shape", [(40, 5), (12, 20)])  # n > D and n < D (rank-deficient FᵀF)
def test_logme_is_the_maximised_evidence_of_its_paper(shape):
    rng = np.random.default_rng(1)
    labels = np.arange(shape[0]) % 3
    f = rng.standard_normal(shape) + labels[:, None] * 0.8
    assert logme(f, labels) == pytest.approx(_logme_direct(f, labels), abs=1e-6)


def test_logme_ranks_separable_features_above_noise():
    rng = np.random.default_rng(0)
    labels = np.arange(300) % 3
    good = np.eye(3)[labels] * 4 + rng.standard_normal((300, 3)) * 0.3
    noise = rng.standard_normal((300, 3))
    assert logme(good, labels) > logme(noise, labels)


def test_h_score_by_hand():
    # Two classes on a line: f = -1, -1 (class 0) and 1, 3 (class 1). Mean 0.5; cov f =
    # mean of squares of (-1.5, -1.5, 0.5, 2.5) = 11/4; class means -1 and 2, centred -1.5 and
    # 1.5: cov of E[f|y] = 9/4. H = (9/4) / (11/4) = 9/11.
    f = np.array([[-1.0], [-1.0], [1.0], [3.0]])
    assert h_score(f, np.array([0, 0, 1, 1])) == pytest.approx(9 / 11)


def test_h_score_equals_the_trace_formula_with_a_pseudo_inverse():
    rng = np.random.default_rng(2)
    labels = np.arange(50) % 4
    f = rng.standard_normal((50, 6))
    f[:, 5] = f[:, 4]  # a singular covariance: the pseudo-inverse applies
    fc = f - f.mean(0)
    g = np.stack([fc[labels == c].mean(0) for c in range(4)])[labels]
    expected = np.trace(np.linalg.pinv(np.cov(fc.T, bias=True)) @ np.cov(g.T, bias=True))
    assert h_score(f, labels) == pytest.approx(expected, rel=1e-9)


LOGME_COMPUTES = [
    "constant_columns",
    "wide",
    "two_per_class",
    "one_per_class",
    "identical_class",
    "all_identical",
]


@pytest.mark.parametrize("kind", LOGME_COMPUTES)
def test_logme_is_the_evidence_supremum_on_degenerate_features(kind):
    x, y = _degenerate(kind)
    f = x.astype(np.float64)
    expected = np.mean([_evidence_supremum(f, (y == c).astype(float)) for c in np.unique(y)]) / len(
        y
    )
    assert logme(x, y) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize(
    ("seed", "shape"),
    [
        (62, (6, 8)),  # the supremum is the limit β → ∞ (every target fitted exactly)
        (7, (12, 50)),  # the fixed point is still far from the maximum after 100 steps
        (21, (6, 8)),  # the fixed point reaches n − γ = 0 ("math domain error" before)
    ],
)
def test_logme_finds_the_supremum_where_the_fixed_point_does_not(seed, shape):
    # Rank F = n (n ≤ D): the supremum is often a limit on the boundary, or a maximum the
    # paper's fixed point approaches only slowly.
    n, d = shape
    rng = np.random.default_rng([seed, n, d])
    y = np.repeat(np.arange(3), n // 3)
    x = (rng.standard_normal((n, d)) + y[:, None]).astype(np.float32)
    f = x.astype(np.float64)
    sup = [_evidence_supremum(f, (y == c).astype(float)) for c in range(3)]
    assert logme(x, y) == pytest.approx(np.mean(sup) / n, abs=1e-9)


def test_logme_of_zero_features_is_the_noise_only_evidence():
    # F = 0: L(α, β) = n/2 log β − n/2 log 2π − β/2 ‖y‖², best at β = n / n_c.
    y = np.repeat(np.arange(3), [2, 3, 5])
    by_hand = np.mean([5 * (math.log(10 / c) - math.log(2 * math.pi) - 1) for c in (2, 3, 5)])
    assert logme(np.zeros((10, 4)), y) == pytest.approx(by_hand / 10, rel=1e-12)


@pytest.mark.parametrize(
    ("kind", "rank", "rows"), [("every_class_identical", 3, 36), ("wide_identical_class", 9, 12)]
)
def test_logme_refuses_features_that_fit_a_class_exactly(kind, rank, rows):
    from imprint.analysis.transferability.common import EstimatorUndefined

    if kind == "wide_identical_class":
        x, y = _degenerate("wide")
        x[y == 0] = x[0]
    else:
        x, y = _degenerate(kind)
    with pytest.raises(EstimatorUndefined, match="LogME is unbounded") as err:
        logme(x, y)
    assert isinstance(err.value, ValueError)
    assert f"rank {rank} for {rows} rows" in str(err.value)
    assert "fit the one-hot target of class 0 exactly" in str(err.value)
    # Unbounded indeed: the evidence keeps growing as the noise variance 1/β shrinks.
    f, y0 = x.astype(np.float64), (y == 0).astype(float)
    alpha = 1.0
    values = [_marginal(f, y0, alpha, beta) for beta in (1e2, 1e4, 1e6)]
    assert values[0] < values[1] < values[2]


@pytest.mark.parametrize(
    "kind", ["constant_columns", "wide", "two_per_class", "one_per_class", "identical_class"]
)
def test_h_score_on_degenerate_features_is_the_pseudo_inverse_formula(kind):
    x, y = _degenerate(kind)
    assert h_score(x, y) == pytest.approx(_h_score_direct(x, y), rel=1e-7)
    if kind in ("wide", "two_per_class", "one_per_class"):
        # n − 1 ≤ D independent centred rows: the pseudo-inverse makes it C − 1 (by hand).
        assert h_score(x, y) == pytest.approx(2.0, rel=1e-9)


def test_h_score_ignores_constant_columns_whatever_their_offset():
    # Centring a constant column leaves rounding noise where its mean is not exact; inverted,
    # it would add about 1 to the score. The column must count for nothing.
    rng = np.random.default_rng(5)
    y = np.repeat(np.arange(3), 7)
    x = 1e-3 * (rng.standard_normal((21, 4)) + y[:, None])
    noisy = np.c_[x, np.full(21, 0.1 + 1e8 / 3)]
    assert h_score(noisy, y) == pytest.approx(h_score(x, y), rel=1e-9)
    assert h_score(noisy, y) == pytest.approx(_h_score_direct(x, y), rel=1e-7)


@pytest.mark.parametrize("seed", range(4))
def test_h_score_of_identical_rows_is_zero(seed):
    x, y = _degenerate("all_identical", seed)
    x = x * np.float32(1 + seed * 1000.3)  # values whose mean of 36 copies rounds
    assert h_score(x, y) == 0.0  # pinv(0) = 0, not rounding noise inverted
