"""FeCAM, RanPAC and FeTrIL (engine/incremental_methods.py, engine/incremental_ridge.py) against
computations written here with numpy, scipy and scikit-learn, not against their own helpers."""

import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis
from sklearn.metrics import pairwise_distances
from sklearn.svm import LinearSVC

from imprint.engine import incremental_methods as im
from imprint.engine import incremental_ridge as ir


def _protocol(dim=6, base=3, base_rows=12, sessions=2, ways=2, shots=5, test=40, seed=0):
    """Non-negative Gaussian classes: sessions [(x, y)], test rows, their classes."""
    rng = np.random.default_rng(seed)
    n_classes = base + sessions * ways
    centres = rng.normal(size=(n_classes, dim)) + 2.0

    def draw(classes, n):
        y = np.repeat(np.asarray(classes), n)
        return np.abs(centres[y] + rng.normal(size=(len(y), dim))).astype(np.float32), y

    out = [draw(range(base), base_rows)]
    out += [draw(range(base + s * ways, base + (s + 1) * ways), shots) for s in range(sessions)]
    tx, ty = draw(range(n_classes), max(1, test // n_classes))
    return out, tx, ty


# ----------------------------------------------------------------------------------- FeCAM


def _shrink_by_hand(cov, g1=1.0, g2=1.0):
    off = cov - np.diag(np.diag(cov))
    v1, v2 = np.mean(np.diag(cov)), off[off != 0].mean()
    eye = np.eye(len(cov))
    return cov + g1 * v1 * eye + g2 * v2 * (1 - eye)


def _fecam_by_hand(x, test, beta=0.5, passes=2):
    """Squared Mahalanobis distances of the test rows to one class, with scipy."""
    cov = np.cov((x.astype(np.float64) ** beta).T)
    for _ in range(passes):
        cov = _shrink_by_hand(cov)
    sd = np.sqrt(np.diag(cov))
    inv = np.linalg.inv(cov / np.outer(sd, sd))
    mean = x.astype(np.float64).mean(axis=0) ** beta
    mean /= np.linalg.norm(mean)
    rows = (test / np.linalg.norm(test, axis=1, keepdims=True)) ** beta
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return np.array([mahalanobis(r, mean, inv) ** 2 for r in rows])


def test_fecam_distances_equal_scipys_mahalanobis_with_the_shrunk_correlation():
    sessions, tx, _ = _protocol()
    opts = im.method_options("fecam", None)
    xt = im.fecam_test_rows(tx, 0.5)
    for x, y in sessions:  # 12-row base classes and 5-shot classes (rank-deficient covariance)
        means, corrs = im.fecam_fit(x, y, opts)
        got = im.fecam_distances(xt, means, corrs).numpy()
        for j, c in enumerate(np.unique(y)):
            want = _fecam_by_hand(x[y == c], tx)
            np.testing.assert_allclose(got[:, j], want, rtol=2e-4)


def test_fecam_predictions_are_the_nearest_class_among_those_seen():
    sessions, tx, _ = _protocol()
    preds = list(im.run_method_sessions("fecam", sessions, tx, seed=0))
    dists = np.stack(
        [_fecam_by_hand(x[y == c], tx) for x, y in sessions for c in np.unique(y)], axis=1
    )
    seen = np.cumsum([len(np.unique(y)) for _, y in sessions])
    for p, n in zip(preds, seen, strict=True):
        assert p.dtype == np.int64 and p.shape == (len(tx),)
        np.testing.assert_array_equal(p, np.argmin(dists[:, :n], axis=1))
    assert len(np.unique(preds[-1])) > 3  # the case is not degenerate


def test_fecam_one_shrinkage_pass_is_not_the_default():
    sessions, tx, _ = _protocol()
    x, y = sessions[0]
    means, corrs = im.fecam_fit(x, y, im.method_options("fecam", {"shrink_passes": 1}))
    got = im.fecam_distances(im.fecam_test_rows(tx, 0.5), means, corrs).numpy()[:, 0]
    np.testing.assert_allclose(got, _fecam_by_hand(x[y == 0], tx, passes=1), rtol=2e-4)
    assert not np.allclose(got, _fecam_by_hand(x[y == 0], tx, passes=2), rtol=1e-2)


def test_fecam_negative_features_sign_preserving_power_and_one_warning(monkeypatch):
    monkeypatch.setitem(im._WARNED, "negative", False)
    x = torch.tensor([[-4.0, 9.0], [0.25, -1.0]])
    with pytest.warns(UserWarning, match="sign\\(x\\)\\|x\\|\\^beta"):
        got = im.tukey(x, 0.5)
    np.testing.assert_allclose(got.numpy(), [[-2.0, 3.0], [0.5, -1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        im.tukey(x, 0.5)  # warned once only
    with pytest.raises(ValueError, match="beta = 0"):
        im.tukey(x, 0.0)
    np.testing.assert_allclose(im.tukey(torch.tensor([np.e]), 0.0).numpy(), [1.0], rtol=1e-6)


def test_fecam_refuses_a_class_with_one_row():
    sessions, tx, _ = _protocol()
    x, y = sessions[1]
    keep = np.r_[np.flatnonzero(y == y[0]), np.flatnonzero(y != y[0])[:1]]
    with pytest.raises(ValueError, match="at least 2 rows per class"):
        list(im.run_method_sessions("fecam", [sessions[0], (x[keep], y[keep])], tx, 0))


# ---------------------------------------------------------------------------------- RanPAC


def _h(x, w):
    """RanPAC's features h = ReLU(x W), float32 as the code computes them, then float64."""
    return ir.project(x, w).double().numpy()


def test_ranpac_features_are_the_relu_of_the_projection():
    x = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    w = ir.random_projection(8, 50, seed=2)
    want = np.maximum(x.astype(np.float64) @ w.numpy().astype(np.float64), 0.0)
    np.testing.assert_allclose(_h(x, w), want, rtol=1e-5, atol=1e-5)
    assert (want == 0).mean() > 0.3


def test_ranpac_session_by_session_ridge_equals_the_ridge_on_every_row_at_once():
    sessions, _, _ = _protocol(dim=8, base=4, base_rows=30)
    m, lam = 24, 0.37
    state = ir.ranpac_init(8, m, seed=3)
    n_seen = 0
    for s, (x, y) in enumerate(sessions):
        n_seen += len(np.unique(y))
        ir.ranpac_update(state, x, y, n_seen, lam)
        rows = np.concatenate([sx for sx, _ in sessions[: s + 1]])
        labels = np.concatenate([sy for _, sy in sessions[: s + 1]])
        h = _h(rows, state.w_rand)
        y1 = np.eye(n_seen)[labels]
        want = np.linalg.solve(h.T @ h + lam * np.eye(m), h.T @ y1)
        got = ir.ranpac_weights(state).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())


def test_ranpac_with_fewer_rows_than_m_solves_the_same_ridge_in_its_dual_form():
    sessions, _, _ = _protocol(dim=8, base=4, base_rows=30)  # 120 + 10 + 10 rows < M = 300
    m, lam = 300, 0.37
    state = ir.ranpac_init(8, m, seed=3)
    n_seen = 0
    for s, (x, y) in enumerate(sessions):
        n_seen += len(np.unique(y))
        ir.ranpac_update(state, x, y, n_seen, lam)
        assert state.gram is None  # still the dual form
        rows = np.concatenate([sx for sx, _ in sessions[: s + 1]])
        labels = np.concatenate([sy for _, sy in sessions[: s + 1]])
        h = _h(rows, state.w_rand)
        want = np.linalg.solve(h.T @ h + lam * np.eye(m), h.T @ np.eye(n_seen)[labels])
        got = ir.ranpac_weights(state).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8 * np.abs(want).max())
    # Past M rows the state switches to G and Q, with the same ridge.
    x, y = sessions[0]
    ir.ranpac_update(state, np.concatenate([x] * 2), np.concatenate([y] * 2), n_seen, lam)
    assert state.gram is not None and not state.rows
    rows = np.concatenate([*(sx for sx, _ in sessions), x, x])
    labels = np.concatenate([*(sy for _, sy in sessions), y, y])
    h = _h(rows, state.w_rand)
    want = np.linalg.solve(h.T @ h + lam * np.eye(m), h.T @ np.eye(n_seen)[labels])
    np.testing.assert_allclose(ir.ranpac_weights(state).numpy(), want, rtol=1e-6,
                               atol=1e-8 * np.abs(want).max())  # fmt: skip


def _ridge_by_loop(h, y, n_classes, seed, ridges):
    order = np.random.default_rng(seed).permutation(len(h))
    fit, held = order[: int(len(h) * 0.8)], order[int(len(h) * 0.8) :]
    y1 = np.eye(n_classes)[y]
    losses = []
    for lam in ridges:
        w = np.linalg.solve(h[fit].T @ h[fit] + lam * np.eye(h.shape[1]), h[fit].T @ y1[fit])
        losses.append(np.mean((h[held] @ w - y1[held]) ** 2))
    return ridges[int(np.argmin(losses))], np.array(losses)


@pytest.mark.parametrize("m", [10, 200])  # primal (more fit rows than M) and dual
def test_ranpac_lambda_choice_equals_a_direct_loop(m):
    sessions, _, _ = _protocol(dim=8, base=4, base_rows=30)
    x, y = sessions[0]
    w = ir.random_projection(8, m, seed=1)
    ridges = tuple(10.0**k for k in range(-4, 5))
    got, losses = ir.select_ridge(ir.project(x, w), y, 4, seed=5, ridges=ridges)
    want, want_losses = _ridge_by_loop(_h(x, w), y, 4, 5, ridges)
    assert got == want
    np.testing.assert_allclose(losses, want_losses, rtol=1e-6)
    assert len(set(np.round(losses, 6))) > 3  # the λ matter


@pytest.mark.parametrize("reselect", [False, True])  # base session only; the code's each
def test_ranpac_predictions_equal_an_independent_ridge_each_session(reselect):
    sessions, tx, _ = _protocol(dim=8, base=4, base_rows=30)
    m, seed = 40, 7
    options = {"M": m, "reselect_ridge": reselect}
    preds = list(im.run_method_sessions("ranpac", sessions, tx, seed, options))
    w = ir.random_projection(8, m, seed)
    g, q, n_seen = np.zeros((m, m)), np.zeros((m, 0)), 0
    for s, ((x, y), p) in enumerate(zip(sessions, preds, strict=True)):
        n_seen += len(np.unique(y))
        h = _h(x, w)
        if s == 0 or reselect:
            lam, _ = _ridge_by_loop(h, y, n_seen, seed + 1_000_003 * s, ir.RIDGES)
        g += h.T @ h
        q = np.pad(q, ((0, 0), (0, n_seen - q.shape[1]))) + h.T @ np.eye(n_seen)[y]
        np.testing.assert_array_equal(
            p, np.argmax(_h(tx, w) @ np.linalg.solve(g + lam * np.eye(m), q), 1)
        )


def test_ranpac_projection_is_seeded_and_standard_normal():
    a, b = ir.random_projection(50, 400, 0), ir.random_projection(50, 400, 1)
    assert torch.equal(a, ir.random_projection(50, 400, 0)) and not torch.equal(a, b)
    assert abs(float(a.mean())) < 0.02 and abs(float(a.std()) - 1) < 0.02
    sessions, tx, _ = _protocol(dim=8, base=4, base_rows=30)
    runs = [list(im.run_method_sessions("ranpac", sessions, tx, s, {"M": 16})) for s in (0, 0, 1)]
    assert all(np.array_equal(p, q) for p, q in zip(runs[0], runs[1], strict=True))
    assert any(not np.array_equal(p, q) for p, q in zip(runs[0], runs[2], strict=True))


# ---------------------------------------------------------------------------------- FeTrIL


def test_fetril_pseudo_features_translate_the_nearest_new_class_by_hand():
    past = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 9.0]])
    x_new = np.array([[1.0, 1.0], [3.0, 1.0], [9.0, 1.0], [11.0, 3.0]], dtype=np.float32)
    y_new = np.array([3, 3, 4, 4])  # means (2, 1) and (10, 2)
    rows, labels, means = im.fetril_training_rows(past, x_new, y_new, 3, "nearest", 0)
    np.testing.assert_allclose(means, [[2, 1], [10, 2]])
    # past 0 ← new 3 (nearest (2, 1)), past 1 ← new 4, past 2 (0, 9) ← new 3 (dist² 68 < 149)
    want = [[-1, 0], [1, 0], [9, -1], [11, 1], [-1, 9], [1, 9], *x_new.tolist()]
    np.testing.assert_allclose(rows, want)
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    d = pairwise_distances(past, means)
    np.testing.assert_array_equal(im.translation_sources(past, means), np.argmin(d, axis=1))
    rand = [im.translation_sources(past, means, "random", s) for s in (1, 1, 2, 3, 4)]
    assert np.array_equal(rand[0], rand[1]) and set(np.concatenate(rand)) == {0, 1}


