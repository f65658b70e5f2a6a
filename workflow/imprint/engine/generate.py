"""GEN: turn each class's training embeddings into proxies (weight vectors)."""

from __future__ import annotations

import functools
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import torch
from sklearn.cluster import KMeans
from threadpoolctl import ThreadpoolController

from imprint.engine.kmedoids import kmedoids_indices, pairwise_euclidean
from imprint.engine.vocabulary import (  # noqa: F401  (GEN names re-exported)
    DEFAULT_LS_PRECISION,
    GEN,
    JOINT_GEN,
    LS_PRECISIONS,
    RANDOM_GEN,
)

# Duplicate points can leave fewer distinct clusters than k; the centroids still exist.
_FEWER_CLUSTERS = "Number of distinct clusters"


def _kmeans(x: torch.Tensor, k: int, seed: int) -> KMeans:
    return KMeans(n_clusters=k, random_state=seed).fit(x.detach().to("cpu", torch.float32).numpy())


@functools.cache
def _threadpools() -> ThreadpoolController:
    # Finding the loaded thread-pool libraries is slow (milliseconds); do it once.
    return ThreadpoolController()


def kmeans_fit_many(xs: list[torch.Tensor], k: int, seed: int) -> list[KMeans]:
    """GEN kmeans for several classes: scikit-learn's KMeans(n_clusters=k, random_state=seed)
    with its defaults, on float32 (SPEC §2), one single-threaded fit per worker thread.

    torch and scikit-learn ship separate OpenMP runtimes whose idle threads spin against each
    other; one OpenMP thread per fit and classes in parallel is several times faster here,
    and every fit is still exactly that KMeans.
    """
    if not xs:
        return []
    workers = max(1, min(len(xs), torch.get_num_threads(), os.cpu_count() or 1))
    # The warning filter is process-wide state: set it here, never inside the worker threads.
    with warnings.catch_warnings(), _threadpools().limit(limits=1):
        warnings.filterwarnings("ignore", message=_FEWER_CLUSTERS)
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda x: _kmeans(x, k, seed), xs))


def kmeans_fits(
    samples: list[torch.Tensor], k: int, seed: int, cache: dict | None = None
) -> dict[int, KMeans]:
    """KMeans(n_clusters=k, random_state=seed) of every class with at least k samples (none for
    k = -1), by class index. GEN kmeans and kls fit the same classes with the same (k, seed):
    with a `cache` shared between them (one per training set) each fit is made once."""
    key = ("kmeans", k, seed)
    if cache is not None and key in cache:
        return cache[key]
    fitted = [c for c, x in enumerate(samples) if k != -1 and x.shape[0] >= k]
    fits = dict(zip(fitted, kmeans_fit_many([samples[c] for c in fitted], k, seed)))
    if cache is not None:
        cache[key] = fits
    return fits


