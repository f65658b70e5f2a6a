"""Direct matching for stitching: affine maps from embedding A to embedding B fitted to B itself.

Two fits, both from the rows' first and second moments only (so a source's Gram is computed once
and shared by every target, and an ordered pair and its reverse share one cross-product):
  direct      least squares with a bias, argmin ‖[x 1] W − y‖² (the minimum-norm W where
              [x 1] is rank-deficient, as numpy.linalg.lstsq), on every training row or on K
              of them (the seed paper's "pinv samples");
  orthogonal  orthogonal Procrustes after centring both sides (Schönemann, 1966).
The moments are accumulated over blocks of rows in float64 from centred rows ("float64": exact
products; "float32": float32 products of each block, summed in float64, about twice as fast).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg
import scipy.linalg.lapack

__all__ = [
    "AffineMap",
    "Moments",
    "fit_direct",
    "fit_orthogonal",
    "joint_moments",
    "relative_residual",
    "sample_rows",
]

BLOCK_ROWS = 4096
PRECISIONS = ("float64", "float32")
# Eigenvalues of the centred Gram at or below this fraction of the largest count as zero
# (directions of no variance). float64: lstsq's own rule eps·max(M, N), applied to the
# squared singular values. float32 products: their rounding reaches about eps32·√D of the
# largest eigenvalue (measured in benchmarks/bench_stitching.py), so directions below 1e-6
# are noise.
FLOAT32_CUTOFF = 1e-6
# The polar factor from MᵀM loses about eps·κ(M)² (1e-8 at this bound): beyond it, an SVD.
POLAR_MAX_CONDITION = 1e8
# A Cholesky solve (3× faster than the eigendecomposition at 2048²) where the centred Gram's
# reciprocal condition (LAPACK's 1-norm estimate) is above this: its error then stays ≲ 1e-8.
CHOLESKY_MIN_RCOND = 1e-8
POLAR_NEWTON_STEPS = 40  # scaled Newton needs about 10 for κ = 1e7


@dataclasses.dataclass(frozen=True)
class AffineMap:
    """x ↦ x @ weight + bias, from A's width dA to B's width dB, in float64."""

    weight: np.ndarray  # [dA, dB] float64
    bias: np.ndarray  # [dB]

    def __call__(self, x) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.weight + self.bias


@dataclasses.dataclass(frozen=True)
class Moments:
    """Several embeddings of the same n rows side by side, Z = [X₁ … X_m]: their column means
    and the centred joint Gram Zcᵀ Zc (float64), whose blocks are every Gram and every
    cross-product of the centred embeddings."""

    n: int
    means: dict[str, np.ndarray]
    columns: dict[str, slice]
    centred: np.ndarray  # [ΣD, ΣD] float64
    precision: str = "float64"

    def block(self, a: str, b: str) -> np.ndarray:
        """Xc_aᵀ Xc_b, the centred cross-product of embeddings a and b."""
        return self.centred[self.columns[a], self.columns[b]]

    def total_square(self, b: str) -> float:
        """Σ‖y‖² over the rows of embedding b (uncentred)."""
        return float(np.trace(self.block(b, b)) + self.n * self.means[b] @ self.means[b])


def sample_rows(n: int, rows: int, seed: int) -> np.ndarray:
    """`rows` distinct row indices of n, sorted: np.random.default_rng(seed).choice(n, rows,
    replace=False)."""
    if not 1 <= rows <= n:
        raise ValueError(f"cannot fit on {rows} rows drawn from {n}")
    return np.sort(np.random.default_rng(seed).choice(n, size=rows, replace=False))


def joint_moments(
    arrays: dict[str, np.ndarray], precision: str = "float64", block_rows: int = BLOCK_ROWS
) -> Moments:
    """Moments of embeddings of the same rows (arrays [n, D_i], float32 or float64), read block
    by block: means first (float64), then Zcᵀ Zc of the centred blocks, one symmetric product
    per block (BLAS syrk) in `precision`, summed in float64."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; allowed: {', '.join(PRECISIONS)}")
    n = {len(x) for x in arrays.values()}
    if len(n) != 1:
        raise ValueError(f"the embeddings must hold the same rows, got row counts {sorted(n)}")
    n = n.pop()
    means, columns, start = {}, {}, 0
    for name, x in arrays.items():
        total = np.zeros(x.shape[1])
        for s in range(0, n, block_rows):
            total += np.asarray(x[s : s + block_rows]).sum(axis=0, dtype=np.float64)
        means[name] = total / n
        columns[name] = slice(start, start + x.shape[1])
        start += x.shape[1]
    dtype = np.dtype(precision)
    centred = np.zeros((start, start))
    shifts = {name: means[name].astype(dtype) for name in arrays}
    for s in range(0, n, block_rows):
        z = np.concatenate(
            [np.asarray(x[s : s + block_rows], dtype=dtype) - shifts[k] for k, x in arrays.items()],
            axis=1,
        )
        centred += z.T @ z  # z.T and z share one buffer: numpy calls syrk
    return Moments(n, means, columns, centred, precision)


