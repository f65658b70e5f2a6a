"""LogME, H-score, linear CKA, NCTI, TMI and NC1/VCI against direct computations of their
papers' equations, on ordinary and on degenerate data (constant features, n < D, tiny classes,
identical rows), and `imprint transferability` on the latter."""

import json
import math

import numpy as np
import pytest
from scipy.optimize import minimize

from imprint.analysis.similarity import linear_cka
from imprint.analysis.transferability import h_score, logme


def _evidence_direct(f, y, alpha, beta):
    """log p(y | F, α, β) with A and m built explicitly (You et al. 2021, eq. 2)."""
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.solve(a, f.T @ y)
    _, log_det = np.linalg.slogdet(a)
    return (
        d / 2 * math.log(alpha)
        + n / 2 * math.log(beta)
        - n / 2 * math.log(2 * math.pi)
        - beta / 2 * np.sum((f @ m - y) ** 2)
        - alpha / 2 * np.sum(m**2)
        - log_det / 2
    )


def _logme_direct(f, labels):
    """Each class's evidence maximised over (log α, log β) by a general optimiser, not the
    fixed point; divided by n and averaged over the classes."""
    values = []
    for c in np.unique(labels):
        y = (labels == c).astype(np.float64)
        best = minimize(
            lambda p, y=y: -_evidence_direct(f, y, math.exp(p[0]), math.exp(p[1])),
            x0=[0.0, 0.0],
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20_000},
        )
        values.append(-best.fun / f.shape[0])
    return float(np.mean(values))


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


def _cka_hsic(x, y):
    """CKA as normalised HSIC of the linear Gram matrices (Kornblith et al. 2019, eq. 3-4)."""
    n = x.shape[0]
    h = np.eye(n) - 1.0 / n
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    hsic = lambda a, b: np.trace(a @ b) / (n - 1) ** 2  # noqa: E731
    return hsic(k, l_) / math.sqrt(hsic(k, k) * hsic(l_, l_))


def test_linear_cka_equals_normalised_hsic_and_its_invariances():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 7))
    y = x @ rng.standard_normal((7, 4)) + 0.5 * rng.standard_normal((30, 4))
    assert linear_cka(x, y, block_rows=8) == pytest.approx(_cka_hsic(x, y), rel=1e-10)
    q, _ = np.linalg.qr(rng.standard_normal((7, 7)))
    assert linear_cka(x, x @ q * 3.0 + 5.0) == pytest.approx(1.0)  # rotation, scale, shift
    with pytest.raises(ValueError, match="same images: got 30 and 29 rows"):
        linear_cka(x, y[:29])


def test_leave_one_out_knn_equals_a_direct_loop():
    from imprint.analysis.transferability import loo_knn_accuracy

    rng = np.random.default_rng(4)
    labels = np.arange(40) % 3
    x = (rng.standard_normal((40, 6)) + labels[:, None]).astype(np.float32)
    x[7] = x[3]  # a duplicate of another row: a legitimate neighbour, left in
    xn = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    correct = 0
    for i in range(40):
        sims = xn @ xn[i]
        others = sorted((j for j in range(40) if j != i), key=lambda j: (-sims[j], j))[:5]
        votes = np.zeros(3)
        for j in others:
            votes[labels[j]] += np.exp(sims[j] / 0.07)
        correct += int(np.argmax(votes) == labels[i])
    assert loo_knn_accuracy(x, labels, k=5, queries=None) == pytest.approx(100 * correct / 40)
    # A sample of query rows: every row is still a candidate neighbour.
    assert 0 <= loo_knn_accuracy(x, labels, k=5, queries=10) <= 100


def _weighted_tau_direct(x, y):
    """Vigna's (2015) weighted τ with additive hyperbolic weights, ties absent: for a ranking r
    (0 = the largest value), pair (i, j) weighs 1/(r_i + 1) + 1/(r_j + 1); τ is the weighted
    sum of concordance signs over the weight total; the ranking by x and the one by y are
    averaged."""
    x, y = np.asarray(x, float), np.asarray(y, float)

    def tau(rank_by):
        r = np.empty(len(rank_by), int)
        r[np.argsort(-rank_by)] = np.arange(len(rank_by))
        num = den = 0.0
        for i in range(len(x)):
            for j in range(i + 1, len(x)):
                w = 1 / (r[i] + 1) + 1 / (r[j] + 1)
                num += w * np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
                den += w
        return num / den

    return (tau(x) + tau(y)) / 2


