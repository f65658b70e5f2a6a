"""GEN: turn each class's training embeddings into proxies (weight vectors).

Every GEN is one function (samples per class, k, GenInputs) -> proxies per class, named in
the GEN table (engine/vocabulary.GEN_TABLE) and found here by that name.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from sklearn.cluster import KMeans
from threadpoolctl import ThreadpoolController

from imprint.engine.kmedoids import kmedoids_indices, pairwise_euclidean, total_distances
from imprint.engine.vocabulary import (
    DEFAULT_LS_PRECISION,
    GEN,
    GEN_TABLE,
    JOINT_GEN,
    LS_PRECISIONS,
    NO_ALPHA,
)


@dataclasses.dataclass(frozen=True)
class GenInputs:
    """What a GEN may read besides the classes' rows and k."""

    seed: int = 0  # the configuration's seed, for GENs that fit with their own randomness
    # The configuration's stream (random, fps and none draw from it, class by class).
    generator: torch.Generator | None = None
    ls_lambda: float | None = None  # ls and kls: the backbone's ridge λ
    ls_precision: str = DEFAULT_LS_PRECISION
    # Work the GENs of one training set share (see training_set_cache).
    cache: dict = dataclasses.field(default_factory=dict)
    # text and text_mean: each class's text proxy [1, D] (task order), and text_mean's α.
    text: list[torch.Tensor] | None = None
    alpha: float = NO_ALPHA
    # TEEN: how many classes (first in task order) make the base session; None: all of them.
    base_classes: int | None = None


def generate_proxies(
    samples: list[torch.Tensor],
    gen: str,
    k: int,
    seed: int,
    ls_lambda: float | None = None,
    cache: dict | None = None,
    stream_state: torch.Tensor | None = None,
    ls_precision: str = DEFAULT_LS_PRECISION,
    text: list[torch.Tensor] | None = None,
    alpha: float = NO_ALPHA,
    base_classes: int | None = None,
) -> list[torch.Tensor]:
    """Proxies per class for one (GEN, k, seed), and for text and text_mean the classes' text
    proxies `text` ([1, D] each, task order), text_mean's and teen's `alpha`, and teen's
    `base_classes` (the first classes in task order, the base session; None: all).

    Draws (random, fps, none) continue the configuration's stream from `stream_state` (the
    state presample.presample_classes left), or start a generator seeded with `seed` when it
    is None. A few-shot sample and a GEN draw of one seed are thus independent, not two
    replays of one seed. `cache` (one per training set, see training_set_cache) keeps what
    GENs of that set share: k-medoids' medoids for every k, k-means fits for GEN kmeans and
    kls, ls's factored system.
    """
    make = _proxy_function(gen)
    generator = torch.Generator()
    if stream_state is None:
        generator.manual_seed(int(seed))
    else:
        generator.set_state(stream_state)
    cache = {} if cache is None else cache
    inputs = GenInputs(seed, generator, ls_lambda, ls_precision, cache, text, alpha, base_classes)
    return make(samples, k, inputs)


def training_set_cache(gen_ks) -> dict:
    """A cache for the GENs of one training set, given every (GEN, k) they will make: k-medoids
    then makes the medoids of all its k from one distance matrix per class."""
    return {"kmedoids_ks": [int(k) for gen, k in gen_ks if gen == "kmedoids"]}


def select_proxies(x: torch.Tensor, gen: str, k: int, generator: torch.Generator) -> torch.Tensor:
    """Proxies [k', D] of one class under a GEN that makes them from the class's rows and
    `generator` alone: every GEN but those fitted with the seed or over all classes."""
    make = _proxy_function(gen)
    spec = GEN_TABLE[gen]
    if spec.joint:
        raise ValueError(f"GEN '{gen}' needs every class at once: use joint_proxies")
    if spec.seed == "fit":
        raise ValueError(f"GEN '{gen}' fits with the configuration's seed: use generate_proxies")
    return make([x], k, GenInputs(generator=generator))[0]


def joint_proxies(
    samples_per_class: list[torch.Tensor],
    gen: str,
    k: int,
    seed: int,
    ls_lambda: float,
    ls_precision: str = DEFAULT_LS_PRECISION,
    cache: dict | None = None,
) -> list[torch.Tensor]:
    """Proxies of ls (one per class) or kls (k per class), computed over all classes jointly
    (ls_proxies, kls_proxies). `cache` (one per training set, shared with GEN kmeans) keeps
    the k-means fits and, in float64, the factored system A: both are the same for ls and
    every kls of the set."""
    if gen not in JOINT_GEN:
        raise ValueError(f"joint GEN must be one of {', '.join(JOINT_GEN)}, got '{gen}'")
    inputs = GenInputs(seed, None, ls_lambda, ls_precision, {} if cache is None else cache)
    return PROXY_FUNCTIONS[gen](samples_per_class, k, inputs)


