"""Neural-collapse metrics of an embedding set, computed from per-class sufficient statistics.

The paper relates imprinting accuracy to how collapsed a backbone's training embeddings are
(NC1 and VCI per backbone, dataset and label remapping); NC3-NC5, which set a classifier or
out-of-distribution data against the class means, are in collapse_classifier. Everything here streams over classes
and row chunks in float64, so a memory-mapped ImageNet-sized set (1.3M x 2048) is read piecewise
and only a few D x D matrices are ever held. Pure functions: arrays in, dataclass and dicts out.

Notation: C classes, N samples, D dimensions, mu_c the class means, mu_G the global mean over all
samples (Papyan et al. 2020), M~ the C x D matrix of centred means mu_c - mu_G,
Sigma_W = (1/C) sum_c (1/n_c) sum_i (x_ci - mu_c)(x_ci - mu_c)^T (the mean of the per-class
covariances; the sample-weighted variants use (1/N) sum_c sum_i) and Sigma_B = (1/C) M~^T M~.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from imprint.analysis.embedding_rows import (
    checked_chunk_rows,
    checked_labels,
    embedding_matrix,
    prepare_rows,
    read_rows,
)

__all__ = ["ClassStatistics", "class_statistics", "collapse_metrics", "global_mean"]

_EPS = np.finfo(np.float64).eps
_EPS32 = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class ClassStatistics:
    """Per-class sufficient statistics of an embedding set (all float64).

    Only pooled D x D matrices are kept: per-class covariances would need C x D x D memory
    (33 GB for ImageNet-1k at D = 2048).
    """

    classes: np.ndarray
    """Class labels [C], in the order of the other per-class arrays."""
    counts: np.ndarray
    """Samples per class [C] (int64)."""
    means: np.ndarray
    """Class means [C, D]."""
    within_scatter: np.ndarray
    """Pooled within-class scatter [D, D]: sum_c sum_i (x_ci - mu_c)(x_ci - mu_c)^T."""
    class_cov_sum: np.ndarray
    """Sum over classes of the per-class covariances [D, D]: sum_c scatter_c / n_c."""
    mean_sq_dist: np.ndarray
    """Mean squared distance of each class's samples to its mean [C] (sigma_c^2 in the CDNV)."""
    l2_normalised: bool
    """Whether every sample was scaled to unit L2 norm before accumulation."""

    @property
    def n_classes(self) -> int:
        return int(self.counts.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.counts.sum())

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    @property
    def global_mean(self) -> np.ndarray:
        """Mean over all samples (not over class means), so imbalanced classes weigh by size."""
        return self.counts @ self.means / self.n_samples


class _PooledScatter:
    """Sums of within-class scatter over classes, fed whole centred classes at a time.

    Small classes are stacked into one buffer so that each outer-product pass is one large
    matrix product rather than thousands of small ones, each paying for D x D updates.
    """

    def __init__(self, dim: int, capacity: int):
        self.within = np.zeros((dim, dim))
        self.cov_sum = np.zeros((dim, dim))
        self._rows = np.empty((capacity, dim))
        self._scale = np.empty(capacity)
        self._filled = 0

    def add_centred(self, x: np.ndarray) -> None:
        m = x.shape[0]
        if self._filled + m > self._rows.shape[0]:
            self.flush()
        self._rows[self._filled : self._filled + m] = x
        # Rows scaled by 1/sqrt(n_c) turn the same product into sum_c scatter_c / n_c.
        self._scale[self._filled : self._filled + m] = 1.0 / math.sqrt(m)
        self._filled += m

    def add_scatter(self, scatter: np.ndarray, count: int) -> None:
        self.within += scatter
        scatter /= count
        self.cov_sum += scatter

    def flush(self) -> None:
        if self._filled:
            rows = self._rows[: self._filled]
            self.within += rows.T @ rows
            rows *= self._scale[: self._filled, None]
            self.cov_sum += rows.T @ rows
            self._filled = 0


