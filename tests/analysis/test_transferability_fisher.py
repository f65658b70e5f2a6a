"""SFDA (analysis/transferability/fisher.py) against the authors' equations computed directly:
their Fisher space as scipy's generalised eigenvectors of (S_b, S_w), their ConfMix, their
score; and what it does on degenerate data."""

import math
import warnings

import numpy as np
import pytest
from scipy.linalg import eigh
from test_transferability import _degenerate

from imprint.analysis.transferability.common import EstimatorUndefined
from imprint.analysis.transferability.fisher import sfda


def _fisher_direct(x, y, shrinkage=None):
    """The authors' SFDA fit as their paper and code state it, class by class: priors, the
    prior-weighted biased class covariances, shrinkage s = max(exp(−5 λ_max), 1e-10), the
    shrunk total and within scatters, S_b = S_t − S_w, the generalised eigenvectors W of
    (S_b, S_w), coef = μ W Wᵀ, intercept −½ diag(μ coefᵀ) + log π, softmax."""
    classes = np.unique(y)
    n, dim = x.shape
    priors = np.array([np.mean(y == c) for c in classes])
    means = np.stack([x[y == c].mean(axis=0) for c in classes])
    sw = sum(p * np.cov(x[y == c].T, bias=True).reshape(dim, dim) for p, c in zip(priors, classes))
    if shrinkage is None:
        shrinkage = max(math.exp(-5 * np.linalg.eigvalsh(sw).max()), 1e-10)

    def shrunk(m):
        return (1 - shrinkage) * m + shrinkage * np.trace(m) / dim * np.eye(dim)

    st = shrunk(np.cov(x.T, bias=True).reshape(dim, dim))
    sw = shrunk(sw)
    _, w = eigh(st - sw, sw)
    coef = means @ w @ w.T
    scores = x @ coef.T - 0.5 * np.diag(means @ coef.T) + np.log(priors)
    scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    return scores / scores.sum(axis=1, keepdims=True), shrinkage


def _sfda_direct(x, y):
    x = np.asarray(x, dtype=np.float64).copy()
    classes = np.unique(y)
    prob, shrinkage = _fisher_direct(x, y)
    prob = np.exp(prob) / np.exp(prob).sum(axis=1, keepdims=True)
    means = np.stack([x[y == c].mean(axis=0) for c in classes])
    for k, c in enumerate(classes):
        others = np.mean([means[j] for j in range(len(classes)) if j != k], axis=0)
        p = prob[y == c, k][:, None]
        x[y == c] = p * x[y == c] + (1 - p) * others
    prob, _ = _fisher_direct(x, y, shrinkage)
    return float(np.mean(prob[np.arange(len(y)), np.searchsorted(classes, y)]))


def _unequal_classes(seed=0, dim=6, scale=1.0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 2, 5], [7, 12, 20, 9])
    x = rng.standard_normal((y.size, dim)) * scale + 0.8 * np.searchsorted([0, 1, 2, 5], y)[:, None]
    return x, y


@pytest.mark.parametrize("scale", [0.05, 0.5, 3.0])  # shrinkage from ~1 to the floor region
def test_sfda_is_the_authors_fisher_score_after_confmix(scale):
    x, y = _unequal_classes(dim=6, scale=scale)
    assert sfda(x, y) == pytest.approx(_sfda_direct(x, y), rel=1e-9)


def test_sfda_on_wide_rows_and_unsorted_labels_matches_the_direct_computation():
    rng = np.random.default_rng(3)
    y = rng.permutation(np.repeat([4, 1, 9], [5, 6, 4]))
    x = rng.standard_normal((15, 40)) + y[:, None] * 0.3  # n < D: the shrinkage inverts S_w
    assert sfda(x, y) == pytest.approx(_sfda_direct(x, y), rel=1e-8)


def test_sfda_is_the_mean_posterior_not_its_log_nor_the_first_fit():
    x, y = _unequal_classes(seed=1, scale=0.7)
    value = sfda(x, y)
    first, _ = _fisher_direct(x, y)
    truth = np.searchsorted(np.unique(y), y)
    assert 0 < value < 1
    assert value != pytest.approx(float(first[np.arange(y.size), truth].mean()), rel=1e-6)
    assert value != pytest.approx(float(np.log(first[np.arange(y.size), truth]).mean()))


def test_sfda_hand_worked_one_dimension():
    # Two classes of two rows in 1-D: S_w = 1 (each class's variance 1), so S = 1 whatever
    # the shrinkage; centred means ∓2; class 1's posterior is σ(4x). ConfMix pulls each row
    # towards the other class's mean by 1 − p, p = softmax of the posteriors at the truth.
    x = np.array([[0.0], [2.0], [4.0], [6.0]])
    y = np.array([0, 0, 1, 1])
    c = x[:, 0] - 3.0
    sig = 1 / (1 + np.exp(-4 * c))
    p_true = np.where(y == 1, sig, 1 - sig)
    soft = np.exp(p_true) / (np.exp(p_true) + np.exp(1 - p_true))
    other = np.where(y == 0, 2.0, -2.0)
    m = soft * c + (1 - soft) * other
    mu = np.array([m[:2].mean(), m[2:].mean()])
    var = (np.var(m[:2]) + np.var(m[2:])) / 2  # S_w; shrinkage leaves 1-D unchanged
    logit = (m * (mu[1] - mu[0]) - (mu[1] ** 2 - mu[0] ** 2) / 2) / var
    second = np.where(y == 1, 1 / (1 + np.exp(-logit)), 1 / (1 + np.exp(logit)))
    assert sfda(x, y) == pytest.approx(second.mean(), rel=1e-12)


@pytest.mark.parametrize("kind", ["constant_columns", "wide", "two_per_class", "identical_class"])
def test_sfda_is_finite_where_some_class_varies(kind):
    x, y = _degenerate(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = sfda(x, y)
    assert math.isfinite(value) and 0 < value <= 1


def test_sfda_ignores_a_constant_column():
    x, y = _unequal_classes(seed=2)
    with_constant = np.column_stack([x, np.full(len(y), 3.7)])
    # The constant column's variance is 0: shrinkage only (its S entry is s · tr/D).
    assert math.isfinite(sfda(with_constant, y))
    assert sfda(x + 100.0, y) == pytest.approx(sfda(x, y), rel=1e-9)  # translation


@pytest.mark.parametrize("kind", ["one_per_class", "every_class_identical", "all_identical"])
def test_sfda_is_undefined_without_within_class_variation(kind):
    x, y = _degenerate(kind)
    with pytest.raises(EstimatorUndefined, match="SFDA needs a class whose rows are not all"):
        sfda(x, y)


def test_sfda_refuses_a_single_class():
    with pytest.raises(ValueError, match="at least 2 classes"):
        sfda(np.ones((4, 2)), np.zeros(4, int))
