"""FeCAM, RanPAC and FeTrIL as GENs of an incremental grid: each session's row is the method's
own prediction after that session (run here straight on the protocol's rows), scored on the
seen classes' test rows; in an ordinary grid (and the joint bound) a method sees every class
in one session."""

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits

from imprint.engine.evaluate import evaluate_grid
from imprint.engine.grid import expand_grid
from imprint.engine.incremental import Protocol, evaluate_incremental, protocol_rows
from imprint.engine.incremental_methods import run_method_sessions

METHODS = ["fecam", "ranpac", "fetril"]


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return x[:1000], y[:1000], x[1000:1400], y[1000:1400]


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def run(digits):
    xtr, ytr, xte, yte = digits
    protocol = Protocol(sessions=((3, 1, 4, 0), (9,), (7, 2)), shots=5, seed=4)
    grid = {"seeds": [6], "gen": METHODS, "norm_pre": ["none", "l2"], "norm_inf": ["none", "l2"]}
    out = evaluate_incremental(xtr, ytr, xte, yte, expand_grid(grid), protocol)
    return out, protocol


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("norm", ["none", "l2"])
def test_each_session_is_the_methods_own_prediction_on_the_protocols_rows(
    digits, run, method, norm
):
    xtr, ytr, xte, yte = digits
    out, protocol = run
    rows = protocol_rows(ytr, protocol)
    order = [c for s in protocol.sessions for c in s]  # class index = arrival order
    index_of = {c: i for i, c in enumerate(order)}
    prep = _unit if norm == "l2" else (lambda x: x)
    sessions = []
    for session in protocol.sessions:
        mine = np.concatenate([rows[c] for c in session])
        sessions.append((prep(xtr[mine]), np.array([index_of[c] for c in ytr[mine]])))
    keep = np.isin(yte, order)
    test, truth = prep(xte[keep]), np.array([index_of[c] for c in yte[keep]])
    preds = list(run_method_sessions(method, sessions, test, 6))
    mine = out[(out.gen == method) & (out.norm_pre == norm) & (out.norm_inf == norm)]
    mine = mine[mine.protocol == "incremental"]
    assert sorted(mine.session) == [0, 1, 2]
    for s, pred in enumerate(preds):
        n_seen = sum(len(x) for x in protocol.sessions[: s + 1])
        seen = truth < n_seen
        row = mine[mine.session == s].iloc[0]
        assert row.accuracy == pytest.approx(100 * np.mean(pred[seen] == truth[seen]))
        base = truth < 4
        assert row.accuracy_base == pytest.approx(100 * np.mean(pred[base] == truth[base]))
        if s:
            new = seen & ~base
            assert row.accuracy_new == pytest.approx(100 * np.mean(pred[new] == truth[new]))
        assert len(json.loads(row.f1_per_class)) == n_seen


def test_a_method_in_an_ordinary_grid_and_the_joint_bound_see_every_class_at_once(digits, run):
    xtr, ytr, xte, yte = digits
    out, protocol = run
    classes = [c for s in protocol.sessions for c in s]
    configs = expand_grid({"seeds": [6], "gen": ["fecam"]})
    plain = evaluate_grid(xtr, ytr, xte, yte, configs, classes)
    index_of = {c: i for i, c in enumerate(classes)}
    keep_tr, keep_te = np.isin(ytr, classes), np.isin(yte, classes)
    order = np.argsort([index_of[c] for c in ytr[keep_tr]], kind="stable")
    x, y = xtr[keep_tr][order], np.array([index_of[c] for c in ytr[keep_tr]])[order]
    (pred,) = run_method_sessions("fecam", [(x, y)], xte[keep_te], 6)
    truth = np.array([index_of[c] for c in yte[keep_te]])
    assert plain.accuracy.iloc[0] == pytest.approx(100 * np.mean(pred == truth))
    joint = out[(out.gen == "fecam") & (out.norm_pre == "none") & (out.norm_inf == "none")]
    joint = joint[joint.protocol == "joint"]
    assert joint.accuracy.iloc[0] == pytest.approx(plain.accuracy.iloc[0])


