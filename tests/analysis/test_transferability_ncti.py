"""NCTI's terms (analysis/transferability/ncti.py) against the discriminant analysis written out,
with and without shrinkage, on ordinary and on degenerate data; NCTI across backbones and
per task of a table; and the checks' power to catch known wrong versions."""

import math

import numpy as np
import pytest
from test_transferability import (
    _degenerate,
    _lda_svd_terms_direct,
    _ncti_shrunk_terms_direct,
    _ncti_terms_direct,
    _pca_direct,
)


def test_ncti_terms_equal_their_equations_with_shrinkage():
    from imprint.analysis.transferability.ncti import ncti_components

    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), 30)
    # Small variances (Σ of the leading 32 PCA variances ≈ 2.6): a shrinkage of e^-2.6.
    x = 0.08 * rng.standard_normal((120, 20)) + 0.05 * rng.standard_normal((4, 20))[y]
    terms = ncti_components(x, y)
    z, variances = _pca_direct(x, 20)
    shrinkage = math.exp(-variances[:32].sum())
    assert shrinkage > 1e-10
    expected = _ncti_shrunk_terms_direct(z, y, shrinkage)
    assert terms["ncti_ncc"] == pytest.approx(expected["ncti_ncc"], rel=1e-8)
    assert terms["ncti_vc"] == pytest.approx(expected["ncti_vc"], rel=1e-8)
    assert terms["ncti_etf"] == pytest.approx(expected["ncti_etf"], rel=1e-6)


def test_ncti_on_wide_features_keeps_64_components_and_shrinks_by_the_32_leading():
    # D = 96 > 64: the discriminant sees the 64 leading principal components only, and the
    # shrinkage is exp(−Σ of the 32 leading PCA variances) — not of the 64 kept, nor of all
    # 96 (here ≈ 2.7, 3.5 and 3.7: shrinkages 0.067, 0.030 and 0.026).
    from imprint.analysis.transferability.ncti import ncti_components

    rng = np.random.default_rng(11)
    y = np.repeat(np.arange(4), 50)
    scale = np.linspace(0.3, 0.05, 96)  # decaying variances: every count of them differs
    x = scale * rng.standard_normal((200, 96)) + 0.06 * rng.standard_normal((4, 96))[y]
    terms = ncti_components(x, y)
    # Exact PCA by numpy's SVD of the centred rows (signs of the components are arbitrary:
    # no term depends on them).
    centred = x - x.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    variances = singular**2 / (len(x) - 1)
    z = centred @ vt[:64].T
    shrinkage = max(math.exp(-variances[:32].sum()), 1e-10)
    assert 1e-10 < shrinkage < 0.1  # the 'eigen' solver
    expected = _ncti_shrunk_terms_direct(z, y, shrinkage)
    assert terms["ncti_ncc"] == pytest.approx(expected["ncti_ncc"], rel=1e-8)
    assert terms["ncti_vc"] == pytest.approx(expected["ncti_vc"], rel=1e-8)
    assert terms["ncti_etf"] == pytest.approx(expected["ncti_etf"], rel=1e-6)


def test_ncti_ranks_across_backbones_by_min_max_terms():
    from imprint.analysis.transferability.ncti import ncti_scores

    # By hand: ncc (0.9, 0.7, 0.8) → (1, 0, 0.5); etf (10, 30, 20) → (0, 1, 0.5);
    # vc (1, 3, 2) → (0, 1, 0.5); NCTI = ncc + etf − vc.
    scores = ncti_scores([10, 30, 20], [0.9, 0.7, 0.8], [1, 3, 2])
    np.testing.assert_allclose(scores, [1.0, 0.0, 0.5])
    np.testing.assert_allclose(ncti_scores([1, 1], [0.5, 0.6], [2, 2]), [0.0, 1.0])