class CentredSolver:
    """Least squares with a bias from one source's moments: Xcᵀ Xc factored once (Cholesky
    where it is well conditioned), then a solve per target. Where it is not and the source's
    rows are given, the minimum-norm solution comes from the centred rows' singular values
    with numpy.linalg.lstsq's cutoff (ε · max(n, d + 1) · the largest), as lstsq would give it;
    from the Gram's eigenvalues alone only singular values above about √ε of the largest are
    resolved, so directions below that are dropped there."""

    def __init__(self, moments: Moments, source: str, rows=None):
        self.moments, self.source = moments, source
        gram = moments.block(source, source)
        self.cholesky = None
        if moments.precision == "float64":
            factor, info = scipy.linalg.lapack.dpotrf(gram, lower=False)
            if info == 0:
                rcond, _ = scipy.linalg.lapack.dpocon(factor, np.abs(gram).sum(axis=0).max())
                if rcond > CHOLESKY_MIN_RCOND:
                    self.cholesky = (factor, False)
                    return
        if rows is not None:
            self._from_rows(rows)
            return
        values, vectors = np.linalg.eigh(gram)
        top = max(float(values[-1]), 0.0)
        if moments.precision == "float64":
            cutoff = top * np.finfo(np.float64).eps * max(moments.n, len(values) + 1)
        else:
            cutoff = top * FLOAT32_CUTOFF
        keep = values > cutoff
        self.vectors, self.values = vectors[:, keep], values[keep]
        self.null = vectors[:, ~keep]  # directions of no variance: the min-norm correction

    def _from_rows(self, rows) -> None:
        """The kept directions and their squared singular values from the centred rows' SVD,
        and an orthonormal basis of the rest (the null space of the minimum-norm correction)."""
        x = np.asarray(rows, dtype=np.float64) - self.moments.means[self.source]
        _, singular, vt = np.linalg.svd(x, full_matrices=False)
        dim = x.shape[1]
        cutoff = np.finfo(np.float64).eps * max(len(x), dim + 1) * (singular[0] if dim else 0)
        keep = singular > cutoff
        self.vectors, self.values = vt[keep].T, singular[keep] ** 2
        self.null = scipy.linalg.null_space(self.vectors.T) if keep.sum() < dim else vt[:0].T

    def solve(self, target: str) -> AffineMap:
        """The minimum-norm solution of [x 1] [W; b] = y. With x = xc + 1μᵀ, [x 1] = [xc 1] T,
        T = [[I, 0], [μᵀ, 1]]: every solution is W = W₀ + N Z (W₀ = pinv(Xcᵀ Xc) Xcᵀ Yc, N the
        null space of Xc), b = ȳ − Wᵀ μ; minimising ‖W‖² + ‖b‖² over Z gives
        Z = m rᵀ / (1 + ‖m‖²), m = Nᵀ μ, r = ȳ − W₀ᵀ μ."""
        m = self.moments
        mu, cross = m.means[self.source], m.block(self.source, target)
        if self.cholesky is not None:  # full rank: the one solution
            w = scipy.linalg.cho_solve(self.cholesky, cross, check_finite=False)
            return AffineMap(w, m.means[target] - mu @ w)
        w = self.vectors @ ((self.vectors.T @ cross) / self.values[:, None])
        residual_mean = m.means[target] - mu @ w
        if self.null.shape[1]:
            direction = self.null.T @ mu
            w = w + self.null @ np.outer(direction, residual_mean) / (1.0 + direction @ direction)
        return AffineMap(w, m.means[target] - mu @ w)


