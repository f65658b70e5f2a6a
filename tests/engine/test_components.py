"""Each IMPRINT component against an independent computation written here."""

import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _reference import ls_closed_form
from scipy.stats import weibull_min
from sklearn.cluster import KMeans
from sklearn.metrics import f1_score
from sklearn.neighbors import NearestNeighbors

from imprint.engine.aggregate import (
    clip_m,
    max_inner_product_predict,
    nearest_proxies,
    smallest_stable,
    vote,
)
from imprint.engine.generate import (
    covariance_row_sums,
    generate_proxies,
    joint_proxies,
    least_squares_weights,
    select_proxies,
)
from imprint.engine.kmedoids import heuristic_init, kmedoids_indices, pairwise_euclidean
from imprint.engine.metrics import accuracy_percent, f1_per_class
from imprint.engine.normalize import apply_norm_post, quantile_normalize_sequential
from imprint.engine.presample import fewshot_sample, weibull_filter


def gen():
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 6)) * 4
    x = np.concatenate([c + rng.normal(size=(40, 6)) for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(4), 40)
    return x, y


# --- GEN ---------------------------------------------------------------------------------


def test_mean_is_class_mean(blobs):
    x, y = blobs
    p = select_proxies(torch.from_numpy(x[y == 2]), "mean", 7, gen())
    np.testing.assert_allclose(p.numpy(), x[y == 2].mean(axis=0, keepdims=True), rtol=1e-6)


def test_kmeans_equals_sklearn(blobs):
    # Through the path the workflow runs: generate_proxies fits the classes in parallel
    # threads (kmeans_fit_many), each fit still sklearn's KMeans(n_clusters=k, random_state=seed).
    x, y = blobs
    classes = [x, *(x[y == c] for c in range(4))]
    proxies = generate_proxies([torch.from_numpy(c) for c in classes], "kmeans", 5, 123, None)
    for got, c in zip(proxies, classes, strict=True):
        ref = KMeans(n_clusters=5, random_state=123).fit(c).cluster_centers_
        np.testing.assert_array_equal(got.numpy(), ref.astype(np.float32))


def test_gens_fitted_over_all_classes_are_not_per_class():
    x = torch.zeros(6, 2)
    with pytest.raises(ValueError, match="generate_proxies"):
        select_proxies(x, "kmeans", 2, gen())
    for method in ("ls", "kls"):
        with pytest.raises(ValueError, match="joint_proxies"):
            select_proxies(x, method, 2, gen())


def _kmedoids_reference(x, k, max_iter=300):
    """scikit-learn-extra's default KMedoids, written out with numpy loops."""
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    medoids = np.argsort(d.sum(axis=1), kind="stable")[:k]
    for _ in range(max_iter):
        old = medoids.copy()
        labels = np.argmin(d[medoids], axis=0)
        for c in range(k):
            members = np.where(labels == c)[0]
            if len(members) == 0:
                continue
            costs = d[np.ix_(members, members)].sum(axis=1)
            cur = costs[np.argmax(members == medoids[c])]
            if costs.min() < cur:
                medoids[c] = members[np.argmin(costs)]
        if np.all(old == medoids):
            break
    return medoids


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_kmedoids_equals_direct_algorithm(blobs, k):
    x, _ = blobs
    xd = x.astype(np.float64)
    ours = kmedoids_indices(pairwise_euclidean(torch.from_numpy(xd)), k).numpy()
    assert sorted(ours.tolist()) == sorted(_kmedoids_reference(xd, k).tolist())


def test_kmedoids_hand_example():
    # Two well-separated 1-D groups: the medoids are each group's middle point.
    x = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]])
    idx = kmedoids_indices(pairwise_euclidean(x), 2)
    assert sorted(idx.tolist()) == [1, 4]


