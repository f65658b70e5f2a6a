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


# Run of 2026-12-07 at e7146e6 (benchmarks/mutation-survivors.md, top section): the GEN table's
# per-GEN functions and their plumbing.
def _brute_force_medoids(x, k):
    """The k rows of x with the smallest total distance to their nearest chosen row."""
    from itertools import combinations

    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    return min(combinations(range(len(x)), k), key=lambda c: d[:, list(c)].min(axis=1).sum())


def test_kmedoids_rows_are_each_classs_medoids_for_every_registered_k():
    # kills _medoids 19 (n = D), 22 (k = 1 skipped), 24 (a class of exactly k rows skipped)
    from imprint.engine.generate import generate_proxies, training_set_cache

    g = np.random.default_rng(2)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    a = np.concatenate([c + g.normal(scale=0.5, size=(3, 2)) for c in centres])  # 9 rows, D = 2
    b = g.normal(size=(3, 2))  # exactly k = 3 rows
    c = g.normal(size=(2, 2))  # fewer rows than k = 3
    xs = [torch.from_numpy(v.astype(np.float32)) for v in (a, b, c)]
    cache = training_set_cache([("kmedoids", 1), ("kmedoids", 3)])
    for k in (1, 3):
        got = generate_proxies(xs, "kmedoids", k, 0, cache=cache)
        for x, p in zip(xs, got):
            if x.shape[0] < k:  # every row
                assert torch.equal(p, x)
                continue
            rows = x.double().numpy()
            want = rows[list(_brute_force_medoids(rows, k))]
            assert p.shape == (k, 2)
            assert sorted(map(tuple, p.double().numpy())) == sorted(map(tuple, want))


def test_generate_proxies_continues_the_given_stream():
    # kills generate_proxies 7 (`generator.set_state(None)`; the line was never run)
    from imprint.engine.generate import generate_proxies

    xs = _classes()
    stream = torch.Generator().manual_seed(11)
    torch.randperm(4, generator=stream)  # a few-shot draw before GEN's
    state = stream.get_state()
    got = generate_proxies(xs, "random", 3, 99, stream_state=state)
    replay = torch.Generator()
    replay.set_state(state)
    want = [x[torch.randperm(x.shape[0], generator=replay)[:3]] for x in xs]
    assert all(torch.equal(p, w) for p, w in zip(got, want))


def test_refusals_of_gen_functions_name_the_gen():
    # kills joint_proxies 2, 3, 4 (not a joint GEN), _proxy_function 6, 7, 8 (the linear
    # probe is not proxies alone), _ls_system_of 2-5, ls_proxies 8, 13, 14 and kls_proxies 3,
    # 8, 9 (no λ: the GEN's name in the message); none of these lines ran before
    import pytest

    from imprint.engine.generate import generate_proxies
    from imprint.engine.vocabulary import PROBE_GEN

    xs = _classes()
    with pytest.raises(ValueError) as err:
        joint_proxies(xs, "mean", 1, 0, 0.1)
    assert str(err.value) == "joint GEN must be one of ls, kls, got 'mean'"
    with pytest.raises(ValueError) as err:
        generate_proxies(xs, PROBE_GEN, 1, 0)
    assert str(err.value) == (
        f"GEN '{PROBE_GEN}' is not proxies alone (its biases are part of its scores): evaluate "
        "it with evaluate_grid, or fit it with engine.baselines.linear_probe"
    )
    for gen in ("ls", "kls"):
        with pytest.raises(ValueError) as err:
            generate_proxies(xs, gen, 2, 0)
        assert str(err.value) == (
            f"GEN '{gen}' needs the ridge λ of the backbone: pass ls_lambda (the CLI takes "
            "--ls-lambda or reads the backbone from the embedding metadata)"
        )


def test_kls_with_k_1_is_ls():
    # kills kls_proxies 12, 14, 15, 16, 17 (the k = 1 branch; its line never ran)
    xs = _classes()
    got = torch.cat(joint_proxies(xs, "kls", 1, 0, 0.1)).double().numpy()
    np.testing.assert_allclose(
        got, ls_closed_form([x.numpy() for x in xs], 0.1), rtol=1e-5, atol=1e-7
    )


def test_kmeans_centres_keep_float64_rows_in_float64():
    # kills kmeans_centres 13, 15 (`.to(x.device, x.dtype)` → dtype dropped: float32 centres)
    from imprint.engine.generate import generate_proxies

    xs = _classes(torch.float64)
    got = generate_proxies(xs, "kmeans", 2, 0)
    for x, p in zip(xs, got):
        want = KMeans(n_clusters=2, random_state=0).fit(x.float().numpy()).cluster_centers_
        assert p.dtype == torch.float64
        np.testing.assert_array_equal(p.numpy(), want.astype(np.float32).astype(np.float64))


def test_training_set_cache_registers_every_kmedoids_k():
    # reaches training_set_cache, which no listed test called (the run's 6 "no tests" mutants,
    # training_set_cache 1-6), and kills _medoids 2, 6, 7, 10, 14, 15 (the registered k
    # ignored): one call makes the medoids of every registered k
    from imprint.engine.generate import generate_proxies, training_set_cache

    cache = training_set_cache([("kmedoids", 2), ("mean", 1), ("kmedoids", 4), ("fps", 3)])
    assert cache == {"kmedoids_ks": [2, 4]}
    xs = _classes()
    generate_proxies(xs, "kmedoids", 2, 0, cache=cache)
    assert sorted(cache["medoids"]) == [(c, k) for c in range(3) for k in (2, 4)]


def test_kmedoids_after_a_class_smaller_than_k():
    # kills _medoids 27 (`continue` → `break`: a class with nothing to do ends the loop, and
    # every later class keeps all its rows)
    from imprint.engine.generate import generate_proxies

    g = np.random.default_rng(4)
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    clustered = np.concatenate([c + g.normal(scale=0.5, size=(4, 3)) for c in centres])
    small = torch.from_numpy(g.normal(size=(2, 3)).astype(np.float32))
    large = torch.from_numpy(clustered.astype(np.float32))  # 2 rows, then 12 rows; k = 3
    got = generate_proxies([small, large], "kmedoids", 3, 0)
    rows = large.double().numpy()
    want = rows[list(_brute_force_medoids(rows, 3))]
    assert torch.equal(got[0], small)
    assert sorted(map(tuple, got[1].double().numpy())) == sorted(map(tuple, want))
