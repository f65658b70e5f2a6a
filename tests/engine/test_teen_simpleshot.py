"""SimpleShot's centring (NORMpre/NORMinf center_l2) and TEEN's calibration (GEN teen), each
against a direct numpy computation of its paper's rule, and each reduced to the component it
extends: a zero mean gives NORMpre l2, α = 0 gives GEN mean."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from imprint.engine.evaluate import evaluate_grid
from imprint.engine.generate import generate_proxies
from imprint.engine.grid import expand_grid
from imprint.engine.incremental import Protocol, evaluate_incremental

CLASSES = [0, 1, 2, 3, 4]


@pytest.fixture(scope="module")
def blobs():
    """Five Gaussian classes far from the origin (so centring matters), 30/20 rows each."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(5, 12)) + 3.0

    def draw(n):
        y = np.repeat(np.arange(5), n)
        return (centres[y] + 0.9 * rng.normal(size=(y.size, 12))).astype(np.float32), y

    return (*draw(30), *draw(20))


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _f1(pred, truth, n):
    """One-vs-rest F1 per class, in percent (the engine's unit)."""
    f1 = f1_score(truth, pred, labels=range(n), average=None, zero_division=0)
    return [100.0 * float(v) for v in f1]


def test_center_l2_with_a_zero_mean_is_normpre_l2(blobs):
    grid = {
        "seeds": [1],
        "norm_pre": ["l2", "center_l2"],
        "norm_inf": ["l2", "center_l2"],
        "gen": ["mean", "kmeans", "all"],
        "k": [3],
        "norm_post": ["none", "l2", "quantile"],
        "agg": ["max", "mnn"],
        "m": [-1, 3],
        "distance": ["inner_product", "euclidean", "cosine"],
    }
    configs = expand_grid(grid)
    assert set(configs["norm_pre"]) == {"l2", "center_l2"}
    assert (configs["norm_pre"] == configs["norm_inf"]).all()  # the filter pairs them
    out = evaluate_grid(*blobs, configs, CLASSES, center=np.zeros(12))
    keys = ["gen", "k", "norm_post", "agg", "m", "distance", "seed"]
    l2 = out[out["norm_pre"] == "l2"].set_index(keys).sort_index()
    centred = out[out["norm_pre"] == "center_l2"].set_index(keys).sort_index()
    assert len(l2) == len(centred) > 20
    np.testing.assert_array_equal(centred["accuracy"], l2["accuracy"])
    assert list(centred["f1_per_class"]) == list(l2["f1_per_class"])


