"""Manhattan and Chebyshev neighbours: exactly the float64 reference's, however they are found.

The reference is written here twice: numpy's direct differences (independent), and today's
arithmetic (torch.cdist in float64 over every proxy), whose distances the engine must keep bit
for bit. The crafted cases tell a float32 shortcut from the exact computation: the tests
`test_the_crafted_cases_defeat_a_float32_shortcut` show both shortcuts below getting them wrong.
"""

import numpy as np
import pytest
import torch

from imprint.engine import distances
from imprint.engine.aggregate import nearest_proxies

LP = ["manhattan", "chebyshev"]


def numpy_reference(test, proxies, distance, m):
    """(distances, indices) of the m nearest by direct float64 differences, ties to the lower."""
    diff = np.abs(np.asarray(test, np.float64)[:, None, :] - np.asarray(proxies, np.float64)[None])
    d = diff.sum(-1) if distance == "manhattan" else diff.max(-1)
    i = np.argsort(d, axis=1, kind="stable")[:, :m]
    return np.take_along_axis(d, i, 1), i


def cdist_distances(test, proxies, distance, idx):
    """Today's values: torch.cdist in float64 over every proxy, read at the given indices."""
    p = distances.P_NORMS[distance]
    full = torch.cdist(torch.as_tensor(test).double(), torch.as_tensor(proxies).double(), p=p)
    return torch.gather(full, 1, torch.as_tensor(idx)).numpy()


def assert_exact(test, proxies, distance, m):
    """nearest_proxies gives the numpy reference's lists and torch.cdist's distances."""
    d, i = nearest_proxies(torch.as_tensor(test), torch.as_tensor(proxies), distance, m)
    ref_d, ref_i = numpy_reference(test, proxies, distance, min(m, len(proxies)))
    np.testing.assert_array_equal(i.numpy(), ref_i)
    np.testing.assert_array_equal(d.numpy(), cdist_distances(test, proxies, distance, ref_i))
    np.testing.assert_allclose(d.numpy(), ref_d, rtol=1e-12)
    assert d.dtype == torch.float64


def naive_float32(test, proxies, distance, m):
    """A shortcut: float32 distances, ranked as they fall."""
    t, w = torch.as_tensor(test).float(), torch.as_tensor(proxies).float()
    block = torch.cdist(t, w, p=distances.P_NORMS[distance])
    return distances.smallest_stable(block, m)[1].numpy()


def naive_rerank(test, proxies, distance, m):
    """A better shortcut: the 2m float32-nearest re-ranked in float64, no error bound."""
    t, w = torch.as_tensor(test), torch.as_tensor(proxies)
    p = distances.P_NORMS[distance]
    cand = torch.topk(torch.cdist(t.float(), w.float(), p=p), 2 * m, dim=1, largest=False)[1]
    cand = torch.sort(cand, dim=1).values
    exact = torch.cdist(t.double()[:, None, :], w.double()[cand], p=p)[:, 0, :]
    return torch.gather(cand, 1, distances.smallest_stable(exact, m)[1]).numpy()


def clustered(rng, n, dim):
    centres = rng.normal(size=(5, dim))
    x = centres[rng.integers(0, 5, n)] + rng.normal(scale=1.5, size=(n, dim))
    return np.abs(x).astype(np.float32)


def below_float32_resolution():
    """float64 embeddings whose differences vanish in float32: around each test row, 75
    proxies 1 + k·2^-40 away in one feature (k distinct), 1 away in the others. In float32
    they all tie; in float64 the smallest k is the nearest. Far fillers around them."""
    rng = np.random.default_rng(3)
    test = np.zeros((4, 8))
    test[:, 0] = np.arange(4) * 100.0
    near = np.repeat(test + 1.0, 75, axis=0)
    near[:, 1] += rng.permutation(np.arange(1, 301)) * 2.0**-40
    far = rng.uniform(500, 600, size=(200, 8))
    return test, np.concatenate([near, far])


def summation_swaps():
    """float32 embeddings whose float32 sums misorder them by many float32 steps.

    Every feature of a test row exceeds that of the near proxies, so its exact Manhattan
    distance is Σx - Σw: the proxies are perturbed in every feature by multiples of 2^-22 that
    add up to distinct totals of -150..149 units. Each |x - w| is exact in float32, the
    distance (~128, spaced 2^-16 = 64 units) is not: rounding hundreds of partial sums moves
    it by far more than the proxies differ, and differently for each. float64 sums exactly.
    (A Chebyshev maximum is exact in float32: it has no such case.)
    """
    rng = np.random.default_rng(4)
    base = (1 + rng.random(512)).astype(np.float32)
    units = rng.integers(-8, 9, size=(300, 512))
    units[:, -1] += rng.permutation(np.arange(-150, 150)) - units.sum(axis=1)
    near = base + (units * 2.0**-22).astype(np.float32)
    test = base + rng.uniform(0.01, 0.5, size=(4, 512)).astype(np.float32)
    far = base + rng.uniform(5, 6, size=(100, 512)).astype(np.float32)
    return test, np.concatenate([near, far]).astype(np.float32)