def class_statistics(
    embeddings,
    labels,
    l2_normalise: bool = True,
    classes=None,
    chunk_rows: int = 65536,
) -> ClassStatistics:
    """Accumulate counts, means and within-class scatter one class (and row chunk) at a time.

    Args:
        embeddings: [N, D] array; a ``np.load(..., mmap_mode="r")`` memmap is read piecewise.
        labels: [N] class labels.
        l2_normalise: scale every sample to unit L2 norm first (the paper's setting).
        classes: the classes to include, in this order; samples of other classes are ignored.
            Default: every label present, sorted.
        chunk_rows: most rows read (and converted to float64) at once; also the size of the
            buffer in which classes smaller than this are stacked before their outer products.

    Each class is centred at its own exact mean before any outer product is formed, which
    avoids the cancellation of sum(x x^T) - n mu mu^T. Peak memory is about
    ``2 * chunk_rows * D * 8`` bytes plus three D x D float64 matrices.
    """
    x_all = embedding_matrix(embeddings)
    labels = checked_labels(labels, x_all.shape[0])
    chunk_rows = checked_chunk_rows(chunk_rows)
    classes = _checked_classes(labels, classes)
    rows_of = _rows_by_class(labels, classes)

    counts = np.array([rows.size for rows in rows_of], dtype=np.int64)
    means = np.zeros((classes.size, x_all.shape[1]))
    mean_sq = np.zeros(classes.size)
    pooled = _PooledScatter(x_all.shape[1], min(chunk_rows, int(counts.sum())))
    for k, rows in enumerate(rows_of):
        label = classes[k]
        what = f"class {label.item() if isinstance(label, np.generic) else label}"
        if rows.size <= chunk_rows:
            means[k], mean_sq[k] = _add_whole_class(x_all, rows, l2_normalise, what, pooled)
        else:
            means[k], mean_sq[k] = _add_chunked_class(
                x_all, rows, chunk_rows, l2_normalise, what, pooled
            )
    pooled.flush()

    return ClassStatistics(
        classes=classes,
        counts=counts,
        means=means,
        within_scatter=pooled.within,
        class_cov_sum=pooled.cov_sum,
        mean_sq_dist=mean_sq,
        l2_normalised=bool(l2_normalise),
    )


def _checked_classes(labels: np.ndarray, classes) -> np.ndarray:
    """The classes to include: every label present (sorted) by default, else `classes` as
    given, which must be 1-D and free of duplicates; at least two either way."""
    if classes is None:
        classes = np.unique(labels)
    else:
        classes = np.asarray(classes)
        if classes.ndim != 1:
            raise ValueError(f"classes must be 1-D, got shape {classes.shape}")
        if np.unique(classes).size != classes.size:
            raise ValueError("classes contains duplicate labels")
    if classes.size < 2:
        raise ValueError(f"neural-collapse metrics need at least 2 classes, got {classes.size}")
    return classes


def _rows_by_class(labels: np.ndarray, classes: np.ndarray) -> list[np.ndarray]:
    """The row indices of each class, in file order; raises naming the classes with none."""
    # One stable sort gives every class's rows in file order, instead of C scans of the labels.
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, classes, side="left")
    stops = np.searchsorted(sorted_labels, classes, side="right")
    empty = classes[starts == stops]
    if empty.size:
        shown = ", ".join(repr(c) for c in empty[:10].tolist())
        more = f" and {empty.size - 10} more" if empty.size > 10 else ""
        raise ValueError(f"class(es) with no samples: {shown}{more}")
    return [order[start:stop] for start, stop in zip(starts.tolist(), stops.tolist())]


def _add_whole_class(x_all, rows, l2_normalise, what, pooled: _PooledScatter):
    """A class read in one piece: its mean and mean squared distance to it; the centred rows
    go to `pooled`."""
    x = prepare_rows(read_rows(x_all, rows), l2_normalise, what)
    mean = x.mean(axis=0)
    x -= mean
    pooled.add_centred(x)
    return mean, float(np.vdot(x, x)) / x.shape[0]


