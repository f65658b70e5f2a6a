"""Tests that kill the surviving mutants of aggregate.py that were real gaps (benchmarks/mutation.py; each one and why: benchmarks/mutation-survivors.md)."""

import warnings

import numpy as np
import pytest
import torch

from imprint.engine.aggregate import clip_m, nearest_proxies, unique_rows, vote


def _rows(dtype):
    g = torch.Generator().manual_seed(0)
    return torch.randn(30, 6, generator=g).to(dtype), torch.randn(9, 6, generator=g).to(dtype)


def test_mahalanobis_on_float32_rows_is_the_float64_result():
    t, p = _rows(torch.float32)
    d32, i32 = nearest_proxies(t, p, "mahalanobis", 3)
    d64, i64 = nearest_proxies(t.double(), p.double(), "mahalanobis", 3)
    assert torch.equal(i32, i64) and torch.equal(d32, d64)


def test_mahalanobis_needs_two_proxies():
    t, p = _rows(torch.float64)
    assert nearest_proxies(t, p[:2], "mahalanobis", 2)[1].shape == (30, 2)
    with pytest.raises(ValueError, match="at least 2 proxies"):
        nearest_proxies(t, p[:1], "mahalanobis", 1)


def test_an_unknown_distance_is_refused():
    t, p = _rows(torch.float32)
    with pytest.raises(ValueError, match="unknown distance 'hamming'"):
        nearest_proxies(t, p, "hamming", 2)


def test_m_equal_to_the_proxies_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert clip_m(5, 5) == 5


def test_unique_rows_of_two_identical_rows_and_of_one_column():
    distinct, inverse = unique_rows(torch.tensor([[1.0, 2.0], [1.0, 2.0]]))
    assert distinct.tolist() == [[1.0, 2.0]] and inverse.tolist() == [0, 0]
    distinct, inverse = unique_rows(torch.tensor([[1.0], [1.0], [2.0]]))
    assert distinct.tolist() == [[1.0], [2.0]] and inverse.tolist() == [0, 0, 1]


def test_weighted_vote_of_a_neighbour_at_distance_zero():
    classes = torch.tensor([[1, 0, 0]])
    dist = torch.tensor([[0.0, 0.1, 0.1]], dtype=torch.float64)
    assert vote(classes, dist, [3], "weighted_by_distance", 2)[3].tolist() == [1]


def test_exp_similarity_votes_equal_a_direct_sum():
    rng = np.random.default_rng(0)
    classes = torch.from_numpy(rng.integers(0, 4, size=(50, 6)))
    dist = torch.from_numpy(np.sort(rng.uniform(0, 2, size=(50, 6)), axis=1))
    for temperature in (0.07, 0.5):
        got = vote(classes, dist, [1, 3, 6], "exp_similarity", 4, temperature=temperature)
        for m in (1, 3, 6):
            votes = np.zeros((50, 4))
            w = np.exp((1 - dist.numpy()[:, :m]) / temperature)
            for i in range(50):
                np.add.at(votes[i], classes.numpy()[i, :m], w[i])
            assert got[m].tolist() == votes.argmax(axis=1).tolist()
    with pytest.raises(ValueError, match="unknown weighting 'nope'"):
        vote(classes, dist, [1], "nope", 4)


def test_votes_over_several_chunks_equal_a_direct_sum(monkeypatch):
    # kills: `rows.stop - rows.start, depth, ...` → `rows.stop + rows.start, ...` (vote 52)
    from imprint.engine import aggregate

    chunks = aggregate._chunks
    # 2**24 vote cells per chunk lowered to 3 rows' worth: 50 rows take 17 chunks.
    monkeypatch.setattr(
        aggregate, "_chunks", lambda n, cols, chunk_elements: chunks(n, cols, 3 * cols)
    )
    rng = np.random.default_rng(1)
    classes = torch.from_numpy(rng.integers(0, 4, size=(50, 5)))
    dist = torch.from_numpy(np.sort(rng.uniform(0, 2, size=(50, 5)), axis=1))
    got = vote(classes, dist, [2, 5], "weighted_by_distance", 4)
    for m in (2, 5):
        votes = np.zeros((50, 4))
        for i in range(50):
            np.add.at(votes[i], classes.numpy()[i, :m], 1.0 / (dist.numpy()[i, :m] + 1e-10))
        assert got[m].tolist() == votes.argmax(axis=1).tolist()


# Run of 2026-12-07 at e7146e6 (benchmarks/mutation-survivors.md, top section): distance_block,
# public but reached by nearest_proxies only for m = 0 or an unknown distance, had no test of
# its values.
def test_distance_block_against_numpy():
    # kills distance_block 2-7, 9-13, 15-17 (cosine), 19-27, 29 (euclidean, mahalanobis),
    # 31-36 (manhattan, chebyshev); 8, 14, 28 drop an argument to its default (equivalent)
    from imprint.engine.aggregate import distance_block

    g = np.random.default_rng(5)
    x, w = g.normal(size=(7, 4)), g.normal(size=(5, 4)) * 3.0
    diff = x[:, None, :] - w[None, :, :]
    cos = 1.0 - (x @ w.T) / np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(w, axis=1))
    expected = {
        "cosine": cos,
        "euclidean": np.sqrt((diff**2).sum(-1)),
        "mahalanobis": np.sqrt((diff**2).sum(-1)),  # rows already mapped: plain Euclidean
        "manhattan": np.abs(diff).sum(-1),
        "chebyshev": np.abs(diff).max(-1),
    }
    for distance, want in expected.items():
        got = distance_block(torch.from_numpy(x), torch.from_numpy(w), distance)
        assert got.shape == (7, 5)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12, err_msg=distance)