def test_kmedoids_distances_of_duplicates_are_zero_and_the_rest_direct():
    # An offset makes cdist's matrix-product path lose the last digits: duplicates then came
    # out up to ~1e-5 apart, not 0, and medoid choices among them depended on the device.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 64)) * 2 + 30
    x = np.concatenate([x, x[:20]])
    d = pairwise_euclidean(torch.from_numpy(x)).numpy()
    direct = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)).astype(np.float32)
    for i in range(20):
        assert d[i, 60 + i] == d[60 + i, i] == 0.0
    np.testing.assert_allclose(d, direct, rtol=1e-6, atol=0)  # duplicates: direct is 0 too
    np.testing.assert_array_equal(d[:20], d[60:])
    assert sorted(kmedoids_indices(torch.from_numpy(d), 3).tolist()) == sorted(
        _kmedoids_reference(x, 3).tolist()
    )


def test_kmedoids_costs_are_exact_sums():
    # Row 1 sums to 2^24 + 3 < row 0's 2^24 + 4. float32 cannot hold 2^24 + 3: summed in float32
    # (in any order) row 1 ties with row 0 or comes out larger, and row 0 would be chosen.
    d = torch.tensor([[2.0**24, 1, 1, 1, 1], [2.0**24 + 2, 1, 0, 0, 0]], dtype=torch.float32)
    assert d.sum(dim=1)[1] >= d.sum(dim=1)[0]  # the float32 sums this guards against
    assert heuristic_init(d, 1).tolist() == [1]


def test_fps_hand_example():
    # From the point 0 the farthest is 10, then the one farthest from both: 5 (ties: lowest index).
    x = torch.tensor([[0.0], [4.0], [5.0], [6.0], [10.0]])
    g = torch.Generator().manual_seed(0)
    first = int(torch.randint(5, (1,), generator=torch.Generator().manual_seed(0)))
    p = select_proxies(x, "fps", 3, g)
    assert p[0, 0] == x[first, 0]
    if first == 0:
        assert p[:, 0].tolist() == [0.0, 10.0, 5.0]


def test_fps_equals_direct_loop(blobs):
    x, _ = blobs
    first = int(torch.randint(len(x), (1,), generator=gen()))
    chosen = [first]
    for _ in range(5):
        d = np.min(np.linalg.norm(x[:, None, :] - x[chosen][None], axis=2), axis=1)
        d[chosen] = -1
        chosen.append(int(np.argmax(d)))
    p = select_proxies(torch.from_numpy(x), "fps", 6, gen())
    np.testing.assert_array_equal(p.numpy(), x[chosen])


def test_cov_max_equals_numpy_covariance(blobs):
    x, _ = blobs
    sums = np.cov(x.astype(np.float64)).sum(axis=1)  # samples × samples covariance
    np.testing.assert_allclose(
        covariance_row_sums(torch.from_numpy(x)).numpy(), sums, rtol=1e-9, atol=1e-9
    )
    p = select_proxies(torch.from_numpy(x), "cov_max", 4, gen())
    np.testing.assert_array_equal(p.numpy(), x[np.argsort(-sums, kind="stable")[:4]])


def test_random_draws_distinct_rows(blobs):
    x, _ = blobs
    p = select_proxies(torch.from_numpy(x), "random", 9, gen()).numpy()
    rows = {tuple(r) for r in x}
    assert len({tuple(r) for r in p}) == 9 and all(tuple(r) in rows for r in p)


def test_none_is_xavier_uniform():
    x = torch.zeros(50, 30)
    p = select_proxies(x, "none", 20, gen())
    bound = np.sqrt(6.0 / (20 + 30))
    assert p.shape == (20, 30) and float(p.abs().max()) <= bound and float(p.std()) > bound / 3


@pytest.mark.parametrize("method", ["kmeans", "kmedoids", "fps", "random", "cov_max"])
def test_fewer_samples_than_k_gives_every_sample(method):
    x = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    assert torch.equal(generate_proxies([x], method, 5, 0, None)[0], x)
    assert torch.equal(generate_proxies([x], method, -1, 0, None)[0], x)