def _add_chunked_class(x_all, rows, chunk_rows, l2_normalise, what, pooled: _PooledScatter):
    """A class too big for one chunk, read once: chunks merged with Chan et al.'s pairwise
    update (scatter about each chunk's mean plus a rank-one correction). Returns its mean and
    mean squared distance to it; its scatter goes to `pooled`."""
    d = x_all.shape[1]
    seen = 0
    mean = np.zeros(d)
    scatter = np.zeros((d, d))
    for lo in range(0, rows.size, chunk_rows):
        x = prepare_rows(read_rows(x_all, rows[lo : lo + chunk_rows]), l2_normalise, what)
        m = x.shape[0]
        chunk_mean = x.mean(axis=0)
        x -= chunk_mean
        scatter += x.T @ x
        total = seen + m
        delta = chunk_mean - mean
        scatter += np.outer(delta, delta) * (seen * m / total)
        mean += delta * (m / total)
        seen = total
    mean_sq = float(np.trace(scatter)) / seen
    pooled.add_scatter(scatter, seen)  # scales `scatter` in place: after its trace is read
    return mean, mean_sq


def _kept(eigvals: np.ndarray, dim: int, eps: float = _EPS) -> np.ndarray:
    """Eigenvalues a pseudo-inverse keeps: the matrix_rank / torch.linalg.pinv default cut-off
    (lambda_max * D * eps, eps that of the dtype the inverse runs in)."""
    top = eigvals.max(initial=0.0)
    if top <= 0:
        return np.zeros(eigvals.shape, dtype=bool)
    return eigvals > top * dim * eps


def _trace_times_pinv(a: np.ndarray, vecs: np.ndarray, vals: np.ndarray) -> float:
    """Tr(A B^+) for B = vecs diag(vals) vecs^T, using only the kept eigenpairs."""
    return float((((a @ vecs) * vecs).sum(axis=0) / vals).sum())


def _vci(
    sigma_w: np.ndarray, sigma_b: np.ndarray, centred: np.ndarray, rank_b: int, eps: float = _EPS
) -> float:
    if rank_b == 0:
        return math.nan
    vals, vecs = np.linalg.eigh(sigma_w + sigma_b)
    keep = _kept(vals, vals.size, eps)
    vals, vecs = vals[keep], vecs[:, keep]
    # Tr(Sigma_B Sigma_T^+) with Sigma_B = M~^T M~ / C, without forming Sigma_B Sigma_T^+.
    proj = centred @ vecs
    trace = float(((proj * proj).sum(axis=0) / vals).sum()) / centred.shape[0]
    return 1.0 - trace / rank_b