def _linearsvc(rows, labels):
    rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    clf = LinearSVC(C=1.0, tol=1e-8, dual=False, max_iter=10_000)
    return clf.fit(rows, labels)


def test_fetril_svm_equals_sklearns_linearsvc():
    sessions, tx, _ = _protocol(dim=6, base=4, base_rows=15)
    x, y = sessions[0]
    w, b = im.svm_fit(x, y, 4, tol=1e-9, dtype="float64")
    ref = _linearsvc(x, y)
    np.testing.assert_allclose(w, ref.coef_, atol=1e-4)
    np.testing.assert_allclose(b, ref.intercept_, atol=1e-4)
    np.testing.assert_array_equal(
        im.svm_predict(tx, w, b), ref.predict(im.unit_rows(torch.from_numpy(tx)).numpy())
    )
    w2, b2 = im.svm_fit_liblinear(x, y, tol=1e-8)
    np.testing.assert_allclose(w2, w, atol=1e-4)


def test_fetril_sessions_equal_pseudo_features_and_linearsvc_fitted_here():
    sessions, tx, _ = _protocol(dim=6, base=4, base_rows=15, ways=3)
    preds = list(im.run_method_sessions("fetril", sessions, tx, 0, {"solver": "lbfgs", **TIGHT}))
    means = []
    unit_test = tx / np.linalg.norm(tx, axis=1, keepdims=True)
    for (x, y), p in zip(sessions, preds, strict=True):
        new = [x[y == c].astype(np.float64).mean(0) for c in np.unique(y)]
        rows, labels = [x], [y]
        for c, mu in enumerate(means):
            n = int(np.argmin([np.linalg.norm(mu - v) for v in new]))
            rows.append(x[y == y.min() + n] - new[n] + mu)
            labels.append(np.full((y == y.min() + n).sum(), c))
        means += new
        np.testing.assert_array_equal(
            p, _linearsvc(np.concatenate(rows), np.concatenate(labels)).predict(unit_test)
        )
    assert len(np.unique(preds[-1])) > 3