def test_weighted_kendall_tau_equals_vignas_formula_by_hand():
    from imprint.analysis.agreement import weighted_kendall_tau

    x = [0.9, 0.1, 0.5, 0.3, 0.7]
    y = [91.0, 80.0, 84.0, 88.0, 86.0]  # the two best swapped against the estimator
    assert weighted_kendall_tau(x, y) == pytest.approx(_weighted_tau_direct(x, y))
    assert weighted_kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert weighted_kendall_tau([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    # A swap at the top costs more than the same swap at the bottom.
    top = weighted_kendall_tau([4, 3, 2, 1], [3, 4, 2, 1])
    bottom = weighted_kendall_tau([4, 3, 2, 1], [4, 3, 1, 2])
    assert top < bottom < 1
    assert math.isnan(weighted_kendall_tau([1.0], [2.0]))
    assert math.isnan(weighted_kendall_tau([1, 1, 1], [1, 2, 3]))


def test_agreement_orients_nc1_and_averages_over_tasks():
    import pandas as pd

    from imprint.analysis.agreement import estimator_agreement

    table = pd.DataFrame(
        {
            "dataset": ["d"] * 6,
            "mapping": ["none"] * 6,
            "task": ["a"] * 3 + ["b"] * 3,
            "backbone": ["p", "q", "r"] * 2,
            "nc1": [0.1, 0.2, 0.3, 0.3, 0.2, 0.1],  # task a: less collapse, lower accuracy
            "logme": [3.0, 2.0, 1.0, 1.0, 3.0, 2.0],
            "best_imprinting": [90.0, 80.0, 70.0, 60.0, 70.0, 80.0],
        }
    )
    out = estimator_agreement(table).set_index(["task", "estimator"])
    assert out.loc[("a", "nc1"), "tau"] == pytest.approx(1.0)  # −NC1 ranks like the accuracy
    assert out.loc[("b", "nc1"), "tau"] == pytest.approx(1.0)
    assert out.loc[("a", "logme"), "tau"] == pytest.approx(1.0)
    b_logme = _weighted_tau_direct([1.0, 3.0, 2.0], [60.0, 70.0, 80.0])
    assert out.loc[("b", "logme"), "tau"] == pytest.approx(b_logme)
    assert out.loc[("mean", "logme"), "tau"] == pytest.approx((1.0 + b_logme) / 2)
    assert set(out["target"]) == {"best_imprinting"}  # no linear-probe column, no such rows
    assert (out["n_backbones"] == 3).all()


def test_achieved_accuracies_take_the_best_imprinting_row_and_the_probe():
    import pandas as pd

    from imprint.analysis.agreement import achieved_accuracies
    from imprint.engine.grid import expand_grid

    configs = expand_grid(
        {
            "parts": [
                {"seeds": [1, 2, 3], "gen": ["mean", "ls", "linear_probe"]},
                {
                    "seeds": [1, 2, 3],
                    "gen": ["all"],
                    "k": [-1],
                    "agg": ["mnn"],
                    "distance": ["cosine"],
                    "weighting": ["exp_similarity"],
                    "m": [10],
                },
                {"seeds": [1, 2, 3], "gen": ["kmeans"], "k": [2], "fewshot": [5]},
            ]
        }
    )
    accuracy = {
        "mean": [70, 80, 75],
        "ls": [99, 99, 99],
        "linear_probe": [85, 86, 84],
        "all": [95, 95, 95],
        "kmeans": [98, 98, 98],
    }
    rows = []
    for row in configs.to_dict("records"):
        seed_index = [1, 2, 3].index(row["seed"])
        rows.append(
            {
                **row,
                "backbone": "p",
                "dataset": "d",
                "mapping": "none",
                "task": "t",
                "accuracy": accuracy[row["gen"]][seed_index],
            }
        )
    out = achieved_accuracies(pd.DataFrame(rows))
    # ls (oracle), kNN (a baseline) and the few-shot k-means are not what is predicted.
    assert out["best_imprinting"].tolist() == [75.0]  # the median of the mean's seeds
    assert out["linear_probe"].tolist() == [85.0]
    assert out["best_configuration"].tolist() == ["none / mean / none / none / max"]


def _lda_posterior_direct(z, y, shrinkage):
    """Gaussian class posteriors with one shared covariance: the prior-weighted average of the
    classes' covariances (1/n_c), each shrunk towards μ·I (μ its mean eigenvalue) by
    `shrinkage` — what LDA with that shrinkage computes."""
    classes = np.unique(y)
    d = z.shape[1]
    cov = np.zeros((d, d))
    means = []
    for c in classes:
        zc = z[y == c]
        means.append(zc.mean(axis=0))
        emp = np.cov(zc.T, bias=True)
        shrunk = (1 - shrinkage) * emp + shrinkage * np.trace(emp) / d * np.eye(d)
        cov += (len(zc) / len(z)) * shrunk
    means = np.array(means)
    inv = np.linalg.inv(cov)
    priors = np.array([np.mean(y == c) for c in classes])
    logits = z @ inv @ means.T - 0.5 * np.einsum("cd,de,ce->c", means, inv, means) + np.log(priors)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True), cov, means


def _pca_direct(x, k):
    xc = x - x.mean(axis=0)
    values, vectors = np.linalg.eigh(xc.T @ xc / (len(x) - 1))
    order = np.argsort(values)[::-1][:k]
    return xc @ vectors[:, order], values[order]


def _ncti_shrunk_terms_direct(z, y, shrinkage):
    """NCTI's three terms on PCA scores z with the 'eigen' discriminant at `shrinkage`: the
    Gaussian posteriors of the shrunk pooled covariance (ncc: own class's mean, vc: log of
    the summed per-class nuclear norms), and the rows projected on the leading C - 1
    generalised eigenvectors of the between- against the within-class scatter (Vᵀ Sw V = I),
    centred, their nuclear norm (etf)."""
    from scipy.linalg import eigh

    classes = np.unique(y)
    d = z.shape[1]
    posterior, within, _ = _lda_posterior_direct(z, y, shrinkage)
    nuclear = sum(np.linalg.svd(posterior[y == c], compute_uv=False).sum() for c in classes)
    total = np.cov(z.T, bias=True)
    total = (1 - shrinkage) * total + shrinkage * np.trace(total) / d * np.eye(d)
    values, vectors = eigh(total - within, within)
    projected = z @ vectors[:, np.argsort(values)[::-1][: len(classes) - 1]]
    projected -= projected.mean(axis=0)
    return {
        "ncti_etf": np.linalg.svd(projected, compute_uv=False).sum(),
        "ncti_ncc": posterior[np.arange(len(y)), np.searchsorted(classes, y)].mean(),
        "ncti_vc": math.log(nuclear),
    }


def test_ncti_terms_equal_their_equations_with_shrinkage():
    from imprint.analysis.transferability import ncti_components

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
    from imprint.analysis.transferability import ncti_components

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
    from imprint.analysis.transferability import ncti_scores

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
    from imprint.analysis.transferability import ncti_components

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


def _tmi_direct(x, y, k=3, min_distance=1.0):
    """The Kozachenko-Leonenko estimate per class with scipy's k-d tree (max norm), as Xu &
    Kang define TMI: the mean over classes of (n_c / n) · h_c."""
    from scipy.spatial import cKDTree
    from scipy.special import digamma

    terms = []
    for c in np.unique(y):
        rows = x[y == c]
        n_c, d = rows.shape
        if n_c == 1:
            terms.append(0.0)
            continue
        if n_c <= k:
            continue
        eps = cKDTree(rows).query(rows, k + 1, p=np.inf)[0][:, -1]
        eps = np.maximum(eps, min_distance)
        h = -digamma(k) + digamma(n_c) + d / n_c * np.log(2 * eps).sum()
        terms.append(n_c / len(y) * h)
    return float(np.mean(terms))


def test_tmi_equals_the_kozachenko_leonenko_estimate_with_a_kd_tree():
    from imprint.analysis.transferability import tmi

    rng = np.random.default_rng(7)
    y = np.r_[np.repeat([0, 1, 2], [40, 25, 60]), [3], [4, 4]]  # a 1-row and a 2-row class
    x = (rng.normal(size=(len(y), 6)) * (1.0 + y[:, None])).astype(np.float32)
    assert tmi(x, y) == pytest.approx(_tmi_direct(x.astype(np.float64), y), rel=1e-9)
    # Distances under the floor count as the floor: a tight set gives D·log 2 per row.
    tight = np.zeros((10, 4), np.float32)
    tight[:, 0] = np.arange(10) * 0.01
    from scipy.special import digamma

    expected = (-digamma(3) + digamma(10) + 4 * math.log(2.0)) * 1.0
    assert tmi(tight, np.zeros(10, int)) == pytest.approx(expected)
    assert tmi(x, y, min_distance=0.0) == pytest.approx(
        _tmi_direct(x.astype(np.float64), y, min_distance=0.0), rel=1e-9
    )


# --- degenerate data: each estimator computes with its documented regularisation, or refuses
# with EstimatorUndefined (a ValueError) naming itself, why and what it needs.


def _degenerate(kind, seed=0):
    """Features [n, D] (float32, as `imprint transferability` passes them) and labels."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 12)
    x = rng.standard_normal((36, 8)) + 1.5 * y[:, None]
    if kind == "constant_columns":
        x[:, [1, 4]] = [2.5, -7.0]
    elif kind == "wide":  # n < D: 12 rows of 50 dimensions, 3 classes
        y = np.repeat(np.arange(3), 4)
        x = rng.standard_normal((12, 50)) + y[:, None]
    elif kind == "two_per_class":
        y = np.repeat(np.arange(3), 2)
        x = rng.standard_normal((6, 8)) + y[:, None]
    elif kind == "one_per_class":
        y = np.arange(3)
        x = rng.standard_normal((3, 8)) + 1.0
    elif kind == "identical_class":  # class 1's rows all equal, the others vary
        x[y == 1] = x[y == 1][0]
    elif kind == "every_class_identical":
        x = rng.standard_normal((3, 8))[y]
    elif kind == "all_identical":
        x = np.tile(rng.standard_normal((1, 8)), (36, 1))
    else:
        raise AssertionError(kind)
    return x.astype(np.float32), y


def _marginal(f, y, alpha, beta):
    """log N(y; 0, FFᵀ/α + I/β), the evidence written as y's marginal likelihood (n × n); β
    = inf: no noise term."""
    n = len(y)
    cov = f @ f.T / alpha + (np.eye(n) / beta if beta != math.inf else 0.0)
    sign, log_det = np.linalg.slogdet(cov)
    assert sign > 0
    return -n / 2 * math.log(2 * math.pi) - log_det / 2 - y @ np.linalg.solve(cov, y) / 2


def _marginal_by_svd(f):
    """_marginal for features F, from one SVD of F (O(n²) per evaluation instead of O(n³)):
    along F's left singular vectors u_i (singular values s_i above max(n, D)·eps of the
    largest) the covariance FFᵀ/α + I/β is s_i²/α + 1/β, off their span 1/β."""
    n, d = f.shape
    u, singular, _ = np.linalg.svd(f, full_matrices=False)
    keep = singular > singular[0] * max(n, d) * np.finfo(np.float64).eps
    u, sigma = u[:, keep], singular[keep] ** 2
    rank = sigma.size

    def marginal(f, y, alpha, beta):
        z2 = (u.T @ y) ** 2
        variance = sigma / alpha + (1 / beta if beta != math.inf else 0.0)
        value = -n / 2 * math.log(2 * math.pi) - np.log(variance).sum() / 2
        value -= (z2 / variance).sum() / 2
        if rank < n:  # the noise alone off span(U)
            rest = max(float(y @ y - z2.sum()), 0.0)
            value += (n - rank) / 2 * math.log(beta) - beta / 2 * rest
        return float(value)

    return marginal


def test_the_marginal_from_one_svd_equals_the_direct_one():
    rng = np.random.default_rng(5)
    for shape in ((30, 6), (8, 20)):
        f = rng.standard_normal(shape)
        y = (np.arange(shape[0]) % 3 == 1).astype(float)
        fast = _marginal_by_svd(f)
        betas = (0.3, 7.0, math.inf) if shape[0] < shape[1] else (0.3, 7.0)
        for alpha in (0.01, 2.0):
            for beta in betas:
                direct = _marginal(f, y, alpha, beta)
                assert fast(f, y, alpha, beta) == pytest.approx(direct, rel=1e-10)


def _evidence_supremum(f, y, marginal=_marginal):
    """sup over α, β > 0 of the marginal likelihood: Nelder-Mead in (log α, log β) from a few
    starts, and the two limits: α → ∞ (y ~ N(0, I/β), best at β = n/‖y‖²) and, where F has
    rank n, β → ∞ (maximised over α alone). `marginal`: how to compute it (_marginal, or
    _marginal_by_svd(f) for large F)."""
    from scipy.optimize import minimize_scalar

    n = len(y)
    values = [n / 2 * (math.log(n / (y @ y)) - math.log(2 * math.pi) - 1)]
    for start in ([0.0, 0.0], [5.0, 5.0], [-5.0, 5.0], [5.0, -2.0]):
        best = minimize(
            lambda p: -marginal(f, y, math.exp(p[0]), math.exp(p[1])),
            x0=start,
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20_000},
        )
        values.append(-best.fun)
    if np.linalg.matrix_rank(f) == n:
        limit = minimize_scalar(
            lambda a: -marginal(f, y, math.exp(a), math.inf),
            bounds=(-40, 40),
            method="bounded",
            options={"xatol": 1e-12},
        )
        values.append(-limit.fun)
    return max(values)


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
    from imprint.analysis.transferability import EstimatorUndefined

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


def _h_score_direct(x, y):
    """tr(pinv(cov f) cov(E[f | y])) with numpy's pinv (cut-off D·eps relative), dropping the
    columns that do not vary first (they add nothing to either covariance)."""
    f = np.asarray(x, dtype=np.float64)
    f = f[:, np.ptp(f, axis=0) > 0]
    if f.shape[1] == 0:
        return 0.0
    fc = f - f.mean(0)
    g = np.stack([fc[y == c].mean(0) for c in np.unique(y)])[np.searchsorted(np.unique(y), y)]
    cov = np.cov(fc.T, bias=True).reshape(f.shape[1], f.shape[1])
    between = np.cov(g.T, bias=True).reshape(f.shape[1], f.shape[1])
    pinv = np.linalg.pinv(cov, rcond=f.shape[1] * np.finfo(float).eps, hermitian=True)
    return float(np.trace(pinv @ between))


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


def _loo_direct(x, y, k=20, temperature=0.07, queries=None, candidates=None):
    """Leave-one-out weighted kNN (cosine, exp(s / T) votes), ties to the lower row: each of
    the `queries` rows (None: every row) classified by every other row (of `candidates`, None:
    every row)."""
    xn = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    queries = range(len(y)) if queries is None else queries
    candidates = range(len(y)) if candidates is None else candidates
    correct = 0
    for i in queries:
        sims = xn @ xn[i]
        others = sorted((j for j in candidates if j != i), key=lambda j: (-sims[j], j))[:k]
        votes = np.zeros(y.max() + 1)
        for j in others:
            votes[y[j]] += np.exp(sims[j] / temperature)
        correct += int(np.argmax(votes) == y[i])
    return 100 * correct / len(queries)


@pytest.mark.parametrize("temperature", [0.5, 5.0])
def test_leave_one_out_knn_votes_with_the_given_temperature(temperature):
    from imprint.analysis.transferability import loo_knn_accuracy

    rng = np.random.default_rng(6)
    y = np.arange(60) % 3
    x = (rng.standard_normal((60, 5)) + 0.6 * y[:, None]).astype(np.float32)
    expected = _loo_direct(x, y, k=20, temperature=temperature)
    assert expected != _loo_direct(x, y, k=20)  # 38.3 % here, 53.3 % at T = 0.07
    got = loo_knn_accuracy(x, y, k=20, temperature=temperature, queries=None)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 3])
def test_sampled_leave_one_out_knn_keeps_every_other_row_as_a_candidate(seed):
    # More rows than queries: a seeded sample of query rows (numpy's generator, without
    # replacement), each classified by all 199 other rows — other sampled rows included.
    from imprint.analysis.transferability import loo_knn_accuracy

    rng = np.random.default_rng(8)
    y = np.arange(200) % 4
    x = (rng.standard_normal((200, 6)) + 2.4 * np.eye(6)[y]).astype(np.float32)
    queries = np.random.default_rng(seed).choice(200, size=150, replace=False)
    expected = _loo_direct(x, y, k=5, queries=queries)
    got = loo_knn_accuracy(x, y, k=5, queries=150, seed=seed)
    assert got == pytest.approx(expected, abs=1e-12)
    # The wrong version this guards against: the other sampled rows dropped as candidates.
    others = np.setdiff1d(np.arange(200), queries)
    assert expected != _loo_direct(x, y, k=5, queries=queries, candidates=others)


@pytest.mark.parametrize("kind", ["constant_columns", "wide", "two_per_class", "one_per_class"])
def test_leave_one_out_knn_on_degenerate_features_equals_a_direct_loop(kind):
    from imprint.analysis.transferability import loo_knn_accuracy

    x, y = _degenerate(kind)
    assert loo_knn_accuracy(x, y, queries=None) == pytest.approx(_loo_direct(x, y))
    if kind == "one_per_class":
        assert loo_knn_accuracy(x, y) == 0.0  # no other row of its class to vote for it


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("one_per_class", "NCTI needs a class of at least 2 rows: .* every class here has 1 row"),
        ("every_class_identical", "NCTI needs a class whose rows are not all identical"),
        ("all_identical", "NCTI needs a class whose rows are not all identical"),
    ],
)
def test_ncti_refuses_data_without_within_class_variation(kind, message):
    from imprint.analysis.transferability import EstimatorUndefined, ncti_components

    x, y = _degenerate(kind)
    with pytest.raises(EstimatorUndefined, match=message):
        ncti_components(x, y)


def _lda_svd_terms_direct(z, y):
    """ncti_etf and ncti_ncc of the unshrunk discriminant on scores z whose within-class
    covariance is invertible: Gaussian posteriors with the pooled within-class scatter / n
    (what scikit-learn 1.9's 'svd' solver whitens by), and the projections on the generalised
    eigenvectors of the between- against that covariance (Vᵀ Sw V = I), centred, their
    nuclear norm."""
    from scipy.linalg import eigh

    classes = np.unique(y)
    n, c = len(z), len(classes)
    means = np.array([z[y == k].mean(axis=0) for k in classes])
    resid = z - means[y]
    within = resid.T @ resid
    inv = np.linalg.inv(within / n)
    priors = np.array([np.mean(y == k) for k in classes])
    logits = z @ inv @ means.T - 0.5 * np.einsum("cd,de,ce->c", means, inv, means)
    logits += np.log(priors)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    centred = means - priors @ means
    between = (centred * priors[:, None]).T @ centred
    values, vectors = eigh(between, within / n)
    projected = z @ vectors[:, np.argsort(values)[::-1][: c - 1]]
    projected -= projected.mean(axis=0)
    return np.linalg.svd(projected, compute_uv=False).sum(), p[np.arange(n), y].mean()


def _ncti_unshrunk_terms_direct(z, y, tol=1e-4):
    """NCTI's three terms with the unshrunk discriminant on scores z, its within-class
    covariance (pooled scatter / n) inverted on its range only, as scikit-learn's 'svd' solver
    does: in coordinates scaled by each column's within-class standard deviation, directions
    whose singular value (of the scaled residuals / √n) is at most `tol` dropped. Then Gaussian
    posteriors with identity covariance in the whitened coordinates (ncc, vc), and the rows
    projected on the leading C − 1 principal directions of the prior-weighted class means
    there, centred, their nuclear norm (etf)."""
    classes = np.unique(y)
    n, c = len(z), len(classes)
    index = np.searchsorted(classes, y)
    priors = np.bincount(index) / n
    means = np.array([z[index == k].mean(axis=0) for k in range(c)])
    resid = z - means[index]
    scale = resid.std(axis=0)
    scale[scale == 0] = 1.0
    _, singular, vt = np.linalg.svd(resid / scale / math.sqrt(n), full_matrices=False)
    keep = singular > tol
    whiten = (vt[keep] / scale).T / singular[keep]
    zw, mw = z @ whiten, means @ whiten
    logits = zw @ mw.T - 0.5 * (mw**2).sum(axis=1) + np.log(priors)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    centred = mw - priors @ mw
    values, vectors = np.linalg.eigh((centred * priors[:, None]).T @ centred)
    projected = zw @ vectors[:, np.argsort(values)[::-1][: c - 1]]
    projected -= projected.mean(axis=0)
    nuclear = sum(np.linalg.svd(p[index == k], compute_uv=False).sum() for k in range(c))
    return {
        "ncti_etf": np.linalg.svd(projected, compute_uv=False).sum(),
        "ncti_ncc": p[np.arange(n), index].mean(),
        "ncti_vc": math.log(nuclear),
    }


def _ncti_terms_direct(x, y):
    """NCTI's three terms of features x [n, D] as its paper's code defines them: exact PCA by
    numpy's SVD of the centred rows, the leading min(64, n, D) components kept, shrinkage
    exp(−Σ of the 32 leading variances); above 1e-10 the shrunk discriminant, else the
    unshrunk one on the components whose variance is above rounding noise
    (λ_max · max(n, D) · eps)."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    centred = x - x.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    variances = singular**2 / (n - 1)
    dims = min(64, n, d)
    z, variances = centred @ vt[:dims].T, variances[:dims]
    shrinkage = math.exp(-variances[:32].sum())
    if shrinkage > 1e-10:
        return _ncti_shrunk_terms_direct(z, y, shrinkage)
    signal = variances > variances[0] * max(n, d) * np.finfo(np.float64).eps
    return _ncti_unshrunk_terms_direct(z[:, signal], y)


def test_ncti_unshrunk_with_a_singular_within_class_covariance_uses_its_pseudo_inverse():
    # 12 rows in 50 dimensions, 3 classes: 11 centred directions, of which the within-class
    # residuals span 9 — scikit-learn's 'svd' solver inverts that covariance on its range.
    from imprint.analysis.transferability import ncti_components

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
    from imprint.analysis.transferability import ncti_components

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
    from imprint.analysis.transferability import ncti_components

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

    from imprint.analysis.transferability import ncti_components

    rng = np.random.default_rng(3)
    y = np.r_[np.repeat([0, 1], 10), [2]]
    x = 0.1 * rng.standard_normal((21, 6)) + 0.1 * y[:, None]  # shrunk: the 'eigen' solver
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        terms = ncti_components(x, y)
    assert all(math.isfinite(v) for v in terms.values())


@pytest.mark.parametrize(
    ("kind", "largest"), [("two_per_class", "2 rows"), ("one_per_class", "1 row")]
)
def test_tmi_refuses_classes_too_small_for_a_kth_neighbour(kind, largest):
    from imprint.analysis.transferability import EstimatorUndefined, tmi

    x, y = _degenerate(kind)
    with pytest.raises(EstimatorUndefined, match="TMI needs a class of at least k \\+ 1 = 4 rows"):
        tmi(x, y)
    with pytest.raises(ValueError, match=f"the largest class here has {largest}$"):
        tmi(x, y)
    if kind == "two_per_class":  # with k = 1, 2 rows per class are enough
        expected = _tmi_direct(x.astype(np.float64), y, k=1)
        assert tmi(x, y, k=1) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("kind", ["constant_columns", "wide", "identical_class", "all_identical"])
def test_tmi_on_degenerate_features_is_the_floored_estimate(kind):
    from scipy.special import digamma

    from imprint.analysis.transferability import tmi

    x, y = _degenerate(kind)
    assert tmi(x, y) == pytest.approx(_tmi_direct(x.astype(np.float64), y), rel=1e-9)
    if kind == "all_identical":
        # Every distance 0, floored to 1: h_c = −ψ(3) + ψ(12) + 8 log 2 for each class.
        h = -digamma(3) + digamma(12) + 8 * math.log(2.0)
        assert tmi(x, y) == pytest.approx(12 / 36 * h, rel=1e-12)


def test_tmi_without_a_distance_floor_refuses_repeated_rows():
    from imprint.analysis.transferability import EstimatorUndefined, tmi

    x, y = _degenerate("identical_class")
    with pytest.raises(
        EstimatorUndefined, match="TMI with min_distance=0 .* class 1 has 4 or more identical rows"
    ):
        tmi(x, y, min_distance=0.0)


def _stats(x, y):
    from imprint.analysis.collapse import class_statistics, collapse_metrics

    stats = class_statistics(x, y, l2_normalise=True)
    return stats, collapse_metrics(stats)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("one_per_class", "{} needs a class of at least 2 rows .* every class here has 1 row"),
        ("all_identical", "{} is undefined here: the class means .* coincide"),
    ],
)
@pytest.mark.parametrize("name", ["nc1", "vci"])
def test_nc1_and_vci_refuse_data_they_are_undefined_on(kind, message, name):
    from imprint.analysis.transferability import EstimatorUndefined, collapse_estimate

    x, y = _degenerate(kind)
    with pytest.raises(EstimatorUndefined, match=message.format(name.upper())):
        collapse_estimate(name, *_stats(x, y))


