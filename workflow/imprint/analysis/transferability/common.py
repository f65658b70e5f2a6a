"""What the transferability estimators share: the error for data an estimator has no finite
value on, the one-hot targets, and float64's rounding unit."""

from __future__ import annotations

import numpy as np

FLOAT64_EPS = float(np.finfo(np.float64).eps)


class EstimatorUndefined(ValueError):
    """A transferability estimator has no finite value on these (valid) data: the message
    names the estimator, why, and what it needs. `imprint transferability` writes such an
    estimate as JSON null with one warning line; called directly, it is a ValueError."""


def one_hot(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct labels and the one-hot targets [n, classes]; a ValueError for fewer than 2
    classes (no estimate compares anything then)."""
    classes, index = np.unique(labels, return_inverse=True)
    if classes.size < 2:
        raise ValueError(
            f"a transferability estimate needs at least 2 classes, got {classes.tolist()}"
        )
    return classes, np.eye(classes.size)[index]


# Above this many multiply-adds (n · D²), a Gram matrix of centred rows is one float32 product
# (60,000 × 2,048: ~2× faster than float64, relative error ~1e-6); below it, float64.
GRAM_FLOAT32_ABOVE = 2**33


def centred(features: np.ndarray) -> np.ndarray:
    """The rows as float64, minus the column means; a column whose values are all equal is
    set to exact zeros (its mean can differ from its value by rounding)."""
    x = np.asarray(features, dtype=np.float64)
    constant = x.max(axis=0) == x.min(axis=0)
    x = x - x.mean(axis=0)
    x[:, constant] = 0.0
    return x


def gram(x: np.ndarray) -> np.ndarray:
    """xᵀx (float64 result), as one float32 product where n · D² > GRAM_FLOAT32_ABOVE."""
    n, dim = x.shape
    if n * dim * dim > GRAM_FLOAT32_ABOVE:
        x32 = x.astype(np.float32)
        return (x32.T @ x32).astype(np.float64)
    return x.T @ x


def principal_components(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The centred rows x [n, D] (centred()) on their k leading principal axes (at most
    min(n, D)), those axes' variances (1/n, largest first) and the total variance. Exact: the
    k leading eigenpairs of the smaller Gram matrix (xᵀx or xxᵀ; scipy's subset eigh). Each
    axis's sign makes its largest-magnitude loading positive (scikit-learn's PCA convention);
    axes whose variance is rounding noise (at most λ_max · max(n, D) · eps: beyond the rank
    of x) give exact zeros."""
    n, dim = x.shape
    small = gram(x) if n >= dim else x @ x.T
    k = min(k, small.shape[0])
    values, vectors = leading_eigenpairs(small, k)
    values = np.maximum(values, 0.0)
    if n < dim:  # right singular vectors from the left ones
        vectors = x.T @ vectors / np.sqrt(np.maximum(values, 1e-300))
    axes = vectors * np.where(vectors[np.abs(vectors).argmax(axis=0), np.arange(k)] < 0, -1, 1)
    scores = x @ axes
    noise = values <= values.max(initial=0.0) * max(n, dim) * FLOAT64_EPS
    scores[:, noise] = 0.0
    return scores, values / n, float(np.trace(small)) / n


# Above this size, with k ≤ m / 8 wanted, the k leading eigenpairs come from ARPACK's Lanczos
# (scipy's eigsh, tol 0: to rounding) rather than a dense eigendecomposition (4-10× faster here
# on 2,000-2,048 rows; a dense one where it does not converge).
LANCZOS_FROM = 512


def leading_eigenpairs(matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest eigenvalues of a symmetric matrix [m, m], largest first, and their
    eigenvectors (columns). Deterministic: ARPACK starts from a seeded vector."""
    from scipy.linalg import eigh
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh

    m = matrix.shape[0]
    if m >= LANCZOS_FROM and k <= m // 8:
        start = np.random.default_rng(0).standard_normal(m)
        try:
            values, vectors = eigsh(matrix, k=k, which="LA", v0=start, tol=0)
            order = np.argsort(values)[::-1]
            return values[order], vectors[:, order]
        except ArpackNoConvergence:
            pass
    values, vectors = eigh(matrix, subset_by_index=[m - k, m - 1], driver="evx")
    return values[::-1], vectors[:, ::-1]


def seeded_rows(n: int, cap: int | None, seed: int = 0) -> np.ndarray:
    """Every row index (n ≤ cap or cap None), else `cap` of them drawn without replacement
    with numpy's default_rng(seed), in increasing order."""
    if cap is None or n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False))


def varies_within_a_class(features: np.ndarray, index: np.ndarray) -> bool:
    """Whether some class (class indices `index` [n]) has two rows that differ: exactly, so
    the rounding of class means cannot fake a within-class variance."""
    x = np.asarray(features)
    order = np.argsort(index, kind="stable")
    x, index = x[order], index[order]
    same_class = index[1:] == index[:-1]
    return bool((x[1:][same_class] != x[:-1][same_class]).any())