TIGHT = {"tol": 1e-9, "dtype": "float64"}


def test_fetril_float32_lbfgs_gives_the_float64_predictions():
    sessions, tx, _ = _protocol(dim=6, base=4, base_rows=15)
    a = list(im.run_method_sessions("fetril", sessions, tx, 0, {"solver": "lbfgs", **TIGHT}))
    # float32 and tol 1e-4, the defaults
    b = list(im.run_method_sessions("fetril", sessions, tx, 0, {"solver": "lbfgs"}))
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))


def test_fetril_liblinear_solver_gives_the_same_predictions():
    sessions, tx, _ = _protocol(dim=6, base=4, base_rows=15)
    a = list(im.run_method_sessions("fetril", sessions, tx, 0, {"solver": "lbfgs", **TIGHT}))
    b = list(
        im.run_method_sessions("fetril", sessions, tx, 0, {"solver": "liblinear", "tol": 1e-8})
    )
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))


def test_fetril_auto_solver_is_linearsvc_on_small_sessions_and_lbfgs_beyond(monkeypatch):
    sessions, tx, _ = _protocol(dim=6, base=4, base_rows=15)
    calls = []
    for name in ("svm_fit", "svm_fit_liblinear"):
        real = getattr(im, name)
        monkeypatch.setattr(
            im, name, lambda *a, _r=real, _n=name, **k: calls.append(_n) or _r(*a, **k)
        )
    list(im.run_method_sessions("fetril", sessions, tx, 0))
    assert calls == ["svm_fit_liblinear"] * 3  # every session here is small
    calls.clear()
    monkeypatch.setattr(im, "AUTO_LIBLINEAR_SIZE", 0)
    list(im.run_method_sessions("fetril", sessions, tx, 0))
    assert calls == ["svm_fit"] * 3


