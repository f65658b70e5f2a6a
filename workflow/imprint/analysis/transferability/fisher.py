"""SFDA (Shao et al., ECCV 2022, "Not All Models Are Equal: Predicting Model Transferability
in a Self-challenging Fisher Space"): how well a regularised Fisher discriminant separates the
classes, after the rows have been pulled towards the other classes (sfda).

Read from the authors' code (github TencentARC/SFDA, metrics.py) and re-implemented. Their
Fisher space is the generalised eigenbasis W of (S_b, S_w) with S_w the shrunk within-class
covariance; its scores are x·W Wᵀ μ_c − ½ μ_c·W Wᵀ μ_c + log π_c, and with all D axes kept
(as their code does) WᵀS_wW = I gives W Wᵀ = S_w⁻¹: the scores are those of a linear
discriminant with the shrunk S_w, which is what is computed here (one Cholesky factor instead
of a generalised eigendecomposition; the between-class scatter drops out)."""

from __future__ import annotations

import math

import numpy as np

from imprint.analysis.transferability.common import (
    EstimatorUndefined,
    centred,
    gram,
    leading_eigenpairs,
    one_hot,
    varies_within_a_class,
)

SFDA_SHRINKAGE_RATE = 5.0  # s = max(exp(−5 λ_max(S_w)), 1e-10): the authors' adaptive shrinkage
SFDA_SHRINKAGE_FLOOR = 1e-10
SFDA_NO_WITHIN = (
    "SFDA needs a class whose rows are not all identical: its Fisher discriminant inverts the "
    "within-class covariance, which is zero here (its shrinkage target is a multiple of that "
    "covariance's trace, so it cannot make it invertible)"
)


def sfda(features: np.ndarray, labels: np.ndarray) -> float:
    """SFDA of features [n, D] for integer labels [n] (higher: expected to transfer better),
    with the authors' defaults (metrics.py's SFDA_Score):

    1. Fisher fit: class means μ_c, priors π_c = n_c / n, the within-class covariance
       S_w = (1/n) Σ_i (x_i − μ_{y_i})(x_i − μ_{y_i})ᵀ, shrunk towards its mean variance:
       S = (1 − s) S_w + s · tr(S_w)/D · I, s = max(exp(−5 λ_max(S_w)), 1e-10) (λ_max exact
       here; the authors approximate it by 3 power iterations). Class posteriors
       P = softmax_c(x·S⁻¹μ_c − ½ μ_c·S⁻¹μ_c + log π_c) (module docstring).
    2. Self-challenge (ConfMix): p_i = softmax over c of the row P_i, at c = y_i (the
       authors soften the probabilities so); x_i ← p_i x_i + (1 − p_i) m_{y_i}, m_c the
       unweighted mean of the other classes' means.
    3. The Fisher fit again on the mixed rows, with the same s; SFDA = (1/n) Σ_i P_i[y_i].
    The score is the mean posterior of the true class, as the authors' code computes it
    ("the log function is ignored in case of instability"), not its mean log.

    The rows are centred first (the posteriors do not change; a constant column becomes exact
    zeros, not rounding noise). Degenerate data: the shrinkage is the regularisation: S is
    positive definite wherever S_w ≠ 0 (constant columns, n < D, one-row classes, which add
    nothing to S_w). Where S_w = 0 (no class has two distinct rows) S = 0 and SFDA is
    undefined: EstimatorUndefined (a ValueError).
    """
    x = centred(features)
    _, targets = one_hot(np.asarray(labels))
    index = targets.argmax(axis=1)
    if not varies_within_a_class(features, index):
        raise EstimatorUndefined(SFDA_NO_WITHIN)
    posterior, shrinkage = _fisher_posteriors(x, targets, None)
    soft = np.exp(posterior - 1.0)  # a softmax of the probabilities (shifted: same ratios)
    soft /= soft.sum(axis=1, keepdims=True)
    p = soft[np.arange(index.size), index][:, None]
    means = (targets.T @ x) / targets.sum(axis=0)[:, None]
    others = (means.sum(axis=0) - means) / (means.shape[0] - 1)
    mixed = p * x + (1.0 - p) * others[index]
    posterior, _ = _fisher_posteriors(mixed, targets, shrinkage)
    return float(posterior[np.arange(index.size), index].mean())


def _fisher_posteriors(x, targets, shrinkage):
    """The class posteriors of the shrunk linear discriminant (sfda, step 1) and the shrinkage
    used (computed from S_w where `shrinkage` is None)."""
    from scipy.linalg import cho_factor, cho_solve

    n, dim = x.shape
    counts = targets.sum(axis=0)
    means = (targets.T @ x) / counts[:, None]
    within = gram(x - means[targets.argmax(axis=1)]) / n
    trace = float(np.trace(within))
    if not trace > 0:
        raise EstimatorUndefined(SFDA_NO_WITHIN)
    if shrinkage is None:
        largest = float(leading_eigenpairs(within, 1)[0][0])
        shrinkage = max(math.exp(-SFDA_SHRINKAGE_RATE * largest), SFDA_SHRINKAGE_FLOOR)
    shrunk = (1.0 - shrinkage) * within
    shrunk.flat[:: dim + 1] += shrinkage * trace / dim
    coef = cho_solve(cho_factor(shrunk, lower=True), means.T)  # S⁻¹ μ_c, [D, C]
    scores = x @ coef - 0.5 * np.einsum("cd,dc->c", means, coef) + np.log(counts / n)
    scores -= scores.max(axis=1, keepdims=True)
    posterior = np.exp(scores)
    return posterior / posterior.sum(axis=1, keepdims=True), shrinkage