@pytest.mark.parametrize(
    "kind", ["wide", "two_per_class", "constant_columns", "every_class_identical"]
)
def test_nc1_on_degenerate_features_equals_its_formula(kind):
    from imprint.analysis.transferability import collapse_estimate

    x, y = _degenerate(kind)
    u = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    means = np.stack([u[y == c].mean(0) for c in range(3)])
    sigma_w = np.mean([np.cov(u[y == c].T, bias=True) for c in range(3)], axis=0)
    centred = means - u.mean(0)
    sigma_b = centred.T @ centred / 3
    pinv = np.linalg.pinv(sigma_b, rcond=1e-10, hermitian=True)
    expected = np.trace(sigma_w @ pinv) / 3
    assert collapse_estimate("nc1", *_stats(x, y)) == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_agreement_skips_an_estimator_left_undefined():
    import pandas as pd

    from imprint.analysis.agreement import estimator_agreement

    table = pd.DataFrame(
        {
            "dataset": ["d"] * 3,
            "mapping": ["none"] * 3,
            "task": ["a"] * 3,
            "backbone": ["p", "q", "r"],
            "tmi": [None, None, None],  # null in every JSON
            "logme": [3.0, None, 1.0],
            "best_imprinting": [90.0, 80.0, 70.0],
        }
    )
    out = estimator_agreement(table).set_index(["task", "estimator"])
    assert math.isnan(out.loc[("a", "tmi"), "tau"])
    assert out.loc[("a", "logme"), "tau"] == pytest.approx(1.0)  # the two defined ones