def _proxy_function(gen: str):
    """The function the GEN table names for `gen`."""
    if gen not in GEN_TABLE:
        raise ValueError(f"unknown GEN '{gen}'; allowed: {', '.join(GEN)}")
    if gen not in PROXY_FUNCTIONS:
        raise ValueError(
            f"GEN '{gen}' is not proxies alone (its biases are part of its scores): evaluate it "
            "with evaluate_grid, or fit it with engine.baselines.linear_probe"
        )
    return PROXY_FUNCTIONS[gen]


def _each_class(samples: list[torch.Tensor], k: int, pick) -> list[torch.Tensor]:
    """pick(x) of every class x in order; every row of a class with fewer rows than k, and of
    every class for k = -1."""
    return [x if k == -1 or x.shape[0] < k else pick(x) for x in samples]


def class_means(samples: list[torch.Tensor], k: int, inputs: GenInputs) -> list[torch.Tensor]:
    """GEN mean. Summed in float64: the same float32 mean on every device."""
    return _each_class(
        samples,
        k,
        lambda x: (x.sum(dim=0, keepdim=True, dtype=torch.float64) / x.shape[0]).to(x.dtype),
    )


def kmeans_centres(samples: list[torch.Tensor], k: int, inputs: GenInputs) -> list[torch.Tensor]:
    """GEN kmeans: the centres of KMeans(n_clusters=k, random_state=seed), classes fitted in
    parallel (identical to fitting them one by one)."""
    fits = kmeans_fits(samples, k, inputs.seed, inputs.cache)
    return [
        torch.from_numpy(fits[c].cluster_centers_.astype(np.float32)).to(x.device, x.dtype)
        if c in fits
        else x
        for c, x in enumerate(samples)
    ]


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


# Duplicate points can leave fewer distinct clusters than k; the centroids still exist.
_FEWER_CLUSTERS = "Number of distinct clusters"


def _kmeans(x: torch.Tensor, k: int, seed: int) -> KMeans:
    return KMeans(n_clusters=k, random_state=seed).fit(x.detach().to("cpu", torch.float32).numpy())


@functools.cache
def _threadpools() -> ThreadpoolController:
    # Finding the loaded thread-pool libraries is slow (milliseconds); do it once.
    return ThreadpoolController()


def kmedoids_rows(samples: list[torch.Tensor], k: int, inputs: GenInputs) -> list[torch.Tensor]:
    """GEN kmedoids: the medoids of scikit-learn-extra's k-medoids (engine/kmedoids.py)."""
    medoids = _medoids(samples, k, inputs.cache)
    return [x[medoids[c, k]] if (c, k) in medoids else x for c, x in enumerate(samples)]


def _medoids(samples: list[torch.Tensor], k: int, cache: dict) -> dict:
    """{(class, k): medoid indices} of k-medoids for k and every k the caller registered in
    cache["kmedoids_ks"] (the k of this training set's grid): each class's distance matrix is
    made once, in one block reused class after class, and read for all of them (its row
    sums, the heuristic start, too). Classes with fewer samples than k have no entry."""
    medoids = cache.setdefault("medoids", {})
    ks = sorted({k, *cache.get("kmedoids_ks", ())})
    block = None
    for c, x in enumerate(samples):
        n = x.shape[0]
        todo = [j for j in ks if 0 < j <= n and (c, j) not in medoids]
        if not todo:
            continue
        if block is None or block.numel() < n * n:
            block = torch.empty(n * n, dtype=torch.float32, device=x.device)
        d = pairwise_euclidean(x, out=block[: n * n].view(n, n))
        costs = total_distances(d)
        for j in todo:
            medoids[c, j] = kmedoids_indices(d, j, costs=costs).to(x.device)
    return medoids


def farthest_points(samples: list[torch.Tensor], k: int, inputs: GenInputs) -> list[torch.Tensor]:
    """GEN fps: farthest point sampling from a first point drawn from the stream."""
    return _each_class(samples, k, lambda x: x[farthest_point_sampling(x, k, inputs.generator)])


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


def random_rows(samples: list[torch.Tensor], k: int, inputs: GenInputs) -> list[torch.Tensor]:
    """GEN random: k rows drawn without replacement from the stream."""
    return _each_class(
        samples,
        k,
        lambda x: x[torch.randperm(x.shape[0], generator=inputs.generator)[:k].to(x.device)],
    )


def max_covariance_rows(
    samples: list[torch.Tensor], k: int, inputs: GenInputs
) -> list[torch.Tensor]:
    """GEN cov_max: the k rows with the largest covariance row sums (ties: the lower row)."""

    def pick(x: torch.Tensor) -> torch.Tensor:
        order = torch.argsort(covariance_row_sums(x), descending=True, stable=True)
        return x[order[:k]]

    return _each_class(samples, k, pick)


