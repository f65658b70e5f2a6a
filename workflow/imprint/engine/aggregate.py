"""AGG: score test embeddings against proxies (max) or let the m nearest proxies vote (mNN)."""

from __future__ import annotations

import warnings

import torch

from imprint.engine.distances import P_NORMS, nearest_lp, smallest_stable
from imprint.engine.scores import Request, family_scores
from imprint.engine.vocabulary import (  # noqa: F401  (re-exported)
    AGG,
    DISTANCES,
    KNN_TEMPERATURE,
    WEIGHTINGS,
)

MAHALANOBIS_RIDGE = 1e-6
VOTE_EPS = 1e-10
# Bound on the elements of one test-chunk × proxies block (float64: 8 bytes each).
CHUNK_ELEMENTS = 2**25


def _chunks(n_rows: int, n_cols: int, chunk_elements: int = CHUNK_ELEMENTS):
    step = max(1, chunk_elements // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def unique_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(the distinct rows, each row's index among them), or (x, None) when no row repeats.

    Identical rows must get identical scores and distances for the tie rules to decide, and a
    matrix product does not promise that: BLAS and cuBLAS sum the edge tiles of a product in
    another order than the rest, so duplicates differ in the last bits, differently per device.
    Scoring the distinct rows once and copying the result gives duplicates the very same value.
    """
    if x.shape[0] < 2:
        return x, None
    distinct, inverse = torch.unique(x, dim=0, return_inverse=True)
    if distinct.shape[0] == x.shape[0]:
        return x, None
    return distinct, inverse


def max_inner_product_predict(
    test: torch.Tensor, proxies: torch.Tensor, proxy_class: torch.Tensor, n_classes: int
) -> torch.Tensor:
    """Class = argmax over classes of the largest inner product with any of its proxies.

    Float64 inner products decide (see imprint.engine.scores); ties go to the lowest class.
    """
    proxy_class = proxy_class.to(proxies.device)
    order = torch.argsort(proxy_class, stable=True)  # the scorer wants classes contiguous
    sizes = torch.bincount(proxy_class, minlength=n_classes).tolist()
    request = Request("max", "inner_product")
    return family_scores({"none": test}, {"base": proxies[order]}, sizes, [request])[request]


def mahalanobis_transform(proxies: torch.Tensor) -> torch.Tensor:
    """T with ‖(x - w) T‖ = Mahalanobis distance under inv(cov(proxies) + 1e-6·I).

    cov is the unbiased covariance of the proxies (rows as observations), as np.cov.
    """
    w = proxies.to(torch.float64)
    if w.shape[0] < 2:
        raise ValueError(
            "the Mahalanobis distance needs at least 2 proxies to estimate a covariance"
        )
    cov = torch.cov(w.T).reshape(w.shape[1], w.shape[1])
    cov = cov + MAHALANOBIS_RIDGE * torch.eye(w.shape[1], dtype=torch.float64, device=w.device)
    evals, evecs = torch.linalg.eigh(cov)
    return evecs / torch.sqrt(evals)


def distance_block(x: torch.Tensor, w: torch.Tensor, distance: str) -> torch.Tensor:
    """Distances [len(x), len(w)] between rows; x and w already in the compute dtype.

    For 'mahalanobis' both are expected already mapped by `mahalanobis_transform`.
    """
    if distance == "cosine":
        xn = torch.nn.functional.normalize(x, dim=1)
        wn = torch.nn.functional.normalize(w, dim=1)
        return 1.0 - xn @ wn.T
    if distance in ("euclidean", "mahalanobis"):
        return torch.cdist(x, w, p=2.0)
    if distance in P_NORMS:  # manhattan, chebyshev
        return torch.cdist(x, w, p=P_NORMS[distance])
    raise ValueError(f"unknown distance '{distance}'; allowed for mNN: {', '.join(DISTANCES[1:])}")


def nearest_proxies(
    test: torch.Tensor,
    proxies: torch.Tensor,
    distance: str,
    m: int,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The m nearest proxies of every test row: (distances [n, m], indices [n, m]), nearest first.

    Computed once per (proxies, distance) for the largest m any configuration needs; every
    smaller m and every weighting is then a prefix of this list. Cosine, Euclidean and
    Mahalanobis (Euclidean after `mahalanobis_transform`, in float64) go through
    `scores.family_scores` (a float32 product picks candidates, float64 values of the pairs
    decide, ties to the lower proxy); Manhattan and Chebyshev go
    through `distances.nearest_lp`: a float32 pass picks candidates, the same float64
    torch.cdist values decide, so the result is that of `distance_block` at a fraction of its cost.
    """
    if distance in ("cosine", "euclidean", "mahalanobis"):
        tests, base = {"none": test}, proxies
        if distance == "mahalanobis":  # Euclidean after the whitening map
            t = mahalanobis_transform(proxies)
            tests, base = {"none": test.to(torch.float64) @ t}, proxies.to(torch.float64) @ t
        request = Request(
            "nearest", "euclidean" if distance == "mahalanobis" else distance, depth=m
        )
        return family_scores(tests, {"base": base}, [len(proxies)], [request])[request]
    x = test.to(dtype)
    distinct, expand = unique_rows(proxies)  # duplicates: one distance, ties by index
    w = distinct.to(dtype)  # casting is exact, so rows distinct before are distinct after
    if distance == "mahalanobis":
        t = mahalanobis_transform(proxies).to(dtype)  # the covariance of every proxy
        x, w = x @ t, w @ t
    m = min(m, proxies.shape[0])
    if distance in P_NORMS and m > 0:
        float32 = test.dtype == proxies.dtype == torch.float32
        return nearest_lp(x, w, expand, distance, m, (test, distinct) if float32 else None)
    dists = torch.empty(x.shape[0], m, dtype=dtype, device=x.device)
    idx = torch.empty(x.shape[0], m, dtype=torch.int64, device=x.device)
    for rows in _chunks(x.shape[0], proxies.shape[0]):
        block = distance_block(x[rows], w, distance).clamp_min_(0.0)
        if expand is not None:
            block = block[:, expand]
        dists[rows], idx[rows] = smallest_stable(block, m)
    return dists, idx


def clip_m(m: int, n_proxies: int) -> int:
    """m clipped to the number of proxies, with a warning when it had to be clipped."""
    if m > n_proxies:
        warnings.warn(
            f"mNN m={m} exceeds the {n_proxies} proxies available; using m={n_proxies}",
            stacklevel=2,
        )
        return n_proxies
    return m


def vote(
    neighbour_class: torch.Tensor,
    neighbour_dist: torch.Tensor,
    ms: list[int],
    weighting: str,
    n_classes: int,
    temperature: float = KNN_TEMPERATURE,
) -> dict[int, torch.Tensor]:
    """Majority votes of the first m neighbours for every m in `ms`: {m: predictions [n]}.

    Each vote counts 1 ('uniform'), 1 / (distance + 1e-10) ('weighted_by_distance') or, for
    cosine distances, exp((1 - distance) / temperature) ('exp_similarity', dinov2's kNN; its
    T = KNN_TEMPERATURE unless given);
    ties go to the lowest class index. Votes are accumulated nearest first, so the running
    sum after m neighbours is the m-NN score for every m at once.
    """
    if weighting == "uniform":
        weights = torch.ones_like(neighbour_dist, dtype=torch.float64)
    elif weighting == "weighted_by_distance":
        weights = 1.0 / (neighbour_dist.to(torch.float64) + VOTE_EPS)
    elif weighting == "exp_similarity":
        weights = torch.exp((1.0 - neighbour_dist.to(torch.float64)) / temperature)
    else:
        raise ValueError(f"unknown weighting '{weighting}'; allowed: {', '.join(WEIGHTINGS)}")
    n, depth = neighbour_class.shape
    out = {}
    for rows in _chunks(n, depth * n_classes, chunk_elements=2**24):
        votes = torch.zeros(
            rows.stop - rows.start, depth, n_classes, dtype=torch.float64, device=weights.device
        )
        votes.scatter_(2, neighbour_class[rows].unsqueeze(2), weights[rows].unsqueeze(2))
        running = torch.cumsum(votes, dim=1)
        for m in ms:
            pred = torch.argmax(running[:, m - 1, :], dim=1)
            out.setdefault(m, []).append(pred)
    return {m: torch.cat(parts) for m, parts in out.items()}
