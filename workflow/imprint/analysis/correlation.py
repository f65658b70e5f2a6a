"""How NC1 goes with the gain from several proxies: Spearman's rho (exact for few points), R²."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

__all__ = ["EXACT_SPEARMAN_MAX_N", "loglinear_r2", "spearman"]

EXACT_SPEARMAN_MAX_N = 8


def loglinear_r2(nc1, gain) -> float:
    """R² of the least-squares line gain = a + b·log10(NC1); NaN for fewer than 3 points or a
    constant input."""
    x = np.log10(np.asarray(nc1, dtype=float))
    y = np.asarray(gain, dtype=float)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.linregress(x, y).rvalue ** 2)


def spearman(x, y) -> tuple[float, float]:
    """Spearman's rho and two-sided p-value; NaN (not an error) for constant input or < 3 points.

    Up to EXACT_SPEARMAN_MAX_N points the p-value is exact: the share of all pairings of the
    ranks (at most 8! = 40,320) whose |rho| reaches the observed |rho| (with tied ranks the
    null distribution is not symmetric, so this, not twice a one-sided p). scipy's t
    approximation says p = 0 for a perfect rank order of 6 points; exactly it is 2/720.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.spearmanr(x, y)
    rho, p = float(res.statistic), float(res.pvalue)
    n = len(x)
    if np.isfinite(rho) and 3 <= n <= EXACT_SPEARMAN_MAX_N:
        rx, ry = stats.rankdata(x), stats.rankdata(y)
        b = ry - ry.mean()

        def abs_rank_correlation(a, axis=-1):
            a = a - a.mean(axis=axis, keepdims=True)
            r = (a * b).sum(axis=axis) / np.sqrt((a * a).sum(axis=axis) * (b * b).sum())
            return np.abs(r)

        exact = stats.permutation_test(
            (rx,),
            abs_rank_correlation,
            permutation_type="pairings",
            vectorized=True,
            n_resamples=np.inf,
            alternative="greater",
        )
        p = float(exact.pvalue)
    return rho, p
