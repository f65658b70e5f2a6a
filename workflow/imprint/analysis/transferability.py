"""Transferability estimators: how well a frozen representation should transfer to a task,
from the task's training embeddings alone (no classifier is trained).

LogME (You et al., ICML 2021): per class k, the log marginal likelihood (evidence) of a
Bayesian linear regression of the one-hot target y_k on the features F [n, D], with prior
w ~ N(0, α⁻¹ I) and noise N(0, β⁻¹), maximised over α and β; LogME is the maximum divided by
n and averaged over the classes. With A = αI + βFᵀF and m = βA⁻¹Fᵀy:
    L(α, β) = D/2 log α + n/2 log β − n/2 log 2π − β/2 ‖Fm − y‖² − α/2 ‖m‖² − 1/2 log|A|,
maximised by the paper's fixed point γ = Σ_i βσ_i / (α + βσ_i) (σ_i the eigenvalues of FᵀF),
α = γ / ‖m‖², β = (n − γ) / ‖Fm − y‖², from α = β = 1, in the eigenbasis of FᵀF (one
eigendecomposition per task, every class and iteration then costs O(D)).

H-score (Bao et al., ICIP 2019): tr(cov(f)⁻¹ cov(E[f | y])), the feature covariance's
(pseudo-)inverse against the covariance of the class-conditional means (each row replaced by
its class mean), both with the 1/n normalisation.

TMI (Xu & Kang, ICCV 2023): the intra-class feature variance as a kNN estimate of the
conditional entropy H(X | Y) (tmi).

NCTI (Wang et al., ICCV 2023): how far the features are from neural collapse on the task,
three terms of a shrunk linear discriminant analysis (ncti_components), combined across the
candidate backbones (ncti_scores). Then the agreement of every estimator with the accuracies
reached: weighted Kendall τ across backbones per task (estimator_agreement).
"""

from __future__ import annotations

import math

import numpy as np

LOGME_MAX_ITER = 100
LOGME_TOLERANCE = 1e-5  # relative change of α and β between iterations