def test_ls_equals_closed_form(blobs):
    x, y = blobs
    lam = 0.05
    expected = ls_closed_form([x[y == c] for c in range(4)], lam)
    w = least_squares_weights([torch.from_numpy(x[y == c]) for c in range(4)], lam)
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-5, atol=1e-7)
    per_class = joint_proxies([torch.from_numpy(x[y == c]) for c in range(4)], "ls", 1, 0, lam)
    np.testing.assert_allclose(torch.cat(per_class).numpy(), expected, rtol=1e-5, atol=1e-7)


def test_ls_statistics_in_blocks_equal_the_closed_form(blobs, monkeypatch):
    # Blocks of 7 rows: large groups split across blocks, single-row groups (kls, k = -1)
    # joined into one; the float64 result is the closed form's all the same.
    import imprint.engine.generate

    x, y = blobs
    monkeypatch.setattr(imprint.engine.generate, "LS_BLOCK_ELEMENTS", 7 * x.shape[1])
    groups = [x[y == 0], x[y == 1][:1], x[y == 1][1:2], x[y == 2], x[y == 3]]
    lam = 0.05
    expected = ls_closed_form(groups, lam)
    w = least_squares_weights([torch.from_numpy(g) for g in groups], lam)
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-5, atol=1e-7)
    blocks = list(imprint.engine.generate._row_blocks([torch.from_numpy(g) for g in groups], 7))
    assert [len(b) for b in blocks[:-1]] == [7] * (len(blocks) - 1) and len(blocks[-1]) <= 7
    np.testing.assert_array_equal(torch.cat(blocks).numpy(), np.concatenate(groups))


def test_ls_float32_is_the_float32_inverse():
    # Nearly rank-deficient data and a small λ: float32 and float64 arithmetic part visibly.
    rng = np.random.default_rng(3)
    basis = rng.normal(size=(8, 48))
    x = (rng.normal(size=(400, 8)) @ basis + 1e-3 * rng.normal(size=(400, 48)) + 2).astype(
        np.float32
    )
    y = np.repeat(np.arange(4), 100)
    lam = 1e-4
    groups = [torch.from_numpy(x[y == c]) for c in range(4)]
    # Direct float32 computation: sums group by group, explicit inverse, (1/C) Mᵀ A⁻¹ with M
    # the [D, C] matrix of class means.
    mu = torch.zeros(48)
    for g in groups:
        mu += g.sum(dim=0)
    mu /= 400
    scatter = torch.zeros(48, 48)
    for g in groups:
        scatter += (g - mu).T @ (g - mu)
    scatter /= 400
    m = torch.stack([g.mean(dim=0) for g in groups], dim=1)
    a = scatter + torch.outer(mu, mu) + lam * torch.eye(48)
    expected = torch.mm(m.T, torch.inverse(a)) * (1.0 / 4)
    w32 = least_squares_weights(groups, lam, "float32")
    assert w32.dtype == torch.float32
    assert torch.equal(w32, expected)
    assert torch.equal(
        torch.cat(joint_proxies(groups, "ls", 1, 0, lam, ls_precision="float32")), w32
    )
    w64 = least_squares_weights(groups, lam, "float64")
    assert float((w64 - expected).norm() / expected.norm()) > 1e-3  # the test can tell them apart
    with pytest.raises(ValueError, match="unknown ls precision 'float16'.*float64, float32"):
        least_squares_weights(groups, lam, "float16")


def test_kls_clusters_become_classes_in_ls(blobs):
    x, y = blobs
    lam, k, seed = 0.1, 3, 7
    groups, owner = [], []
    for c in range(4):
        labels = KMeans(n_clusters=k, random_state=seed).fit(x[y == c]).labels_
        for j in range(k):
            groups.append(x[y == c][labels == j].astype(np.float64))
            owner.append(c)
    expected = ls_closed_form(groups, lam)
    per_class = joint_proxies([torch.from_numpy(x[y == c]) for c in range(4)], "kls", k, seed, lam)
    assert [p.shape[0] for p in per_class] == [3, 3, 3, 3]
    np.testing.assert_allclose(torch.cat(per_class).numpy(), expected, rtol=1e-5, atol=1e-7)