def _gram_moments(gram: np.ndarray, source: str) -> Moments:
    """Moments of x alone from its augmented Gram [x 1]ᵀ[x 1]."""
    gram = np.asarray(gram, dtype=np.float64)
    n = float(gram[-1, -1])
    mu = gram[:-1, -1] / n
    dim = len(mu)
    centred = gram[:-1, :-1] - n * np.outer(mu, mu)
    return Moments(int(round(n)), {source: mu}, {source: slice(0, dim)}, centred)


def fit_direct(x, y, rows: int | None = None, seed: int = 0, gram=None) -> AffineMap:
    """Least squares with a bias, argmin ‖[x 1] W − y‖² (the minimum-norm solution where [x 1]
    is rank-deficient, as numpy.linalg.lstsq), solved in float64 from the rows' moments.

    rows=K: fitted on K rows drawn without replacement (`sample_rows(len(x), K, seed)`).
    gram: [x 1]ᵀ[x 1] of the rows fitted (float64), computed once and shared between the
    targets of one source; x is then only read for the cross-product.
    """
    x, y = np.asarray(x), np.asarray(y)
    if rows is not None:
        chosen = sample_rows(len(x), rows, seed)
        x, y = x[chosen], y[chosen]
    if gram is None:
        moments = joint_moments({"x": x, "y": y})
    else:
        own = _gram_moments(gram, "x")
        mu_y = y.mean(axis=0, dtype=np.float64)
        cross = np.asarray(x, dtype=np.float64).T @ (np.asarray(y, dtype=np.float64) - mu_y)
        dx = len(own.means["x"])
        centred = np.zeros((dx + y.shape[1],) * 2)
        centred[:dx, :dx], centred[:dx, dx:] = own.centred, cross
        moments = Moments(
            own.n, {**own.means, "y": mu_y}, {"x": slice(0, dx), "y": slice(dx, None)}, centred
        )
    return CentredSolver(moments, "x", rows=x).solve("y")


def newton_polar(square: np.ndarray) -> np.ndarray | None:
    """The orthogonal polar factor of a nonsingular square matrix by Newton's iteration
    X ← (ζX + X⁻ᵀ/ζ)/2 with Higham's Frobenius-norm scaling ζ (dropped once the steps are
    small), a few inversions where an SVD costs many; None where an inverse fails or it has
    not converged after POLAR_NEWTON_STEPS steps."""
    x, scaled = square, True
    for _ in range(POLAR_NEWTON_STEPS):
        try:
            inverse = np.linalg.inv(x)
        except np.linalg.LinAlgError:
            return None
        zeta = np.sqrt(np.linalg.norm(inverse) / np.linalg.norm(x)) if scaled else 1.0
        step = 0.5 * (zeta * x + inverse.T / zeta)
        change = np.linalg.norm(step - x) / np.linalg.norm(step)
        if not np.isfinite(change):
            return None
        x = step
        if not scaled and change < 1e-10:
            return x  # quadratic convergence: the last step brought it to rounding level
        scaled = change >= 1e-2
    return None


