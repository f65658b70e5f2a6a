"""NLEEP (Li et al., CVPR 2021, "Ranking Neural Checkpoints"): LEEP with a Gaussian mixture's
components as the source labels, so it needs no classifier head (nleep)."""

from __future__ import annotations

import warnings

import numpy as np

from imprint.analysis.transferability.common import (
    EstimatorUndefined,
    centred,
    one_hot,
    principal_components,
    seeded_rows,
)

NLEEP_VARIANCE = 0.8  # the principal components kept: those explaining 80 % of the variance
NLEEP_COMPONENTS_PER_CLASS = 5  # mixture components per class
# Caps that hold NLEEP to seconds on 60,000 × 2,048 (benchmarks/bench_transferability_*.py):
NLEEP_MAX_ROWS = 5000  # a seeded sample of rows fits and scores the mixture
NLEEP_MAX_DIMENSIONS = 32  # at most this many principal components
NLEEP_MAX_ITER = 100  # EM iterations (scikit-learn's default)
NLEEP_SEED = 0


def nleep(features: np.ndarray, labels: np.ndarray) -> float:
    """NLEEP of features [n, D] for integer labels [n] (higher: expected to transfer better).

    As the paper and the reference code (SFDA's and PED's metrics.py) compute it: the rows
    reduced to the principal components that explain 80 % of their variance (the fewest k
    whose cumulative share exceeds 0.8, scikit-learn's rule), a Gaussian mixture with full
    covariances and K = 5 × (number of classes) components fitted to them (scikit-learn's
    GaussianMixture, k-means initialisation, reg_covar 1e-6, seed 0), its posteriors
    P(z | x) as pseudo source labels, then LEEP:
        P(y, z) = (1/m) Σ_{i: y_i = y} P(z | x_i),  P(y | z) = P(y, z) / Σ_y P(y, z),
        NLEEP = (1/m) Σ_i log Σ_z P(y_i | z) P(z | x_i)
    (the paper's log; the reference code averages without it). Caps, for speed: the
    mixture is fitted and LEEP averaged on at most NLEEP_MAX_ROWS rows (a seeded sample,
    default_rng(0)), in at most NLEEP_MAX_DIMENSIONS components, by at most NLEEP_MAX_ITER EM
    iterations (no convergence warning), on one BLAS thread. Every row of the sample has a positive term (its own
    posterior is part of P(y_i | z)), so the log is finite.

    Degenerate data: K is at most the number of sampled rows (one row per class: K = n);
    components no row has posterior mass on are left out of the sum. Where the sampled rows
    do not vary at all (every row identical), there is no principal component and no mixture:
    EstimatorUndefined (a ValueError).
    """
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    rows = seeded_rows(np.asarray(labels).shape[0], NLEEP_MAX_ROWS, NLEEP_SEED)
    _, targets = one_hot(np.asarray(labels))
    targets = targets[rows]
    z = _reduced(centred(np.asarray(features)[rows]))
    k = min(NLEEP_COMPONENTS_PER_CLASS * targets.shape[1], z.shape[0])
    mixture = GaussianMixture(k, covariance_type="full", max_iter=NLEEP_MAX_ITER, random_state=0)
    # One BLAS thread: its products are small (m × d × d per component), and several threads
    # on them cost ~20× more on a 2-core machine with other work (90 s against 4 s).
    with warnings.catch_warnings(), threadpool_limits(1):
        # Not converged within max_iter, or fewer distinct rows than k-means clusters: wanted.
        warnings.simplefilter("ignore")
        posterior = mixture.fit(z).predict_proba(z)  # P(z | x), [m, K]
    return leep(posterior, targets)


def leep(posterior: np.ndarray, targets: np.ndarray) -> float:
    """LEEP of the source-label posteriors [m, K] for one-hot targets [m, C] (nleep)."""
    joint = targets.T @ posterior / posterior.shape[0]  # P(y, z), [C, K]
    mass = joint.sum(axis=0)
    used = mass > 0
    conditional = joint[:, used] / mass[used]  # P(y | z)
    likelihood = np.einsum("ik,ck,ic->i", posterior[:, used], conditional, targets)
    return float(np.log(likelihood).mean())


def _reduced(x: np.ndarray) -> np.ndarray:
    """The centred rows on the principal components that explain NLEEP_VARIANCE of their
    variance (at most NLEEP_MAX_DIMENSIONS)."""
    scores, variances, total = principal_components(x, NLEEP_MAX_DIMENSIONS)
    if not total > 0:
        raise EstimatorUndefined(
            "NLEEP needs rows that vary: its Gaussian mixture is fitted on the principal "
            "components of the rows, and every row here is identical"
        )
    share = np.cumsum(variances) / total
    k = min(int(np.searchsorted(share, NLEEP_VARIANCE, side="right")) + 1, scores.shape[1])
    return scores[:, :k]