# --- through the command: exit code, one line per warning, strict JSON.

# The warning lines each kind must print, in order: the words each line must contain.
CLI_CASES = {
    "constant_columns": [],
    "wide": [],
    "two_per_class": [("TMI needs a class of at least k + 1 = 4 rows", "largest class here has 2")],
    "one_per_class": [
        ("NCTI needs a class of at least 2 rows", "every class here has 1 row"),
        ("TMI needs a class of at least k + 1 = 4 rows", "largest class here has 1 row"),
        ("NC1 needs a class of at least 2 rows", "every class here has 1 row"),
        ("VCI needs a class of at least 2 rows", "every class here has 1 row"),
    ],
    "all_identical": [
        ("NCTI needs a class whose rows are not all identical",),
        ("NC1 is undefined here", "class means", "coincide"),
        ("VCI is undefined here", "class means", "coincide"),
    ],
    "every_class_identical": [
        ("LogME is unbounded (+inf)", "class 0"),
        ("NCTI needs a class whose rows are not all identical",),
    ],
}
NULLS = {
    "two_per_class": {"tmi"},
    "one_per_class": {"ncti_etf", "ncti_ncc", "ncti_vc", "tmi", "nc1", "vci"},
    "all_identical": {"ncti_etf", "ncti_ncc", "ncti_vc", "nc1", "vci"},
    "every_class_identical": {"logme", "ncti_etf", "ncti_ncc", "ncti_vc"},
}


