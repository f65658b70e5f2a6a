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

Degenerate data (constant features, fewer rows than dimensions, classes of one or two rows,
identical rows): each estimator's docstring says which regularisation it computes with, or
when it raises EstimatorUndefined (a ValueError naming the estimator, why and what it needs);
none returns NaN or inf.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

LOGME_MAX_ITER = 100
LOGME_TOLERANCE = 1e-5  # relative change of α and β between iterations
# Below this fraction of ‖y‖², a target's residual off the features' span is recomputed from
# an SVD of F before LogME decides that the target is fitted exactly (logme).
LOGME_EXACT_FIT_CHECK = 1e-6
_EPS = float(np.finfo(np.float64).eps)


class EstimatorUndefined(ValueError):
    """A transferability estimator has no finite value on these (valid) data: the message
    names the estimator, why, and what it needs. `imprint transferability` writes such an
    estimate as JSON null with one warning line; called directly, it is a ValueError."""


def _one_hot(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    classes, index = np.unique(labels, return_inverse=True)
    if classes.size < 2:
        raise ValueError(
            f"a transferability estimate needs at least 2 classes, got {classes.tolist()}"
        )
    return classes, np.eye(classes.size)[index]


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of features [n, D] for integer labels [n] (higher: expected to transfer better).

    LogME is the supremum of each class's evidence L(α, β) over α, β > 0 (module docstring),
    with no regularisation added: on degenerate features (constant or collinear columns,
    n < D, tiny classes) it is found as follows.
      - The fixed point from α = β = 1, stopped (keeping the last α, β) if n − γ rounds to 0.
      - The supremum can be a limit on the boundary, which the fixed point only creeps
        towards; both limits are closed forms, and LogME takes the largest value:
        α → ∞ (m = 0, y pure noise): n/2 (log(n / ‖y‖²) − log 2π − 1);
        β → ∞ where F has rank n (e.g. n ≤ D; every target then fitted exactly):
            max over α of n/2 log α − 1/2 Σ_i log σ_i − n/2 log 2π − α/2 Σ_i z_i²/σ_i
            = n/2 (log α* − log 2π − 1) − 1/2 Σ_i log σ_i,  α* = n / Σ_i z_i²/σ_i  (z = Uᵀy).
      - Where the fixed point has not converged in LOGME_MAX_ITER steps (n ≤ D mostly), the
        evidence profiled over β is maximised over t = α/β (_profile_maximum).
      - Rank 0 (all-zero features): L does not depend on α, β = n / ‖y‖².
      - Rank r < n with a class's one-hot target in the span of F (a zero least-squares
        residual: e.g. every class's rows identical): L grows without limit as β → ∞, LogME is
        +∞ and EstimatorUndefined (a ValueError) is raised. A residual ‖y‖² − ‖Uᵀy‖² below
        LOGME_EXACT_FIT_CHECK · ‖y‖² (it cancels) is recomputed from an SVD of F, and counts
        as zero at or below max(n, D) · eps · ‖y‖² (the eigendecomposition's rank cut-off).
    """
    f = np.asarray(features, dtype=np.float64)
    n, dim = f.shape
    classes, targets = _one_hot(np.asarray(labels))
    sigma, projected = _eigen_projection(f, targets)
    s = np.sqrt(sigma)
    norms = (targets**2).sum(axis=0)
    residual_outside = norms - (projected**2).sum(axis=0)  # ‖y‖² off span(U)
    if sigma.size < n:
        suspect = np.flatnonzero(residual_outside < LOGME_EXACT_FIT_CHECK * norms)
        if suspect.size:
            rank, exact = _span_residuals(f, targets[:, suspect])
            for k, rest in zip(suspect.tolist(), exact.tolist(), strict=True):
                if rank < n and rest <= max(n, dim) * _EPS * norms[k]:
                    raise EstimatorUndefined(
                        f"LogME is unbounded (+inf) here: the features (rank {rank} for {n} "
                        f"rows) fit the one-hot target of class {classes.tolist()[k]!r} "
                        "exactly, so its evidence grows without limit as the noise variance "
                        "goes to 0; LogME needs a nonzero least-squares residual for every "
                        "class (or as many independent features as rows)"
                    )
                residual_outside[k] = rest
    evidences = []
    for k in range(targets.shape[1]):
        z, rest = projected[:, k], max(float(residual_outside[k]), 0.0)
        no_weights = n / 2 * (math.log(n / float(norms[k])) - math.log(2 * math.pi) - 1)
        if sigma.size == 0:  # no feature direction: α has no effect
            evidences.append(no_weights / n)
            continue
        alpha, beta, converged = 1.0, 1.0, False
        for _ in range(LOGME_MAX_ITER):
            shrink = beta * sigma / (alpha + beta * sigma)  # per eigen-direction
            gamma = float(shrink.sum())
            m2 = float(((beta * s * z / (alpha + beta * sigma)) ** 2).sum())  # ‖m‖²
            res2 = float((((1 - shrink) * z) ** 2).sum()) + rest  # ‖Fm − y‖²
            new_alpha, new_beta = gamma / max(m2, 1e-300), (n - gamma) / max(res2, 1e-300)
            if not (0 < new_alpha < math.inf and 0 < new_beta < math.inf):
                break  # towards β → ∞ (F of rank n), n − γ rounded to 0
            converged = (
                abs(new_alpha - alpha) <= LOGME_TOLERANCE * alpha
                and abs(new_beta - beta) <= LOGME_TOLERANCE * beta
            )
            alpha, beta = new_alpha, new_beta
            if converged:
                break
        candidates = [_log_evidence(alpha, beta, sigma, s, z, rest, n, dim), no_weights]
        if sigma.size == n:
            candidates.append(_noise_free_evidence(sigma, z, n))
        if not converged:
            candidates.append(_profile_maximum(sigma, z, rest, n))
        evidences.append(max(candidates) / n)
    return float(np.mean(evidences))


def _span_residuals(f: np.ndarray, targets: np.ndarray) -> tuple[int, np.ndarray]:
    """The rank of F (singular values s with s² > s²_max · max(n, D) · eps, the cut-off of
    _eigen_projection) and ‖y − UUᵀy‖² of each target column, from an SVD of F: accurate
    where ‖y‖² − ‖Uᵀy‖² cancels."""
    n, dim = f.shape
    u, sv, _ = np.linalg.svd(f, full_matrices=False)
    keep = sv**2 > (sv[0] ** 2 if sv.size else 0.0) * max(n, dim) * _EPS
    u = u[:, keep]
    residual = targets - u @ (u.T @ targets)
    return int(keep.sum()), (residual**2).sum(axis=0)


def _noise_free_evidence(sigma: np.ndarray, z: np.ndarray, n: int) -> float:
    """The evidence's limit as β → ∞ where F has rank n, at its best α (logme)."""
    alpha = n / float((z**2 / sigma).sum())
    return n / 2 * (math.log(alpha) - math.log(2 * math.pi) - 1) - float(np.log(sigma).sum()) / 2


def _profile_maximum(sigma: np.ndarray, z: np.ndarray, rest: float, n: int) -> float:
    """max over t = α/β > 0 of the evidence at its best β for that t. In the eigenbasis the
    marginal covariance of y is (1 + σ_i/t)/β along u_i and 1/β off span(U), so
        L = n/2 log β − n/2 log 2π − 1/2 Σ_i log(1 + σ_i/t) − β/2 Q(t),
        Q(t) = Σ_i z_i² t/(t + σ_i) + rest,
    largest at β = n / Q(t). Its log t is searched on a grid 30 e-folds past both ends of the
    σ_i, then refined by bounded Brent around the best grid point."""
    from scipy.optimize import minimize_scalar

    z2 = z**2

    def negative(u: float) -> float:
        t = math.exp(u)
        q = float((z2 * (t / (t + sigma))).sum()) + rest
        if not q > 0:
            return math.inf
        log_det = float(np.log1p(sigma / t).sum())
        return -(n / 2 * (math.log(n / q) - math.log(2 * math.pi) - 1) - log_det / 2)

    grid = np.linspace(math.log(sigma.min()) - 30, math.log(sigma.max()) + 30, 241)
    values = [negative(float(u)) for u in grid]
    i = int(np.argmin(values))
    lo, hi = float(grid[max(i - 1, 0)]), float(grid[min(i + 1, grid.size - 1)])
    best = minimize_scalar(negative, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
    return -min(float(best.fun), values[i])


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
    """H-score: tr(pinv(cov f) · cov(E[f | y])) (higher: more discriminative features).

    The pseudo-inverse (Bao et al.'s tr(cov(f)⁻¹ cov(E[f|y])) with cov(f)⁺ where cov(f) is
    singular) is the regularisation on degenerate features: directions of cov(f) with
    eigenvalues at or below λ_max · D · eps (rounding) carry no weight, so constant features
    add nothing, and features that do not vary at all give 0 (the pseudo-inverse of a zero
    matrix is zero). A column whose values are all equal is centred to exact zeros (its mean
    can differ from its value by rounding, noise the pseudo-inverse would blow up). With
    n − 1 ≤ D linearly independent centred rows (wide data, tiny classes) the H-score is
    C − 1, whatever the features: defined, but unable to tell backbones apart.
    """
    f = np.asarray(features, dtype=np.float64)
    _, one_hot = _one_hot(np.asarray(labels))
    n = f.shape[0]
    constant = f.max(axis=0) == f.min(axis=0)
    f = f - f.mean(axis=0)
    f[:, constant] = 0.0
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
    costs a 5,000 × 60,000 product, not 60,000².

    Defined on any rows: a class of one row is never classified right (its only row is the
    one left out), so one row per class gives 0 %; identical rows tie, and ties go to the
    lower row index (the engine's order); fewer than k other rows: all of them vote."""
    import torch

    from imprint.engine.aggregate import nearest_proxies, vote
    from imprint.engine.baselines import check_knn_temperature

    check_knn_temperature(temperature)

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

    Degenerate features. The 'eigen' solver shrinks each class's covariance towards
    (tr/D)·I, which makes the pooled within-class covariance invertible whenever some class
    varies (constant features, n < D, classes of 2 rows); a class of one row adds a zero
    covariance. The 'svd' solver inverts the within-class covariance on its range only
    (singular values of the within-class-standardised rows above scikit-learn's tol = 1e-4: a
    pseudo-inverse); for it, principal components whose variance is rounding noise
    (at most λ_max · max(n, D) · eps: those beyond the rank of the centred rows, from constant
    or collinear features or n ≤ 64) are set to exact zeros, as the per-variable
    standardisation would otherwise blow that noise up to unit variance. Where no class has
    two distinct rows (one row per class, or every class's rows identical) the within-class
    covariance is zero and so is its shrinkage target: EstimatorUndefined (a ValueError).
    """
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    x = np.asarray(features, dtype=np.float64)
    classes, index = _one_hot(np.asarray(labels))[0], np.unique(labels, return_inverse=True)[1]
    counts = np.bincount(index, minlength=classes.size)
    if counts.max() < 2:
        raise EstimatorUndefined(
            "NCTI needs a class of at least 2 rows: its linear discriminant analysis estimates "
            "a within-class covariance, and every class here has 1 row"
        )
    varies = (np.ptp(x[index == c], axis=0).any() for c in np.flatnonzero(counts > 1))
    if not any(varies):
        raise EstimatorUndefined(
            "NCTI needs a class whose rows are not all identical: its linear discriminant "
            "analysis inverts the within-class covariance, which is zero here (its shrinkage "
            "is a multiple of that covariance's trace, so it cannot make it invertible)"
        )
    dims = min(NCTI_DIMENSIONS, x.shape[0], x.shape[1])
    pca = PCA(n_components=dims, svd_solver="covariance_eigh")
    z = pca.fit_transform(x)
    spread = float(pca.explained_variance_[:NCTI_SHRINKAGE_COMPONENTS].sum())
    shrinkage = max(math.exp(-spread), NCTI_SHRINKAGE_FLOOR)
    if shrinkage == NCTI_SHRINKAGE_FLOOR:
        lda = LinearDiscriminantAnalysis(solver="svd")
        variance = pca.explained_variance_
        noise = variance <= variance.max(initial=0.0) * max(x.shape) * _EPS
        z[:, noise] = 0.0
    else:
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage)
    with warnings.catch_warnings():
        # scikit-learn's note on the empirical covariance of a one-row class (zero: wanted).
        warnings.filterwarnings("ignore", "Only one sample available", UserWarning)
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

    Degenerate data. The floor on ε_i is the regularisation for repeated points: identical
    rows (constant features, a class or a whole set of identical rows) give ε_i =
    `min_distance`, so h_c stays finite. Where no class has k + 1 rows, no class has an
    entropy estimate (the 0 of a one-row class is a placeholder, not an estimate): TMI is
    undefined and EstimatorUndefined (a ValueError) is raised; likewise for a zero k-th
    neighbour distance (k + 1 identical rows) with `min_distance` ≤ 0, whose log is −∞.
    """
    import torch
    from scipy.special import digamma

    from imprint.engine.aggregate import nearest_proxies

    x = np.ascontiguousarray(features, dtype=np.float32)
    classes, index = np.unique(np.asarray(labels), return_inverse=True)
    n, dim = x.shape
    largest = int(np.bincount(index).max())
    if largest <= k:
        raise EstimatorUndefined(
            f"TMI needs a class of at least k + 1 = {k + 1} rows for its Kozachenko-Leonenko "
            f"entropy (each row's distance to its k-th nearest other row of the class, "
            f"k = {k}); the largest class here has {largest} row{'s' if largest > 1 else ''}"
        )
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
        if not (eps > 0).all():
            raise EstimatorUndefined(
                f"TMI with min_distance={min_distance:g} is undefined here: class "
                f"{classes.tolist()[c]!r} has {k + 1} or more identical rows, so a row's "
                f"distance to its k-th nearest other row (k = {k}) is 0 and its log is -inf; "
                "it needs a positive min_distance (the authors' 1.0)"
            )
        h = -digamma(k) + digamma(n_c) + dim / n_c * float(np.log(2.0 * eps).sum())
        terms.append(n_c / n * h)
    return float(np.mean(terms))


def collapse_estimate(name: str, stats, metrics: dict) -> float:
    """NC1 or VCI (`name`: "nc1" or "vci") of collapse_metrics(stats) as a transferability
    estimate (lower: more collapsed). Both measure within-class against between-class
    variability of the L2-normalised rows (analysis/collapse.py); EstimatorUndefined (a
    ValueError) where that is not defined: every class of one row (no within-class
    variability to measure: collapse_metrics would report a meaningless 0) or coinciding class
    means (Σ_B = 0: NC1 inverts it, VCI divides by its rank).
    """
    label = name.upper()
    if int(np.max(stats.counts)) < 2:
        raise EstimatorUndefined(
            f"{label} needs a class of at least 2 rows to measure within-class variability; "
            "every class here has 1 row"
        )
    value = float(metrics[name])
    if metrics["rank_between"] == 0 or not math.isfinite(value):
        what = "it inverts" if name == "nc1" else "whose rank it divides by"
        raise EstimatorUndefined(
            f"{label} is undefined here: the class means (of the L2-normalised rows) "
            f"coincide, so the between-class covariance {what} is zero; it needs classes "
            "whose mean directions differ"
        )
    return value