CRAFTED = {
    "manhattan-below_float32_resolution": ("manhattan", below_float32_resolution),
    "chebyshev-below_float32_resolution": ("chebyshev", below_float32_resolution),
    "manhattan-summation_swaps": ("manhattan", summation_swaps),
}


@pytest.mark.parametrize("case", CRAFTED)
def test_the_crafted_cases_defeat_a_float32_shortcut(case):
    distance, make = CRAFTED[case]
    test, proxies = make()
    _, ref_i = numpy_reference(test, proxies, distance, 5)
    assert (naive_float32(test, proxies, distance, 5) != ref_i).any()
    # The 2m float32-nearest miss some of the true m nearest.
    assert (naive_rerank(test, proxies, distance, 5) != ref_i).any()


@pytest.mark.parametrize("case", CRAFTED)
@pytest.mark.parametrize("m", [1, 5, 50])
def test_the_crafted_cases_are_exact(case, m):
    distance, make = CRAFTED[case]
    assert_exact(*make(), distance, m)


@pytest.mark.parametrize("distance", LP)
@pytest.mark.parametrize("m", [1, 5, 50])
def test_random_embeddings(distance, m):
    rng = np.random.default_rng(0)
    # 37 features and 301 proxies: neither the kernel's four rows nor its tiles divide them.
    assert_exact(clustered(rng, 70, 37), clustered(rng, 301, 37), distance, m)


@pytest.mark.parametrize("distance", LP)
@pytest.mark.parametrize("fraction", [0.25, 1.0])
def test_many_exact_ties(distance, fraction, monkeypatch):
    # Integer-valued, L2-normalised and duplicated rows: ties everywhere, also at the m-th
    # place. fraction 1.0 re-ranks even rows with hundreds of candidates instead of giving
    # them to the reference.
    monkeypatch.setattr(distances, "EXACT_ROW_FRACTION", fraction)
    rng = np.random.default_rng(1)
    integer = rng.integers(0, 3, size=(400, 12)).astype(np.float32)
    assert_exact(integer[:60], integer[60:], distance, 7)
    unit = clustered(rng, 300, 16)
    unit = (unit / np.linalg.norm(unit.astype(np.float64), axis=1, keepdims=True)).astype(
        np.float32
    )
    assert_exact(unit[:50], np.concatenate([unit[50:], unit[50:90]]), distance, 9)


@pytest.mark.parametrize("distance", LP)
def test_duplicated_proxies(distance):
    # A third of the proxies repeat others (one of them 300 times: the rows next to it have too
    # many candidates and go to the reference); some test rows are proxies themselves.
    rng = np.random.default_rng(2)
    proxies = clustered(rng, 600, 24)
    proxies[rng.choice(600, 200, replace=False)] = proxies[rng.integers(0, 600, 200)]
    proxies = np.concatenate([proxies, np.repeat(proxies[:1], 300, axis=0)])
    test = np.concatenate([clustered(rng, 40, 24), proxies[rng.integers(0, 900, 20)]])
    for m in (1, 5, 50):
        assert_exact(test, proxies, distance, m)


@pytest.mark.parametrize("distance", LP)
@pytest.mark.parametrize("fraction", [0.25, 1.0])
def test_small_proxy_sets(distance, fraction, monkeypatch):
    # fraction 1.0: through the float32 pass even when every proxy is a candidate.
    monkeypatch.setattr(distances, "EXACT_ROW_FRACTION", fraction)
    rng = np.random.default_rng(5)
    test = clustered(rng, 9, 6)
    assert_exact(test, clustered(rng, 1, 6), distance, 1)  # a single proxy
    assert_exact(test, clustered(rng, 3, 6), distance, 10)  # m larger than the proxies
    d, i = nearest_proxies(torch.empty(0, 6), torch.from_numpy(test), distance, 2)
    assert d.shape == i.shape == (0, 2)


