"""LogME and H-score: how well a linear model of the features explains the task's labels.

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
"""

from __future__ import annotations

import math

import numpy as np

from imprint.analysis.transferability.common import FLOAT64_EPS, EstimatorUndefined, one_hot

LOGME_MAX_ITER = 100
LOGME_TOLERANCE = 1e-5  # relative change of α and β between iterations
# Below this fraction of ‖y‖², a target's residual off the features' span is recomputed from
# an SVD of F before LogME decides that the target is fitted exactly (logme).
LOGME_EXACT_FIT_CHECK = 1e-6


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
    classes, targets = one_hot(np.asarray(labels))
    sigma, projected = _eigen_projection(f, targets)
    norms = (targets**2).sum(axis=0)
    outside = _residuals_off_span(f, targets, classes, sigma, projected, norms)
    evidences = [
        _class_evidence(sigma, z, max(float(rest), 0.0), float(norm), n, dim)
        for z, rest, norm in zip(projected.T, outside, norms, strict=True)  # class by class
    ]
    return float(np.mean(evidences))


def _residuals_off_span(f, targets, classes, sigma, projected, norms) -> np.ndarray:
    """‖y‖² − ‖Uᵀy‖² of each one-hot target: its squared residual off span(F). Where F has
    rank below n and that difference cancels (under LOGME_EXACT_FIT_CHECK · ‖y‖²), it is
    recomputed from an SVD of F, and a zero residual (the target fitted exactly: LogME
    unbounded) raises EstimatorUndefined (logme)."""
    n, dim = f.shape
    residual_outside = norms - (projected**2).sum(axis=0)  # ‖y‖² off span(U)
    if sigma.size >= n:
        return residual_outside
    suspect = np.flatnonzero(residual_outside < LOGME_EXACT_FIT_CHECK * norms)
    if suspect.size:
        rank, exact = _span_residuals(f, targets[:, suspect])
        for k, rest in zip(suspect.tolist(), exact.tolist(), strict=True):
            if rank < n and rest <= max(n, dim) * FLOAT64_EPS * norms[k]:
                raise EstimatorUndefined(
                    f"LogME is unbounded (+inf) here: the features (rank {rank} for {n} "
                    f"rows) fit the one-hot target of class {classes.tolist()[k]!r} "
                    "exactly, so its evidence grows without limit as the noise variance "
                    "goes to 0; LogME needs a nonzero least-squares residual for every "
                    "class (or as many independent features as rows)"
                )
            residual_outside[k] = rest
    return residual_outside


def _class_evidence(sigma, z, rest: float, norm: float, n: int, dim: int) -> float:
    """One class's term of LogME: its largest evidence over the fixed point and the boundary
    limits (logme), divided by n. z = Uᵀy, rest = ‖y‖² off span(U), norm = ‖y‖²."""
    no_weights = n / 2 * (math.log(n / norm) - math.log(2 * math.pi) - 1)
    if sigma.size == 0:  # no feature direction: α has no effect
        return no_weights / n
    s = np.sqrt(sigma)
    alpha, beta, converged = _fixed_point(sigma, s, z, rest, n)
    candidates = [_log_evidence(alpha, beta, sigma, s, z, rest, n, dim), no_weights]
    if sigma.size == n:
        candidates.append(_noise_free_evidence(sigma, z, n))
    if not converged:
        candidates.append(_profile_maximum(sigma, z, rest, n))
    return max(candidates) / n


def _fixed_point(sigma, s, z, rest: float, n: int) -> tuple[float, float, bool]:
    """α, β after the paper's fixed point from α = β = 1 (module docstring), and whether it
    converged within LOGME_MAX_ITER steps. Stopped, keeping the last α, β, where n − γ rounds
    to 0 (β → ∞, F of rank n)."""
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
    return alpha, beta, converged


def _span_residuals(f: np.ndarray, targets: np.ndarray) -> tuple[int, np.ndarray]:
    """The rank of F (singular values s with s² > s²_max · max(n, D) · eps, the cut-off of
    _eigen_projection) and ‖y − UUᵀy‖² of each target column, from an SVD of F: accurate
    where ‖y‖² − ‖Uᵀy‖² cancels."""
    n, dim = f.shape
    u, sv, _ = np.linalg.svd(f, full_matrices=False)
    keep = sv**2 > (sv[0] ** 2 if sv.size else 0.0) * max(n, dim) * FLOAT64_EPS
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
    _, targets = one_hot(np.asarray(labels))
    n = f.shape[0]
    constant = f.max(axis=0) == f.min(axis=0)
    f = f - f.mean(axis=0)
    f[:, constant] = 0.0
    cov_f = f.T @ f / n
    counts = targets.sum(axis=0)
    means = (targets.T @ f) / counts[:, None]  # class means, centred
    # cov(E[f|y]) = Σ_c (n_c/n) μ_c μ_cᵀ, so the trace is Σ_c (n_c/n) μ_cᵀ pinv(cov f) μ_c,
    # the pseudo-inverse by eigendecomposition (eigenvalues below the rounding floor dropped).
    values, vectors = np.linalg.eigh(cov_f)
    keep = values > values.max(initial=0.0) * cov_f.shape[0] * np.finfo(np.float64).eps
    projected = (means @ vectors[:, keep]) ** 2 / values[keep]
    return float((counts / n) @ projected.sum(axis=1))