def test_kls_small_class_uses_every_sample_as_a_cluster():
    x = [torch.randn(2, 4, generator=gen()), torch.randn(9, 4, generator=gen())]
    per_class = joint_proxies(x, "kls", 3, 0, 0.1)
    assert [p.shape[0] for p in per_class] == [2, 3]
    # Exactly k samples is not fewer: k-means runs (as for GEN kmeans); the points being
    # distinct, each gets its own cluster, in k-means' label order.
    x = [torch.randn(3, 4, generator=gen()).double(), torch.randn(5, 4, generator=gen()).double()]
    per_class = joint_proxies(x, "kls", 3, 0, 0.1)
    assert [p.shape[0] for p in per_class] == [3, 3]
    groups = []
    for c in x:
        labels = KMeans(n_clusters=3, random_state=0).fit(c.numpy()).labels_
        groups += [c.numpy()[labels == j] for j in range(3)]
    assert [len(g) for g in groups[:3]] == [1, 1, 1]
    expected = ls_closed_form(groups, 0.1)
    np.testing.assert_allclose(torch.cat(per_class).numpy(), expected, rtol=1e-9)


# --- presampling -------------------------------------------------------------------------


def test_weibull_filter_equals_direct_fit(blobs):
    x, y = blobs
    xc = x[y == 0].astype(np.float32)
    d = np.linalg.norm(xc - xc.mean(axis=0), axis=1).astype(np.float64)
    params = weibull_min.fit(d)
    lo, hi = weibull_min.ppf([0.1, 0.9], *params)
    keep = (d >= lo) & (d <= hi)
    out = weibull_filter(torch.from_numpy(xc), 0.1, 0.9)
    assert 0 < keep.sum() < len(xc)
    np.testing.assert_allclose(out.numpy(), xc[keep], rtol=1e-6)


def test_fewshot_without_replacement_and_clipped():
    x = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    s = fewshot_sample(x, 4, gen())
    assert s.shape == (4, 2) and len({tuple(r) for r in s.tolist()}) == 4
    assert fewshot_sample(x, 50, gen()).shape == (10, 2)
    assert fewshot_sample(x, -1, gen()) is x


# --- NORMpost quantile ---------------------------------------------------------------------


def test_quantile_maps_onto_pool_quantiles():
    rng = np.random.default_rng(3)
    classes = [
        rng.normal(size=(k, 8)).astype(np.float32) * s for k, s in ((3, 1.0), (2, 5.0), (4, 0.1))
    ]
    out = quantile_normalize_sequential([torch.from_numpy(c) for c in classes])
    np.testing.assert_array_equal(out[0].numpy(), classes[0])  # first class stays raw
    levels = (np.arange(8) + 0.5) / 8
    pool = [classes[0].ravel().astype(np.float64)]
    for c in (1, 2):
        target = np.quantile(np.concatenate(pool), levels)  # linear interpolation
        expected = np.empty_like(classes[c])
        for r, row in enumerate(classes[c]):
            expected[r, np.argsort(row, kind="stable")] = target
        np.testing.assert_allclose(out[c].numpy(), expected, rtol=1e-6)
        pool.append(expected.ravel().astype(np.float64))  # the pool grows by mapped classes


def test_quantile_pool_with_ties_over_many_classes_equals_numpy():
    # Small integers: pool values of the first class and of mapped classes tie everywhere,
    # and a class may have more rows than the pool has values.
    rng = np.random.default_rng(4)
    classes = [rng.integers(0, 4, size=(n, 5)).astype(np.float32) for n in (2, 7, 1, 3, 9, 2)]
    out = quantile_normalize_sequential([torch.from_numpy(c) for c in classes])
    levels = (np.arange(5) + 0.5) / 5
    pool = [classes[0].ravel().astype(np.float64)]
    for c in range(1, len(classes)):
        target = np.quantile(np.concatenate(pool), levels)
        expected = np.empty_like(classes[c])
        for r, row in enumerate(classes[c]):
            expected[r, np.argsort(row, kind="stable")] = target
        np.testing.assert_allclose(out[c].numpy(), expected, rtol=1e-6)
        pool.append(out[c].numpy().ravel().astype(np.float64))


