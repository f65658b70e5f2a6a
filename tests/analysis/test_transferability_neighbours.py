"""Leave-one-out kNN accuracy and TMI (analysis/transferability/neighbours.py) against direct
loops and scipy's k-d tree, on ordinary and on degenerate data, and the checks' power to catch
known wrong versions of the kNN."""

import math

import numpy as np
import pytest
from test_transferability import _degenerate, _loo_direct, _tmi_direct


def test_leave_one_out_knn_equals_a_direct_loop():
    from imprint.analysis.transferability.neighbours import loo_knn_accuracy

    rng = np.random.default_rng(4)
    labels = np.arange(40) % 3
    x = (rng.standard_normal((40, 6)) + labels[:, None]).astype(np.float32)
    x[7] = x[3]  # a duplicate of another row: a legitimate neighbour, left in
    xn = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    correct = 0
    for i in range(40):
        sims = xn @ xn[i]
        others = sorted((j for j in range(40) if j != i), key=lambda j: (-sims[j], j))[:5]
        votes = np.zeros(3)
        for j in others:
            votes[labels[j]] += np.exp(sims[j] / 0.07)
        correct += int(np.argmax(votes) == labels[i])
    assert loo_knn_accuracy(x, labels, k=5, queries=None) == pytest.approx(100 * correct / 40)
    # A sample of query rows: every row is still a candidate neighbour.
    assert 0 <= loo_knn_accuracy(x, labels, k=5, queries=10) <= 100


@pytest.mark.parametrize("temperature", [0.5, 5.0])
def test_leave_one_out_knn_votes_with_the_given_temperature(temperature):
    from imprint.analysis.transferability.neighbours import loo_knn_accuracy

    rng = np.random.default_rng(6)
    y = np.arange(60) % 3
    x = (rng.standard_normal((60, 5)) + 0.6 * y[:, None]).astype(np.float32)
    expected = _loo_direct(x, y, k=20, temperature=temperature)
    assert expected != _loo_direct(x, y, k=20)  # 38.3 % here, 53.3 % at T = 0.07
    got = loo_knn_accuracy(x, y, k=20, temperature=temperature, queries=None)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 3])
def test_sampled_leave_one_out_knn_keeps_every_other_row_as_a_candidate(seed):
    # More rows than queries: a seeded sample of query rows (numpy's generator, without
    # replacement), each classified by all 199 other rows — other sampled rows included.
    from imprint.analysis.transferability.neighbours import loo_knn_accuracy

    rng = np.random.default_rng(8)
    y = np.arange(200) % 4
    x = (rng.standard_normal((200, 6)) + 2.4 * np.eye(6)[y]).astype(np.float32)
    queries = np.random.default_rng(seed).choice(200, size=150, replace=False)
    expected = _loo_direct(x, y, k=5, queries=queries)
    got = loo_knn_accuracy(x, y, k=5, queries=150, seed=seed)
    assert got == pytest.approx(expected, abs=1e-12)
    # The wrong version this guards against: the other sampled rows dropped as candidates.
    others = np.setdiff1d(np.arange(200), queries)
    assert expected != _loo_direct(x, y, k=5, queries=queries, candidates=others)


@pytest.mark.parametrize("kind", ["constant_columns", "wide", "two_per_class", "one_per_class"])
def test_leave_one_out_knn_on_degenerate_features_equals_a_direct_loop(kind):
    from imprint.analysis.transferability.neighbours import loo_knn_accuracy

    x, y = _degenerate(kind)
    assert loo_knn_accuracy(x, y, queries=None) == pytest.approx(_loo_direct(x, y))
    if kind == "one_per_class":
        assert loo_knn_accuracy(x, y) == 0.0  # no other row of its class to vote for it


def test_tmi_equals_the_kozachenko_leonenko_estimate_with_a_kd_tree():
    from imprint.analysis.transferability.neighbours import tmi

    rng = np.random.default_rng(7)
    y = np.r_[np.repeat([0, 1, 2], [40, 25, 60]), [3], [4, 4]]  # a 1-row and a 2-row class
    x = (rng.normal(size=(len(y), 6)) * (1.0 + y[:, None])).astype(np.float32)
    assert tmi(x, y) == pytest.approx(_tmi_direct(x.astype(np.float64), y), rel=1e-9)
    # Distances under the floor count as the floor: a tight set gives D·log 2 per row.
    tight = np.zeros((10, 4), np.float32)
    tight[:, 0] = np.arange(10) * 0.01
    from scipy.special import digamma

    expected = (-digamma(3) + digamma(10) + 4 * math.log(2.0)) * 1.0
    assert tmi(tight, np.zeros(10, int)) == pytest.approx(expected)
    assert tmi(x, y, min_distance=0.0) == pytest.approx(
        _tmi_direct(x.astype(np.float64), y, min_distance=0.0), rel=1e-9
    )


