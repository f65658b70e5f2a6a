"""Stitching between frozen embeddings (analysis/stitching.py) against independent computations:
numpy's lstsq and SVD, scipy's orthogonal_procrustes, the engine's probe, brute-force kNN."""

import numpy as np
import pytest
import scipy.linalg
import torch

from imprint.analysis import stitching_fit
from imprint.analysis.stitching import (
    AffineMap,
    fit_direct,
    fit_orthogonal,
    fit_task_loss,
    kth_neighbour_distance,
    mean_classifier,
    ood_fraction,
    probe_classifier,
    rank_approximation,
    rank_grid,
    rank_sensitivity,
    rank_sensitivity_all,
    relative_residual,
    sample_rows,
    stitch_all,
    stitch_pair,
)
from imprint.engine.baselines import linear_probe


def _classes(n_per, dim, seed, spread=6.0):
    """3 well-separated Gaussian classes in `dim` dimensions, shifted away from the origin."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * spread + 2.0
    y = np.repeat(np.arange(3), n_per)
    return centres[y] + rng.normal(size=(len(y), dim)), y


@pytest.fixture(scope="module")
def task():
    b_train, y_train = _classes(60, 6, seed=1)
    b_test, y_test = _classes(20, 6, seed=1)  # same centres (same seed), fresh noise below
    b_test = b_test + np.random.default_rng(2).normal(size=b_test.shape) * 0.3
    return b_train, b_test, y_train, y_test


def _numpy_mean_accuracy(train, y_train, test, y_test):
    unit = train / np.linalg.norm(train, axis=1, keepdims=True)
    means = np.stack([unit[y_train == c].mean(axis=0) for c in range(3)])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    scores = (test / np.linalg.norm(test, axis=1, keepdims=True)) @ means.T
    return 100.0 * np.mean(scores.argmax(axis=1) == y_test)


def test_a_equal_to_b_gives_b_itself(task):
    b_train, b_test, y_train, y_test = task
    rows = stitch_pair(
        b_train, b_test, b_train, b_test, y_train, y_test, matchings=("direct", "orthogonal")
    )
    own = _numpy_mean_accuracy(b_train, y_train, b_test, y_test)
    assert len(rows) == 4 and {r["classifier"] for r in rows} == {"mean", "probe"}
    for row in rows:
        assert row["residual"] < 1e-10 and row["train_residual"] < 1e-10
        assert row["stitched_accuracy"] == row["target_accuracy"] and row["penalty"] == 0
        assert row["rows"] == len(b_train)
        if row["classifier"] == "mean":
            assert row["stitched_accuracy"] == own


def test_a_rotated_and_shifted_b_is_undone(task):
    b_train, b_test, y_train, y_test = task
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    shift = rng.normal(size=6) * 3
    a_train, a_test = b_train @ q + shift, b_test @ q + shift
    rows = stitch_pair(
        a_train, a_test, b_train, b_test, y_train, y_test, matchings=("direct", "orthogonal")
    )
    for row in rows:
        assert row["residual"] < 1e-10, row
        assert row["stitched_accuracy"] == row["target_accuracy"]
    mapping = fit_orthogonal(a_train, b_train)
    np.testing.assert_allclose(mapping.weight, q.T, atol=1e-10)  # the inverse rotation
    np.testing.assert_allclose(mapping(a_test), b_test, atol=1e-9)


def _lstsq(x, y):
    solution = np.linalg.lstsq(np.c_[x, np.ones(len(x))], y, rcond=None)[0]
    return solution[:-1], solution[-1]


@pytest.mark.parametrize("path", ["cholesky", "eigh"])
@pytest.mark.parametrize("case", ["full", "low_rank", "wide"])
def test_fit_direct_is_lstsq_with_a_bias(case, path, monkeypatch):
    if path == "eigh":  # no Gram counts as well conditioned: the eigendecomposition's path
        monkeypatch.setattr(stitching_fit, "CHOLESKY_MIN_RCOND", np.inf)
    rng = np.random.default_rng(7)
    if case == "full":
        x = rng.normal(size=(50, 6)) + 1.5
    elif case == "low_rank":  # rank 2 plus a shift: the null space meets the mean
        x = rng.normal(size=(50, 2)) @ rng.normal(size=(2, 6)) + rng.normal(size=6) * 3
    else:  # fewer rows than columns
        x = rng.normal(size=(8, 12)) + 0.5
    y = rng.normal(size=(len(x), 4)) + x[:, :4] * 2
    weight, bias = _lstsq(x, y)
    mapping = fit_direct(x, y)
    np.testing.assert_allclose(mapping.weight, weight, atol=1e-8)
    np.testing.assert_allclose(mapping.bias, bias, atol=1e-8)
    xa = np.c_[x, np.ones(len(x))]
    shared = fit_direct(x, y, gram=xa.T @ xa)
    np.testing.assert_allclose(shared.weight, weight, atol=1e-8)
    np.testing.assert_allclose(shared.bias, bias, atol=1e-8)


def test_fit_direct_on_k_rows_fits_k_distinct_rows():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(200, 5)), rng.normal(size=(200, 3))
    chosen = np.random.default_rng(4).choice(200, size=30, replace=False)
    assert len(set(chosen.tolist())) == 30
    np.testing.assert_array_equal(sample_rows(200, 30, 4), np.sort(chosen))
    weight, bias = _lstsq(x[chosen], y[chosen])
    mapping = fit_direct(x, y, rows=30, seed=4)
    np.testing.assert_allclose(mapping.weight, weight, atol=1e-10)
    np.testing.assert_allclose(mapping.bias, bias, atol=1e-10)
    with pytest.raises(ValueError, match="cannot fit on 300 rows drawn from 200"):
        fit_direct(x, y, rows=300)


@pytest.mark.parametrize("path", ["eigh", "newton", "svd"])
@pytest.mark.parametrize("dims", [(4, 7), (7, 4), (5, 5)])
def test_fit_orthogonal_is_scipy_procrustes_on_padded_centred_data(dims, path, monkeypatch):
    if path != "eigh":  # every rectangular matrix then counts as ill-conditioned
        monkeypatch.setattr(stitching_fit, "POLAR_MAX_CONDITION", 1.0)
    if path == "svd":  # and Newton's iteration fails: the SVD fallback
        monkeypatch.setattr(stitching_fit, "newton_polar", lambda square: None)
    da, db = dims
    rng = np.random.default_rng(9)
    x = rng.normal(size=(40, da)) + 2.0
    y = x[:, :1] @ rng.normal(size=(1, db)) + rng.normal(size=(40, db)) - 1.0
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    width = max(da, db)
    pad = lambda m: np.pad(m, ((0, 0), (0, width - m.shape[1])))  # noqa: E731
    rotation, _ = scipy.linalg.orthogonal_procrustes(pad(xc), pad(yc))
    mapping = fit_orthogonal(x, y)
    np.testing.assert_allclose(mapping.weight, rotation[:da, :db], atol=1e-10)
    np.testing.assert_allclose(mapping(x), xc @ rotation[:da, :db] + y.mean(axis=0), atol=1e-10)


def test_rank_approximation_full_is_the_input_and_rank_one_a_line(task):
    b_train, b_test, y_train, y_test = task
    a_train, a_test = b_train @ np.random.default_rng(3).normal(size=(6, 5)), b_test[:, :5]
    full = rank_approximation(a_train, a_test, 5)
    assert full[0] is a_train and full[1] is a_test
    train1, test1 = rank_approximation(a_train, a_test, 1)
    mu = a_train.mean(axis=0)
    v = np.linalg.svd(a_train - mu)[2][0]
    np.testing.assert_allclose(train1, mu + np.outer((a_train - mu) @ v, v), atol=1e-10)
    np.testing.assert_allclose(test1, mu + np.outer((a_test - mu) @ v, v), atol=1e-10)
    assert np.linalg.matrix_rank(train1 - mu, tol=1e-8) == 1
    assert rank_grid(5) == [5, 4, 2, 1] and rank_grid(768)[:3] == [768, 512, 256]
    assert rank_grid(8) == [8, 4, 2, 1] and rank_grid(1) == [1]
    rows = rank_sensitivity(
        a_train, a_test, b_train, b_test, y_train, y_test, ranks=[5, 1], matchings=("direct",)
    )
    direct = stitch_pair(a_train, a_test, b_train, b_test, y_train, y_test, matchings=("direct",))
    at_full = [r for r in rows if r["rank"] == 5]
    for row, ref in zip(at_full, direct, strict=True):
        assert row["stitched_accuracy"] == ref["stitched_accuracy"]
        assert row["residual"] == ref["residual"]
    assert set(rows[0]) == {
        "rank",
        "matching",
        "classifier",
        "stitched_accuracy",
        "residual",
        "cka",
    }
    assert [r["rank"] for r in rows] == [5, 5, 1, 1]
    assert rows[2]["cka"] < rows[0]["cka"]


@pytest.mark.parametrize("low_rank", [False, True])
def test_task_loss_matching_reaches_b_accuracy_on_separable_classes(task, low_rank):
    b_train, b_test, y_train, y_test = task
    rng = np.random.default_rng(11)
    mix = rng.normal(size=(6, 9))
    if low_rank:  # A keeps two directions of B, the plane of its class means (rank 2)
        means = np.stack([b_train[y_train == c].mean(axis=0) for c in range(3)])
        plane = np.linalg.qr((means[1:] - means[0]).T)[0]
        mix = plane @ plane.T @ mix
    a_train = b_train @ mix + rng.normal(size=(len(b_train), 9)) * 0.1
    a_test = b_test @ mix + rng.normal(size=(len(b_test), 9)) * 0.1
    for head in (mean_classifier(b_train, y_train), probe_classifier(b_train, y_train)):
        assert np.mean(head.predict(b_test) == y_test) == 1.0
        mapping = fit_task_loss(a_train, y_train, head, seed=0)
        assert np.mean(head.predict(mapping(a_test)) == y_test) == 1.0
        start = fit_task_loss(a_train, y_train, head, seed=0, max_iter=1)
        assert not np.allclose(start.weight, mapping.weight)
    wide = fit_task_loss(a_train, y_train, head, seed=0, dtype=torch.float64)
    assert np.mean(head.predict(wide(a_test)) == y_test) == 1.0


def test_mean_classifier_is_unit_means_of_unit_rows_and_probe_is_the_engines(task):
    b_train, b_test, y_train, _ = task
    head = mean_classifier(b_train, y_train)
    unit = b_train / np.linalg.norm(b_train, axis=1, keepdims=True)
    means = np.stack([unit[y_train == c].mean(axis=0) for c in range(3)])
    np.testing.assert_allclose(
        head.weight, means / np.linalg.norm(means, axis=1, keepdims=True), atol=1e-12
    )
    assert head.unit_inputs and not head.bias.any()
    z = np.random.default_rng(0).normal(size=(10, 6))
    unit_z = z / np.linalg.norm(z, axis=1, keepdims=True)
    np.testing.assert_allclose(head.logits(z), unit_z @ head.weight.T, atol=1e-12)
    probe = probe_classifier(b_train, y_train, seed=3)
    engine, _ = linear_probe(torch.as_tensor(b_train), torch.as_tensor(y_train), 3, seed=3)
    assert not probe.unit_inputs
    np.testing.assert_allclose(probe.weight, engine.weight.numpy())
    noisy = b_test + np.random.default_rng(1).normal(size=b_test.shape) * 4
    np.testing.assert_array_equal(
        probe.predict(noisy), engine.predict(torch.as_tensor(noisy)).numpy()
    )
    with pytest.raises(ValueError, match=r"classes \[3\] have no training rows"):
        mean_classifier(b_train, y_train, n_classes=4)


def test_ood_fraction_and_its_neighbour_distances():
    rng = np.random.default_rng(12)
    b_train, b_test = rng.normal(size=(1500, 5)), rng.normal(size=(1000, 5))
    assert ood_fraction(b_test, b_train, b_test) == pytest.approx(0.05, abs=0.002)
    fresh = rng.normal(size=(1000, 5))
    assert ood_fraction(fresh, b_train, b_test) == pytest.approx(0.05, abs=0.025)
    assert ood_fraction(fresh + 50.0, b_train, b_test) == 1.0
    query = rng.normal(size=(30, 5))
    brute = np.sort(np.linalg.norm(query[:, None] - b_train[None], axis=2), axis=1)[:, 9]
    np.testing.assert_allclose(
        kth_neighbour_distance(query, b_train, 10, block_rows=7), brute, rtol=1e-10
    )
    single = kth_neighbour_distance(query.astype(np.float32), b_train, 10)
    np.testing.assert_allclose(single, brute, rtol=1e-4)


def test_relative_residual_by_hand():
    mapping = AffineMap(np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([1.0, 0.0]))
    x = np.array([[1.0, 1.0], [0.0, 2.0]])
    y = np.array([[3.0, 2.0], [1.0, 0.0]])  # mapped: [[3, 1], [1, 2]]; errors 0, 1, 0, 2
    assert relative_residual(mapping, x, y) == pytest.approx(5.0 / 14.0)


def test_stitch_all_shares_work_and_agrees_with_single_fits(task):
    b_train, b_test, y_train, y_test = task
    rng = np.random.default_rng(14)
    maps = {"b": np.eye(6), "wide": rng.normal(size=(6, 8)), "narrow": rng.normal(size=(6, 3))}
    sets = {
        k: (b_train @ m + rng.normal(size=(len(b_train), m.shape[1])) * 0.5, b_test @ m)
        for k, m in maps.items()
    }
    timings = {}
    rows = stitch_all(
        sets,
        y_train,
        y_test,
        k_rows=40,
        matchings=("direct", "direct_k", "orthogonal"),
        timings=timings,
    )
    assert len(rows) == 6 * 3 * 2 and {"moments", "targets", "fit", "evaluate"} <= set(timings)
    for row in rows:
        (a_train, a_test), (t_train, t_test) = sets[row["source"]], sets[row["target"]]
        if row["matching"] == "direct":
            mapping = fit_direct(a_train, t_train)
        elif row["matching"] == "direct_k":
            mapping = fit_direct(a_train, t_train, rows=40)
            assert row["rows"] == 40
        else:
            mapping = fit_orthogonal(a_train, t_train)
        assert row["residual"] == pytest.approx(
            relative_residual(mapping, a_test, t_test), rel=1e-8
        )
        assert row["train_residual"] == pytest.approx(
            relative_residual(mapping, a_train, t_train), rel=1e-8
        )
        assert 0.0 <= row["ood_fraction"] <= 1.0
    single = stitch_all(
        sets, y_train, y_test, matchings=("direct",), precision="float32", ood_rows=0
    )
    double = [r for r in rows if r["matching"] == "direct"]
    for x, y in zip(single, double, strict=True):
        assert x["residual"] == pytest.approx(y["residual"], rel=1e-4) and np.isnan(
            x["ood_fraction"]
        )
    with pytest.raises(ValueError, match="unknown matchings"):
        stitch_all(sets, y_train, y_test, matchings=("direct", "cca"))


def test_newton_polar_on_an_ill_conditioned_matrix_is_the_svds():
    rng = np.random.default_rng(15)
    u = np.linalg.qr(rng.normal(size=(40, 40)))[0]
    v = np.linalg.qr(rng.normal(size=(40, 40)))[0]
    m = (u * np.logspace(0, -6, 40)) @ v.T  # κ = 1e6: past the eigh path's bound
    polar = stitching_fit.newton_polar(m)
    assert polar is not None
    np.testing.assert_allclose(polar, u @ v.T, atol=1e-8)
    np.testing.assert_allclose(stitching_fit.polar_factor(m), u @ v.T, atol=1e-8)
    assert stitching_fit.newton_polar(np.zeros((3, 3))) is None


def test_rank_sensitivity_all_is_rank_sensitivity_per_pair(task):
    b_train, b_test, y_train, y_test = task
    mix = np.random.default_rng(16).normal(size=(6, 4))
    sets = {"a": (b_train @ mix, b_test @ mix), "b": (b_train, b_test)}
    rows = rank_sensitivity_all(sets, y_train, y_test, ranks=[4, 2], matchings=("direct",))
    keys = [(r["source"], r["target"], r["rank"]) for r in rows[::2]]
    assert keys == [("a", "b", 4), ("a", "b", 2), ("b", "a", 4), ("b", "a", 2)]
    one = rank_sensitivity(
        *sets["b"], *sets["a"], y_train, y_test, ranks=[4, 2], matchings=("direct",)
    )
    for row, ref in zip(rows[4:], one, strict=True):
        assert {k: v for k, v in row.items() if k not in ("source", "target")} == ref


def test_nearly_singular_rows_give_lstsqs_solution_and_their_own_residual():
    """Columns that repeat up to 1e-9 (an image's identical colour channels), fewer rows than
    columns: the Gram's eigenvalues cannot resolve such directions, the rows' SVD can. The map
    equals lstsq's minimum-norm one, and the training residual is read from the rows where the
    moments' sum would be rounding noise (weights near 1e6 here)."""
    rng = np.random.default_rng(5)
    base = rng.normal(size=(40, 20))
    x = np.hstack([base, base + 1e-9 * rng.normal(size=base.shape), base[:, :5]])
    y = rng.normal(size=(40, 6))
    design = np.hstack([x, np.ones((40, 1))])
    solution = np.linalg.lstsq(design, y, rcond=None)[0]
    found = fit_direct(x, y)
    scale = np.abs(solution).max()
    assert scale > 1e4  # the minimum-norm solution uses the 1e-9 directions
    np.testing.assert_allclose(found.weight, solution[:-1], atol=1e-4 * scale)
    np.testing.assert_allclose(found(x), design @ solution, atol=1e-6 * scale)
    y_test = rng.normal(size=(10, 6))
    row = stitch_pair(
        x, x[:10], y, y_test, np.arange(40) % 2, np.arange(10) % 2, matchings=("direct",),
        ood_rows=0,
    )[0]  # fmt: skip
    expected = ((design @ solution - y) ** 2).sum() / (y**2).sum()
    assert row["train_residual"] == pytest.approx(expected, abs=1e-9)
