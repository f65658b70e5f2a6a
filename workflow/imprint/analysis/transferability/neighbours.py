"""Leave-one-out kNN accuracy and TMI: estimators from each row's nearest neighbours in the
task (the engine's exact neighbour lists, engine/aggregate.py).

TMI (Xu & Kang, ICCV 2023): the intra-class feature variance as a kNN estimate of the
conditional entropy H(X | Y) (tmi).
"""

from __future__ import annotations

import numpy as np

from imprint.analysis.transferability.common import EstimatorUndefined

LOO_QUERIES = 5000  # query rows of leave-one-out kNN (every row stays a candidate neighbour)


def loo_knn_accuracy(
    features: np.ndarray,
    labels: np.ndarray,
    k: int = 20,
    temperature: float = 0.07,
    queries: int | None = LOO_QUERIES,
    seed: int = 0,
) -> float:
    """Leave-one-out accuracy (percent) of dinov2's weighted kNN (engine/baselines.py) on the
    training rows: each query row is classified by its k most cosine-similar other rows.
    `queries`: a seeded sample of that many query rows (None: every row), so a 60,000-row set
    costs a 5,000 × 60,000 product, not 60,000².

    Defined on any rows: a class of one row is never classified right (its only row is the
    one left out), so one row per class gives 0 %; identical rows tie, and ties go to the
    lower row index (the engine's order); fewer than k other rows: all of them vote."""
    import torch

    from imprint.engine.aggregate import nearest_proxies, vote
    from imprint.engine.baselines import check_knn_temperature

    check_knn_temperature(temperature)

    _, index = np.unique(np.asarray(labels), return_inverse=True)
    n = index.shape[0]
    if n < 2:
        raise ValueError("leave-one-out kNN needs at least 2 rows")
    rows = np.arange(n)
    if queries is not None and queries < n:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=queries, replace=False))
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    classes = torch.from_numpy(index)
    depth = min(k + 1, n)
    correct = 0
    for start in range(0, rows.size, 2048):
        query = torch.from_numpy(rows[start : start + 2048])
        distances, neighbours = nearest_proxies(x[query], x, "cosine", depth)
        # Drop the query itself (wherever ties put it); if duplicates pushed it out of the
        # list, drop the last neighbour instead, keeping k.
        own = neighbours == query[:, None]
        own[~own.any(dim=1), -1] = True
        keep = ~own
        neighbours = neighbours[keep].view(len(query), depth - 1)
        distances = distances[keep].view(len(query), depth - 1)
        n_classes = int(classes.max()) + 1
        pred = vote(
            classes[neighbours], distances, [depth - 1], "exp_similarity", n_classes, temperature
        )[depth - 1]
        correct += int((pred == classes[query]).sum())
    return 100.0 * correct / rows.size


TMI_NEIGHBOURS = 3
TMI_MIN_DISTANCE = 1.0


def tmi(
    features: np.ndarray,
    labels: np.ndarray,
    k: int = TMI_NEIGHBOURS,
    min_distance: float = TMI_MIN_DISTANCE,
) -> float:
    """TMI (Xu & Kang, ICCV 2023): the intra-class feature variance as the conditional entropy
    H(X | Y) in nats, with the authors' estimator and defaults: per class c of n_c rows in D
    dimensions, the Kozachenko-Leonenko entropy with the max norm,
        h_c = −ψ(k) + ψ(n_c) + (D / n_c) Σ_i log(2 ε_i),
    ε_i the Chebyshev distance from row i to its k-th nearest other row of the class, raised to
    at least `min_distance` (their 1.0); then the mean over classes of (n_c / n) · h_c. As in
    their code, a class of one row contributes 0 and a class of 2..k rows (no k-th neighbour)
    is left out of the mean. Higher: more intra-class variance, expected to transfer better.
    The neighbour lists are the engine's exact Chebyshev ones (engine/distances.py).

    Degenerate data. The floor on ε_i is the regularisation for repeated points: identical
    rows (constant features, a class or a whole set of identical rows) give ε_i =
    `min_distance`, so h_c stays finite. Where no class has k + 1 rows, no class has an
    entropy estimate (the 0 of a one-row class is a placeholder, not an estimate): TMI is
    undefined and EstimatorUndefined (a ValueError) is raised; likewise for a zero k-th
    neighbour distance (k + 1 identical rows) with `min_distance` ≤ 0, whose log is −∞.
    """
    import torch
    from scipy.special import digamma

    from imprint.engine.aggregate import nearest_proxies

    x = np.ascontiguousarray(features, dtype=np.float32)
    classes, index = np.unique(np.asarray(labels), return_inverse=True)
    n, dim = x.shape
    largest = int(np.bincount(index).max())
    if largest <= k:
        raise EstimatorUndefined(
            f"TMI needs a class of at least k + 1 = {k + 1} rows for its Kozachenko-Leonenko "
            f"entropy (each row's distance to its k-th nearest other row of the class, "
            f"k = {k}); the largest class here has {largest} row{'s' if largest > 1 else ''}"
        )
    terms = []
    for c in range(int(index.max()) + 1):
        rows = torch.from_numpy(x[index == c])
        n_c = rows.shape[0]
        if n_c <= 1:
            terms.append(0.0)
            continue
        if n_c <= k:
            continue
        distances, _ = nearest_proxies(rows, rows, "chebyshev", k + 1)  # itself included
        eps = np.maximum(distances[:, -1].numpy(), min_distance)
        if not (eps > 0).all():
            raise EstimatorUndefined(
                f"TMI with min_distance={min_distance:g} is undefined here: class "
                f"{classes.tolist()[c]!r} has {k + 1} or more identical rows, so a row's "
                f"distance to its k-th nearest other row (k = {k}) is 0 and its log is -inf; "
                "it needs a positive min_distance (the authors' 1.0)"
            )
        h = -digamma(k) + digamma(n_c) + dim / n_c * float(np.log(2.0 * eps).sum())
        terms.append(n_c / n * h)
    return float(np.mean(terms))