def collapse_metrics(stats: ClassStatistics) -> dict:
    """Neural-collapse metrics from class statistics.

    Definitions (lower = more collapsed, except where noted):

    Sigma_W is the mean over classes of the per-class covariances (each around its class
    mean, divided by n_c), as the paper and its reference define it; Sigma_B the covariance of
    the class means around the global sample mean mu_G, divided by C.

    - ``nc1``: Tr(Sigma_W Sigma_B^+) / C (Papyan et al. 2020); ``^+`` keeps eigenvalues above
      lambda_max * D * eps.
    - ``nc1_sample_weighted``: Sigma_W averaged over all samples (larger classes weigh more);
      equals ``nc1`` for balanced classes. ``vci_sample_weighted`` likewise.
    - ``nc1_package``: the neural-collapse package's NC1: that Sigma_W, and Sigma_B around the
      unweighted mean of the class means (its MeanAccumulator's), over C.
    - ``nc1_reference_centring``: what the paper's reference code computes: each class is
      centred at (mu_c - mu_G) instead of mu_c. The cross terms vanish, so its Sigma_W is
      Sigma_W + mu_G mu_G^T: Tr((Sigma_W + mu_G mu_G^T) Sigma_B^+) / C, with ``^+`` (and, for
      ``vci_reference_centring``, rank and Sigma_T^+) at the cut-off of the reference's float32
      pseudo-inverse, lambda_max * D * eps32. Where both cut-offs keep the same directions it
      equals ``nc1 + mu_G^T Sigma_B^+ mu_G / C``; on a badly conditioned Sigma_B it drops the
      directions the reference drops (and can then be far below ``nc1``).
    - ``nc1_svd``: Han et al. (2022): Sigma_B inverted on exactly its top min(C-1, D)
      eigen-directions, with no cut-off. Sigma_B has rank <= C-1 (the n_c-weighted centred means
      sum to zero), so this equals ``nc1`` unless Sigma_B is numerically rank-deficient, where it
      blows up instead of ignoring the near-null directions.
    - ``nc1_quotient``: Tr(Sigma_W) / Tr(Sigma_B) (Tirer et al. 2023).
    - ``vci``: 1 - Tr(Sigma_B Sigma_T^+) / rank(Sigma_B), Sigma_T = Sigma_W + Sigma_B
      (Xu & Liu 2023); 0 = fully collapsed, nan if Sigma_B is zero.
    - ``cdnv``: mean over unordered class pairs of
      (sigma_c^2 + sigma_c'^2) / (2 ||mu_c - mu_c'||^2), sigma_c^2 the mean squared distance of
      class c's samples to mu_c (Galanti et al. 2021).
    - ``nc2_equinorm``: std / mean of ||mu_c - mu_G|| over classes (population std).
    - ``nc2_equiangular``: std of the cosines between centred class means over all c != c'.
    - ``nc2_max_angle``: mean over c != c' of |cos + 1/(C-1)| (Papyan et al. 2020).
    - ``nc2_etf_error``: || G/||G||_F - (I - 11^T/C)/sqrt(C-1) ||_F with G = M~ M~^T
      (Kothapalli 2023; ||I - 11^T/C||_F = sqrt(C-1)).
    - ``nc2g_dist`` / ``nc2g_log``: the variance over class pairs c < c' of ||u_c - u_c'|| and
      of log(1 / ||u_c - u_c'||), u_c the centred class means scaled to unit length (Liu et
      al. 2023's hyperspherical uniformity; the neural-collapse package's ``kernel_stats``
      with its distance and log kernels). 0 when the means are equally spread.

    NC1 variants are ``inf`` when all class means coincide (to within D * eps of the data's
    scale; eigenvalues of Sigma_B below s * (D * eps)^2, s the largest per-class second moment,
    count as zero, and at most C-1 are kept). The NC2 metrics and the CDNV hold a
    C x C matrix.
    """
    mu_g = stats.global_mean
    centred = stats.means - mu_g
    variability, scatter_summary = _variability_metrics(stats, mu_g, centred)
    return {
        "n_classes": stats.n_classes,
        "n_samples": stats.n_samples,
        "dim": stats.dim,
        **variability,
        "cdnv": _cdnv(centred, stats.mean_sq_dist),
        **_nc2_metrics(centred),
        **scatter_summary,
    }


def _variability_metrics(
    stats: ClassStatistics, mu_g: np.ndarray, centred: np.ndarray
) -> tuple[dict, dict]:
    """Sigma_W against Sigma_B: the NC1 variants, nc1_quotient and the VCIs (see
    collapse_metrics); and the rank and traces they come from (rank_between, trace_within,
    trace_between), which collapse_metrics lists last."""
    n_cls, n, d = stats.n_classes, stats.n_samples, stats.dim
    sigma_w = stats.class_cov_sum / n_cls
    sigma_w_pooled = stats.within_scatter / n
    sigma_b = centred.T @ centred / n_cls
    lam, vt = _between_eigenpairs(stats, centred)
    rank_b = int(_kept(lam, d).sum())
    rank_b32 = int(_kept(lam, d, _EPS32).sum())  # the reference's rank (see _nc1_variants)
    sigma_w_ref = sigma_w + np.outer(mu_g, mu_g)
    trace_b = float(np.trace(sigma_b))
    with np.errstate(divide="ignore", invalid="ignore"):
        quotient = float(np.trace(sigma_w) / np.float64(trace_b))
    metrics = {
        **_nc1_variants(sigma_w, sigma_w_pooled, mu_g, lam, vt, n_cls),
        "nc1_package": _nc1_package(stats, sigma_w_pooled),
        "nc1_quotient": quotient,
        "vci": _vci(sigma_w, sigma_b, centred, rank_b),
        "vci_sample_weighted": _vci(sigma_w_pooled, sigma_b, centred, rank_b),
        "vci_reference_centring": _vci(sigma_w_ref, sigma_b, centred, rank_b32, _EPS32),
    }
    summary = {
        "rank_between": rank_b,
        "trace_within": float(np.trace(sigma_w)),
        "trace_between": trace_b,
    }
    return metrics, summary