def _strict_json(text):
    def refuse(constant):
        raise AssertionError(f"{constant} in the JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("kind", list(CLI_CASES))
def test_transferability_command_on_degenerate_data(kind, tmp_path, capsys):
    from imprint.cli import main

    x, y = _degenerate(kind)
    path, out = tmp_path / "train.npz", tmp_path / "t.json"
    np.savez(path, embeddings=x, labels=y)
    assert main(["transferability", str(path), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "RuntimeWarning" not in err
    lines = err.splitlines()
    expected = CLI_CASES[kind]
    assert len(lines) == len(expected), err  # one line per undefined estimator
    for line, words in zip(lines, expected, strict=True):
        assert line.startswith("imprint transferability: warning: "), err
        assert all(w in line for w in words), err
    result = _strict_json(out.read_text())
    nulls = {key for key, value in result.items() if value is None}
    assert nulls == NULLS.get(kind, set())
    assert all(math.isfinite(v) for v in result.values() if v is not None)
    assert result["n_samples"] == len(y) and result["n_classes"] == 3


def test_transferability_command_still_refuses_invalid_input(tmp_path, capsys):
    from imprint.cli import main

    path = tmp_path / "train.npz"
    np.savez(path, embeddings=np.ones((4, 3), np.float32), labels=np.zeros(4, int))
    assert main(["transferability", str(path), "--out", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imprint transferability: error: ") and "at least 2 classes" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "t.json").exists()


# --- The checks above catch known wrong versions of the estimators: each wrong version applied
# by wrapping (or replacing) what the library calls, for this test only.


def _wrong_version(kind, monkeypatch):
    """Make the library a known wrong version, by wrapping what it calls; returns the list of
    calls of the wrapper.
      loo_ignores_temperature: aggregate.vote given T = 0.07 whatever loo_knn_accuracy passes;
      loo_drops_sampled_queries: the sampled leave-one-out kNN's candidates are the rows not
          sampled as queries (each query's own row kept, for loo_knn_accuracy to drop);
      ncti_uncapped: NCTI's PCA keeps every component, not the leading 64;
      ncti_shrunk_by_kept / ncti_shrunk_by_features: the LDA's shrinkage exp(−Σ) of the
          variances of all 64 kept components / of all the features, not of the leading 32;
      ncti_whole_table / ncti_per_task: with_ncti min-max normalises over the whole table /
          over each task name, not within each (dataset, mapping, task)."""
    import sklearn.decomposition as decomposition
    import sklearn.discriminant_analysis as discriminant_analysis

    import imprint.analysis.agreement as agreement
    import imprint.analysis.transferability as transferability
    import imprint.engine.aggregate as aggregate

    calls = []
    if kind == "loo_ignores_temperature":
        real_vote = aggregate.vote

        def vote(neighbour_class, neighbour_dist, ms, weighting, n_classes, temperature=None):
            calls.append(temperature)
            return real_vote(neighbour_class, neighbour_dist, ms, weighting, n_classes, 0.07)

        monkeypatch.setattr(aggregate, "vote", vote)
    elif kind == "loo_drops_sampled_queries":
        real_nearest = aggregate.nearest_proxies

        def nearest(test, proxies, distance, m, *args, **kwargs):
            calls.append(m)
            # Which candidate rows are queries (these data have no repeated rows).
            same = (proxies[:, None, :] == test[None, :, :]).all(dim=2)  # [candidates, queries]
            sampled, own = same.any(dim=1), same.int().argmax(dim=0)
            if bool(sampled.all()):  # every row a query: nothing to drop
                return real_nearest(test, proxies, distance, m, *args, **kwargs)
            found, rows = real_nearest(test, proxies, distance, len(proxies), *args, **kwargs)
            keep = ~sampled[rows] | (rows == own[:, None])  # as many in each row
            n = len(test)
            return found[keep].view(n, -1)[:, :m], rows[keep].view(n, -1)[:, :m]

        monkeypatch.setattr(aggregate, "nearest_proxies", nearest)
    elif kind == "ncti_uncapped":
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
                    self.shrinkage = max(math.exp(-spread), transferability.NCTI_SHRINKAGE_FLOOR)
                return super().fit(z, y)

        monkeypatch.setattr(decomposition, "PCA", RecordingPCA)
        monkeypatch.setattr(discriminant_analysis, "LinearDiscriminantAnalysis", WronglyShrunk)
    elif kind in ("ncti_whole_table", "ncti_per_task"):
        real_with_ncti = agreement.with_ncti
        # The group columns made one value: one group, or one per task name.
        merged = ["dataset", "mapping"] + (["task"] if kind == "ncti_whole_table" else [])

        def with_ncti(table):
            calls.append(len(table))
            out = real_with_ncti(table.assign(**dict.fromkeys(merged, "one group")))
            out[merged] = table[merged]
            return out

        monkeypatch.setattr(agreement, "with_ncti", with_ncti)
    else:
        raise ValueError(kind)
    return calls


@pytest.mark.parametrize(
    "kind, check, args",
    [
        (
            "loo_ignores_temperature",
            test_leave_one_out_knn_votes_with_the_given_temperature,
            (5.0,),
        ),
        (
            "loo_drops_sampled_queries",
            test_sampled_leave_one_out_knn_keeps_every_other_row_as_a_candidate,
            (0,),
        ),
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