def test_ncti_of_a_table_is_min_max_normalised_within_each_dataset_mapping_task():
    import pandas as pd

    from imprint.analysis.agreement import with_ncti

    # Four groups whose per-group and whole-table ranges differ; two share the task name "a"
    # (other dataset, other mapping). NCTI = ncc + etf − vc, each term min-max scaled over the
    # group's backbones, by hand:
    #   (d, none, a): etf 10 30 20 → 0 1 .5, ncc .9 .7 .8 → 1 0 .5, vc 1 3 2 → 0 1 .5:  1, 0, .5
    #   (d, none, b): etf 40 50 60 → 0 .5 1, ncc .2 .4 .3 → 0 1 .5, vc 5 4 6 → .5 0 1: −.5, 1.5, .5
    #   (e, none, a): etf 0 4 2 → 0 1 .5, ncc constant → 0, vc 7 7.5 8 → 0 .5 1:          0, .5, −.5
    #   (d, coarse, a), two backbones: etf 1 2 → 0 1, ncc .1 .6 → 0 1, vc constant → 0:  0, 2
    groups = [
        ("d", "none", "a", [10, 30, 20], [0.9, 0.7, 0.8], [1, 3, 2], [1.0, 0.0, 0.5]),
        ("d", "none", "b", [40, 50, 60], [0.2, 0.4, 0.3], [5, 4, 6], [-0.5, 1.5, 0.5]),
        ("e", "none", "a", [0, 4, 2], [0.5, 0.5, 0.5], [7, 7.5, 8], [0.0, 0.5, -0.5]),
        ("d", "coarse", "a", [1, 2], [0.1, 0.6], [3, 3], [0.0, 2.0]),
    ]
    rows = []
    for dataset, mapping, task, etf, ncc, vc, ncti in groups:
        for backbone, *values in zip("pqr", etf, ncc, vc, ncti, strict=False):
            keys = ["ncti_etf", "ncti_ncc", "ncti_vc", "expected"]
            rows.append(
                {"dataset": dataset, "mapping": mapping, "task": task, "backbone": backbone}
                | dict(zip(keys, values, strict=True))
            )
    # The groups' rows interleaved in the table, and a non-default index.
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=1)
    table.index = table.index * 10 + 3
    out = with_ncti(table.drop(columns="expected"))
    assert out.index.equals(table.index)
    np.testing.assert_allclose(out["ncti"], table["expected"], atol=1e-12)


def test_ncti_without_shrinkage_uses_the_plain_discriminant():
    from imprint.analysis.transferability.ncti import ncti_components

    rng = np.random.default_rng(4)
    y = np.repeat(np.arange(3), 40)
    x = 5.0 * rng.standard_normal((120, 30)) + 20.0 * rng.standard_normal((3, 30))[y]
    terms = ncti_components(x, y)
    z, variances = _pca_direct(x, 30)
    assert math.exp(-variances[:32].sum()) < 1e-10  # the floor: no shrinkage
    # Unshrunk, the posterior is the Gaussian one with the pooled within-class covariance
    # (scikit-learn's 'svd' solver normalises it by n - C).
    classes = np.unique(y)
    means = np.array([z[y == c].mean(axis=0) for c in classes])
    resid = z - means[y]
    inv = np.linalg.inv(resid.T @ resid / (len(z) - len(classes)))
    logits = z @ inv @ means.T - 0.5 * np.einsum("cd,de,ce->c", means, inv, means) + np.log(1 / 3)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert terms["ncti_ncc"] == pytest.approx(p[np.arange(120), y].mean(), rel=1e-6)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("one_per_class", "NCTI needs a class of at least 2 rows: .* every class here has 1 row"),
        ("every_class_identical", "NCTI needs a class whose rows are not all identical"),
        ("all_identical", "NCTI needs a class whose rows are not all identical"),
    ],
)
def test_ncti_refuses_data_without_within_class_variation(kind, message):
    from imprint.analysis.transferability.common import EstimatorUndefined
    from imprint.analysis.transferability.ncti import ncti_components

    x, y = _degenerate(kind)
    with pytest.raises(EstimatorUndefined, match=message):
        ncti_components(x, y)