def _nc1_package(stats: ClassStatistics, sigma_w_pooled: np.ndarray) -> float:
    """nc1_package (see collapse_metrics): Sigma_B of the class means centred at their own
    unweighted mean, inverted with nc1's cut-off."""
    around_mean_of_means = stats.means - stats.means.mean(axis=0)
    lam, vt = _between_eigenpairs(stats, around_mean_of_means)
    keep = _kept(lam, stats.dim)
    if not keep.any():
        return math.inf
    return _trace_times_pinv(sigma_w_pooled, vt[keep].T, lam[keep]) / stats.n_classes


def _between_eigenpairs(stats: ClassStatistics, centred: np.ndarray):
    """Sigma_B's eigenvalues (descending, those that are rounding noise set to 0) and
    eigenvectors (rows of vt), from the thin SVD of the centred means M~."""
    # Cheaper than a D x D eigh when C < D, and the null directions come out exact instead of
    # as rounding noise.
    n_cls, d = stats.n_classes, stats.dim
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)
    lam = sing**2 / n_cls
    # Rounding leaves coinciding class means a noise Sigma_B whose own lambda_max would pass
    # the relative cut-off: eigenvalues must also clear the data's scale s (largest per-class
    # second moment) times (D eps)^2, and Sigma_B has rank <= C-1 (its n_c-weighted centred
    # means sum to zero).
    floor = float((stats.mean_sq_dist + (stats.means**2).sum(axis=1)).max()) * (d * _EPS) ** 2
    real = lam > floor
    real[n_cls - 1 :] = False
    return np.where(real, lam, 0.0), vt


def _nc1_variants(sigma_w, sigma_w_pooled, mu_g, lam, vt, n_cls: int) -> dict:
    """nc1, nc1_sample_weighted, nc1_reference_centring and nc1_svd (see collapse_metrics)
    from Sigma_W, its sample-weighted form, mu_G and Sigma_B's eigenpairs (lam, vt)."""
    d = vt.shape[1]
    keep = _kept(lam, d)
    vecs, vals = vt[keep].T, lam[keep]
    # The reference inverts a float32 Sigma_B with torch.linalg.pinv: its cut-off uses
    # float32's eps, so directions float64 keeps may be dropped there.
    keep32 = _kept(lam, d, _EPS32)
    vecs32, vals32 = vt[keep32].T, lam[keep32]
    if not keep.any():
        nc1 = nc1_pooled = nc1_ref = nc1_svd = math.inf
    else:
        nc1 = _trace_times_pinv(sigma_w, vecs, vals) / n_cls
        nc1_pooled = _trace_times_pinv(sigma_w_pooled, vecs, vals) / n_cls
        shift = vecs32.T @ mu_g
        nc1_ref = (
            _trace_times_pinv(sigma_w, vecs32, vals32) + float((shift * shift / vals32).sum())
        ) / n_cls
        # Han et al. invert exactly the top C-1 directions (scipy svds, k = C-1), with no
        # cut-off: identical to nc1 unless one of those eigenvalues is below pinv's tolerance.
        top = min(n_cls - 1, lam.size)
        if top > 0 and lam[top - 1] > 0:
            nc1_svd = _trace_times_pinv(sigma_w, vt[:top].T, lam[:top]) / n_cls
        else:
            nc1_svd = math.inf
    return {
        "nc1": nc1,
        "nc1_sample_weighted": nc1_pooled,
        "nc1_reference_centring": nc1_ref,
        "nc1_svd": nc1_svd,
    }