def _one_hot(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    classes, index = np.unique(labels, return_inverse=True)
    if classes.size < 2:
        raise ValueError(
            f"a transferability estimate needs at least 2 classes, got {classes.tolist()}"
        )
    return classes, np.eye(classes.size)[index]


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of features [n, D] for integer labels [n] (higher: expected to transfer better)."""
    f = np.asarray(features, dtype=np.float64)
    n, dim = f.shape
    _, targets = _one_hot(np.asarray(labels))
    sigma, projected = _eigen_projection(f, targets)
    s = np.sqrt(sigma)
    residual_outside = (targets**2).sum(axis=0) - (projected**2).sum(axis=0)  # ‖y‖² off span(U)
    evidences = []
    for k in range(targets.shape[1]):
        z, rest = projected[:, k], max(float(residual_outside[k]), 0.0)
        alpha, beta = 1.0, 1.0
        for _ in range(LOGME_MAX_ITER):
            shrink = beta * sigma / (alpha + beta * sigma)  # per eigen-direction
            gamma = float(shrink.sum())
            m2 = float(((beta * s * z / (alpha + beta * sigma)) ** 2).sum())  # ‖m‖²
            res2 = float((((1 - shrink) * z) ** 2).sum()) + rest  # ‖Fm − y‖²
            new_alpha, new_beta = gamma / max(m2, 1e-300), (n - gamma) / max(res2, 1e-300)
            done = (
                abs(new_alpha - alpha) <= LOGME_TOLERANCE * alpha
                and abs(new_beta - beta) <= LOGME_TOLERANCE * beta
            )
            alpha, beta = new_alpha, new_beta
            if done:
                break
        evidences.append(_log_evidence(alpha, beta, sigma, s, z, rest, n, dim) / n)
    return float(np.mean(evidences))


def _eigen_projection(f: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positive eigenvalues σ of FᵀF (= squared singular values of F) and Uᵀy of every
    target column, U the matching left singular vectors. From the smaller Gram matrix (FᵀF,
    D × D, or FFᵀ, n × n): one product and one symmetric eigendecomposition instead of an SVD
    of F (60,000 × 2,048: ~10× faster here)."""
    n, dim = f.shape
    if n >= dim:
        sigma, v = np.linalg.eigh(f.T @ f)
        keep = sigma > sigma.max(initial=0.0) * max(n, dim) * np.finfo(np.float64).eps
        sigma, v = sigma[keep], v[:, keep]
        # Uᵀy = S⁻¹ Vᵀ Fᵀ y
        return sigma, (v.T @ (f.T @ targets)) / np.sqrt(sigma)[:, None]
    sigma, u = np.linalg.eigh(f @ f.T)
    keep = sigma > sigma.max(initial=0.0) * max(n, dim) * np.finfo(np.float64).eps
    return sigma[keep], u[:, keep].T @ targets


def _log_evidence(alpha, beta, sigma, s, z, rest, n, dim) -> float:
    """L(α, β) in the eigenbasis (see the module docstring); directions of FᵀF beyond the rank
    have σ = 0 and add log α to log|A|."""
    m = beta * s * z / (alpha + beta * sigma)
    res2 = float((((alpha / (alpha + beta * sigma)) * z) ** 2).sum()) + rest
    log_det = float(np.log(alpha + beta * sigma).sum()) + (dim - sigma.size) * math.log(alpha)
    return (
        dim / 2 * math.log(alpha)
        + n / 2 * math.log(beta)
        - n / 2 * math.log(2 * math.pi)
        - beta / 2 * res2
        - alpha / 2 * float((m**2).sum())
        - log_det / 2
    )


def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score: tr(pinv(cov f) · cov(E[f | y])) (higher: more discriminative features)."""
    f = np.asarray(features, dtype=np.float64)
    _, one_hot = _one_hot(np.asarray(labels))
    n = f.shape[0]
    f = f - f.mean(axis=0)
    cov_f = f.T @ f / n
    counts = one_hot.sum(axis=0)
    means = (one_hot.T @ f) / counts[:, None]  # class means, centred
    # cov(E[f|y]) = Σ_c (n_c/n) μ_c μ_cᵀ, so the trace is Σ_c (n_c/n) μ_cᵀ pinv(cov f) μ_c,
    # the pseudo-inverse by eigendecomposition (eigenvalues below the rounding floor dropped).
    values, vectors = np.linalg.eigh(cov_f)
    keep = values > values.max(initial=0.0) * cov_f.shape[0] * np.finfo(np.float64).eps
    projected = (means @ vectors[:, keep]) ** 2 / values[keep]
    return float((counts / n) @ projected.sum(axis=1))


LOO_QUERIES = 5000  # query rows of leave-one-out kNN (every row stays a candidate neighbour)


def loo_knn_accuracy(
    features: np.ndarray,
    labels: np.ndarray,
    k: int = 20,
    temperature: float = 0.07,
    queries: int | None = LOO_QUERIES,
    seed: int = 0,
) -> float:
    """Leave-one-out accuracy (percent) of dinov2's weighted kNN (engine/baselines.py) on the
    training rows: each query row is classified by its k most cosine-similar other rows.
    `queries`: a seeded sample of that many query rows (None: every row), so a 60,000-row set
    costs a 5,000 × 60,000 product, not 60,000²."""
    import torch

    from imprint.engine.aggregate import nearest_proxies, vote

    _, index = np.unique(np.asarray(labels), return_inverse=True)
    n = index.shape[0]
    if n < 2:
        raise ValueError("leave-one-out kNN needs at least 2 rows")
    rows = np.arange(n)
    if queries is not None and queries < n:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=queries, replace=False))
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    classes = torch.from_numpy(index)
    depth = min(k + 1, n)
    correct = 0
    for start in range(0, rows.size, 2048):
        query = torch.from_numpy(rows[start : start + 2048])
        distances, neighbours = nearest_proxies(x[query], x, "cosine", depth)
        # Drop the query itself (wherever ties put it); if duplicates pushed it out of the
        # list, drop the last neighbour instead, keeping k.
        own = neighbours == query[:, None]
        own[~own.any(dim=1), -1] = True
        keep = ~own
        neighbours = neighbours[keep].view(len(query), depth - 1)
        distances = distances[keep].view(len(query), depth - 1)
        n_classes = int(classes.max()) + 1
        pred = vote(
            classes[neighbours], distances, [depth - 1], "exp_similarity", n_classes, temperature
        )[depth - 1]
        correct += int((pred == classes[query]).sum())
    return 100.0 * correct / rows.size


NCTI_DIMENSIONS = 64  # PCA components the discriminant analysis sees
NCTI_SHRINKAGE_COMPONENTS = 32  # the leading PCA variances that set its shrinkage
NCTI_SHRINKAGE_FLOOR = 1e-10


def ncti_components(features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The three terms of NCTI (Wang et al., ICCV 2023) for one backbone on one task.

    As the authors' code computes them: the features are reduced to their 64 leading principal
    components (exact PCA here; the authors' scikit-learn default is a randomised one); a linear
    discriminant analysis is fitted on them with shrinkage s = max(exp(−Σ of the 32 leading
    PCA variances), 1e-10) — at the floor, scikit-learn's unshrunk 'svd' solver, else the
    'eigen' solver with that shrinkage. Then
      ncti_etf: the nuclear norm of the centred discriminant projections (how far the class
          structure spreads towards a simplex),
      ncti_ncc: the mean posterior of each row's own class (nearest-centre fit),
      ncti_vc: log of the sum over classes of the nuclear norm of that class's posterior
          matrix (within-class variability of the predictions; lower is more collapsed).
    NCTI itself compares backbones: each term is min-max normalised across the candidates of a
    task, NCTI = ncc + etf − vc (ncti_scores).
    """
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    x = np.asarray(features, dtype=np.float64)
    classes, index = _one_hot(np.asarray(labels))[0], np.unique(labels, return_inverse=True)[1]
    dims = min(NCTI_DIMENSIONS, x.shape[0], x.shape[1])
    pca = PCA(n_components=dims, svd_solver="covariance_eigh")
    z = pca.fit_transform(x)
    spread = float(pca.explained_variance_[:NCTI_SHRINKAGE_COMPONENTS].sum())
    shrinkage = max(math.exp(-spread), NCTI_SHRINKAGE_FLOOR)
    if shrinkage == NCTI_SHRINKAGE_FLOOR:
        lda = LinearDiscriminantAnalysis(solver="svd")
    else:
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage)
    projected = lda.fit(z, index).transform(z)
    projected = projected - projected.mean(axis=0)
    posterior = lda.predict_proba(z)
    per_class = sum(
        float(np.linalg.norm(posterior[index == c], ord="nuc")) for c in range(classes.size)
    )
    return {
        "ncti_etf": float(np.linalg.norm(projected, ord="nuc")),
        "ncti_ncc": float(posterior[np.arange(index.size), index].mean()),
        "ncti_vc": math.log(per_class),
    }


