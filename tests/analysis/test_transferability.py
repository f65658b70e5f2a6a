"""The estimators' equations computed directly from their papers (the references the estimator
tests in test_transferability_*.py compare the library with, and tests/workflow/test_workflow.py
too), the degenerate data sets, and `imprint transferability` on the latter: exit code, one
warning line per undefined estimate, strict JSON."""

import json
import math

import numpy as np
import pytest
from scipy.optimize import minimize


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


def _stats(x, y):
    from imprint.analysis.collapse import class_statistics, collapse_metrics

    stats = class_statistics(x, y, l2_normalise=True)
    return stats, collapse_metrics(stats)


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
        ("SFDA needs a class whose rows are not all identical",),
        ("PARC needs a dissimilarity matrix that is not constant", "one row per class"),
        ("GBC needs a class whose rows are not all identical",),
    ],
    "all_identical": [
        ("NCTI needs a class whose rows are not all identical",),
        ("NC1 is undefined here", "class means", "coincide"),
        ("VCI is undefined here", "class means", "coincide"),
        ("SFDA needs a class whose rows are not all identical",),
        ("NLEEP needs rows that vary",),
        ("PARC needs rows whose principal components are not all equal",),
        ("GBC needs a class whose rows are not all identical",),
    ],
    "every_class_identical": [
        ("LogME is unbounded (+inf)", "class 0"),
        ("NCTI needs a class whose rows are not all identical",),
        ("SFDA needs a class whose rows are not all identical",),
        ("GBC needs a class whose rows are not all identical",),
        ("PED (LogME of the moved rows) is undefined here", "LogME is unbounded (+inf)"),
    ],
}


# parameter_count: a .npz records no backbone size, so null (with no warning) everywhere.
NULLS = {
    "constant_columns": {"parameter_count"},
    "wide": {"parameter_count"},
    "two_per_class": {"tmi", "parameter_count"},
    "one_per_class": {"ncti_etf", "ncti_ncc", "ncti_vc", "tmi", "nc1", "vci", "sfda", "parc"}
    | {"gbc", "parameter_count"},
    "all_identical": {"ncti_etf", "ncti_ncc", "ncti_vc", "nc1", "vci", "sfda", "nleep", "parc"}
    | {"gbc", "parameter_count"},
    "every_class_identical": {"logme", "ncti_etf", "ncti_ncc", "ncti_vc", "sfda", "gbc", "ped"}
    | {"parameter_count"},
}


def _strict_json(text):
    def refuse(constant):
        raise AssertionError(f"{constant} in the JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("kind", list(CLI_CASES))
def test_transferability_command_on_degenerate_data(kind, tmp_path, capsys):
    from imprint.cli.main import main

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
    assert nulls == NULLS[kind]
    assert all(math.isfinite(v) for v in result.values() if v is not None)
    assert result["n_samples"] == len(y) and result["n_classes"] == 3


def test_transferability_command_still_refuses_invalid_input(tmp_path, capsys):
    from imprint.cli.main import main

    path = tmp_path / "train.npz"
    np.savez(path, embeddings=np.ones((4, 3), np.float32), labels=np.zeros(4, int))
    assert main(["transferability", str(path), "--out", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imprint transferability: error: ") and "at least 2 classes" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "t.json").exists()