def _cdnv(centred: np.ndarray, var: np.ndarray) -> float:
    """Mean over class pairs of (var_c + var_c') / (2 ||mu_c - mu_c'||^2)."""
    n_cls = centred.shape[0]
    total = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(n_cls - 1):
            # From the differences, not |a|^2 + |b|^2 - 2ab, which cancels for close means.
            dist2 = ((centred[i] - centred[i + 1 :]) ** 2).sum(axis=1)
            total += float(((var[i] + var[i + 1 :]) / (2.0 * dist2)).sum())
    return total / (n_cls * (n_cls - 1) / 2)


def _nc2_metrics(centred: np.ndarray) -> dict:
    """The NC2 family (see collapse_metrics) from the centred class means."""
    n_cls = centred.shape[0]
    gram = centred @ centred.T
    norms = np.sqrt(np.diag(gram).copy())
    off = ~np.eye(n_cls, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosines = (gram / np.outer(norms, norms))[off]
        ideal = (np.eye(n_cls) - 1.0 / n_cls) / math.sqrt(n_cls - 1)
        etf_error = float(np.linalg.norm(gram / np.linalg.norm(gram) - ideal))
        equinorm = float(norms.std() / norms.mean())
    pair_dist = _unit_pair_distances(gram, norms)
    with np.errstate(divide="ignore", invalid="ignore"):  # coinciding directions: NaN
        nc2g_log = float((-np.log(pair_dist)).var())
    return {
        "nc2_equinorm": equinorm,
        "nc2_equiangular": float(cosines.std()),
        "nc2_max_angle": float(np.abs(cosines + 1.0 / (n_cls - 1)).mean()),
        "nc2_etf_error": etf_error,
        "nc2g_dist": float(pair_dist.var()),
        "nc2g_log": nc2g_log,
    }


def _unit_pair_distances(gram: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """||u_c - u_c'|| for c < c', u_c = m_c / (||m_c|| + eps) as the package scales them,
    from the Gram matrix of the m_c and their norms."""
    scale = norms + _EPS
    unit_gram = gram / np.outer(scale, scale)
    sq = np.diag(unit_gram)
    rows, cols = np.triu_indices(gram.shape[0], 1)
    return np.sqrt(np.maximum(sq[rows] + sq[cols] - 2.0 * unit_gram[rows, cols], 0.0))


def global_mean(embeddings, l2_normalise: bool = True, chunk_rows: int = 65536) -> np.ndarray:
    """Mean of every row (each scaled to unit length first with ``l2_normalise``), streamed."""
    x_all = embedding_matrix(embeddings)
    chunk_rows = checked_chunk_rows(chunk_rows)
    total = np.zeros(x_all.shape[1])
    for lo in range(0, x_all.shape[0], chunk_rows):
        chunk = np.array(x_all[lo : lo + chunk_rows], dtype=np.float64)
        total += prepare_rows(chunk, l2_normalise, f"rows from {lo}").sum(axis=0)
    return total / x_all.shape[0]


# Metrics that measure within-class variability (name prefixes): undefined with one row per
# class, where they come out 0 by construction.
WITHIN_CLASS_METRICS = ("nc1", "vci", "cdnv")


def undefined_reason(stats: ClassStatistics) -> str:
    """Why metrics of these classes may be undefined (NaN or inf), for the warning that says
    so ("" where neither holds): every class of one row, or coinciding class means."""
    if int(np.max(stats.counts)) < 2:
        return "every class has 1 row: there is no within-class variability to measure"
    means = np.asarray(stats.means, dtype=np.float64)
    if np.allclose(means, means[:1]):
        return "the class means coincide: the between-class variability it divides by is 0"
    return ""