def test_quantile_depends_on_class_order():
    a = torch.tensor([[0.0, 1.0, 2.0]])
    b = torch.tensor([[10.0, 30.0, 20.0]])
    ab = quantile_normalize_sequential([a, b])
    ba = quantile_normalize_sequential([b, a])
    # Levels 1/6, 1/2, 5/6 of [0, 1, 2] with linear interpolation: 1/3, 1, 5/3, in b's ranks.
    np.testing.assert_allclose(ab[1].numpy(), [[1 / 3, 5 / 3, 1.0]], rtol=1e-6)
    # The other way round: the same levels of [10, 20, 30], in a's ranks.
    np.testing.assert_allclose(ba[1].numpy(), [[40 / 3, 20.0, 80 / 3]], rtol=1e-6)


@pytest.mark.parametrize("d", [3, 7, 49, 100, 1000])
def test_quantile_grid_has_d_points_for_any_dimension(d):
    out = apply_norm_post(
        [torch.randn(2, d, generator=gen()), torch.randn(3, d, generator=gen())], "quantile"
    )
    assert out[1].shape == (3, d)


# --- AGG ---------------------------------------------------------------------------------


def test_max_inner_product_with_means_is_nearest_class_mean(blobs):
    x, y = blobs
    means = np.stack([x[y == c].mean(0) for c in range(4)])
    expected = np.argmax(x @ means.T, axis=1)
    pred = max_inner_product_predict(
        torch.from_numpy(x), torch.from_numpy(means), torch.arange(4), 4
    )
    np.testing.assert_array_equal(pred.numpy(), expected)


def test_max_takes_the_best_proxy_per_class():
    proxies = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    cls = torch.tensor([0, 0, 1])
    x = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    # x0: class 0 best 1.0, class 1 1.4 → 1; x1: class 0 best 2.0, class 1 1.4 → 0.
    assert max_inner_product_predict(x, proxies, cls, 2).tolist() == [1, 0]
    # A tie goes to the lowest class index.
    assert max_inner_product_predict(
        torch.tensor([[1.0, 0.0]]), torch.eye(2)[[0, 0]], torch.tensor([0, 1]), 2
    ).tolist() == [0]


@pytest.mark.parametrize(
    "distance", ["cosine", "euclidean", "manhattan", "chebyshev", "mahalanobis"]
)
@pytest.mark.parametrize("weighting", ["uniform", "weighted_by_distance"])
def test_mnn_equals_sklearn_votes(blobs, distance, weighting):
    x, y = blobs
    rng = np.random.default_rng(5)
    idx = rng.choice(len(x), 24, replace=False)
    proxies, proxy_class = x[idx].astype(np.float64), y[idx]
    test = x.astype(np.float64) + rng.normal(size=x.shape) * 0.5
    params = {}
    if distance == "mahalanobis":
        cov = np.cov(proxies.T) + np.eye(6) * 1e-6
        params = {"VI": np.linalg.inv(cov)}
    nn = NearestNeighbors(
        n_neighbors=7, metric=distance, metric_params=params or None, algorithm="brute"
    )
    dist, ind = nn.fit(proxies).kneighbors(test)
    dist_t, ind_t = nearest_proxies(torch.from_numpy(test), torch.from_numpy(proxies), distance, 7)
    np.testing.assert_allclose(dist_t.numpy(), dist, rtol=1e-6, atol=1e-8)
    cls = torch.from_numpy(proxy_class)[ind_t]
    preds = vote(cls, dist_t, [1, 3, 7], weighting, 4)
    for m in (1, 3, 7):
        w = np.ones((len(test), m)) if weighting == "uniform" else 1 / (dist[:, :m] + 1e-10)
        expected = [
            np.bincount(proxy_class[ind[i, :m]], weights=w[i], minlength=4).argmax()
            for i in range(len(test))
        ]
        np.testing.assert_array_equal(preds[m].numpy(), expected)