def farthest_point_sampling(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Greedy farthest point sampling from a random first point; returns k row indices.

    Each step takes the point with the largest Euclidean distance to the chosen set
    (ties: the lowest index).
    """
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    chosen = [first]
    xd = x.to(torch.float64)
    nearest = torch.linalg.vector_norm(xd - xd[first], dim=1)
    nearest[first] = -1.0
    for _ in range(1, k):
        nxt = int(torch.argmax(nearest))
        chosen.append(nxt)
        nearest = torch.minimum(nearest, torch.linalg.vector_norm(xd - xd[nxt], dim=1))
        nearest[chosen] = -1.0
    return torch.tensor(chosen, dtype=torch.int64, device=x.device)


def covariance_row_sums(x: torch.Tensor) -> torch.Tensor:
    """Row sums of the samples × samples covariance matrix torch.cov(x), in O(n·D).

    torch.cov treats each sample (row) as a variable observed over the D dimensions, so
    cov = Xc Xcᵀ / (D - 1) with Xc the rows centred by their own mean; its row sums are
    Xc (Σ_j Xc_j) / (D - 1) and the n × n matrix never needs to exist.
    """
    xd = x.to(torch.float64)
    xc = xd - xd.mean(dim=1, keepdim=True)
    return xc @ xc.sum(dim=0) / max(x.shape[1] - 1, 1)


def select_proxies(
    x: torch.Tensor,
    gen: str,
    k: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Proxies [k', D] of one class under a per-class GEN (every GEN but kmeans, ls and kls).

    k = -1, gen 'all', or a class with fewer samples than k: every sample is a proxy.
    Draws for random, fps and none come from `generator` (a grid's k-medoids share one
    distance matrix per class across k: evaluate.generate). kmeans, ls and kls are
    fitted over a task's classes together (evaluate.generate sends them to kmeans_fit_many and
    joint_proxies).
    """
    if gen == "kmeans":
        raise ValueError("GEN 'kmeans' fits every class at once: use kmeans_fit_many")
    if gen in JOINT_GEN:
        raise ValueError(f"GEN '{gen}' needs every class at once: use joint_proxies")
    n = x.shape[0]
    if gen == "all" or k == -1 or n < k:
        return x
    if gen == "none":
        w = torch.empty(k, x.shape[1], dtype=x.dtype)
        torch.nn.init.xavier_uniform_(w, generator=generator)
        return w.to(x.device)
    if gen == "mean":  # summed in float64: the same float32 mean on every device
        return (x.sum(dim=0, keepdim=True, dtype=torch.float64) / n).to(x.dtype)
    if gen == "random":
        return x[torch.randperm(n, generator=generator)[:k].to(x.device)]
    if gen == "kmedoids":
        return x[kmedoids_indices(pairwise_euclidean(x), k).to(x.device)]
    if gen == "fps":
        return x[farthest_point_sampling(x, k, generator)]
    if gen == "cov_max":
        order = torch.argsort(covariance_row_sums(x), descending=True, stable=True)
        return x[order[:k]]
    raise ValueError(f"unknown GEN '{gen}'; allowed: {', '.join(GEN)}")


# Rows per float64 block of the ls statistics: 2^24 elements, 128 MiB.
LS_BLOCK_ELEMENTS = 2**24


def _row_blocks(groups: list[torch.Tensor], rows: int):
    """The rows of all groups in order, as blocks of at most `rows` rows."""
    batch: list[torch.Tensor] = []
    n = 0
    for g in groups:
        start = 0
        while start < g.shape[0]:
            piece = g[start : start + rows - n]
            batch.append(piece)
            n += piece.shape[0]
            start += piece.shape[0]
            if n == rows:
                yield torch.cat(batch) if len(batch) > 1 else batch[0]
                batch, n = [], 0
    if batch:
        yield torch.cat(batch) if len(batch) > 1 else batch[0]


def ls_system(rows: list[torch.Tensor], ls_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """LU factors of A = Σ_T + μ_G μ_Gᵀ + λI in float64 over all rows of `rows` (a list of
    blocks). Σ_T and μ_G are over every sample, whatever the grouping: ls and kls of every k
    on one training set share A, so it is built (D² per row) and factored once per set.
    """
    work = torch.float64
    n_total = sum(g.shape[0] for g in rows)
    mu = torch.stack([g.sum(dim=0, dtype=work) for g in rows]).sum(dim=0) / n_total
    # Centred rows a block at a time: no float64 copy of every row (the largest §5.3 group,
    # 130,000 × 2048, would need three of 2 GiB). Blocks join small groups.
    scatter = torch.zeros(mu.shape[0], mu.shape[0], dtype=work, device=mu.device)
    for block in _row_blocks(rows, max(1, LS_BLOCK_ELEMENTS // mu.shape[0])):
        centred = block.to(work, copy=True).sub_(mu)
        scatter.addmm_(centred.T, centred)
    scatter /= n_total
    a = (
        scatter
        + torch.outer(mu, mu)
        + ls_lambda * torch.eye(mu.shape[0], dtype=work, device=mu.device)
    )
    return torch.linalg.lu_factor(a)


def least_squares_weights(
    groups: list[torch.Tensor],
    ls_lambda: float,
    precision: str = DEFAULT_LS_PRECISION,
    system: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """One least-squares weight vector per group: W = (1/C) Mᵀ (Σ_T + μ_G μ_Gᵀ + λI)⁻¹.

    M holds the group means as columns, Σ_T is the total covariance of all samples (divided
    by N), μ_G the global mean and C the number of groups. precision 'float64' solves the
    system in double precision (`system`: ls_system's factors of A over the same rows, if
    already made); 'float32' is the reference's arithmetic (statistics in float32, an
    explicit float32 inverse), which differs where A is badly conditioned (small λ).
    Returned as [C, D] in the input dtype.
    """
    if precision not in LS_PRECISIONS:
        raise ValueError(f"unknown ls precision '{precision}'; allowed: {', '.join(LS_PRECISIONS)}")
    dtype = groups[0].dtype
    n_total = sum(g.shape[0] for g in groups)
    if precision == "float32":
        work = torch.float32
        xs = [g.to(work) for g in groups]
        mu = sum(g.sum(dim=0) for g in xs) / n_total
        # Group by group, as the reference accumulates it (the same float32 rounding path).
        scatter = sum((g - mu).T @ (g - mu) for g in xs) / n_total
        means = torch.stack([g.mean(dim=0) for g in xs])  # [C, D] = Mᵀ
        a = (
            scatter
            + torch.outer(mu, mu)
            + ls_lambda * torch.eye(mu.shape[0], dtype=work, device=mu.device)
        )
        # Mᵀ as the transposed view of M [D, C], the reference's operand layout: BLAS rounds
        # differently for a contiguous [C, D] operand.
        w = torch.mm(means.T.contiguous().T, torch.linalg.inv(a)) * (1.0 / len(groups))
        return w.to(dtype)
    work = torch.float64
    sums = torch.stack([g.sum(dim=0, dtype=work) for g in groups])
    sizes = torch.tensor([g.shape[0] for g in groups], dtype=work, device=sums.device)
    means = sums / sizes[:, None]
    lu, pivots = ls_system(groups, ls_lambda) if system is None else system
    # A is symmetric, so Mᵀ A⁻¹ = (A⁻¹ M)ᵀ (LU factors and solve: torch.linalg.solve's own).
    w = torch.linalg.lu_solve(lu, pivots, means.T).T / len(groups)
    return w.to(dtype)


def joint_proxies(
    samples_per_class: list[torch.Tensor],
    gen: str,
    k: int,
    seed: int,
    ls_lambda: float,
    ls_precision: str = DEFAULT_LS_PRECISION,
    cache: dict | None = None,
) -> list[torch.Tensor]:
    """Proxies of ls (one per class) or kls (k per class), computed over all classes jointly.

    kls splits each class with KMeans(n_clusters=k, random_state=seed) and treats every
    cluster as its own class in the ls formula (a class of exactly k samples is clustered too,
    as GEN kmeans does). Where a class has fewer samples than k, or
    k = -1, every sample is its own cluster (so each sample yields one ls vector); the
    reference instead copies such a class's raw samples in as proxies (and fails for k = -1).
    Empty clusters (possible only with duplicate points) yield no proxy.

    `cache` (one per training set, shared with GEN kmeans) keeps the k-means fits and, in
    float64, the factored system A: both are the same for ls and every kls of the set.
    """
    if gen not in JOINT_GEN:
        raise ValueError(f"joint GEN must be 'ls' or 'kls', got '{gen}'")
    system = None
    if ls_precision == "float64":
        key = ("ls_system", float(ls_lambda))
        system = None if cache is None else cache.get(key)
        if system is None:
            system = ls_system(samples_per_class, ls_lambda)
            if cache is not None:
                cache[key] = system
    if gen == "ls" or k == 1:
        w = least_squares_weights(samples_per_class, ls_lambda, ls_precision, system)
        return [w[c : c + 1] for c in range(len(samples_per_class))]
    groups: list[torch.Tensor] = []
    owner: list[int] = []
    fits = kmeans_fits(samples_per_class, k, seed, cache)
    for c, x in enumerate(samples_per_class):
        if c not in fits:
            parts = [x[i : i + 1] for i in range(x.shape[0])]
        else:
            labels = torch.from_numpy(fits[c].labels_).to(x.device)
            parts = [x[labels == j] for j in range(k)]
        for part in parts:
            if part.shape[0]:
                groups.append(part)
                owner.append(c)
    w = least_squares_weights(groups, ls_lambda, ls_precision, system)
    owner_t = torch.tensor(owner, device=w.device)
    return [w[owner_t == c] for c in range(len(samples_per_class))]
