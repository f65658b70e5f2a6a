"""Neural-collapse metrics against independent, direct numpy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import load_digits

from imprint.analysis.collapse import class_statistics, collapse_metrics, global_mean
from imprint.analysis.collapse_classifier import (
    evaluate_collapse,
    mean_classifier_metrics,
    ncc_agreement,
    ood_orthogonality,
    self_duality,
)

REL = 1e-8


def make_data(counts, dim, seed=0, spread=2.0, offset=0.5):
    rng = np.random.default_rng(seed)
    counts = np.asarray(counts)
    labels = np.repeat(np.arange(counts.size), counts)
    centres = rng.normal(size=(counts.size, dim)) * spread + offset
    x = centres[labels] + rng.normal(size=(labels.size, dim))
    perm = rng.permutation(labels.size)  # classes interleaved, as in a shuffled file
    return x[perm], labels[perm]


def direct(x, labels, normalise):
    """Textbook definitions via loops, np.cov and np.linalg.pinv; no code shared with the module."""
    x = np.asarray(x, dtype=np.float64)
    if normalise:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    classes = np.unique(labels)
    n_cls, n = classes.size, x.shape[0]
    mu_g = x.mean(axis=0)
    means = np.array([x[labels == c].mean(axis=0) for c in classes])
    sigma_w = np.zeros((x.shape[1],) * 2)
    pooled = np.zeros_like(sigma_w)  # sample-weighted
    ref_w = np.zeros_like(sigma_w)
    for k, c in enumerate(classes):
        xc = x[labels == c]
        pooled += np.cov(xc, rowvar=False, bias=True) * len(xc) / n
        sigma_w += np.cov(xc, rowvar=False, bias=True) / n_cls
        # The reference code's centring: class samples minus (class mean - global mean).
        shifted = xc - (means[k] - mu_g)
        ref_w += shifted.T @ shifted / len(xc) / n_cls
    sigma_b = np.zeros_like(sigma_w)
    for m in means:
        sigma_b += np.outer(m - mu_g, m - mu_g) / n_cls
    pinv_b = np.linalg.pinv(sigma_b)
    rank_b = np.linalg.matrix_rank(sigma_b)
    # The reference inverts in float32: torch.linalg.pinv / matrix_rank cut at D · eps32.
    rtol32 = x.shape[1] * np.finfo(np.float32).eps
    pinv_b32 = np.linalg.pinv(sigma_b, rtol=rtol32)
    rank_b32 = np.linalg.matrix_rank(sigma_b, rtol=rtol32)
    pinv_t32 = np.linalg.pinv(ref_w + sigma_b, rtol=rtol32)
    return {
        "x": x,
        "means": means,
        "mu_g": mu_g,
        "sigma_w": sigma_w,
        "sigma_b": sigma_b,
        "pinv_b": pinv_b,
        "nc1": np.trace(sigma_w @ pinv_b) / n_cls,
        "nc1_sample_weighted": np.trace(pooled @ pinv_b) / n_cls,
        # The neural-collapse package: pooled Sigma_W, Sigma_B around the mean of the means.
        "nc1_package": np.trace(pooled @ np.linalg.pinv(_between(means, means.mean(0)))) / n_cls,
        "nc1_reference_centring": np.trace(ref_w @ pinv_b32) / n_cls,
        "vci": 1 - np.trace(sigma_b @ np.linalg.pinv(sigma_w + sigma_b)) / rank_b,
        "vci_sample_weighted": 1 - np.trace(sigma_b @ np.linalg.pinv(pooled + sigma_b)) / rank_b,
        "vci_reference_centring": 1 - np.trace(sigma_b @ pinv_t32) / rank_b32,
        "nc1_quotient": np.trace(sigma_w) / np.trace(sigma_b),
        "rank_between": rank_b,
    }


def _between(means, centre) -> np.ndarray:
    """Sigma_B: the outer products of the class means around `centre`, over C."""
    centred = np.asarray(means) - centre
    return centred.T @ centred / len(centred)


def test_nc1_package_is_the_packages_on_six_unequal_classes():
    """The neural-collapse package's NC1 worked out from its accumulators' definitions: Sigma_W
    = Σ (x − μ_c)(x − μ_c)ᵀ / N, Sigma_B = (M − mean of M)ᵀ(M − mean of M) / C, NC1 =
    Tr(Sigma_W Sigma_B⁺) / C. With unequal classes the sample mean is not the mean of the
    means, and the sample-mean variant differs (about 4 % here)."""
    x, y = make_data([5, 40, 12, 27, 8, 19], 9, seed=11)
    means = np.stack([x[y == c].mean(axis=0) for c in range(6)])
    scatter = sum((x[y == c] - means[c]).T @ (x[y == c] - means[c]) for c in range(6))
    sigma_w = scatter / len(x)
    expected = np.trace(sigma_w @ np.linalg.pinv(_between(means, means.mean(axis=0)))) / 6
    got = evaluate_collapse(x, y, l2_normalise=False)
    assert got["nc1_package"] == pytest.approx(expected, rel=1e-9)
    sample_centred = np.trace(sigma_w @ np.linalg.pinv(_between(means, x.mean(axis=0)))) / 6
    assert got["nc1_sample_weighted"] == pytest.approx(sample_centred, rel=1e-9)
    assert abs(got["nc1_package"] / got["nc1_sample_weighted"] - 1) > 1e-4


CASES = [
    pytest.param([40, 40, 40, 40, 40], 8, id="balanced-C<D"),
    pytest.param([5, 50, 17, 33, 9], 8, id="imbalanced-C<D"),
    pytest.param([30] * 12, 6, id="balanced-C>D"),
    pytest.param([12, 7, 20, 9, 15, 30, 11, 8, 25, 6, 14, 10], 6, id="imbalanced-C>D"),
]


@pytest.mark.parametrize(("counts", "dim"), CASES)
@pytest.mark.parametrize("normalise", [False, True])
def test_nc1_vci_match_direct_computation(counts, dim, normalise):
    x, y = make_data(counts, dim, seed=len(counts) + dim)
    got = evaluate_collapse(x, y, l2_normalise=normalise)
    want = direct(x, y, normalise)
    for key in (
        "nc1",
        "nc1_sample_weighted",
        "nc1_package",
        "nc1_reference_centring",
        "vci",
        "vci_sample_weighted",
        "vci_reference_centring",
        "nc1_quotient",
    ):
        assert got[key] == pytest.approx(want[key], rel=REL), key
    assert got["rank_between"] == want["rank_between"]
    assert (got["n_classes"], got["n_samples"], got["dim"]) == (len(counts), sum(counts), dim)


def test_sigma_t_is_total_covariance_for_balanced_classes():
    # Guards the direct computation itself: Sigma_W + Sigma_B must be the total covariance.
    x, y = make_data([25] * 4, 5, seed=3)
    d = direct(x, y, normalise=False)
    np.testing.assert_allclose(d["sigma_w"] + d["sigma_b"], np.cov(x, rowvar=False, bias=True))


def test_hand_worked_balanced_1d():
    # A = {0, 2}, B = {4, 6}: mu_A = 1, mu_B = 5, mu_G = 3.
    # Sigma_W = mean of (+-1)^2 = 1; Sigma_B = ((-2)^2 + 2^2) / 2 = 4.
    # NC1 = (1 / 4) / 2 = 0.125; quotient = 1/4.
    # VCI: Sigma_T = 5, rank 1 -> 1 - 4/5 = 0.2.
    # Reference centring shifts A by -2 and B by +2: both become {2, 4}, mean square 10,
    # so NC1_ref = (10 / 4) / 2 = 1.25 = 0.125 + mu_G^2 / Sigma_B / C = 0.125 + 9 / 4 / 2.
    # CDNV: sigma_A^2 = sigma_B^2 = 1, ||mu_A - mu_B||^2 = 16 -> 2 / 32 = 0.0625.
    # Two centred means at -2 and +2 form a perfect 2-simplex: NC2 errors are all 0.
    x = np.array([[0.0], [2.0], [4.0], [6.0]])
    y = np.array([0, 0, 1, 1])
    got = evaluate_collapse(x, y, l2_normalise=False)
    assert got["nc1"] == pytest.approx(0.125)
    assert got["nc1_svd"] == pytest.approx(0.125)
    assert got["nc1_quotient"] == pytest.approx(0.25)
    assert got["vci"] == pytest.approx(0.2)
    assert got["nc1_reference_centring"] == pytest.approx(1.25)
    assert got["cdnv"] == pytest.approx(0.0625)
    for key in ("nc2_equinorm", "nc2_equiangular", "nc2_max_angle", "nc2_etf_error"):
        assert got[key] == pytest.approx(0.0, abs=1e-12), key


def test_hand_worked_imbalanced_1d_averages_classes():
    # A = {0, 2} (mu_A = 1), B = {10}: mu_G = 12 / 3 = 4 (over samples, not class means).
    # Sigma_W = mean of the class covariances = (1 + 0) / 2 = 0.5 (SPEC §6);
    # Sigma_B = ((1-4)^2 + (10-4)^2) / 2 = 22.5, so NC1 = 0.5 / 22.5 / 2 = 1/90.
    # Sample-weighted: Sigma_W = (1 + 1 + 0) / 3 = 2/3 -> NC1 = (2/3) / 22.5 / 2 = 1/67.5.
    # Reference: A - (1 - 4) = {3, 5} -> 17; B: 10 - 6 = 4 -> 16; average 16.5.
    # NC1_ref = 16.5 / 22.5 / 2 = 11/30 = 1/90 + 16 / 22.5 / 2.
    # VCI: Sigma_T = 0.5 + 22.5 = 23, rank 1 -> 1 - 22.5/23 = 1/46; pooled 1 - 22.5/(2/3 + 22.5).
    x = np.array([[0.0], [2.0], [10.0]])
    y = np.array([0, 0, 1])
    got = evaluate_collapse(x, y, l2_normalise=False)
    assert got["nc1"] == pytest.approx(1 / 90)
    assert got["nc1_sample_weighted"] == pytest.approx(1 / 67.5)
    assert got["nc1_reference_centring"] == pytest.approx(11 / 30)
    assert got["vci"] == pytest.approx(1 / 46)
    assert got["vci_sample_weighted"] == pytest.approx(1 - 22.5 / (2 / 3 + 22.5))


@pytest.mark.parametrize(("counts", "dim"), CASES)
def test_reference_centring_closed_form(counts, dim):
    # Centring at (mu_c - mu_G) adds mu_G mu_G^T to each class covariance (the cross terms sum
    # to zero within a class), hence NC1_ref = NC1 + mu_G^T Sigma_B^+ mu_G / C.
    x, y = make_data(counts, dim, seed=11)
    got = evaluate_collapse(x, y)
    d = direct(x, y, normalise=True)
    extra = d["mu_g"] @ d["pinv_b"] @ d["mu_g"] / len(counts)
    assert got["nc1_reference_centring"] == pytest.approx(got["nc1"] + extra, rel=REL)
    if len(set(counts)) == 1:
        assert got["nc1_sample_weighted"] == pytest.approx(got["nc1"], rel=REL)


def test_nc1_svd_equals_pinv_for_full_rank_between_class_scatter():
    # The n_c-weighted centred means sum to zero, so Sigma_B has rank C-1 and Han et al.'s
    # top-(C-1) inverse is the pseudo-inverse.
    counts = [5, 50, 17, 33, 9]
    x, y = make_data(counts, 8, seed=5)
    got = evaluate_collapse(x, y)
    d = direct(x, y, normalise=True)
    vals, vecs = np.linalg.eigh(d["sigma_b"])
    top = np.argsort(vals)[::-1][: len(counts) - 1]
    inv = vecs[:, top] @ np.diag(1 / vals[top]) @ vecs[:, top].T
    assert got["rank_between"] == len(counts) - 1
    assert got["nc1_svd"] == pytest.approx(np.trace(d["sigma_w"] @ inv) / len(counts), rel=REL)
    assert got["nc1_svd"] == pytest.approx(got["nc1"], rel=REL)


def test_nc1_svd_keeps_near_null_direction_that_pinv_drops():
    # Four class means in a plane plus a 1e-9 wobble out of it: Sigma_B's third eigenvalue is
    # ~1e-18 of the largest, below the pseudo-inverse cut-off (D * eps), but svd keeps C-1 = 3.
    rng = np.random.default_rng(21)
    centres = np.zeros((4, 5))
    centres[:, :2] = rng.normal(size=(4, 2))
    centres[:, 2] = 1e-9 * rng.normal(size=4)
    y = np.repeat(np.arange(4), 10)
    x = centres[y]
    x[:, :2] += 0.1 * rng.normal(size=(40, 2))
    # Within-class spread along the wobble whose +-pairs leave every class mean where it was.
    spread = 0.1 * rng.normal(size=(4, 5))
    x[:, 2] += np.concatenate([np.concatenate([r, -r]) for r in spread])
    got = evaluate_collapse(x, y, l2_normalise=False)
    assert got["rank_between"] == 2
    means = np.array([x[y == c].mean(axis=0) for c in range(4)])
    centred = means - x.mean(axis=0)
    _, sing, vt = np.linalg.svd(centred)
    sigma_w = sum(np.cov(x[y == c], rowvar=False, bias=True) / 4 for c in range(4))
    want = sum(vt[k] @ sigma_w @ vt[k] / (sing[k] ** 2 / 4) for k in range(3)) / 4
    assert got["nc1_svd"] == pytest.approx(want, rel=1e-6)
    assert got["nc1_svd"] > 1e6 * got["nc1"]


def test_perfectly_collapsed():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 6))
    y = np.repeat(np.arange(4), [3, 5, 2, 7])
    got = evaluate_collapse(centres[y], y)
    for key in ("nc1", "nc1_svd", "nc1_quotient", "vci", "cdnv", "trace_within"):
        assert got[key] == pytest.approx(0.0, abs=1e-12), key
    # The reference centring is not zero even here: mu_G^T Sigma_B^+ mu_G / C remains.
    assert got["nc1_reference_centring"] > 0.01


def test_simplex_etf_means_have_zero_nc2_errors():
    n_cls = 5
    etf = np.eye(n_cls) - 1.0 / n_cls  # rows: a regular simplex centred at the origin
    rng = np.random.default_rng(2)
    rotation, _ = np.linalg.qr(rng.normal(size=(7, 7)))
    means = np.hstack([etf, np.zeros((n_cls, 2))]) @ rotation * 3.0
    y = np.repeat(np.arange(n_cls), 4)
    got = evaluate_collapse(means[y], y, l2_normalise=False)
    for key in ("nc2_equinorm", "nc2_equiangular", "nc2_max_angle", "nc2_etf_error"):
        assert got[key] == pytest.approx(0.0, abs=1e-10), key
    # Equally spread: every pair of unit means at the same distance, sqrt(2 + 2/(C-1)).
    assert got["nc2g_dist"] == pytest.approx(0.0, abs=1e-12)
    assert got["nc2g_log"] == pytest.approx(0.0, abs=1e-12)


def test_nc2_and_cdnv_match_direct_loops():
    counts = [12, 7, 20, 9, 15, 30]
    x, y = make_data(counts, 5, seed=8)
    got = evaluate_collapse(x, y)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    n_cls = len(counts)
    means = [xn[y == c].mean(axis=0) for c in range(n_cls)]
    mu_g = xn.mean(axis=0)
    var = [np.mean([np.sum((row - means[c]) ** 2) for row in xn[y == c]]) for c in range(n_cls)]
    pairs = [
        (var[a] + var[b]) / (2 * np.sum((means[a] - means[b]) ** 2))
        for a in range(n_cls)
        for b in range(a + 1, n_cls)
    ]
    assert got["cdnv"] == pytest.approx(np.mean(pairs), rel=REL)

    norms = [np.linalg.norm(m - mu_g) for m in means]
    assert got["nc2_equinorm"] == pytest.approx(np.std(norms) / np.mean(norms), rel=REL)
    cos = [
        (means[a] - mu_g) @ (means[b] - mu_g) / (norms[a] * norms[b])
        for a in range(n_cls)
        for b in range(n_cls)
        if a != b
    ]
    assert got["nc2_equiangular"] == pytest.approx(np.std(cos), rel=REL)
    assert got["nc2_max_angle"] == pytest.approx(
        np.mean(np.abs(np.array(cos) + 1 / (n_cls - 1))), rel=REL
    )
    centred = np.array(means) - mu_g
    gram = centred @ centred.T
    ideal = np.eye(n_cls) - np.ones((n_cls, n_cls)) / n_cls
    want = np.linalg.norm(gram / np.linalg.norm(gram) - ideal / np.linalg.norm(ideal))
    assert got["nc2_etf_error"] == pytest.approx(want, rel=REL)
    # NC2g (the package's kernel_stats): variance over pairs c < c' of the unit means' distance
    # and of its negative log.
    units = [(m - mu_g) / (np.linalg.norm(m - mu_g) + np.finfo(float).eps) for m in means]
    dist = [np.linalg.norm(units[a] - units[b]) for a in range(n_cls) for b in range(a + 1, n_cls)]
    assert got["nc2g_dist"] == pytest.approx(np.var(dist), rel=1e-6)
    assert got["nc2g_log"] == pytest.approx(np.var(-np.log(dist)), rel=1e-6)


def test_ood_orthogonality_and_global_mean():
    means = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    assert ood_orthogonality(means, [1.0, 1.0, 0.0]) == pytest.approx(1 / np.sqrt(2))
    assert ood_orthogonality(means, [0.0, 0.0, 5.0]) == 0.0
    assert ood_orthogonality(means, [-1.0, 0.0, 0.0]) == pytest.approx(0.5)  # |cos|: 1 and 0
    with pytest.raises(ValueError, match="no direction"):
        ood_orthogonality(means, np.zeros(3))
    x, _ = make_data([7, 9], 4, seed=3)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(global_mean(x, chunk_rows=5), xn.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(global_mean(x, l2_normalise=False), x.mean(axis=0), rtol=1e-12)


def test_memmap_matches_in_memory(tmp_path):
    x, y = make_data([30, 45, 20, 60], 16, seed=4)
    x = x.astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    for chunk_rows in (7, 65536):
        in_memory = evaluate_collapse(x, y, chunk_rows=chunk_rows)
        assert evaluate_collapse(mapped, y, chunk_rows=chunk_rows) == in_memory


# Below 60 rows the biggest class is split into chunks; 60 and above, whole classes share a
# buffer that is flushed when the next class does not fit (64 and 100: several flushes).
@pytest.mark.parametrize("chunk_rows", [1, 3, 16, 59, 60, 64, 100])
def test_chunking_does_not_change_results(chunk_rows):
    x, y = make_data([30, 45, 20, 60], 10, seed=6, offset=5.0)
    whole = class_statistics(x, y)
    parts = class_statistics(x, y, chunk_rows=chunk_rows)
    np.testing.assert_allclose(parts.means, whole.means, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(parts.within_scatter, whole.within_scatter, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(parts.class_cov_sum, whole.class_cov_sum, rtol=1e-10, atol=1e-12)
    got, want = collapse_metrics(parts), collapse_metrics(whole)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key


def test_contiguous_and_shuffled_rows_agree():
    x, y = make_data([30, 45, 20], 6, seed=9)
    order = np.argsort(y, kind="stable")
    a = evaluate_collapse(x, y, chunk_rows=8)
    b = evaluate_collapse(x[order], y[order], chunk_rows=8)
    for key, value in a.items():
        assert b[key] == pytest.approx(value, rel=1e-10), key


def test_l2_normalisation_is_per_sample():
    x, y = make_data([20, 25, 30], 6, seed=10)
    scales = np.random.default_rng(0).uniform(0.1, 10.0, size=(x.shape[0], 1))
    normalised = x / np.linalg.norm(x, axis=1, keepdims=True)
    want = evaluate_collapse(normalised, y, l2_normalise=False)
    got = evaluate_collapse(x * scales, y, l2_normalise=True)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key
    stats = class_statistics(x * scales, y)
    assert stats.l2_normalised
    np.testing.assert_allclose(stats.means[0], normalised[y == 0].mean(axis=0))
    raw = evaluate_collapse(x * scales, y, l2_normalise=False)
    assert raw["nc1"] != pytest.approx(want["nc1"], rel=1e-3)


def test_classes_argument_selects_and_orders():
    x, y = make_data([20, 25, 30, 15], 5, seed=12)
    subset = evaluate_collapse(x, y, classes=[3, 1])
    keep = np.isin(y, [1, 3])
    assert subset == pytest.approx(evaluate_collapse(x[keep], y[keep]))
    stats = class_statistics(x, y, classes=[3, 1])
    assert stats.classes.tolist() == [3, 1]
    assert stats.counts.tolist() == [15, 25]


def test_string_labels():
    x, y = make_data([10, 12, 14], 4, seed=13)
    names = np.array(["cat", "dog", "eel"])[y]
    assert evaluate_collapse(x, names) == pytest.approx(evaluate_collapse(x, y))


def test_digits_dataset():
    digits = load_digits()
    x, y = digits.data, digits.target
    got = evaluate_collapse(x, y, chunk_rows=50)
    want = direct(x, y, normalise=True)
    for key in ("nc1", "vci", "nc1_reference_centring", "vci_reference_centring", "nc1_quotient"):
        assert got[key] == pytest.approx(want[key], rel=REL), key
    assert got["rank_between"] == 9
    assert 0 < got["vci"] < 1
    assert got["nc1"] < got["nc1_reference_centring"]
    assert (got["n_classes"], got["n_samples"], got["dim"]) == (10, 1797, 64)


def test_self_duality():
    rng = np.random.default_rng(14)
    means = rng.normal(size=(4, 6))
    mu_g = rng.normal(size=6)
    centred = means - mu_g
    assert self_duality(2.5 * centred, means, mu_g) == pytest.approx(0.0, abs=1e-14)
    w = rng.normal(size=(4, 6))
    want = np.sum((w / np.sqrt(np.sum(w**2)) - centred / np.sqrt(np.sum(centred**2))) ** 2)
    assert self_duality(w, means, mu_g) == pytest.approx(want, rel=REL)
    cross = w @ centred.T
    ideal = (np.eye(4) - 0.25) / np.sqrt(3)
    want_etf = np.sqrt(np.sum((cross / np.sqrt(np.sum(cross**2)) - ideal) ** 2))
    assert self_duality(w, means, mu_g, kind="etf") == pytest.approx(want_etf, rel=REL)
    with pytest.raises(ValueError, match="kind"):
        self_duality(w, means, mu_g, kind="other")
    with pytest.raises(ValueError, match="shape"):
        self_duality(w[:, :5], means, mu_g)


@pytest.mark.parametrize("normalise", [False, True])
def test_ncc_agreement_matches_loop(normalise):
    x, y = make_data([20, 25, 30], 5, seed=15, spread=0.7)
    rng = np.random.default_rng(16)
    means = np.array([x[y == c].mean(axis=0) for c in range(3)])
    w = means + rng.normal(scale=0.5, size=means.shape)
    hits = 0
    for row in x:
        if normalise:
            row = row / np.linalg.norm(row)
        linear = max(range(3), key=lambda c: w[c] @ row)
        nearest = min(range(3), key=lambda c: np.linalg.norm(row - means[c]))
        hits += linear == nearest
    got = ncc_agreement(x, w, means, l2_normalise=normalise, chunk_rows=7)
    assert got == pytest.approx(hits / len(x))
    assert 0 < got < 1
    assert ncc_agreement(x, means, means, l2_normalise=False) <= 1.0


def test_ncc_agreement_perfect_when_weights_are_centres_on_the_sphere():
    # On the unit sphere, with equal-norm centres, the nearest centre is the largest dot product.
    rng = np.random.default_rng(17)
    centres = rng.normal(size=(5, 8))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    assert ncc_agreement(rng.normal(size=(200, 8)), centres, centres) == 1.0


def direct_mean_classifier(x, labels, classes, normalise):
    """NC3 and NC4 of the mean-imprinted classifier straight from their definitions, with loops:
    weights = class means, prediction = the first class of largest inner product."""
    keep = np.isin(labels, classes)
    x, labels = np.asarray(x[keep], dtype=np.float64), labels[keep]
    if normalise:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    means = np.array([x[labels == c].mean(axis=0) for c in classes])
    centred = means - x.mean(axis=0)
    nc3 = np.sum((means / np.linalg.norm(means) - centred / np.linalg.norm(centred)) ** 2)
    hits = 0
    for row in x:
        imprinted = max(range(len(classes)), key=lambda c: means[c] @ row)
        nearest = min(range(len(classes)), key=lambda c: np.linalg.norm(row - means[c]))
        hits += imprinted == nearest
    return nc3, hits / len(x)


def test_mean_classifier_hand_worked():
    # After L2 normalisation: class 0 = {(1, 0), (1, 0)}, mean (1, 0); class 1 =
    # {(0.6, 0.8), (0.6, -0.8)}, mean (0.6, 0); mu_G = (0.8, 0), centred means (±0.2, 0).
    # NC3 = ||W/||W|| - M~/||M~||||^2 = 2 - 2 <W, M~> / (||W|| ||M~||),
    # <W, M~> = 0.2 - 0.12 = 0.08, ||W||^2 = 1.36, ||M~||^2 = 0.08.
    # NC4: (1, 0) scores 1 vs 0.6 and is nearest its own mean: agree. (0.6, ±0.8) scores
    # 0.6 for class 0 but 0.36 for class 1, yet lies nearer class 1's mean (0.64 < 0.8): the
    # imprinted classifier and the nearest centre disagree on half the samples.
    x = np.array([[2.0, 0.0], [3.0, 0.0], [3.0, 4.0], [3.0, -4.0]])
    y = np.array([0, 0, 1, 1])
    got = evaluate_collapse(x, y)
    assert got["nc3_self_duality"] == pytest.approx(2 - 2 * 0.08 / math.sqrt(1.36 * 0.08))
    assert got["nc4_ncc_agreement"] == 0.5
    nc3, nc4 = direct_mean_classifier(x, y, [0, 1], normalise=True)
    assert got["nc3_self_duality"] == pytest.approx(nc3, rel=REL) and nc4 == 0.5


@pytest.mark.parametrize("chunk_rows", [1, 7, 65536])
@pytest.mark.parametrize("normalise", [False, True])
def test_mean_classifier_matches_direct_computation(normalise, chunk_rows):
    # Unequal spreads give class means of unequal norms, where the two classifiers part.
    x, y = make_data([20, 35, 15, 30, 25], 4, seed=22, spread=0.6)
    x[y == 1] *= 3.0
    classes = [4, 1, 0, 3]  # class 2's rows are skipped
    stats = class_statistics(x, y, l2_normalise=normalise, classes=classes, chunk_rows=chunk_rows)
    got = mean_classifier_metrics(x, y, stats, chunk_rows=chunk_rows)
    nc3, nc4 = direct_mean_classifier(x, y, classes, normalise)
    assert got["nc3_self_duality"] == pytest.approx(nc3, rel=REL)
    assert got["nc4_ncc_agreement"] == pytest.approx(nc4, rel=1e-15)
    assert 0 < got["nc4_ncc_agreement"] < 1
    with pytest.raises(
        ValueError, match="hold 90 samples of the classes, but the statistics count 110"
    ):
        mean_classifier_metrics(x, np.where(y == 0, 2, y), stats)


def test_collapse_file_holds_nc3_and_nc4_of_the_mapped_labels(tmp_path):
    from imprint.api.collapse import collapse_file
    from imprint.io import save_embeddings

    x, y = make_data([20, 35, 15, 30], 5, seed=23, spread=0.8)
    save_embeddings(tmp_path / "e.npz", x, y)
    mapping = {0: 0, 1: 1, 3: 1}  # class 2 dropped, 1 and 3 merged
    got = collapse_file(str(tmp_path / "e.npz"), mapping=mapping)
    mapped = np.array([mapping.get(int(v), -1) for v in y])
    stored = x.astype(np.float32)
    nc3, nc4 = direct_mean_classifier(stored, mapped, [0, 1], normalise=True)
    assert got["nc3_self_duality"] == pytest.approx(nc3, rel=REL)
    assert got["nc4_ncc_agreement"] == pytest.approx(nc4, rel=1e-15)
    assert got == evaluate_collapse(stored[mapped >= 0], mapped[mapped >= 0])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda x, y: (x, np.zeros_like(y)), "at least 2 classes"),
        (lambda x, y: (x[:0], y[:0]), "empty"),
        (lambda x, y: (x.ravel(), y), "2-D"),
        (lambda x, y: (x, y[:-1]), "labels must have shape"),
        (lambda x, y: (np.where(np.arange(x.size).reshape(x.shape) == 7, np.nan, x), y), "NaN"),
        (lambda x, y: (np.where(np.arange(x.size).reshape(x.shape) == 3, np.inf, x), y), "inf"),
        (lambda x, y: (np.vstack([x, np.zeros((1, x.shape[1]))]), np.append(y, 0)), "zero"),
    ],
    ids=["one-class", "no-rows", "1-d", "label-length", "nan", "inf", "zero-row"],
)
def test_bad_inputs_raise(mutate, message):
    x, y = make_data([10, 10, 10], 4, seed=18)
    bad_x, bad_y = mutate(x, y)
    with pytest.raises(ValueError, match=message):
        evaluate_collapse(bad_x, bad_y)


def test_empty_and_duplicate_classes_raise():
    x, y = make_data([10, 10, 10], 4, seed=19)
    with pytest.raises(ValueError, match=r"no samples: 5"):
        class_statistics(x, y, classes=[0, 1, 5])
    with pytest.raises(ValueError, match="duplicate"):
        class_statistics(x, y, classes=[0, 1, 1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        class_statistics(x, y, classes=[2])
    with pytest.raises(ValueError, match="chunk_rows"):
        class_statistics(x, y, chunk_rows=0)


def test_identical_class_means_give_inf_not_zero():
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    y = np.array([0, 0, 1, 1])
    got = evaluate_collapse(x, y, l2_normalise=False)
    assert got["rank_between"] == 0
    assert math.isinf(got["nc1"]) and math.isinf(got["nc1_reference_centring"])
    assert math.isnan(got["vci"])


def test_means_equal_up_to_rounding_count_as_identical():
    # Class 1 holds class 0's samples in reverse order: the means agree in exact arithmetic but
    # differ by ~1e-17 after summation, a "Sigma_B" whose own lambda_max passes pinv's relative
    # cut-off (NC1 came out 7e33 with rank 2 for C = 2).
    a = np.random.default_rng(0).normal(size=(10, 3))
    x, y = np.vstack([a, a[::-1]]), np.repeat([0, 1], 10)
    got = evaluate_collapse(x, y, l2_normalise=False)
    assert got["rank_between"] == 0
    for key in ("nc1", "nc1_sample_weighted", "nc1_reference_centring", "nc1_svd"):
        assert math.isinf(got[key]), key
    assert math.isnan(got["vci"]) and math.isnan(got["vci_reference_centring"])
    # Three classes, two of them coinciding: Sigma_B has rank 1, and NC1 is the pinv of the
    # exactly rank-1 Sigma_B built from the means with the twins made bit-equal.
    b = 3.0 + np.random.default_rng(1).normal(size=(10, 3))
    x3, y3 = np.vstack([a, a[::-1], b]), np.repeat([0, 1, 2], 10)
    got = evaluate_collapse(x3, y3, l2_normalise=False)
    assert got["rank_between"] == 1
    means = np.array([a.mean(axis=0), a.mean(axis=0), b.mean(axis=0)])
    centred = means - means.mean(axis=0)
    sigma_b = centred.T @ centred / 3
    sigma_w = (2 * np.cov(a, rowvar=False, bias=True) + np.cov(b, rowvar=False, bias=True)) / 3
    assert got["nc1"] == pytest.approx(np.trace(sigma_w @ np.linalg.pinv(sigma_b)) / 3, rel=1e-9)
    assert math.isinf(got["nc1_svd"])  # it inverts C-1 = 2 directions, one of them null


def test_reference_centring_drops_what_a_float32_pinv_drops():
    # Centred class means (±1, -δ/3, 0) and (0, 2δ/3, 0): Sigma_B = diag(2/3, 2δ²/9, 0), so its
    # second eigenvalue is δ²/3 = 1e-10 of the first: kept by float64's pinv cut-off
    # (3 · 2.2e-16), dropped by float32's (3 · 1.2e-7), which the reference's pinv uses.
    delta = np.sqrt(3e-10)
    means = np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, delta, 0]])
    offsets = np.array([[0.1, 0.1, 0.1], [-0.1, -0.1, -0.1], [0.1, -0.1, 0.2], [-0.1, 0.1, -0.2]])
    x = np.concatenate([m + offsets for m in means])
    y = np.repeat([0, 1, 2], 4)
    got = evaluate_collapse(x, y, l2_normalise=False)
    mu_g = x.mean(axis=0)
    centred = means - mu_g
    sigma_b = centred.T @ centred / 3
    sigma_w = offsets.T @ offsets / 4  # every class has the same spread
    ref_w = sigma_w + np.outer(mu_g, mu_g)
    eps32 = np.finfo(np.float32).eps
    pinv32 = np.linalg.pinv(sigma_b, rtol=3 * eps32)
    assert got["nc1_reference_centring"] == pytest.approx(np.trace(ref_w @ pinv32) / 3, rel=1e-6)
    assert got["nc1"] == pytest.approx(np.trace(sigma_w @ np.linalg.pinv(sigma_b)) / 3, rel=1e-5)
    assert got["nc1"] > 1e6 * got["nc1_reference_centring"]  # the δ direction dominates nc1
    # VCI as the reference: rank(Sigma_B) = 1 and Sigma_T^+ at the float32 cut-off.
    sigma_t = ref_w + sigma_b
    want_vci = 1 - np.trace(sigma_b @ np.linalg.pinv(sigma_t, rtol=3 * eps32)) / 1
    assert got["vci_reference_centring"] == pytest.approx(want_vci, rel=1e-6)
    assert got["rank_between"] == 2  # float64 keeps the δ direction
