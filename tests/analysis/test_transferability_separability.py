"""PARC and GBC (analysis/transferability/separability.py) against direct computations:
PARC as scikit-learn's PCA and StandardScaler then scipy.stats.spearmanr on the same rows, GBC
as the closed-form Bhattacharyya distance of Gaussians (determinants, not sums of logs);
hand-worked cases and degenerate data."""

import math
import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler
from test_transferability import _degenerate

from imprint.analysis.transferability import separability
from imprint.analysis.transferability.common import EstimatorUndefined
from imprint.analysis.transferability.separability import gbc, parc

KINDS = ["constant_columns", "wide", "two_per_class", "one_per_class", "identical_class"]
KINDS += ["every_class_identical", "all_identical"]


def _parc_direct(x, y, dims=32):
    x = np.asarray(x, np.float64)
    k = min(dims, *x.shape)
    z = StandardScaler().fit_transform(PCA(n_components=k, svd_solver="full").fit_transform(x))
    labels = np.eye(len(np.unique(y)))[np.searchsorted(np.unique(y), y)]
    upper = np.triu_indices(len(y), 1)
    rho = spearmanr((1 - np.corrcoef(z))[upper], (1 - np.corrcoef(labels))[upper]).statistic
    return 100 * rho


def _classes(seed=0, dim=10, n=(15, 22, 18)):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(n)) * 2 + 1, n)
    x = rng.standard_normal((y.size, dim)) + 0.7 * np.searchsorted(np.unique(y), y)[:, None]
    return x, y


@pytest.mark.parametrize("dim", [5, 40])  # fewer dimensions than 32, and more
def test_parc_is_100_spearman_of_the_dissimilarities(dim):
    x, y = _classes(dim=dim)
    assert parc(x, y) == pytest.approx(_parc_direct(x, y), rel=1e-9)


def test_parc_reduces_to_32_components():
    x, y = _classes(dim=60, n=(40, 30, 35))
    assert parc(x, y) == pytest.approx(_parc_direct(x, y, 32), rel=1e-9)
    assert parc(x, y) != pytest.approx(_parc_direct(x, y, 60), rel=1e-6)


def test_parc_draws_at_most_its_cap_of_seeded_rows(monkeypatch):
    monkeypatch.setattr(separability, "PARC_MAX_ROWS", 30)
    x, y = _classes(seed=4, dim=8)
    rows = np.sort(np.random.default_rng(0).choice(len(y), size=30, replace=False))
    assert parc(x, y) == pytest.approx(_parc_direct(x[rows], y[rows]), rel=1e-9)


def test_parc_is_undefined_not_nan_on_constant_dissimilarities():
    x, y = _degenerate("one_per_class")  # every label pair differs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConstantInputWarning, no RuntimeWarning
        with pytest.raises(EstimatorUndefined, match="PARC needs a dissimilarity matrix"):
            parc(x, y)
        with pytest.raises(EstimatorUndefined, match="PARC needs rows whose principal"):
            parc(*_degenerate("all_identical"))