def ncti_scores(etf, ncc, vc) -> np.ndarray:
    """NCTI of each candidate backbone from its three terms (ncti_components): each term
    min-max normalised across the candidates, ncc + etf − vc. A term equal for every candidate
    contributes 0."""

    def scaled(values):
        v = np.asarray(values, dtype=float)
        span = np.nanmax(v) - np.nanmin(v) if np.isfinite(v).any() else 0.0
        return (v - np.nanmin(v)) / span if span > 0 else np.zeros_like(v)

    return scaled(ncc) + scaled(etf) - scaled(vc)


TMI_NEIGHBOURS = 3
TMI_MIN_DISTANCE = 1.0


def tmi(
    features: np.ndarray,
    labels: np.ndarray,
    k: int = TMI_NEIGHBOURS,
    min_distance: float = TMI_MIN_DISTANCE,
) -> float:
    """TMI (Xu & Kang, ICCV 2023): the intra-class feature variance as the conditional entropy
    H(X | Y) in nats, with the authors' estimator and defaults: per class c of n_c rows in D
    dimensions, the Kozachenko-Leonenko entropy with the max norm,
        h_c = −ψ(k) + ψ(n_c) + (D / n_c) Σ_i log(2 ε_i),
    ε_i the Chebyshev distance from row i to its k-th nearest other row of the class, raised to
    at least `min_distance` (their 1.0); then the mean over classes of (n_c / n) · h_c. As in
    their code, a class of one row contributes 0 and a class of 2..k rows (no k-th neighbour)
    is left out of the mean. Higher: more intra-class variance, expected to transfer better.
    The neighbour lists are the engine's exact Chebyshev ones (engine/distances.py).
    """
    import torch
    from scipy.special import digamma

    from imprint.engine.aggregate import nearest_proxies

    x = np.ascontiguousarray(features, dtype=np.float32)
    _, index = np.unique(np.asarray(labels), return_inverse=True)
    n, dim = x.shape
    terms = []
    for c in range(int(index.max()) + 1):
        rows = torch.from_numpy(x[index == c])
        n_c = rows.shape[0]
        if n_c <= 1:
            terms.append(0.0)
            continue
        if n_c <= k:
            continue
        distances, _ = nearest_proxies(rows, rows, "chebyshev", k + 1)  # itself included
        eps = np.maximum(distances[:, -1].numpy(), min_distance)
        h = -digamma(k) + digamma(n_c) + dim / n_c * float(np.log(2.0 * eps).sum())
        terms.append(n_c / n * h)
    return float(np.mean(terms))


# The estimators of a transferability table, each with the sign that makes "higher predicts a
# better accuracy": NC1 and VCI measure how little the classes have collapsed, so they enter
# negated.
ESTIMATORS = {
    "ncti": 1.0,
    "tmi": 1.0,
    "logme": 1.0,
    "h_score": 1.0,
    "loo_knn_accuracy": 1.0,
    "nc1": -1.0,
    "vci": -1.0,
}
TARGETS = ("best_imprinting", "linear_probe")
AGREEMENT_GROUPS = ("dataset", "mapping", "task")