def covariance_row_sums(x: torch.Tensor) -> torch.Tensor:
    """Row sums of the samples × samples covariance matrix torch.cov(x), in O(n·D).

    torch.cov treats each sample (row) as a variable observed over the D dimensions, so
    cov = Xc Xcᵀ / (D - 1) with Xc the rows centred by their own mean; its row sums are
    Xc (Σ_j Xc_j) / (D - 1) and the n × n matrix never needs to exist.
    """
    xd = x.to(torch.float64)
    xc = xd - xd.mean(dim=1, keepdim=True)
    return xc @ xc.sum(dim=0) / max(x.shape[1] - 1, 1)


def every_row(samples: list[torch.Tensor], k: int, inputs: GenInputs) -> list[torch.Tensor]:
    """GEN all: every training row is a proxy."""
    return list(samples)


def ls_proxies(samples: list[torch.Tensor], k: int, inputs: GenInputs) -> list[torch.Tensor]:
    """GEN ls: one least-squares weight vector per class (least_squares_weights)."""
    return _ls_per_class(samples, _ls_system_of(samples, "ls", inputs), inputs)


def kls_proxies(samples: list[torch.Tensor], k: int, inputs: GenInputs) -> list[torch.Tensor]:
    """GEN kls: ls with every k-means cluster of a class as a class of its own.

    Each class is split with KMeans(n_clusters=k, random_state=seed) (a class of exactly k
    samples is clustered too, as GEN kmeans does). Where a class has fewer samples than k,
    or k = -1, every sample is its own cluster (so each sample yields one ls vector); the
    reference instead copies such a class's raw samples in as proxies (and fails for k = -1).
    Empty clusters (possible only with duplicate points) yield no proxy.
    """
    system = _ls_system_of(samples, "kls", inputs)
    if k == 1:
        return _ls_per_class(samples, system, inputs)
    groups: list[torch.Tensor] = []
    owner: list[int] = []
    fits = kmeans_fits(samples, k, inputs.seed, inputs.cache)
    for c, x in enumerate(samples):
        if c not in fits:
            parts = [x[i : i + 1] for i in range(x.shape[0])]
        else:
            labels = torch.from_numpy(fits[c].labels_).to(x.device)
            parts = [x[labels == j] for j in range(k)]
        for part in parts:
            if part.shape[0]:
                groups.append(part)
                owner.append(c)
    w = least_squares_weights(groups, inputs.ls_lambda, inputs.ls_precision, system)
    owner_t = torch.tensor(owner, device=w.device)
    return [w[owner_t == c] for c in range(len(samples))]


def _ls_per_class(samples: list[torch.Tensor], system, inputs: GenInputs) -> list[torch.Tensor]:
    w = least_squares_weights(samples, inputs.ls_lambda, inputs.ls_precision, system)
    return [w[c : c + 1] for c in range(len(samples))]


def _ls_system_of(samples: list[torch.Tensor], gen: str, inputs: GenInputs):
    """ls_system's factors of A over the training set `samples` in float64, made once per
    (set, λ) in inputs.cache; None in float32 (that path builds its own)."""
    if inputs.ls_lambda is None:
        raise ValueError(
            f"GEN '{gen}' needs the ridge λ of the backbone: pass ls_lambda "
            "(the CLI takes --ls-lambda or reads the backbone from the embedding metadata)"
        )
    if inputs.ls_precision != "float64":
        return None
    key = ("ls_system", float(inputs.ls_lambda))
    if key not in inputs.cache:
        inputs.cache[key] = ls_system(samples, inputs.ls_lambda)
    return inputs.cache[key]


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


def untrained_proxies(samples: list[torch.Tensor], k: int, inputs: GenInputs) -> list[torch.Tensor]:
    """GEN none: k Xavier-uniform vectors drawn from the stream, as an untrained layer's."""

    def pick(x: torch.Tensor) -> torch.Tensor:
        w = torch.empty(k, x.shape[1], dtype=x.dtype)
        torch.nn.init.xavier_uniform_(w, generator=inputs.generator)
        return w.to(x.device)

    return _each_class(samples, k, pick)


# The GEN table's functions, resolved once: a name the table misspells fails on import.
# The GENs that blend a class mean with other vectors live in generate_blended.py; imported
# here, after everything it reads from this module is defined.
from imprint.engine import generate_blended  # noqa: E402

PROXY_FUNCTIONS = {
    name: getattr(generate_blended, spec.function, None) or globals()[spec.function]
    for name, spec in GEN_TABLE.items()
    if spec.function
}