# ------------------------------------------------------------------------- inputs and seeds


def test_unknown_method_and_option_names_are_refused_with_the_allowed_ones():
    sessions, tx, _ = _protocol()
    with pytest.raises(ValueError, match="'knn'.*fecam, ranpac, fetril"):
        list(im.run_method_sessions("knn", sessions, tx, 0))
    with pytest.raises(ValueError, match="'lambda'.*M, ridges, reselect_ridge"):
        list(im.run_method_sessions("ranpac", sessions, tx, 0, {"lambda": 1.0}))
    with pytest.raises(ValueError, match="'gamma'.*beta, gamma1, gamma2, shrink_passes"):
        list(im.run_method_sessions("fecam", sessions, tx, 0, {"gamma": 1.0}))
    with pytest.raises(ValueError, match="pseudo='far'.*nearest"):
        list(im.run_method_sessions("fetril", sessions, tx, 0, {"pseudo": "far"}))
    with pytest.raises(ValueError, match="dtype='half'.*float32"):
        list(im.run_method_sessions("fetril", sessions, tx, 0, {"dtype": "half"}))


@pytest.mark.parametrize(
    "shift", [lambda y: y + 1, lambda y: np.where(y == y.max(), y + 1, y), lambda y: y - 1]
)
def test_sessions_with_non_consecutive_classes_are_refused(shift):
    sessions, tx, _ = _protocol()
    for s in (0, 1):
        bad = list(sessions)
        bad[s] = (sessions[s][0], shift(sessions[s][1]))
        for method in im.METHODS:
            with pytest.raises(ValueError, match=f"session {s}: class indices must be"):
                list(
                    im.run_method_sessions(
                        method, bad, tx, 0, {"M": 8} if method == "ranpac" else None
                    )
                )