def test_methods_take_no_normpost_or_agg_other_than_the_placeholders():
    grid = {"seeds": [1], "gen": METHODS, "norm_post": ["none", "l2"], "agg": ["max", "mnn"],
            "m": [-1, 3], "distance": ["inner_product", "cosine"]}  # fmt: skip
    configs = expand_grid(grid)
    assert len(configs) == 3
    assert (configs.norm_post == "none").all() and (configs.distance == "inner_product").all()


def test_method_options_reach_the_method_and_bad_ones_are_refused_before_any_work(digits):
    xtr, ytr, xte, yte = digits
    protocol = Protocol(sessions=((3, 1, 4, 0), (9,)), shots=5, seed=4)
    configs = expand_grid({"seeds": [6], "gen": ["ranpac"]})
    small = evaluate_incremental(xtr, ytr, xte, yte, configs, protocol,
                                 method_options={"ranpac": {"M": 8}})  # fmt: skip
    rows = protocol_rows(ytr, protocol)
    index_of = {c: i for i, c in enumerate((3, 1, 4, 0, 9))}
    sessions = [(xtr[np.concatenate([rows[c] for c in s])],
                 np.array([index_of[c] for c in ytr[np.concatenate([rows[c] for c in s])]]))
                for s in protocol.sessions]  # fmt: skip
    keep = np.isin(yte, list(index_of))
    truth = np.array([index_of[c] for c in yte[keep]])
    *_, last = run_method_sessions("ranpac", sessions, xte[keep], 6, {"M": 8})
    got = small[(small.protocol == "incremental") & (small.session == 1)].accuracy.iloc[0]
    assert got == pytest.approx(100 * np.mean(last == truth))
    joint = small[small.protocol == "joint"].accuracy.iloc[0]
    default = evaluate_incremental(xtr, ytr, xte, yte, configs, protocol)
    assert default[default.protocol == "joint"].accuracy.iloc[0] != joint  # M reached the joint
    with pytest.raises(ValueError, match=r"unknown ranpac option 'm'; allowed: M, ridges"):
        evaluate_incremental(xtr, ytr, xte, yte, configs, protocol,
                             method_options={"ranpac": {"m": 8}})  # fmt: skip
    with pytest.raises(ValueError, match="unknown method 'teen'; allowed: fecam, ranpac, fetril"):
        evaluate_incremental(xtr, ytr, xte, yte, configs, protocol,
                             method_options={"teen": {"alpha": 0.1}})  # fmt: skip


def test_the_incremental_command_passes_method_options(tmp_path, capsys, digits):
    import pandas as pd
    import yaml

    from imprint.cli.main import main

    xtr, ytr, xte, yte = digits
    np.savez(tmp_path / "train.npz", embeddings=xtr, labels=ytr)
    np.savez(tmp_path / "test.npz", embeddings=xte, labels=yte)
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump({"seeds": [6], "gen": ["ranpac"]}))
    args = ["incremental", "--train", str(tmp_path / "train.npz"), "--test",
            str(tmp_path / "test.npz"), "--grid", str(tmp_path / "grid.yaml"), "-q",
            "--sessions", "3,1,4,0/9", "--shots", "5", "--protocol-seed", "4"]  # fmt: skip
    out = tmp_path / "inc.csv"
    assert main([*args, "--out", str(out), "--method-option", "ranpac.M=8"]) == 0
    table = pd.read_csv(out)
    protocol = Protocol(sessions=((3, 1, 4, 0), (9,)), shots=5, seed=4)
    want = evaluate_incremental(xtr, ytr, xte, yte, expand_grid({"seeds": [6], "gen": ["ranpac"]}),
                                protocol, method_options={"ranpac": {"M": 8}})  # fmt: skip
    np.testing.assert_allclose(table.accuracy, want.accuracy)
    bad = [*args, "--out", str(tmp_path / "bad.csv"), "--method-option", "ranpac:M=8"]
    assert main(bad) == 2
    assert "expected METHOD.KEY=VALUE, e.g. ranpac.M=2000" in capsys.readouterr().err
    assert not (tmp_path / "bad.csv").exists()
