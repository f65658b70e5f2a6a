"""NCTI (Wang et al., ICCV 2023): how far the features are from neural collapse on the task,
three terms of a shrunk linear discriminant analysis (ncti_components), combined across the
candidate backbones (ncti_scores; analysis/agreement.py's with_ncti per task)."""

from __future__ import annotations

import math
import warnings

import numpy as np

from imprint.analysis.transferability.common import FLOAT64_EPS, EstimatorUndefined, one_hot

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
    x = np.asarray(features, dtype=np.float64)
    classes, index = one_hot(np.asarray(labels))[0], np.unique(labels, return_inverse=True)[1]
    _check_within_class_variation(x, index, classes.size)
    z, lda = _reduced_discriminant(x)
    return _ncti_terms(lda, z, index, classes.size)


def _check_within_class_variation(x: np.ndarray, index: np.ndarray, n_classes: int) -> None:
    """EstimatorUndefined where no class has two distinct rows: the within-class covariance
    the discriminant analysis inverts is zero, and so is its shrinkage target."""
    counts = np.bincount(index, minlength=n_classes)
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


def _reduced_discriminant(x: np.ndarray):
    """The rows' leading NCTI_DIMENSIONS principal components z and the (unfitted) linear
    discriminant analysis for them: shrunk by max(exp(−Σ of the NCTI_SHRINKAGE_COMPONENTS
    leading variances), NCTI_SHRINKAGE_FLOOR); at the floor the unshrunk 'svd' solver, with
    the components whose variance is rounding noise set to exact zeros (ncti_components)."""
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    dims = min(NCTI_DIMENSIONS, x.shape[0], x.shape[1])
    pca = PCA(n_components=dims, svd_solver="covariance_eigh")
    z = pca.fit_transform(x)
    spread = float(pca.explained_variance_[:NCTI_SHRINKAGE_COMPONENTS].sum())
    shrinkage = max(math.exp(-spread), NCTI_SHRINKAGE_FLOOR)
    if shrinkage == NCTI_SHRINKAGE_FLOOR:
        lda = LinearDiscriminantAnalysis(solver="svd")
        variance = pca.explained_variance_
        noise = variance <= variance.max(initial=0.0) * max(x.shape) * FLOAT64_EPS
        z[:, noise] = 0.0
    else:
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage)
    return z, lda


def _ncti_terms(lda, z: np.ndarray, index: np.ndarray, n_classes: int) -> dict[str, float]:
    """ncti_etf, ncti_ncc and ncti_vc of the discriminant analysis fitted on z (ncti_components)."""
    with warnings.catch_warnings():
        # scikit-learn's note on the empirical covariance of a one-row class (zero: wanted).
        warnings.filterwarnings("ignore", "Only one sample available", UserWarning)
        projected = lda.fit(z, index).transform(z)
    projected = projected - projected.mean(axis=0)
    posterior = lda.predict_proba(z)
    per_class = sum(
        float(np.linalg.norm(posterior[index == c], ord="nuc")) for c in range(n_classes)
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