@pytest.mark.parametrize("distance", LP)
def test_chunk_boundaries(distance, monkeypatch):
    # 8 test rows a chunk (the last one short), batches of a few rows in the re-rank, all
    # candidate rows in the re-rank.
    monkeypatch.setattr(distances, "BLOCK_ELEMENTS", 8 * 500)
    monkeypatch.setattr(distances, "RERANK_ELEMENTS", 3 * 20 * 30)
    monkeypatch.setattr(distances, "EXACT_ROW_FRACTION", 1.0)
    rng = np.random.default_rng(6)
    proxies = clustered(rng, 500, 30)
    proxies[:100] = proxies[100:200]
    for m in (1, 5, 20):
        assert_exact(clustered(rng, 45, 30), proxies, distance, m)


@pytest.mark.parametrize("distance", LP)
def test_the_torch_pass_of_other_devices(distance, monkeypatch):
    # Off the CPU the float32 pass is torch.cdist (any summation order, the same bound).
    def torch_pass(x32, w32, distance):
        return torch.cdist(x32, w32, p=distances.P_NORMS[distance])

    monkeypatch.setattr(distances, "_kernel_distances", torch_pass)
    rng = np.random.default_rng(7)
    assert_exact(clustered(rng, 30, 40), clustered(rng, 200, 40), distance, 5)
    assert_exact(*below_float32_resolution(), distance, 5)
    if distance == "manhattan":
        assert_exact(*summation_swaps(), distance, 5)


@pytest.mark.parametrize("distance", LP)
def test_values_beyond_float32_go_to_the_reference(distance):
    rng = np.random.default_rng(8)
    proxies = clustered(rng, 50, 10).astype(np.float64)
    proxies[7, 3] = 1e300  # inf in float32
    test = clustered(rng, 12, 10).astype(np.float64)
    assert_exact(test, proxies, distance, 4)
    huge = clustered(rng, 50, 10) * np.float32(1e37)  # finite, but float32 sums overflow
    assert_exact(huge[:10], huge[10:], distance, 4)


@pytest.mark.parametrize("distance", LP)
def test_float32_pass_stays_within_its_bound(distance):
    rng = np.random.default_rng(9)
    for dim in (1, 7, 64, 515):
        x, w = clustered(rng, 13, dim), clustered(rng, 70, dim)
        approx = distances.approximate_distances(torch.from_numpy(x), torch.from_numpy(w), distance)
        diff = np.abs(x[:, None, :].astype(np.float64) - w[None])
        exact = diff.sum(-1) if distance == "manhattan" else diff.max(-1)
        r = distances.relative_bound(distance, dim, torch.float64)
        assert np.all(np.abs(approx.numpy() - exact) <= r * exact)
        if distance == "chebyshev":  # a float32 maximum of float32 differences is exact
            np.testing.assert_array_equal(approx.numpy(), np.abs(x[:, None, :] - w[None]).max(-1))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("distance", LP)
def test_cuda_gives_the_cuda_reference(distance):
    # On CUDA the values are CUDA's torch.cdist in float64 (its own summation order).
    rng = np.random.default_rng(10)
    test, proxies = (torch.from_numpy(clustered(rng, n, 512)).cuda() for n in (300, 5000))
    d, i = nearest_proxies(test, proxies, distance, 50)
    full = torch.cdist(test.double(), proxies.double(), p=distances.P_NORMS[distance])
    ref_d, ref_i = distances.smallest_stable(full, 50)
    assert torch.equal(i, ref_i) and torch.equal(d, ref_d)
    _, cpu_i = nearest_proxies(test.cpu(), proxies.cpu(), distance, 50)
    assert torch.equal(i.cpu(), cpu_i)


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize(("width", "k"), [(4096, 5), (5000, 42), (60_007, 34), (300, 42)])
def test_first_candidates_give_topks_values_and_their_own_columns(largest, width, k):
    gen = torch.Generator().manual_seed(width + k)
    smooth = torch.randn(40, width, generator=gen)
    # Few distinct values: ties everywhere, the best values crowd into a few chunks.
    tied = torch.randint(0, 4, (40, width), generator=gen).float()
    crowded = smooth.clone()
    crowded[:, 64:128] += 10.0 if largest else -10.0  # every best value in one chunk
    for block in (smooth, tied, crowded):
        values, cols = distances.first_candidates(block, k, largest=largest)
        expected = torch.topk(block, k, dim=1, largest=largest, sorted=True).values
        assert torch.equal(values, expected)
        assert torch.equal(torch.gather(block, 1, cols), values)
        assert all(len(set(row.tolist())) == k for row in cols)  # distinct columns