def test_ncti_unshrunk_with_a_singular_within_class_covariance_uses_its_pseudo_inverse():
    # 12 rows in 50 dimensions, 3 classes: 11 centred directions, of which the within-class
    # residuals span 9 — scikit-learn's 'svd' solver inverts that covariance on its range.
    from imprint.analysis.transferability.ncti import ncti_components

    x, y = _degenerate("wide")
    x = 10.0 * x.astype(np.float64)  # the unshrunk 'svd' solver
    terms = ncti_components(x, y)
    expected = _ncti_terms_direct(x, y)
    for name, value in expected.items():
        assert terms[name] == pytest.approx(value, rel=1e-6), name
    # On an invertible within-class covariance, the same as the generalised eigenvectors'.
    rng = np.random.default_rng(4)
    y = np.repeat(np.arange(3), 40)
    x = 5.0 * rng.standard_normal((120, 12)) + 6.0 * rng.standard_normal((3, 12))[y]
    etf, ncc = _lda_svd_terms_direct(_pca_direct(x, 12)[0], y)
    expected = _ncti_terms_direct(x, y)
    assert expected["ncti_etf"] == pytest.approx(etf, rel=1e-9)
    assert expected["ncti_ncc"] == pytest.approx(ncc, rel=1e-9)
    terms = ncti_components(x, y)
    for name, value in expected.items():
        assert terms[name] == pytest.approx(value, rel=1e-6), name


def test_ncti_without_shrinkage_ignores_a_constant_column():
    # Large variances: the unshrunk 'svd' solver. A constant column adds a principal component
    # of rounding noise, which that solver's per-variable scaling would blow up to unit
    # variance: the terms must be those of the features without it.
    from imprint.analysis.transferability.ncti import ncti_components

    rng = np.random.default_rng(4)
    y = np.repeat(np.arange(3), 40)
    x = 5.0 * rng.standard_normal((120, 12)) + 6.0 * rng.standard_normal((3, 12))[y]
    with_constant = np.c_[x[:, :5], np.full(120, 3.0), x[:, 5:]]
    terms = ncti_components(with_constant, y)
    z, variances = _pca_direct(x, 12)
    assert math.exp(-variances[:32].sum()) < 1e-10  # the floor: no shrinkage
    etf, ncc = _lda_svd_terms_direct(z, y)
    assert terms["ncti_etf"] == pytest.approx(etf, rel=1e-6)
    assert terms["ncti_ncc"] == pytest.approx(ncc, rel=1e-6)


def test_ncti_on_wide_data_depends_on_the_rows_not_their_embedding():
    # 12 rows in 50 dimensions span 11 centred directions; as many PCA components are kept as
    # rows, the 12th rounding noise. The terms must be those of the same rows written in an
    # 11-dimensional orthonormal basis of their span (or rotated in 50 dimensions).
    from imprint.analysis.transferability.ncti import ncti_components

    x, y = _degenerate("wide")
    x = 10.0 * x.astype(np.float64)  # the unshrunk 'svd' solver
    centre = x.mean(axis=0)
    basis = np.linalg.svd(x - centre, full_matrices=False)[2][:11]
    reduced = (x - centre) @ basis.T
    rotation = np.linalg.qr(np.random.default_rng(9).standard_normal((50, 50)))[0]
    expected = ncti_components(reduced, y)
    for variant in (x, x @ rotation):
        terms = ncti_components(variant, y)
        for name, value in expected.items():
            assert terms[name] == pytest.approx(value, rel=1e-6), name


def test_ncti_with_a_one_row_class_warns_nothing():
    import warnings

    from imprint.analysis.transferability.ncti import ncti_components

    rng = np.random.default_rng(3)
    y = np.r_[np.repeat([0, 1], 10), [2]]
    x = 0.1 * rng.standard_normal((21, 6)) + 0.1 * y[:, None]  # shrunk: the 'eigen' solver
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        terms = ncti_components(x, y)
    assert all(math.isfinite(v) for v in terms.values())


# --- The checks above catch known wrong versions of NCTI: each wrong version applied by
# wrapping (or replacing) what the library calls, for this test only.


