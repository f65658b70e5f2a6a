"""NC3, NC4 and NC5: a classifier and out-of-distribution data against the class means.

NC1/NC2 (collapse) describe the training embeddings alone; these compare the mean-imprinted
classifier (GEN mean, AGG max) with the class means (NC3 self-duality, NC4 agreement with the
nearest class centre) and the class means with an out-of-distribution set's mean (NC5).
Streamed over row chunks like collapse; notation as there.
"""

from __future__ import annotations

import math

import numpy as np

from imprint.analysis.collapse import ClassStatistics, class_statistics, collapse_metrics
from imprint.analysis.embedding_rows import (
    checked_chunk_rows,
    checked_labels,
    embedding_matrix,
    prepare_rows,
    read_rows,
)

__all__ = [
    "evaluate_collapse",
    "mean_classifier_metrics",
    "ncc_agreement",
    "ood_orthogonality",
    "self_duality",
]


def ood_orthogonality(class_means, ood_mean) -> float:
    """NC5: mean over classes of |cos(mu_c, mu_OOD)|, mu_OOD the global mean of
    out-of-distribution embeddings (Ammar et al. 2024; the neural-collapse package's
    ``orthogonality_deviation``, uncentred class means as there). 0 = every class mean is
    orthogonal to the OOD mean."""
    means = _as_matrix(class_means, "class_means")
    ood = np.asarray(ood_mean, dtype=np.float64).reshape(-1)
    if ood.shape[0] != means.shape[1]:
        raise ValueError(f"ood_mean has {ood.shape[0]} dimensions, class_means {means.shape[1]}")
    norms = np.linalg.norm(means, axis=1) * np.linalg.norm(ood)
    if not (norms > 0).all():
        raise ValueError("a zero class mean or OOD mean has no direction")
    return float(np.abs(means @ ood / norms).mean())


def evaluate_collapse(
    embeddings, labels, l2_normalise: bool = True, classes=None, chunk_rows: int = 65536
) -> dict:
    """``collapse_metrics`` and ``mean_classifier_metrics`` of ``class_statistics(...)`` in one
    call (what ``imprint collapse`` writes, but NC5); see each for details."""
    stats = class_statistics(
        embeddings, labels, l2_normalise=l2_normalise, classes=classes, chunk_rows=chunk_rows
    )
    return collapse_metrics(stats) | mean_classifier_metrics(
        embeddings, labels, stats, chunk_rows=chunk_rows
    )


def mean_classifier_metrics(
    embeddings, labels, stats: ClassStatistics, chunk_rows: int = 65536
) -> dict:
    """NC3 and NC4 of the mean-imprinted classifier, on the samples `stats` was computed from.

    The classifier is GEN mean with AGG max (SPEC §2): weights w_c = mu_c, the class means of
    `stats` (of the L2-normalised samples unless ``stats.l2_normalised`` is false), and the
    prediction argmax_c w_c . x (ties: the first class).

    - ``nc3_self_duality``: ``self_duality(W, mu, mu_G)`` (Papyan et al. 2020),
      || W/||W||_F - M~/||M~||_F ||_F^2 with W the uncentred class means and M~ the centred
      ones; 0 when W is a positive multiple of M~ (here: when mu_G = 0). NaN when the class
      means or the centred means are all exactly zero.
    - ``nc4_ncc_agreement``: ``ncc_agreement``, the fraction of the samples of
      ``stats.classes`` (each counted once) on which that classifier agrees with the
      nearest class centre, argmin_c ||x - mu_c||_2 (after the same L2 normalisation).
      1 = they always agree.

    `embeddings` and `labels` are those given to class_statistics; rows of other classes are
    skipped. One more pass over the rows, `chunk_rows` at a time (about
    ``chunk_rows * (D + 2C) * 8`` bytes), since NC4 needs every class mean first.
    """
    x_all = embedding_matrix(embeddings)
    labels = checked_labels(labels, x_all.shape[0])
    rows = np.flatnonzero(np.isin(labels, stats.classes))
    if rows.size != stats.n_samples:
        raise ValueError(
            f"labels hold {rows.size} samples of the classes, but the statistics count "
            f"{stats.n_samples}: pass the embeddings and labels they were computed from"
        )
    with np.errstate(divide="ignore", invalid="ignore"):  # zero means: NaN
        nc3 = self_duality(stats.means, stats.means, stats.global_mean)
    nc4 = ncc_agreement(
        x_all, stats.means, stats.means, stats.l2_normalised, chunk_rows=chunk_rows, rows=rows
    )
    return {"nc3_self_duality": nc3, "nc4_ncc_agreement": nc4}