def test_float_labels_and_mismatched_shapes_are_refused():
    sessions, tx, _ = _protocol()
    x, y = sessions[0]
    with pytest.raises(ValueError, match="class indices"):
        list(im.run_method_sessions("fecam", [(x, y.astype(float))], tx, 0))
    with pytest.raises(ValueError, match="disagree"):
        list(im.run_method_sessions("fecam", [(x, y[:-1])], tx, 0))
    with pytest.raises(ValueError, match="test rows"):
        list(im.run_method_sessions("fecam", [(x, y)], tx[:, :-1], 0))


@pytest.mark.parametrize("method", im.METHODS)
def test_the_same_seed_gives_identical_predictions(method):
    sessions, tx, _ = _protocol()
    opts = {"M": 16} if method == "ranpac" else None
    a = list(im.run_method_sessions(method, sessions, tx, 4, opts))
    b = list(im.run_method_sessions(method, sessions, tx, 4, opts))
    assert len(a) == len(sessions) and all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    for p, n in zip(a, np.cumsum([len(np.unique(y)) for _, y in sessions]), strict=True):
        assert p.dtype == np.int64 and p.min() >= 0 and p.max() < n


def test_fecam_distances_take_the_pseudo_inverse_where_the_matrix_is_not_positive_definite():
    # Shrinkage can leave K_c indefinite or singular (features constant within a class, as
    # the blank border pixels of the digits): the authors' code takes pinv, so does this.
    rng = np.random.default_rng(4)
    a = rng.normal(size=(6, 4))
    singular = a @ a.T  # rank 4 of 6
    corrs = torch.from_numpy(np.stack([singular, np.eye(6)]))
    means = torch.from_numpy(rng.normal(size=(2, 6)).astype(np.float32))
    xt = torch.from_numpy(rng.normal(size=(5, 6)).astype(np.float32))
    got = im.fecam_distances(xt, means, corrs).numpy()
    diff = xt.numpy().astype(np.float64) - means.numpy()[0]
    want = np.einsum("ij,jk,ik->i", diff, np.linalg.pinv(singular), diff)
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-4)
    plain = ((xt.numpy() - means.numpy()[1]) ** 2).sum(axis=1)
    np.testing.assert_allclose(got[:, 1], plain, rtol=1e-5)
