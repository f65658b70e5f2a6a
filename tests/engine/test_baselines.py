"""The linear probe against scikit-learn's LogisticRegression, dinov2's kNN against a direct
loop over test rows."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from imprint.engine.baselines import fit_logistic, held_out_split, knn_predict, linear_probe


def _digits(classes, n_per_class=40):
    x, y = load_digits(return_X_y=True)
    keep = np.concatenate([np.flatnonzero(y == c)[:n_per_class] for c in classes])
    index = np.searchsorted(classes, y[keep])
    return x[keep] / 16.0, index


def _probabilities(probe, x):
    scores = torch.from_numpy(x) @ probe.weight.T + probe.bias
    return torch.softmax(scores, dim=1).numpy()


@pytest.mark.parametrize("penalty", [0.1, 3.0])
def test_the_probe_equals_scikit_learns_multinomial_logistic_regression(penalty):
    x, y = _digits([0, 3, 5, 8])
    probe = fit_logistic(torch.from_numpy(x), torch.from_numpy(y), 4, penalty, tolerance=1e-10)
    ref = LogisticRegression(C=1 / penalty, tol=1e-12, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(_probabilities(probe, x), ref.predict_proba(x), atol=1e-6)
    np.testing.assert_allclose(probe.weight.numpy(), ref.coef_, atol=1e-5)
    # Intercepts are defined up to a common shift (softmax ignores it): compare centred. They
    # are unpenalised, so the loss is flatter along them (1e-4 at λ = 0.1).
    b = probe.bias.numpy()
    np.testing.assert_allclose(b - b.mean(), ref.intercept_ - ref.intercept_.mean(), atol=1e-4)


def test_two_classes_are_scikit_learns_binary_model_at_c_equal_two_over_lambda():
    # Softmax over two classes penalises w1 and w2 = -w1, i.e. λ/4 ‖w1 - w2‖²: scikit-learn's
    # sigmoid model with C = 2/λ.
    x, y = _digits([1, 7])
    probe = fit_logistic(torch.from_numpy(x), torch.from_numpy(y), 2, 0.5, tolerance=1e-10)
    ref = LogisticRegression(C=2 / 0.5, tol=1e-12, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(_probabilities(probe, x), ref.predict_proba(x), atol=1e-6)


def test_the_penalty_search_holds_out_a_stratified_part_and_refits_on_everything():
    y = np.repeat(np.arange(3), [10, 20, 1])
    fit, held = held_out_split(y, 0.2, seed=0)
    assert sorted(np.concatenate([fit, held]).tolist()) == list(range(31))
    assert np.bincount(y[held], minlength=3).tolist() == [2, 4, 0]  # a 1-row class stays in fit
    x, labels = _digits([0, 3, 5, 8])
    xt, yt = torch.from_numpy(x), torch.from_numpy(labels)
    probe, scores = linear_probe(xt, yt, 4, penalties=[1e-3, 1e-1, 10.0], seed=0, tolerance=1e-10)
    # The held-out accuracies are those of scikit-learn's fits on the same split.
    fit, held = held_out_split(labels, 0.2, seed=0)
    for penalty, accuracy in scores.items():
        ref = LogisticRegression(C=1 / penalty, tol=1e-10, max_iter=10_000).fit(x[fit], labels[fit])
        assert accuracy == pytest.approx(100 * (ref.predict(x[held]) == labels[held]).mean())
    best = max(sorted(scores, reverse=True), key=lambda p: scores[p])
    assert probe.penalty == best
    ref = LogisticRegression(C=1 / best, tol=1e-12, max_iter=10_000).fit(x, labels)
    np.testing.assert_allclose(_probabilities(probe, x), ref.predict_proba(x), atol=1e-5)


def _knn_reference(train, train_y, test, n_classes, k, temperature):
    """One test row at a time: cosine similarities in float64, the k largest (equal ones: lower
    training row first), votes exp(s/T) per class, the largest vote (ties: lower class)."""
    tr = train.astype(np.float64)
    tr /= np.linalg.norm(tr, axis=1, keepdims=True)
    out = []
    for row in test.astype(np.float64):
        sims = tr @ (row / np.linalg.norm(row))
        order = sorted(range(len(sims)), key=lambda i: (-sims[i], i))[:k]
        votes = np.zeros(n_classes)
        for i in order:
            votes[train_y[i]] += np.exp(sims[i] / temperature)
        out.append(int(np.argmax(votes)))
    return np.array(out)


@pytest.mark.parametrize("k", [1, 3, 10, 500])
def test_knn_equals_a_direct_loop_with_ties(k):
    rng = np.random.default_rng(0)
    train = rng.standard_normal((60, 5)).astype(np.float32)
    train[10] = train[11]  # equal rows of different classes: equal similarities
    train_y = rng.integers(0, 4, 60)
    train_y[10], train_y[11] = 2, 1
    test = np.vstack([rng.standard_normal((15, 5)), train[10:11]]).astype(np.float32)
    got = knn_predict(
        torch.from_numpy(train),
        torch.from_numpy(train_y),
        torch.from_numpy(test),
        4,
        ks=[k],
        temperature=0.07,
        block_rows=4,
    )[k]
    expected = _knn_reference(train, train_y, test, 4, k, 0.07)
    assert got.tolist() == expected.tolist()


def _fan(axis, dim, similarities):
    """Unit rows of `dim` dimensions at the given cosine similarities to unit vector e_axis,
    spread around it in the plane of the next two axes."""
    rows = np.zeros((len(similarities), dim))
    for i, s in enumerate(similarities):
        angle, rest = 2 * np.pi * i / len(similarities), np.sqrt(1 - s * s)
        rows[i, axis : axis + 3] = [s, rest * np.cos(angle), rest * np.sin(angle)]
    return rows


@pytest.mark.parametrize(("temperature", "winners"), [(0.07, [0, 0]), (0.5, [1, 0]), (5.0, [1, 1])])
def test_knn_votes_with_the_given_temperature(temperature, winners):
    # Two queries, e_0 and e_3, each with its 4 nearest training rows in its own 3 axes
    # (orthogonal to the other's: similarity 0). k = 4, so each query's votes are
    #   query 0: class 0 one row at s = 0.9, class 1 three at 0.6:
    #       class 0 wins iff exp(0.3 / T) > 3, i.e. T < 0.3 / ln 3 = 0.27;
    #   query 1: class 0 one row at 0.95, class 1 three at 0.25: T < 0.7 / ln 3 = 0.64.
    train = np.vstack([_fan(0, 6, [0.9, 0.6, 0.6, 0.6]), _fan(3, 6, [0.95, 0.25, 0.25, 0.25])])
    train_y = np.array([0, 1, 1, 1, 0, 1, 1, 1])
    test = np.eye(6)[[0, 3]]
    got = knn_predict(
        torch.from_numpy(train.astype(np.float32)),
        torch.from_numpy(train_y),
        torch.from_numpy(test.astype(np.float32)),
        2,
        ks=[4],
        temperature=temperature,
    )[4]
    assert got.tolist() == winners
    assert _knn_reference(train, train_y, test, 2, 4, temperature).tolist() == winners


@pytest.mark.parametrize("temperature", [0.5, 5.0])
def test_knn_at_other_temperatures_equals_a_direct_loop(temperature):
    rng = np.random.default_rng(2)
    train_y = rng.integers(0, 3, 80)
    train = (rng.standard_normal((80, 5)) + 0.5 * train_y[:, None]).astype(np.float32)
    test = (rng.standard_normal((40, 5)) + 0.5 * rng.integers(0, 3, 40)[:, None]).astype(np.float32)
    got = knn_predict(
        torch.from_numpy(train),
        torch.from_numpy(train_y),
        torch.from_numpy(test),
        3,
        ks=[5, 20],
        temperature=temperature,
        block_rows=16,
    )
    for k in (5, 20):
        expected = _knn_reference(train, train_y, test, 3, k, temperature)
        assert got[k].tolist() == expected.tolist(), k
        # The temperature decides some of these rows: T = 0.07 would predict others.
        assert (expected != _knn_reference(train, train_y, test, 3, k, 0.07)).any(), k


def test_bad_penalties_and_temperatures_are_refused():
    x, y = torch.zeros(4, 2), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="penalty λ must be positive"):
        fit_logistic(x, y, 2, 0.0)
    # Below 0.0015, exp(s / T) overflows float64 (s ≤ 1): refused, as 0 is.
    for temperature in (0, 0.001):
        with pytest.raises(ValueError, match="temperature must be at least 0.0015"):
            knn_predict(x, y, x, 2, temperature=temperature)


def test_the_grid_configuration_gen_all_mnn_cosine_exp_similarity_is_dinov2s_knn():
    from imprint.engine.evaluate import evaluate_grid
    from imprint.engine.grid import expand_grid

    rng = np.random.default_rng(5)
    train_y = np.repeat(np.arange(3), 20)
    train = (rng.standard_normal((60, 6)) + train_y[:, None] * 0.7).astype(np.float32)
    test_y = np.repeat(np.arange(3), 8)
    test = (rng.standard_normal((24, 6)) + test_y[:, None] * 0.7).astype(np.float32)
    grid = {
        "seeds": [0],
        "gen": ["all"],
        "k": [-1],  # the default k = 1 would drop m > 10 (the reference's rule)
        "agg": ["mnn"],
        "distance": ["cosine", "euclidean"],  # exp_similarity with euclidean: dropped
        "weighting": ["exp_similarity"],
        "m": [1, 5, 20],
    }
    configs = expand_grid(grid)
    assert set(configs["distance"]) == {"cosine"} and len(configs) == 3
    table = evaluate_grid(train, train_y, test, test_y, configs, classes=[0, 1, 2], progress=False)
    for row in table.itertuples():
        expected = _knn_reference(train, train_y, test, 3, row.m, 0.07)
        assert row.accuracy == pytest.approx(100 * (expected == test_y).mean()), row.m
    knn = knn_predict(
        torch.from_numpy(train), torch.from_numpy(train_y), torch.from_numpy(test), 3, ks=[1, 5, 20]
    )
    for row in table.itertuples():
        assert row.accuracy == pytest.approx(100 * (knn[row.m].numpy() == test_y).mean())


def _probe_reference(train, train_y, test, seed):
    """The documented rule with scikit-learn's fits: rows grouped by class (file order within a
    class), a stratified 20 % held out, the decay of the best held-out accuracy (ties: the
    larger), refit on every row at decay × rows."""
    from imprint.engine.baselines import DEFAULT_DECAYS

    order = np.argsort(train_y, kind="stable")
    x, y = train[order].astype(np.float64), train_y[order]
    fit, held = held_out_split(y, 0.2, seed)
    scores = {}
    for decay in DEFAULT_DECAYS:
        ref = LogisticRegression(C=1 / (decay * len(fit)), tol=1e-8, max_iter=10_000)
        ref.fit(x[fit], y[fit])
        scores[decay] = (ref.predict(x[held]) == y[held]).mean()
    best = max(sorted(scores, reverse=True), key=lambda d: scores[d])
    ref = LogisticRegression(C=1 / (best * len(y)), tol=1e-8, max_iter=10_000).fit(x, y)
    return ref.predict(test.astype(np.float64))


def test_the_grid_configuration_gen_linear_probe_is_scikit_learns_probe():
    from imprint.engine.evaluate import evaluate_grid
    from imprint.engine.grid import expand_grid

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0 + 0.5).astype(np.float32)  # a shared offset: the unpenalised bias must carry it
    train, train_y, test, test_y = x[:600], y[:600], x[1000:], y[1000:]
    grid = {
        "seeds": [3],
        "norm_pre": ["none", "l2"],
        "gen": ["linear_probe", "mean"],
        "k": [5],  # forced to 1 for the probe
        "norm_post": ["none", "l2"],  # the probe keeps none only
        "norm_inf": ["none", "l2"],
        "agg": ["max", "mnn"],  # the probe keeps max only
        "m": [3],
    }
    configs = expand_grid(grid)
    probes = configs[configs["gen"] == "linear_probe"]
    assert set(probes["norm_post"]) == {"none"} and set(probes["agg"]) == {"max"}
    assert set(probes["k"]) == {1} and set(probes["distance"]) == {"inner_product"}
    assert len(probes) == 3  # NORMpre/NORMinf none/none, none/l2, l2/l2
    table = evaluate_grid(train, train_y, test, test_y, configs, classes=list(range(10)))
    order = np.argsort(train_y, kind="stable")
    for row in table[table["gen"] == "linear_probe"].itertuples():
        fit_rows = (
            train if row.norm_pre == "none" else train / np.linalg.norm(train, axis=1)[:, None]
        )
        test_rows = test if row.norm_inf == "none" else test / np.linalg.norm(test, axis=1)[:, None]
        expected = _probe_reference(fit_rows, train_y, test_rows, row.seed)
        # Both optimisers stop at a gradient tolerance: a few rows near a boundary may part.
        assert abs(row.accuracy - 100 * (expected == test_y).mean()) <= 100 * 4 / len(test_y)
        # And the grid's plumbing (class order, seed, NORMpre, NORMinf, biases) is exactly
        # linear_probe's on the class-grouped rows (itself tested against scikit-learn above).
        probe, _ = linear_probe(
            torch.from_numpy(fit_rows[order]), torch.from_numpy(train_y[order]), 10, seed=row.seed
        )
        pred = probe.predict(torch.from_numpy(test_rows)).numpy()
        assert row.accuracy == pytest.approx(100 * (pred == test_y).mean(), abs=1e-9)
        assert row.n_proxies == 10


def _vote_ignoring_the_temperature(monkeypatch):
    """A wrong kNN: aggregate.vote, which knn_predict calls with its temperature, given dinov2's
    T = 0.07 whatever knn_predict passes; returns the temperatures passed to it."""
    import imprint.engine.aggregate as aggregate
    from imprint.engine.vocabulary import KNN_TEMPERATURE

    real, calls = aggregate.vote, []

    def wrong(neighbour_class, neighbour_dist, ms, weighting, n_classes, temperature=None):
        calls.append(temperature)
        return real(neighbour_class, neighbour_dist, ms, weighting, n_classes, KNN_TEMPERATURE)

    monkeypatch.setattr(aggregate, "vote", wrong)
    return calls


@pytest.mark.parametrize(
    "check, args",
    [
        (test_knn_votes_with_the_given_temperature, (0.5, [1, 0])),
        (test_knn_at_other_temperatures_equals_a_direct_loop, (5.0,)),
    ],
)
def test_the_temperature_checks_catch_a_knn_that_ignores_it(monkeypatch, check, args):
    calls = _vote_ignoring_the_temperature(monkeypatch)
    with pytest.raises(AssertionError):
        check(*args)
    assert args[0] in calls, f"knn_predict no longer passes its temperature to vote: {calls}"
