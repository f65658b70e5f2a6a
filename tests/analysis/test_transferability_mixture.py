"""NLEEP (analysis/transferability/mixture.py) against scikit-learn's PCA and GaussianMixture
with LEEP computed by hand, a hand-worked LEEP, the seeded row cap, and degenerate data."""

import math
import warnings

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from test_transferability import _degenerate

from imprint.analysis.transferability import mixture
from imprint.analysis.transferability.common import EstimatorUndefined
from imprint.analysis.transferability.mixture import leep, nleep


def _leep_by_hand(posterior, y):
    """(1/n) Σ_i log Σ_z P(y_i | z) P(z | x_i), with P(y | z) from the empirical joint."""
    n, k = posterior.shape
    classes = np.unique(y)
    total = 0.0
    for i in range(n):
        inner = 0.0
        for z in range(k):
            joint = sum(posterior[j, z] for j in range(n) if y[j] == y[i]) / n
            marginal = posterior[:, z].sum() / n
            if marginal > 0:
                inner += joint / marginal * posterior[i, z]
        total += math.log(inner)
    assert len(classes) >= 2
    return total / n


def _nleep_direct(x, y):
    z = PCA(n_components=0.8, svd_solver="full").fit_transform(np.asarray(x, np.float64))
    k = min(5 * len(np.unique(y)), len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gmm = GaussianMixture(k, covariance_type="full", random_state=0).fit(z)
    return _leep_by_hand(gmm.predict_proba(z), y)


def _targets(y):
    return (np.asarray(y)[:, None] == np.unique(y)[None, :]).astype(float)


def test_leep_hand_worked():
    # P(y, z): z0 = (1 + .5)/3 for y=0, 0 for y=1; z1 = .5/3 for y=0, 1/3 for y=1.
    # P(y=0|z0) = 1, P(y=0|z1) = .5/1.5 = 1/3, P(y=1|z1) = 2/3.
    posterior = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    y = np.array([0, 1, 0])
    rows = [1.0, 2 / 3, 0.5 * 1 + 0.5 / 3]
    expected = float(np.mean(np.log(rows)))
    assert leep(posterior, _targets(y)) == pytest.approx(expected, rel=1e-12)
    assert leep(posterior, _targets(y)) == pytest.approx(_leep_by_hand(posterior, y), rel=1e-12)


def test_leep_leaves_out_a_component_with_no_mass():
    posterior = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.4, 0.6, 0.0]])
    y = np.array([0, 1, 1])
    value = leep(posterior, _targets(y))
    assert math.isfinite(value)
    assert value == pytest.approx(_leep_by_hand(posterior, y), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_nleep_is_pca_80_a_full_gaussian_mixture_and_leep(seed):
    rng = np.random.default_rng(seed)
    y = np.repeat([3, 7, 8], [30, 45, 25])
    basis = rng.standard_normal((4, 12))  # most variance in 4 directions
    x = rng.standard_normal((y.size, 4)) @ basis + 0.2 * rng.standard_normal((y.size, 12))
    x += np.searchsorted([3, 7, 8], y)[:, None] * 0.8
    value = nleep(x.astype(np.float32), y)
    assert value == pytest.approx(_nleep_direct(x.astype(np.float32), y), rel=1e-6)
    assert value < 0  # the log: a wrong version without it would be in (0, 1]


def test_nleep_fits_at_most_the_row_cap_of_seeded_rows(monkeypatch):
    monkeypatch.setattr(mixture, "NLEEP_MAX_ROWS", 50)
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1], 60)
    x = rng.standard_normal((120, 5)) + y[:, None]
    rows = np.sort(np.random.default_rng(0).choice(120, size=50, replace=False))
    assert nleep(x, y) == pytest.approx(_nleep_direct(x[rows], y[rows]), rel=1e-6)


def test_nleep_keeps_at_most_the_dimension_cap(monkeypatch):
    monkeypatch.setattr(mixture, "NLEEP_MAX_DIMENSIONS", 2)
    rng = np.random.default_rng(6)
    y = np.repeat([0, 1], 40)
    x = rng.standard_normal((80, 10)) + y[:, None]  # isotropic: 80 % needs ~8 components
    z = PCA(n_components=2, svd_solver="full").fit_transform(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gmm = GaussianMixture(10, covariance_type="full", random_state=0).fit(z)
    assert nleep(x, y) == pytest.approx(_leep_by_hand(gmm.predict_proba(z), y), rel=1e-6)


@pytest.mark.parametrize(
    "kind",
    ["constant_columns", "wide", "two_per_class", "one_per_class", "identical_class"]
    + ["every_class_identical"],
)
def test_nleep_is_finite_on_degenerate_rows_that_vary(kind):
    x, y = _degenerate(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = nleep(x, y)
    assert math.isfinite(value) and value <= 0


def test_nleep_is_undefined_on_identical_rows():
    x, y = _degenerate("all_identical")
    with pytest.raises(EstimatorUndefined, match="NLEEP needs rows that vary"):
        nleep(x, y)