def polar_factor(cross: np.ndarray) -> np.ndarray:
    """U Vᵀ of the thin SVD of a [dA, dB] cross-covariance M: the orthogonal Procrustes
    rotation's block R[:dA, :dB] (see fit_orthogonal).

    Square M: Newton's iteration (newton_polar). Rectangular and well conditioned (κ(M)² ≤
    POLAR_MAX_CONDITION): M (MᵀM)^-½, or (MMᵀ)^-½ M, from one symmetric eigendecomposition of
    the narrower side (its error grows with eps·κ(M)²); otherwise Newton's iteration on the
    triangular factor of M = QR (polar(M) = Q polar(R)). An SVD only where Newton fails (a
    singular M). Measured at 2048² (κ(M) 4e6): Newton about 6 s, the SVD 15-20 s.
    """
    wide = cross.shape[0] < cross.shape[1]
    m = cross.T if wide else cross  # [long, short]
    polar = None
    if m.shape[0] == m.shape[1]:
        polar = newton_polar(m)
    else:
        values, vectors = np.linalg.eigh(m.T @ m)
        if values[0] > values[-1] / POLAR_MAX_CONDITION:
            polar = m @ ((vectors / np.sqrt(values)) @ vectors.T)
        elif values[-1] > 0:
            q, r = np.linalg.qr(m)
            inner = newton_polar(r)
            polar = None if inner is None else q @ inner
    if polar is None:
        u, _, vt = scipy.linalg.svd(m, full_matrices=False, lapack_driver="gesdd")
        polar = u @ vt
    return polar.T if wide else polar


def orthogonal_from_moments(moments: Moments, a: str, b: str, rotation=None) -> AffineMap:
    """fit_orthogonal from moments; `rotation`: the polar factor, if already known."""
    r = polar_factor(moments.block(a, b)) if rotation is None else rotation
    return AffineMap(r, moments.means[b] - moments.means[a] @ r)


def fit_orthogonal(x, y) -> AffineMap:
    """Orthogonal Procrustes after centring: x and y centred by their training means, the
    narrower side zero-padded to the wider width D, R = argmin ‖xc R − yc‖_F over orthogonal
    D × D matrices R (scipy.linalg.orthogonal_procrustes), the map (x − μx) R[:, :dB] + μy.
    Padding columns of x are zeros, so only R's first dA rows matter.

    Computed without padding: R = U Vᵀ from the SVD of M = xcᵀ yc padded with zeros, and the
    block R[:dA, :dB] is the polar factor U₁V₁ᵀ of the thin SVD of the dA × dB matrix M itself
    (the singular vectors of the padding's zero singular values lie outside that block). It is
    unique where M has full rank min(dA, dB).
    """
    return orthogonal_from_moments(
        joint_moments({"x": np.asarray(x), "y": np.asarray(y)}), "x", "y"
    )


def relative_residual(mapping: AffineMap, x, y) -> float:
    """‖map(x) − y‖² / ‖y‖² over all rows (Frobenius, y uncentred)."""
    y = np.asarray(y, dtype=np.float64)
    return float(((mapping(x) - y) ** 2).sum() / (y**2).sum())


def moments_residual(moments: Moments, mapping: AffineMap, a: str, b: str) -> float | None:
    """relative_residual of the rows the moments were taken over, from the moments alone:
    ‖xc W − yc‖² + n‖μx W + b − μy‖² over Σ‖y‖²; None where rounding could swamp it: the
    Gram's rounding (ε · its trace) times ‖W‖² above 1e-6 of the result (a map with huge
    weights: the minimum-norm solution of nearly singular rows), so the rows must be read."""
    w = mapping.weight
    gram = moments.block(a, a)
    fitted = float(((gram @ w) * w).sum())
    square = fitted - 2.0 * float((w * moments.block(a, b)).sum())
    square += float(np.trace(moments.block(b, b)))
    shift = moments.means[a] @ w + mapping.bias - moments.means[b]
    square += moments.n * float(shift @ shift)
    rounding = 16 * np.finfo(np.float64).eps * float(np.trace(gram)) * float((w * w).sum())
    if rounding > 1e-6 * max(square, 0.0):
        return None
    return max(square, 0.0) / moments.total_square(b)