@pytest.mark.parametrize(
    ("kind", "largest"), [("two_per_class", "2 rows"), ("one_per_class", "1 row")]
)
def test_tmi_refuses_classes_too_small_for_a_kth_neighbour(kind, largest):
    from imprint.analysis.transferability.common import EstimatorUndefined
    from imprint.analysis.transferability.neighbours import tmi

    x, y = _degenerate(kind)
    with pytest.raises(EstimatorUndefined, match="TMI needs a class of at least k \\+ 1 = 4 rows"):
        tmi(x, y)
    with pytest.raises(ValueError, match=f"the largest class here has {largest}$"):
        tmi(x, y)
    if kind == "two_per_class":  # with k = 1, 2 rows per class are enough
        expected = _tmi_direct(x.astype(np.float64), y, k=1)
        assert tmi(x, y, k=1) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("kind", ["constant_columns", "wide", "identical_class", "all_identical"])
def test_tmi_on_degenerate_features_is_the_floored_estimate(kind):
    from scipy.special import digamma

    from imprint.analysis.transferability.neighbours import tmi

    x, y = _degenerate(kind)
    assert tmi(x, y) == pytest.approx(_tmi_direct(x.astype(np.float64), y), rel=1e-9)
    if kind == "all_identical":
        # Every distance 0, floored to 1: h_c = −ψ(3) + ψ(12) + 8 log 2 for each class.
        h = -digamma(3) + digamma(12) + 8 * math.log(2.0)
        assert tmi(x, y) == pytest.approx(12 / 36 * h, rel=1e-12)


def test_tmi_without_a_distance_floor_refuses_repeated_rows():
    from imprint.analysis.transferability.common import EstimatorUndefined
    from imprint.analysis.transferability.neighbours import tmi

    x, y = _degenerate("identical_class")
    with pytest.raises(
        EstimatorUndefined, match="TMI with min_distance=0 .* class 1 has 4 or more identical rows"
    ):
        tmi(x, y, min_distance=0.0)


# --- The checks above catch known wrong versions of the kNN: each wrong version applied by
# wrapping what the library calls, for this test only.


def _wrong_version(kind, monkeypatch):
    """Make the leave-one-out kNN a known wrong version, by wrapping what it calls; returns the
    list of calls of the wrapper.
      loo_ignores_temperature: aggregate.vote given T = 0.07 whatever loo_knn_accuracy passes;
      loo_drops_sampled_queries: the sampled leave-one-out kNN's candidates are the rows not
          sampled as queries (each query's own row kept, for loo_knn_accuracy to drop)."""
    import imprint.engine.aggregate as aggregate

    calls = []
    if kind == "loo_ignores_temperature":
        real_vote = aggregate.vote

        def vote(neighbour_class, neighbour_dist, ms, weighting, n_classes, temperature=None):
            calls.append(temperature)
            return real_vote(neighbour_class, neighbour_dist, ms, weighting, n_classes, 0.07)

        monkeypatch.setattr(aggregate, "vote", vote)
    elif kind == "loo_drops_sampled_queries":
        real_nearest = aggregate.nearest_proxies

        def nearest(test, proxies, distance, m, *args, **kwargs):
            calls.append(m)
            # Which candidate rows are queries (these data have no repeated rows).
            same = (proxies[:, None, :] == test[None, :, :]).all(dim=2)  # [candidates, queries]
            sampled, own = same.any(dim=1), same.int().argmax(dim=0)
            if bool(sampled.all()):  # every row a query: nothing to drop
                return real_nearest(test, proxies, distance, m, *args, **kwargs)
            found, rows = real_nearest(test, proxies, distance, len(proxies), *args, **kwargs)
            keep = ~sampled[rows] | (rows == own[:, None])  # as many in each row
            n = len(test)
            return found[keep].view(n, -1)[:, :m], rows[keep].view(n, -1)[:, :m]

        monkeypatch.setattr(aggregate, "nearest_proxies", nearest)
    else:
        raise ValueError(kind)
    return calls


@pytest.mark.parametrize(
    "kind, check, args",
    [
        (
            "loo_ignores_temperature",
            test_leave_one_out_knn_votes_with_the_given_temperature,
            (5.0,),
        ),
        (
            "loo_drops_sampled_queries",
            test_sampled_leave_one_out_knn_keeps_every_other_row_as_a_candidate,
            (0,),
        ),
    ],
)
def test_the_checks_catch_known_wrong_versions(monkeypatch, kind, check, args):
    calls = _wrong_version(kind, monkeypatch)
    with pytest.raises(AssertionError):
        check(*args)
    assert calls, f"the library no longer calls what the {kind} wrapper replaces"