def _wrong_version(kind, monkeypatch):
    """Make NCTI a known wrong version, by wrapping what it calls; returns the list of calls
    of the wrapper.
      ncti_uncapped: NCTI's PCA keeps every component, not the leading 64;
      ncti_shrunk_by_kept / ncti_shrunk_by_features: the LDA's shrinkage exp(−Σ) of the
          variances of all 64 kept components / of all the features, not of the leading 32;
      ncti_whole_table / ncti_per_task: _wrong_table_version."""
    import sklearn.decomposition as decomposition
    import sklearn.discriminant_analysis as discriminant_analysis

    import imprint.analysis.transferability.ncti as ncti

    if kind in ("ncti_whole_table", "ncti_per_task"):
        return _wrong_table_version(kind, monkeypatch)
    calls = []
    if kind == "ncti_uncapped":
        real_pca = decomposition.PCA

        def pca(n_components=None, **kwargs):
            calls.append(n_components)
            return real_pca(n_components=None, **kwargs)

        monkeypatch.setattr(decomposition, "PCA", pca)
    elif kind in ("ncti_shrunk_by_kept", "ncti_shrunk_by_features"):
        seen = {}

        class RecordingPCA(decomposition.PCA):
            def fit_transform(self, x, y=None):
                seen["features"] = np.asarray(x)
                return super().fit_transform(x, y)

        class WronglyShrunk(discriminant_analysis.LinearDiscriminantAnalysis):
            def fit(self, z, y):
                calls.append(self.shrinkage)
                if self.solver == "eigen":
                    rows = seen["features"] if kind == "ncti_shrunk_by_features" else z
                    spread = np.var(rows, axis=0, ddof=1).sum()
                    self.shrinkage = max(math.exp(-spread), ncti.NCTI_SHRINKAGE_FLOOR)
                return super().fit(z, y)

        monkeypatch.setattr(decomposition, "PCA", RecordingPCA)
        monkeypatch.setattr(discriminant_analysis, "LinearDiscriminantAnalysis", WronglyShrunk)
    else:
        raise ValueError(kind)
    return calls


def _wrong_table_version(kind, monkeypatch):
    """with_ncti min-max normalising over the whole table (ncti_whole_table) or over each task
    name (ncti_per_task), not within each (dataset, mapping, task); returns the list of calls
    of the wrapper."""
    import imprint.analysis.agreement as agreement

    calls = []
    real_with_ncti = agreement.with_ncti
    # The group columns made one value: one group, or one per task name.
    merged = ["dataset", "mapping"] + (["task"] if kind == "ncti_whole_table" else [])

    def with_ncti(table):
        calls.append(len(table))
        out = real_with_ncti(table.assign(**dict.fromkeys(merged, "one group")))
        out[merged] = table[merged]
        return out

    monkeypatch.setattr(agreement, "with_ncti", with_ncti)
    return calls


@pytest.mark.parametrize(
    "kind, check, args",
    [
        (
            "ncti_uncapped",
            test_ncti_on_wide_features_keeps_64_components_and_shrinks_by_the_32_leading,
            (),
        ),
        (
            "ncti_shrunk_by_kept",
            test_ncti_on_wide_features_keeps_64_components_and_shrinks_by_the_32_leading,
            (),
        ),
        (
            "ncti_shrunk_by_features",
            test_ncti_on_wide_features_keeps_64_components_and_shrinks_by_the_32_leading,
            (),
        ),
        (
            "ncti_whole_table",
            test_ncti_of_a_table_is_min_max_normalised_within_each_dataset_mapping_task,
            (),
        ),
        (
            "ncti_per_task",
            test_ncti_of_a_table_is_min_max_normalised_within_each_dataset_mapping_task,
            (),
        ),
    ],
)
def test_the_checks_catch_known_wrong_versions(monkeypatch, kind, check, args):
    calls = _wrong_version(kind, monkeypatch)
    with pytest.raises(AssertionError):
        check(*args)
    assert calls, f"the library no longer calls what the {kind} wrapper replaces"
