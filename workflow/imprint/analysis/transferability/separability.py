"""PARC and GBC: how the rows' geometry separates the classes.

PARC (Bolya et al., NeurIPS 2021, "Scalable Diverse Model Selection for Accessible Transfer
Learning"): how well the rows' pairwise dissimilarities agree with those of their labels
(parc). GBC (Pándy et al., CVPR 2022, "Transferability Estimation using Bhattacharyya Class
Separability"): how little the classes' Gaussians overlap (gbc)."""

from __future__ import annotations

import numpy as np

from imprint.analysis.transferability.common import (
    FLOAT64_EPS,
    EstimatorUndefined,
    centred,
    one_hot,
    principal_components,
    seeded_rows,
    varies_within_a_class,
)

PARC_DIMENSIONS = 32
PARC_MAX_ROWS = 2000
PARC_SEED = 0


def parc(features: np.ndarray, labels: np.ndarray) -> float:
    """PARC of features [n, D] for integer labels [n] (higher: expected to transfer better).

    At most PARC_MAX_ROWS rows (a seeded sample, default_rng(0), in row order; the authors
    sample 15,000) are centred and reduced to their min(32, rows, D) leading principal
    components (exact PCA; the authors' is randomised), each component standardised (one of
    zero variance left at 0, as scikit-learn's StandardScaler does); then
        PARC = 100 · Spearman ρ between the upper triangles (i < j) of 1 − corrcoef(rows of
        the components) and 1 − corrcoef(rows of the one-hot labels),
    ρ the Pearson correlation of the average ranks (ties share their mean rank).

    Degenerate data: a row whose standardised components are all equal (constant features,
    identical rows, one component) has no correlation with the others, and a constant
    dissimilarity matrix has no ranking (one row per class: every label pair differs; two
    rows): both raise EstimatorUndefined (a ValueError), never a NaN or scipy's warning.
    """
    from scipy.stats import rankdata

    rows = seeded_rows(np.asarray(labels).shape[0], PARC_MAX_ROWS, PARC_SEED)
    _, targets = one_hot(np.asarray(labels))
    z, _, _ = principal_components(centred(np.asarray(features)[rows]), PARC_DIMENSIONS)
    std = z.std(axis=0)
    z = (z - z.mean(axis=0)) / np.where(std > 0, std, 1.0)
    spread = z - z.mean(axis=1, keepdims=True)
    if not (np.abs(spread).max(axis=1, initial=0.0) > 0).all() or z.shape[1] < 2:
        raise EstimatorUndefined(
            "PARC needs rows whose principal components are not all equal: it correlates "
            "the rows with each other, and here a row's components (after standardisation) "
            "do not vary (constant or identical rows, or a single component)"
        )
    upper = np.triu_indices(z.shape[0], 1)
    distances = (1.0 - np.corrcoef(z))[upper]
    label_distances = (1.0 - np.corrcoef(targets[rows]))[upper]
    for name, d in (("features'", distances), ("labels'", label_distances)):
        if d.size < 2 or d.min() == d.max():
            raise EstimatorUndefined(
                f"PARC needs a dissimilarity matrix that is not constant, and the {name} is "
                f"({z.shape[0]} rows; one row per class makes every label pair differ): "
                "its Spearman correlation has no ranking to compare"
            )
    rho = np.corrcoef(rankdata(distances), rankdata(label_distances))[0, 1]
    return float(100.0 * rho)


GBC_DIMENSIONS = 64


def gbc(features: np.ndarray, labels: np.ndarray) -> float:
    """GBC of features [n, D] for integer labels [n] (higher, towards 0: expected to transfer
    better), the diagonal-covariance variant of the paper (and of its reference code):

    The centred rows on their min(64, n, D) leading principal components (exact PCA); per class
    c its mean μ_c and per-component variances v_c (1/n_c); per ordered pair i ≠ j, with
    s = (v_i + v_j)/2, the Bhattacharyya distance of the diagonal Gaussians
        D_B(i, j) = ⅛ Σ_d (μ_id − μ_jd)² / s_d + ½ Σ_d ln(s_d / √(v_id v_jd))
    and GBC = −Σ_{i≠j} exp(−D_B(i, j)).

    Degenerate data: each class variance is raised to at least the rounding level of the
    components, λ_max · max(n, D) · eps (λ_max the largest component variance; the
    regularisation: a class of one row, or a component along which a class does not vary,
    then counts as a very narrow Gaussian, nearly disjoint from the others, adding ~0;
    components of no variance at all add exactly 0). A floor relative to the mean variance
    would be wrong: the trailing components of real embeddings can be 1e-7 of it. Where no class has two distinct rows
    (one row per class, every class's rows identical) every variance is the floor and GBC
    measures only it: EstimatorUndefined (a ValueError).
    """
    _, targets = one_hot(np.asarray(labels))
    x = centred(features)
    z, variances, _ = principal_components(x, GBC_DIMENSIONS)
    counts = targets.sum(axis=0)
    means = (targets.T @ z) / counts[:, None]
    within = z - means[targets.argmax(axis=1)]
    spread = (targets.T @ within**2) / counts[:, None]
    if not varies_within_a_class(features, targets.argmax(axis=1)):
        raise EstimatorUndefined(
            "GBC needs a class whose rows are not all identical: with no within-class "
            "variance every class Gaussian is the variance floor alone"
        )
    floor = float(variances[0]) * max(x.shape) * FLOAT64_EPS
    v = np.maximum(spread, floor)
    s = (v[:, None, :] + v[None, :, :]) / 2
    log_v = np.log(v)
    distance = ((means[:, None, :] - means[None, :, :]) ** 2 / s).sum(axis=2) / 8 + (
        np.log(s).sum(axis=2) - (log_v[:, None, :] + log_v[None, :, :]).sum(axis=2) / 2
    ) / 2
    off = ~np.eye(counts.size, dtype=bool)
    return float(-np.exp(-distance[off]).sum()) + 0.0  # + 0.0: no −0.0
