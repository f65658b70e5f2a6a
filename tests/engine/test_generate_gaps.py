"""Tests that kill the surviving mutants of generate.py that were real gaps (benchmarks/mutation.py; each one and why: benchmarks/mutation-survivors.md)."""

import numpy as np
import torch
from _reference import ls_closed_form
from sklearn.cluster import KMeans

from imprint.engine.generate import (
    covariance_row_sums,
    farthest_point_sampling,
    joint_proxies,
    kmeans_fits,
    least_squares_weights,
    ls_system,
    select_proxies,
)


def _classes(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(n, 5, generator=g).to(dtype) for n in (7, 6, 12)]


def test_kmeans_fits_cache_per_k():
    xs, cache = _classes(), {}
    two = kmeans_fits(xs, 2, 0, cache)
    three = kmeans_fits(xs, 3, 0, cache)
    assert {f.n_clusters for f in three.values()} == {3}
    assert kmeans_fits(xs, 2, 0, cache) is two


def _fps_direct(x, k, first):
    x = x.double()
    chosen = [first]
    for _ in range(1, k):
        d = torch.cdist(x, x[chosen]).min(dim=1).values
        d[chosen] = -1.0
        chosen.append(int(torch.argmax(d)))
    return chosen


def test_fps_on_duplicated_and_tightly_packed_rows():
    x = _classes()[1]
    for rows in (torch.cat([x, x]), x * 1e-3):
        got = farthest_point_sampling(rows, 6, torch.Generator().manual_seed(2)).tolist()
        first = int(torch.randint(len(rows), (1,), generator=torch.Generator().manual_seed(2)))
        assert got == _fps_direct(rows, 6, first) and len(set(got)) == 6


def test_covariance_row_sums_equal_torch_cov():
    x = _classes(torch.float64)[2]
    for d in (2, 5):
        expected = torch.cov(x[:, :d]).sum(dim=1)
        assert torch.allclose(covariance_row_sums(x[:, :d]), expected, rtol=1e-12, atol=1e-12)


def test_a_class_of_exactly_k_rows_goes_through_gen():
    x = _classes()[0]  # 7 rows
    assert select_proxies(x, "mean", 7, torch.Generator().manual_seed(0)).shape == (1, 5)
    assert not torch.equal(select_proxies(x, "none", 7, torch.Generator().manual_seed(0)), x)


def test_none_and_random_follow_the_generator():
    x = _classes()[2]
    for gen in ("none", "random"):
        a, b, c = (select_proxies(x, gen, 3, torch.Generator().manual_seed(s)) for s in (1, 1, 2))
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_ls_weights_keep_the_input_dtype_and_precision():
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(n, 5, generator=g) * 10 + 100 for n in (70, 60, 120)]
    w = least_squares_weights(xs, 0.5, "float64")
    assert w.dtype == torch.float32
    assert torch.equal(w, least_squares_weights([x.double() for x in xs], 0.5, "float64").float())
    w = least_squares_weights([x.double() for x in xs], 0.5, "float32")
    assert w.dtype == torch.float64 and torch.equal(
        w, least_squares_weights(xs, 0.5, "float32").double()
    )


def test_ls_system_leaves_its_rows_alone():
    g = _classes(torch.float64)[2]
    before = g.clone()
    ls_system([g], 0.1)
    assert torch.equal(g, before)


def test_one_cache_for_two_lambdas():
    xs, cache = _classes(), {}
    joint_proxies(xs, "ls", 1, 0, 0.1, "float64", cache)
    again = joint_proxies(xs, "ls", 1, 0, 10.0, "float64", cache)
    alone = joint_proxies(xs, "ls", 1, 0, 10.0, "float64")
    assert all(torch.equal(a, b) for a, b in zip(again, alone))


def _kls_groups(xs, k, seed):
    groups = []
    for x in xs:
        if x.shape[0] < k:
            groups += [x[i : i + 1].double().numpy() for i in range(x.shape[0])]
        else:
            labels = KMeans(n_clusters=k, random_state=seed).fit(x.numpy()).labels_
            groups += [x[labels == j].double().numpy() for j in range(k)]
    return groups


def test_kls_with_k_2_small_classes_and_float32_precision():
    xs = _classes()
    assert [p.shape[0] for p in joint_proxies(xs, "kls", 2, 0, 0.1)] == [2, 2, 2]
    small = [xs[0][:2], xs[2]]
    got = torch.cat(joint_proxies(small, "kls", 3, 0, 0.1)).double().numpy()
    np.testing.assert_allclose(
        got, ls_closed_form(_kls_groups(small, 3, 0), 0.1), rtol=1e-5, atol=1e-7
    )
    got = torch.cat(joint_proxies(xs, "kls", 2, 0, 0.1, "float32")).double().numpy()
    np.testing.assert_allclose(
        got, ls_closed_form(_kls_groups(xs, 2, 0), 0.1), rtol=1e-4, atol=1e-6
    )


def test_kls_splits_a_class_of_fewer_rows_than_k_into_single_rows_when_d_is_smaller():
    # kills: `range(x.shape[0])` → `range(x.shape[1])` in kls (joint_proxies 59): D < n < k
    g = torch.Generator().manual_seed(3)
    xs = [torch.randn(4, 2, generator=g), torch.randn(6, 2, generator=g)]
    got = joint_proxies(xs, "kls", 5, 0, 0.1)
    assert [p.shape[0] for p in got] == [4, 5]  # each of the 4 rows its own cluster; k = 5
    np.testing.assert_allclose(
        torch.cat(got).double().numpy(),
        ls_closed_form(_kls_groups(xs, 5, 0), 0.1),
        rtol=1e-5,
        atol=1e-7,
    )


def test_kls_gives_no_proxy_for_an_empty_cluster():
    # kills: `if part.shape[0]:` → `if part.shape[1]:` (joint_proxies 66)
    import warnings

    g = torch.Generator().manual_seed(4)
    twice = torch.tensor([[0.0, 1.0]] * 3 + [[2.0, 0.5]] * 3)  # 2 distinct rows for k = 3
    xs = [twice, torch.randn(7, 2, generator=g)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn: fewer distinct clusters than k
        groups = [q for q in _kls_groups(xs, 3, 0) if len(q)]  # empty clusters: no proxy
        got = joint_proxies(xs, "kls", 3, 0, 0.1)
    assert len(groups) == 5 and [p.shape[0] for p in got] == [2, 3]
    np.testing.assert_allclose(
        torch.cat(got).double().numpy(), ls_closed_form(groups, 0.1), rtol=1e-5, atol=1e-7
    )