def test_uniform_vote_ties_go_to_lowest_class():
    # One proxy per class, m = 3: three classes get one vote each → the lowest of them wins.
    neighbour_class = torch.tensor([[3, 1, 2]])
    preds = vote(
        neighbour_class, torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64), [1, 3], "uniform", 4
    )
    assert preds[1].tolist() == [3] and preds[3].tolist() == [1]
    weighted = vote(
        neighbour_class,
        torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64),
        [3],
        "weighted_by_distance",
        4,
    )
    assert weighted[3].tolist() == [3]


def test_nearest_proxies_break_distance_ties_towards_the_lower_proxy():
    # Values from a small range: most rows hold ties, also at the m-th place.
    block = torch.from_numpy(np.random.default_rng(5).integers(0, 4, size=(300, 40)).astype(float))
    for m in (1, 3, 7, 40):
        d, i = smallest_stable(block, m)
        expected = np.argsort(block.numpy(), axis=1, kind="stable")[:, :m]
        np.testing.assert_array_equal(i.numpy(), expected)
        np.testing.assert_array_equal(d.numpy(), np.take_along_axis(block.numpy(), expected, 1))
    # Duplicate proxies of classes 2, 0, 1 at one point: 1-NN picks proxy 0 (class 2).
    proxies = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [5.0, 5.0]])
    proxy_class = torch.tensor([2, 0, 1, 1])
    for distance in ("euclidean", "manhattan", "chebyshev", "cosine"):
        _, idx = nearest_proxies(torch.tensor([[1.0, 1.0], [0.9, 0.9]]), proxies, distance, 3)
        assert idx.tolist() == [[0, 1, 2], [0, 1, 2]], distance
    pred = vote(proxy_class[idx], torch.zeros(2, 3), [1], "uniform", 3)[1]
    assert pred.tolist() == [2, 2]


@pytest.mark.parametrize(
    "distance", ["euclidean", "cosine", "mahalanobis", "manhattan", "chebyshev", "max"]
)
def test_duplicate_proxies_tie_exactly_on_many_queries(distance):
    # Matrix-product distances (euclidean, cosine, mahalanobis, inner product) give duplicate
    # proxies values that differ in the last bits, by position in the product; the tie rule
    # (lower proxy, lower class) must still decide. Queries sit next to duplicated proxies.
    rng = np.random.default_rng(1)
    base = rng.normal(size=(40, 64)) * 2 + 3  # an offset: the products cancel more
    copies = np.arange(40)
    proxies = np.concatenate([base, base[copies]])  # proxy 40 + j repeats proxy copies[j]
    proxy_class = np.r_[np.arange(40) % 4, (np.arange(40) % 4)[copies] + 1] % 5
    test = base[np.repeat(copies, 5)] + rng.normal(size=(200, 64)) * 0.3
    if distance == "max":
        pred = max_inner_product_predict(
            torch.from_numpy(test), torch.from_numpy(proxies), torch.from_numpy(proxy_class), 5
        )
        scores = test @ base.T  # one score per distinct proxy, so duplicates tie exactly
        best = scores[:, np.r_[np.arange(40), copies]]
        per_class = np.full((200, 5), -np.inf)
        for p, c in enumerate(proxy_class):
            per_class[:, c] = np.maximum(per_class[:, c], best[:, p])
        np.testing.assert_array_equal(pred.numpy(), per_class.argmax(axis=1))
        return
    d, idx = nearest_proxies(torch.from_numpy(test), torch.from_numpy(proxies), distance, 5)
    x, w = test, base
    if distance == "mahalanobis":
        evals, evecs = np.linalg.eigh(np.cov(proxies.T) + 1e-6 * np.eye(64))
        t = evecs / np.sqrt(evals)
        x, w = test @ t, base @ t
    diff = x[:, None, :] - w[None, :, :]  # direct differences: no matrix product
    exact = {
        "euclidean": np.sqrt((diff**2).sum(-1)),
        "mahalanobis": np.sqrt((diff**2).sum(-1)),
        "manhattan": np.abs(diff).sum(-1),
        "chebyshev": np.abs(diff).max(-1),
        "cosine": 1
        - (x / np.linalg.norm(x, axis=1, keepdims=True))
        @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T,
    }[distance][:, np.r_[np.arange(40), copies]]
    expected = np.argsort(exact, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(idx.numpy(), expected)
    assert (idx[:, 1] >= 40).all()  # every query's two nearest are one point twice
    assert (d[:, 0] == d[:, 1]).all()


def test_m_larger_than_proxies_is_clipped_with_warning():
    with pytest.warns(UserWarning, match="m=50 exceeds the 10 proxies"):
        assert clip_m(50, 10) == 10
    assert clip_m(5, 10) == 5


# --- metrics -----------------------------------------------------------------------------


def test_accuracy_and_f1_equal_sklearn():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 200)
    pred = np.where(rng.random(200) < 0.6, truth, rng.integers(0, 5, 200))
    pred[pred == 4] = 3  # class 4 is never predicted: F1 0
    assert accuracy_percent(torch.from_numpy(pred), torch.from_numpy(truth)) == pytest.approx(
        100 * np.mean(pred == truth)
    )
    expected = f1_score(truth, pred, average=None, labels=range(5), zero_division=0) * 100
    np.testing.assert_allclose(
        f1_per_class(torch.from_numpy(pred), torch.from_numpy(truth), 5), expected, rtol=1e-12
    )