def weighted_kendall_tau(estimates, accuracies) -> float:
    """Weighted Kendall τ between an estimator's values and the accuracies achieved, over the
    candidate backbones, as transferability papers report it: scipy.stats.weightedtau with
    its defaults (Vigna 2015: hyperbolic weight 1/(r + 1) on a pair's ranks, r the rank by
    decreasing value, averaged over the ranking by either variable), so an exchange among the
    best candidates costs more than one among the worst. NaN for fewer than 2 candidates or a
    constant input."""
    from scipy import stats

    x = np.asarray(estimates, dtype=float)
    y = np.asarray(accuracies, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.weightedtau(x, y).statistic)


def estimator_agreement(table, estimators=None, targets=TARGETS):
    """Weighted Kendall τ of each estimator against each achieved accuracy, across backbones,
    per (dataset, mapping, task), and their mean over those tasks (rows with task "mean").

    `table`: one row per (backbone, dataset, mapping, task) with the estimators' and targets'
    columns (transferability.csv). Estimators are oriented by ESTIMATORS' signs (unknown ones
    as given). Returns columns dataset, mapping, task, estimator, target, tau, n_backbones.
    """
    import pandas as pd

    table = with_ncti(table)
    estimators = [e for e in (estimators or ESTIMATORS) if e in table.columns]
    targets = [t for t in targets if t in table.columns]
    rows = []
    for (dataset, mapping, task), part in table.groupby(list(AGREEMENT_GROUPS), sort=True):
        for estimator in estimators:
            sign = ESTIMATORS.get(estimator, 1.0)
            for target in targets:
                rows.append(
                    {
                        "dataset": dataset,
                        "mapping": mapping,
                        "task": task,
                        "estimator": estimator,
                        "target": target,
                        "tau": weighted_kendall_tau(sign * part[estimator], part[target]),
                        "n_backbones": int(part["backbone"].nunique()),
                    }
                )
    out = pd.DataFrame(
        rows, columns=[*AGREEMENT_GROUPS, "estimator", "target", "tau", "n_backbones"]
    )
    if out.empty:
        return out
    mean = out.groupby(["estimator", "target"], sort=False, as_index=False).agg(
        tau=("tau", "mean"), n_backbones=("n_backbones", "max")
    )
    mean[list(AGREEMENT_GROUPS)] = ["all", "all", "mean"]
    return pd.concat([out, mean[out.columns]], ignore_index=True)


def with_ncti(table):
    """`table` with an `ncti` column: the NCTI of each row among the backbones of its
    (dataset, mapping, task), from its ncti_etf/ncc/vc columns (unchanged without them)."""
    terms = ["ncti_etf", "ncti_ncc", "ncti_vc"]
    if not set(terms) <= set(table.columns):
        return table
    table = table.copy()
    table["ncti"] = np.nan
    for _, part in table.groupby(list(AGREEMENT_GROUPS), sort=False):
        table.loc[part.index, "ncti"] = ncti_scores(*(part[t] for t in terms))
    return table


def achieved_accuracies(results, exclude_gen=("ls", "kls")):
    """Per (backbone, dataset, mapping, task) group of a results table: the seed-median
    accuracy of its best imprinting configuration (baselines and `exclude_gen`, the ls
    oracle, left out) and of the linear probe as Table 1 selects it (NaN where the group has
    none), both on every training row (presampling all, few-shot -1), as the estimators see
    them. Columns: GROUP_COLUMNS, best_imprinting, best_configuration, linear_probe."""
    import pandas as pd

    from imprint.analysis.tables import TABLE1_COMMON, TABLE1_METHODS, seed_medians
    from imprint.engine.grid import describe_config
    from imprint.engine.vocabulary import GROUP_COLUMNS, is_baseline

    med = seed_medians(results)
    for key, value in TABLE1_COMMON.items():
        med = med[med[key] == value]
    baseline = med.apply(is_baseline, axis=1) if len(med) else pd.Series(dtype=bool)
    imprinting = med[~baseline & ~med["gen"].isin(list(exclude_gen))]
    keys = list(GROUP_COLUMNS)
    best = imprinting.loc[imprinting.groupby(keys, sort=True)["accuracy"].idxmax()]
    out = best[keys].copy()
    out["best_imprinting"] = best["accuracy"].to_numpy()
    out["best_configuration"] = [describe_config(r) for r in best.to_dict("records")]
    probe = next(m for m in TABLE1_METHODS if m.filters.get("gen") == "linear_probe")
    selected = med
    for key, value in probe.filters.items():
        selected = selected[selected[key] == value]
    probe_acc = selected.groupby(keys, sort=True)["accuracy"].mean().rename("linear_probe")
    return out.merge(probe_acc.reset_index(), on=keys, how="left").reset_index(drop=True)