@pytest.mark.parametrize("kind", KINDS[:3] + ["identical_class", "every_class_identical"])
def test_parc_is_finite_where_the_rows_vary(kind):
    x, y = _degenerate(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = parc(x, y)
    assert math.isfinite(value) and -100 <= value <= 100


def _gbc_direct(x, y, dims=64):
    """−Σ_{i≠j} exp(−D_B) with D_B = ⅛ Δμᵀ Σ⁻¹ Δμ + ½ ln(det Σ / √(det Σ_i det Σ_j)),
    Σ_c = diag of class c's variances in the PCA space, Σ = (Σ_i + Σ_j)/2. Components beyond
    the rank of the centred rows (variance at rounding level) are left out: GBC documents that
    they add 0."""
    pca = PCA(n_components=min(dims, *x.shape), svd_solver="full").fit(x)
    variance = pca.explained_variance_
    z = pca.transform(x)[:, variance > variance.max() * max(x.shape) * np.finfo(float).eps]
    classes = np.unique(y)
    mu = [z[y == c].mean(axis=0) for c in classes]
    cov = [np.diag(z[y == c].var(axis=0)) for c in classes]
    total = 0.0
    for i in range(len(classes)):
        for j in range(len(classes)):
            if i != j:
                s = (cov[i] + cov[j]) / 2
                d = mu[i] - mu[j]
                logdet = lambda m: np.linalg.slogdet(m)[1]  # noqa: E731
                db = d @ np.linalg.solve(s, d) / 8 + 0.5 * (
                    logdet(s) - 0.5 * (logdet(cov[i]) + logdet(cov[j]))
                )
                total += math.exp(-db)
    return -total


def test_gbc_hand_worked_two_classes_in_one_dimension():
    # Means 0 and 4, variances 1 (1/n): D_B = ⅛ · 16 / 1 + ½ ln 1 = 2, counted both ways.
    x = np.array([[-1.0], [1.0], [3.0], [5.0]])
    y = np.array([0, 0, 1, 1])
    assert gbc(x, y) == pytest.approx(-2 * math.exp(-2), rel=1e-12)
    # Unequal variances: 1 and 4 (class 1 = [2, 6]): s = 2.5, D_B = ⅛·16/2.5 + ½ ln(2.5/2).
    x = np.array([[-1.0], [1.0], [2.0], [6.0]])
    expected = -2 * math.exp(-(16 / 2.5 / 8 + 0.5 * math.log(2.5 / 2)))
    assert gbc(x, y) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("dim", [3, 12, 80])  # 80: reduced to 64 components
def test_gbc_is_the_closed_form_bhattacharyya_sum(dim):
    rng = np.random.default_rng(dim)
    y = np.repeat([0, 1, 2], [60, 70, 80])
    x = rng.standard_normal((y.size, dim)) * (1 + 0.5 * y[:, None]) + 0.4 * y[:, None]
    assert gbc(x, y) == pytest.approx(_gbc_direct(x, y), rel=1e-8)


def test_gbc_of_two_gaussian_classes_approaches_the_population_closed_form():
    rng = np.random.default_rng(7)
    n = 20000
    y = np.repeat([0, 1], n)
    sd = np.array([[1.0, 2.0], [1.5, 0.5]])
    mean = np.array([[0.0, 0.0], [1.0, 0.0]])
    x = rng.standard_normal((2 * n, 2)) * sd[y] + mean[y]
    s = (sd[0] ** 2 + sd[1] ** 2) / 2
    db = ((mean[0] - mean[1]) ** 2 / s).sum() / 8 + 0.5 * np.log(
        s.prod() / np.sqrt((sd[0] ** 2).prod() * (sd[1] ** 2).prod())
    )
    # PCA rotates the axes, which changes a diagonal model slightly: within a few percent.
    assert gbc(x, y) == pytest.approx(-2 * math.exp(-db), rel=0.05)


@pytest.mark.parametrize("kind", ["constant_columns", "wide", "two_per_class", "identical_class"])
def test_gbc_is_finite_with_the_variance_floor(kind):
    x, y = _degenerate(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = gbc(x, y)
    assert math.isfinite(value) and value <= 0


def test_gbc_floors_a_one_row_class_variance():
    x, y = _classes(seed=8, dim=4)
    x, y = np.vstack([x, np.full((1, 4), 9.0)]), np.append(y, 99)  # a class of one row
    value = gbc(x, y)
    assert math.isfinite(value)
    # The one-row class is a narrow Gaussian far from the others: it adds ~0.
    assert value == pytest.approx(gbc(x[:-1], y[:-1]), rel=0.05)


@pytest.mark.parametrize("kind", ["one_per_class", "every_class_identical", "all_identical"])
def test_gbc_is_undefined_without_within_class_variation(kind):
    with pytest.raises(EstimatorUndefined, match="GBC needs a class whose rows are not all"):
        gbc(*_degenerate(kind))


def test_gbc_leaves_out_components_beyond_the_rank():
    rng = np.random.default_rng(12)
    y = np.repeat([0, 1, 2], 30)
    x = rng.standard_normal((90, 10)) @ rng.standard_normal((10, 200)) + y[:, None]  # rank 11
    assert gbc(x, y) == pytest.approx(_gbc_direct(x, y), rel=1e-8)
    assert gbc(x, y) == pytest.approx(_gbc_direct(x, y, dims=11), rel=1e-8)


def test_the_lanczos_principal_components_match_scikit_learn():
    # 600 rows of 700 dimensions: PARC's 32 and GBC's 64 leading axes come from ARPACK
    # (common.leading_eigenpairs, m ≥ 512), not a dense eigendecomposition.
    rng = np.random.default_rng(11)
    y = np.repeat([0, 1, 2], 200)
    x = rng.standard_normal((600, 700)) * np.linspace(2, 0.1, 700) + 0.3 * y[:, None]
    assert parc(x, y) == pytest.approx(_parc_direct(x, y), rel=1e-9)
    assert gbc(x, y) == pytest.approx(_gbc_direct(x, y), rel=1e-8)