@pytest.mark.parametrize("given", [False, True])
def test_center_l2_is_simpleshots_cl2n_nearest_centroid(blobs, given):
    xtr, ytr, xte, yte = blobs
    # SimpleShot: subtract the mean (the training rows', or a given one), L2-normalise, then
    # the nearest class centroid of the transformed training rows by Euclidean distance.
    mean = xtr[ytr < 3].mean(axis=0) if given else xtr.astype(np.float64).mean(axis=0)
    tr, te = _unit(xtr - mean), _unit(xte - mean)
    centroids = np.stack([tr[ytr == c].mean(axis=0) for c in CLASSES])
    pred = np.argmin(((te[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    configs = expand_grid({"seeds": [1], "norm_pre": ["center_l2"], "norm_inf": ["center_l2"],
                           "gen": ["mean"], "distance": ["euclidean"]})  # fmt: skip
    out = evaluate_grid(xtr, ytr, xte, yte, configs, CLASSES, center=mean if given else None)
    assert out["accuracy"].iloc[0] == pytest.approx(100.0 * np.mean(pred == yte))
    assert json.loads(out["f1_per_class"].iloc[0]) == pytest.approx(_f1(pred, yte, 5), abs=1e-4)
    # Not the uncentred rule: without centring the answer differs on these data.
    plain = np.argmin(((_unit(xte)[:, None] - np.stack(
        [_unit(xtr)[ytr == c].mean(0) for c in CLASSES])[None]) ** 2).sum(-1), axis=1)  # fmt: skip
    assert (plain != pred).any()


def _teen_numpy(means, n_base, alpha, tau=16.0):
    """TEEN's calibration as the authors' code writes it (unit prototypes, softmax(τ·cos) over
    the base prototypes, the unit weighted sum, then (1 − α)·own + α·shift)."""
    unit = _unit(means.astype(np.float64))
    logits = tau * unit[n_base:] @ unit[:n_base].T
    w = np.exp(logits - logits.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    delta = _unit(w @ unit[:n_base])
    return np.concatenate([unit[:n_base], (1 - alpha) * unit[n_base:] + alpha * delta])


def test_teen_proxies_are_the_authors_calibrated_prototypes(blobs):
    xtr, ytr, _, _ = blobs
    samples = [torch.from_numpy(xtr[ytr == c]) for c in CLASSES]
    means = np.stack([xtr[ytr == c].astype(np.float64).mean(0) for c in CLASSES])
    got = torch.cat(generate_proxies(samples, "teen", 1, 0, alpha=0.3, base_classes=3)).numpy()
    want = _teen_numpy(means, 3, 0.3)
    np.testing.assert_allclose(got[:3], means[:3], rtol=1e-6)  # the base keeps its means
    # A later class: TEEN's calibrated prototype, scaled by its own mean's length.
    lengths = np.linalg.norm(means[3:], axis=1, keepdims=True)
    np.testing.assert_allclose(got[3:], lengths * want[3:], rtol=1e-5)
    assert not np.allclose(_unit(got[3:]), _unit(means[3:]), atol=1e-3)  # it did calibrate


def test_teen_with_the_cosine_classifier_predicts_as_the_authors_rule(blobs):
    xtr, ytr, xte, yte = blobs
    means = np.stack([xtr[ytr == c].astype(np.float64).mean(0) for c in CLASSES])
    protos = _teen_numpy(means, 2, 0.5)
    pred = np.argmax(_unit(xte) @ _unit(protos).T, axis=1)
    configs = expand_grid({"seeds": [1], "gen": ["teen"], "alpha": [0.5], "norm_post": ["l2"],
                           "norm_inf": ["l2"]})  # fmt: skip
    out = evaluate_grid(xtr, ytr, xte, yte, configs, CLASSES, base_classes=2)
    assert out["accuracy"].iloc[0] == pytest.approx(100.0 * np.mean(pred == yte))
    assert json.loads(out["f1_per_class"].iloc[0]) == pytest.approx(_f1(pred, yte, 5), abs=1e-4)


def test_teen_with_alpha_zero_is_gen_mean_under_every_normpost(blobs):
    grid = {"seeds": [1], "gen": ["mean", "teen"], "alpha": [0.0],
            "norm_post": ["none", "l2", "quantile"], "norm_inf": ["none", "l2"]}  # fmt: skip
    out = evaluate_grid(*blobs, expand_grid(grid), CLASSES, base_classes=2)
    keys = ["norm_post", "norm_inf"]
    mean = out[out["gen"] == "mean"].set_index(keys).sort_index()
    teen = out[out["gen"] == "teen"].set_index(keys).sort_index()
    np.testing.assert_array_equal(teen["accuracy"], mean["accuracy"])
    assert list(teen["f1_per_class"]) == list(mean["f1_per_class"])


def test_teen_refuses_alpha_outside_0_1_and_base_classes_outside_the_task(blobs):
    samples = [torch.ones(2, 3), torch.zeros(2, 3) + 2]
    with pytest.raises(ValueError, match=r"teen takes α in \[0, 1\], got 1.5"):
        generate_proxies(samples, "teen", 1, 0, alpha=1.5, base_classes=1)
    with pytest.raises(ValueError, match="3 base classes of 2 classes"):
        generate_proxies(samples, "teen", 1, 0, alpha=0.5, base_classes=3)


def test_incremental_centring_and_teen_read_the_base_session_only(blobs):
    """Session by session, center_l2 subtracts the base session's mean (not the seen rows')
    and TEEN calibrates towards the base means: a direct computation per session agrees."""
    xtr, ytr, xte, yte = blobs
    protocol = Protocol(sessions=((0, 1, 2), (3,), (4,)), shots=4, seed=2)
    grid = [{"seeds": [1], "norm_pre": ["center_l2"], "norm_inf": ["center_l2"],
             "gen": ["mean"], "distance": ["euclidean"]},
            {"seeds": [1], "gen": ["teen"], "alpha": [0.5], "norm_post": ["l2"],
             "norm_inf": ["l2"]}]  # fmt: skip
    out = evaluate_incremental(xtr, ytr, xte, yte, expand_grid(grid), protocol, joint=False)
    from imprint.engine.incremental import protocol_rows

    rows = protocol_rows(ytr, protocol)
    base_mean = xtr[np.concatenate([rows[c] for c in (0, 1, 2)])].astype(np.float64).mean(0)
    for session in range(3):
        seen = list(range(3 + session))
        test = np.isin(yte, seen)
        tr, te = _unit(xtr - base_mean), _unit(xte[test] - base_mean)
        centroids = np.stack([tr[rows[c]].mean(0) for c in seen])
        simpleshot = np.argmin(((te[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
        means = np.stack([xtr[rows[c]].astype(np.float64).mean(0) for c in seen])
        teen = np.argmax(_unit(xte[test]) @ _unit(_teen_numpy(means, 3, 0.5)).T, axis=1)
        got = out[out["session"] == session].set_index("gen")["accuracy"]
        assert got["mean"] == pytest.approx(100.0 * np.mean(simpleshot == yte[test]))
        assert got["teen"] == pytest.approx(100.0 * np.mean(teen == yte[test]))