def test_l2_norm_equals_numpy_and_keeps_a_zero_row_at_zero():
    from imprint.engine.normalize import apply_norm

    x = np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 1.0]], dtype=np.float32)
    out = apply_norm(torch.from_numpy(x), "l2").numpy()
    np.testing.assert_allclose(out[[0, 2]], x[[0, 2]] / np.linalg.norm(x[[0, 2]], axis=1)[:, None])
    assert (out[1] == 0).all()  # the reference divides by the zero norm and gets NaN
    with pytest.raises(ValueError, match="unknown normalisation 'l1'; allowed: none, l2"):
        apply_norm(torch.from_numpy(x), "l1")


def test_float32_norms_and_means_are_the_float64_results_rounded_once(monkeypatch):
    # Rounded once from float64, they do not depend on a device's float32 summation order.
    import imprint.engine.normalize

    monkeypatch.setattr(imprint.engine.normalize, "L2_BLOCK_ELEMENTS", 5 * 300)  # blocks of 5 rows
    x = (np.random.default_rng(4).normal(size=(23, 300)) * 7 + 2).astype(np.float32)
    xd = x.astype(np.float64)
    expected = (xd / np.linalg.norm(xd, axis=1, keepdims=True)).astype(np.float32)
    np.testing.assert_array_equal(
        imprint.engine.normalize.l2_normalize(torch.from_numpy(x)).numpy(), expected
    )
    mean = select_proxies(torch.from_numpy(x), "mean", 1, gen()).numpy()
    np.testing.assert_array_equal(mean, xd.mean(axis=0, keepdims=True).astype(np.float32))


HUGE_PAGES = """
import resource, imprint, torch
faults = []
for _ in range(2):  # 64 MiB blocks, as the engine's score and distance blocks
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.ones(2**24)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del block
print(max(faults))
"""


def _thp_available() -> bool:
    path = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return path.exists() and "[never]" not in path.read_text()


@pytest.mark.skipif(not _thp_available(), reason="the kernel has transparent huge pages off")
@pytest.mark.parametrize("setting", [None, "0"])
def test_importing_imprint_backs_large_tensors_with_huge_pages(setting):
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if setting is not None:
        env["THP_MEM_ALLOC_ENABLE"] = setting
    run = subprocess.run(
        [sys.executable, "-c", HUGE_PAGES], capture_output=True, text=True, env=env, check=True
    )
    pages = 2**26 // resource.getpagesize()  # 4 KiB pages in 64 MiB
    faults = int(run.stdout)
    if setting is None:  # 2 MiB pages: a few dozen faults per block, not 16,384
        assert faults < pages // 20, faults
    else:  # the user's own setting is kept
        assert faults >= pages, faults
