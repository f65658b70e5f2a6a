"""LogME, H-score and linear CKA against direct computations of their papers' equations."""

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
    from imprint.analysis.transferability import weighted_kendall_tau

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

    from imprint.analysis.transferability import estimator_agreement

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

    from imprint.analysis.transferability import achieved_accuracies
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


def test_ncti_terms_equal_their_equations_with_shrinkage():
    from scipy.linalg import eigh

    from imprint.analysis.transferability import ncti_components

    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), 30)
    # Small variances (Σ of the leading 32 PCA variances ≈ 2.6): a shrinkage of e^-2.6.
    x = 0.08 * rng.standard_normal((120, 20)) + 0.05 * rng.standard_normal((4, 20))[y]
    terms = ncti_components(x, y)
    z, variances = _pca_direct(x, 20)
    shrinkage = math.exp(-variances[:32].sum())
    assert shrinkage > 1e-10
    posterior, within, means = _lda_posterior_direct(z, y, shrinkage)
    assert terms["ncti_ncc"] == pytest.approx(posterior[np.arange(120), y].mean(), rel=1e-8)
    nuclear = sum(np.linalg.svd(posterior[y == c], compute_uv=False).sum() for c in range(4))
    assert terms["ncti_vc"] == pytest.approx(math.log(nuclear), rel=1e-8)
    # The discriminant directions: the leading C - 1 generalised eigenvectors of the between-
    # against the within-class scatter (Vᵀ Sw V = I), the rows projected and centred.
    total = np.cov(z.T, bias=True)
    total = (1 - shrinkage) * total + shrinkage * np.trace(total) / 20 * np.eye(20)
    values, vectors = eigh(total - within, within)
    top = vectors[:, np.argsort(values)[::-1][:3]]
    projected = z @ top
    projected -= projected.mean(axis=0)
    expected = np.linalg.svd(projected, compute_uv=False).sum()
    assert terms["ncti_etf"] == pytest.approx(expected, rel=1e-6)


def test_ncti_ranks_across_backbones_by_min_max_terms():
    from imprint.analysis.transferability import ncti_scores

    # By hand: ncc (0.9, 0.7, 0.8) → (1, 0, 0.5); etf (10, 30, 20) → (0, 1, 0.5);
    # vc (1, 3, 2) → (0, 1, 0.5); NCTI = ncc + etf − vc.
    scores = ncti_scores([10, 30, 20], [0.9, 0.7, 0.8], [1, 3, 2])
    np.testing.assert_allclose(scores, [1.0, 0.0, 0.5])
    np.testing.assert_allclose(ncti_scores([1, 1], [0.5, 0.6], [2, 2]), [0.0, 1.0])


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