def _as_matrix(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D [C, D], got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contain NaN or inf")
    return a


def self_duality(weights, class_means, global_mean, kind: str = "papyan") -> float:
    """NC3: how far the classifier rows are from the centred class means.

    ``kind="papyan"`` (default, Papyan et al. 2020):
    || W/||W||_F - M~/||M~||_F ||_F^2, rows of W [C, D] and M~ = class_means - global_mean
    matched by class; 0 when W is a positive multiple of M~.

    ``kind="etf"`` (Kothapalli 2023, the neural-collapse package's ``self_duality_error``):
    || W M~^T / ||W M~^T||_F - (I - 11^T/C)/sqrt(C-1) ||_F, i.e. how far the classifier/mean
    cross-similarities are from a simplex ETF.
    """
    w = _as_matrix(weights, "weights")
    centred = _as_matrix(class_means, "class_means") - np.asarray(global_mean, dtype=np.float64)
    if w.shape != centred.shape:
        raise ValueError(f"weights {w.shape} and class_means {centred.shape} differ in shape")
    n_cls = w.shape[0]
    if n_cls < 2:
        raise ValueError(f"self-duality needs at least 2 classes, got {n_cls}")
    if kind == "papyan":
        diff = w / np.linalg.norm(w) - centred / np.linalg.norm(centred)
        return float((diff * diff).sum())
    if kind == "etf":
        cross = w @ centred.T
        ideal = (np.eye(n_cls) - 1.0 / n_cls) / math.sqrt(n_cls - 1)
        return float(np.linalg.norm(cross / np.linalg.norm(cross) - ideal))
    raise ValueError(f"unknown self-duality kind {kind!r}; use 'papyan' or 'etf'")


def ncc_agreement(
    embeddings,
    weights,
    class_means,
    l2_normalise: bool = True,
    chunk_rows: int = 65536,
    rows=None,
) -> float:
    """NC4: fraction of samples on which the linear classifier and nearest class centre agree.

    The linear decision is argmax_c w_c . x (no bias); the NCC decision is
    argmin_c ||x - mu_c||_2. Every sample counts once (so large classes weigh more), as in the
    neural-collapse package's default. ``l2_normalise`` must match how ``class_means`` were
    computed; it does not change the linear decision. ``rows``: the indices of the samples to
    count (default: every row), read ``chunk_rows`` at a time.
    """
    x_all = embedding_matrix(embeddings)
    w = _as_matrix(weights, "weights")
    means = _as_matrix(class_means, "class_means")
    if w.shape != means.shape or w.shape[1] != x_all.shape[1]:
        raise ValueError(
            f"weights {w.shape}, class_means {means.shape} and embeddings "
            f"(D = {x_all.shape[1]}) must share [C, D]"
        )
    chunk_rows = checked_chunk_rows(chunk_rows)
    rows = np.arange(x_all.shape[0]) if rows is None else np.asarray(rows)
    if rows.ndim != 1 or rows.size == 0:
        raise ValueError(f"rows must be a non-empty 1-D array of row indices, got {rows.shape}")
    sq_means = (means * means).sum(axis=1)
    agree = 0
    for lo in range(0, rows.size, chunk_rows):
        block = rows[lo : lo + chunk_rows]
        x = prepare_rows(read_rows(x_all, block), l2_normalise, f"rows {block[0]}..{block[-1]}")
        linear = (x @ w.T).argmax(axis=1)
        # ||x||^2 is the same for every centre, so it drops out of the argmin.
        nearest = (sq_means - 2.0 * (x @ means.T)).argmin(axis=1)
        agree += int((linear == nearest).sum())
    return agree / rows.size
