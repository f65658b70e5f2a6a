"""One product per proxy set: every derived AGG equals a direct float64 numpy computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from imprint.engine import pair_kernels, scores
from imprint.engine.normalize import l2_normalize
from imprint.engine.scores import Request, family_scores


def _l2(x: np.ndarray) -> np.ndarray:
    return l2_normalize(torch.from_numpy(x)).numpy()


def _reference(test, proxies, distance):
    """float64 values per pair, straight from the definitions (no matrix product)."""
    t, p = test.astype(np.float64), proxies.astype(np.float64)
    if distance == "inner_product":
        return (t[:, None, :] * p[None]).sum(-1)
    if distance == "cosine":
        tn = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
        pn = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
        return np.maximum(1 - (tn[:, None, :] * pn[None]).sum(-1), 0)
    return np.sqrt(((t[:, None, :] - p[None]) ** 2).sum(-1))


def _nearest(values, m):
    order = np.argsort(values, axis=1, kind="stable")[:, :m]  # ties: the lower proxy
    return np.take_along_axis(values, order, 1), order


def _max_class(values, proxy_class, n_classes):
    per_class = np.full((values.shape[0], n_classes), -np.inf)
    for c in range(n_classes):
        per_class[:, c] = values[:, proxy_class == c].max(axis=1)
    return per_class.argmax(axis=1)  # ties: the lower class


def _family(test, proxies, sizes, requests):
    tests = {"none": torch.from_numpy(test), "l2": torch.from_numpy(_l2(test))}
    views = {"base": torch.from_numpy(proxies), "l2": torch.from_numpy(_l2(proxies))}
    return family_scores(tests, views, sizes, requests)


REQUESTS = [
    Request("max", "inner_product", "base"),
    Request("max", "inner_product", "l2"),
    Request("nearest", "cosine", depth=5),
    *[
        Request("nearest", "euclidean", v, n, depth=7)
        for v in ("base", "l2")
        for n in ("none", "l2")
    ],
]


def _check(test, proxies, sizes, requests=REQUESTS, rounding_ties=False):
    """Every request against the direct computation. rounding_ties: values equal in exact
    arithmetic (integer rows) but not after float64 normalisation may come in either order
    where rows are normalised (cosine, NORMpost or NORMinf l2): the answer must then hold the
    right values, not necessarily that order."""
    proxy_class = np.repeat(np.arange(len(sizes)), sizes)
    out = _family(test, proxies, sizes, requests)
    tests = {"none": test, "l2": _l2(test)}
    for request in requests:
        view = proxies if request.view == "base" else _l2(proxies)
        normalised = request.distance == "cosine" or "l2" in (request.view, request.norm_inf)
        loose = rounding_ties and normalised
        if request.agg == "max":
            values = _reference(test, view, "inner_product")
            expected = _max_class(values, proxy_class, len(sizes))
            if loose:
                per_class = np.stack(
                    [values[:, proxy_class == c].max(1) for c in range(len(sizes))], 1
                )
                got = per_class[np.arange(len(test)), out[request].numpy()]
                np.testing.assert_allclose(got, per_class.max(1), rtol=1e-14, atol=1e-14)
                continue
            np.testing.assert_array_equal(out[request].numpy(), expected, err_msg=str(request))
            continue
        t = tests[request.norm_inf] if request.distance == "euclidean" else test
        values = _reference(
            t, view if request.distance == "euclidean" else proxies, request.distance
        )
        dist, idx = _nearest(values, min(request.depth, proxies.shape[0]))
        got_d, got_i = out[request]
        np.testing.assert_allclose(got_d.numpy(), dist, rtol=1e-14, atol=1e-14)
        if loose:
            at = np.take_along_axis(values, got_i.numpy(), 1)
            np.testing.assert_allclose(at, dist, rtol=1e-14, atol=1e-14)
            continue
        np.testing.assert_array_equal(got_i.numpy(), idx, err_msg=str(request))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [0.0, 5.0])
def test_every_request_equals_the_direct_computation(offset, dtype):
    # float64 inputs are rounded to float32 for the product; their own values decide.
    rng = np.random.default_rng(0)
    proxies = (rng.normal(size=(90, 48)) + offset).astype(dtype)
    test = (rng.normal(size=(200, 48)) + offset).astype(dtype)
    assert scores.approximate_dtype(torch.from_numpy(test)) == torch.float32
    _check(test, proxies, [30, 20, 40])


def test_unit_proxies_share_one_score_for_every_request():
    # NORMpre l2 with GEN all: the proxies are unit rows, so Euclidean, cosine and the
    # NORMpost l2 view all rank by the product itself (one sort serves them all).
    rng = np.random.default_rng(6)
    proxies = _l2((rng.normal(size=(80, 32)) + 2).astype(np.float32))
    test = (rng.normal(size=(120, 32)) + 2).astype(np.float32)
    tests = {"none": torch.from_numpy(test), "l2": torch.from_numpy(_l2(test))}
    views = {"base": torch.from_numpy(proxies), "l2": torch.from_numpy(_l2(proxies))}
    family = scores._Family.build(tests, views, [40, 40])
    names = {family._score(r, slice(0, 120))[0] for r in REQUESTS}
    assert names == {("scaled", "base")}
    _check(test, proxies, [40, 40], rounding_ties=True)


def test_a_view_normalised_twice_is_served_from_the_same_product():
    # NORMpre l2 then NORMpost l2 over GEN all: the proxies are l2(l2(rows)), another view of
    # the raw rows; its answers are those of its stored values.
    rng = np.random.default_rng(7)
    raw = (rng.normal(size=(70, 24)) + 1).astype(np.float32)
    test = (rng.normal(size=(90, 24)) + 1).astype(np.float32)
    twice = _l2(_l2(raw))
    tests = {"none": torch.from_numpy(test), "l2": torch.from_numpy(_l2(test))}
    views = {"base": torch.from_numpy(raw), "twice": torch.from_numpy(twice)}
    requests = [
        Request("max", "inner_product", "twice"),
        *[Request("nearest", "euclidean", "twice", n, depth=4) for n in ("none", "l2")],
    ]
    out = family_scores(tests, views, [30, 40], requests)
    values = _reference(test, twice, "inner_product")
    np.testing.assert_array_equal(
        out[requests[0]].numpy(), _max_class(values, np.repeat([0, 1], [30, 40]), 2)
    )
    for request, t in zip(requests[1:], (test, _l2(test))):
        dist, _ = _nearest(_reference(t, twice, "euclidean"), 4)
        np.testing.assert_allclose(out[request][0].numpy(), dist, rtol=1e-14, atol=1e-14)


def test_blocks_of_test_rows_give_the_same_answer(monkeypatch):
    rng = np.random.default_rng(1)
    proxies = np.abs(rng.normal(size=(60, 16))).astype(np.float32)
    test = np.abs(rng.normal(size=(50, 16))).astype(np.float32)
    monkeypatch.setattr(scores, "BLOCK_ELEMENTS", 60 * 7)  # blocks of 7 test rows
    monkeypatch.setattr(scores, "RERANK_ELEMENTS", 16 * 5)  # tiny candidate batches
    _check(test, proxies, [10, 25, 25])


def test_ties_everywhere_integer_rows_and_duplicates():
    # Small integers: every value is exact, so most rows hold true ties (also at the m-th
    # place), between distinct proxies and between duplicates at different positions.
    rng = np.random.default_rng(2)
    base = rng.integers(0, 3, size=(30, 6)).astype(np.float32)
    proxies = np.concatenate([base, base[::-1]])
    test = np.concatenate([rng.integers(0, 3, size=(40, 6)), base[:10], np.zeros((2, 6))])
    _check(test.astype(np.float32), proxies, [20, 25, 15], rounding_ties=True)


def test_near_ties_that_float32_products_cannot_see():
    # A large common offset: the float32 product's rounding (~0.05 here) dwarfs the true
    # differences (~1e-6), so a ranking by float32 scores alone (the naive shared product) is
    # wrong; the candidates' float64 values must decide.
    rng = np.random.default_rng(3)
    centre = np.full(64, 100.0, dtype=np.float32)
    proxies = (centre + rng.normal(size=(40, 64)).astype(np.float32) * 1e-3).astype(np.float32)
    test = (centre + rng.normal(size=(30, 64)).astype(np.float32) * 1e-3).astype(np.float32)
    naive = (
        (test**2).sum(1)[:, None] + (proxies**2).sum(1)[None] - 2 * test @ proxies.T
    )  # float32 throughout
    exact = _reference(test, proxies, "euclidean")
    assert (naive.argmin(1) != exact.argmin(1)).any()  # the naive path fails here
    # Normalised rows here differ by ~1e-12 relative, within float64's summation-order noise.
    _check(test, proxies, [10, 10, 20], rounding_ties=True)


def test_float64_inputs_and_rows_beyond_float32_range():
    rng = np.random.default_rng(4)
    proxies = rng.normal(size=(25, 8)) * 1e20
    test = rng.normal(size=(15, 8)) * 1e20
    assert scores.approximate_dtype(torch.from_numpy(test.astype(np.float32))) == torch.float64
    _check(test, proxies, [5, 20])
    _check(test.astype(np.float32), proxies.astype(np.float32), [5, 20])


def test_depth_beyond_the_proxies_and_one_proxy_per_class():
    rng = np.random.default_rng(5)
    proxies = rng.normal(size=(3, 4)).astype(np.float32)
    test = rng.normal(size=(9, 4)).astype(np.float32)
    _check(test, proxies, [1, 1, 1], [Request("nearest", "euclidean", depth=10), REQUESTS[0]])


def test_a_request_it_cannot_serve_is_refused():
    x = torch.ones(2, 3)
    with pytest.raises(ValueError, match="cannot serve"):
        family_scores({"none": x}, {"base": x}, [2], [Request("nearest", "inner_product")])


@pytest.mark.parametrize("dim", [1, 2, 3, 512, 513, 768])
def test_halving_sum_adds_like_fsum_and_alike_in_every_batch(dim):
    gen = torch.Generator().manual_seed(dim)
    rows = torch.randn(50, 7, dim, generator=gen, dtype=torch.float64)
    sums = pair_kernels.halving_sum(rows)
    exact = torch.tensor(
        [[math.fsum(p.tolist()) for p in row] for row in rows], dtype=torch.float64
    )
    scale = rows.abs().sum(dim=-1)
    assert torch.all((sums - exact).abs() <= 2 * dim * 2**-53 * scale)
    # A pair's value does not depend on the batch around it: alone, in a slice, transposed.
    assert torch.equal(pair_kernels.halving_sum(rows[3, 4]), sums[3, 4])
    assert torch.equal(pair_kernels.halving_sum(rows[:, 2:3]), sums[:, 2:3])
    assert torch.equal(pair_kernels.halving_sum(rows.transpose(0, 1)), sums.T)


def test_reference_dot_products_are_vecdots_on_the_cpu():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(40, 1, 300, generator=gen, dtype=torch.float64)
    rows = torch.randn(40, 6, 300, generator=gen, dtype=torch.float64)
    expected = torch.linalg.vecdot(x, rows)
    assert torch.equal(pair_kernels.pair_dot(x, rows.clone()), expected)
    assert torch.equal(pair_kernels.pair_dot(x, rows[:1].clone()), torch.linalg.vecdot(x, rows[:1]))
