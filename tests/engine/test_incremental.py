"""Class-incremental imprinting: one session equals the ordinary evaluation, old proxies stay
bit-identical, and a direct per-session computation of GEN mean agrees."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from imprint.engine.evaluate import evaluate_grid, rows_by_class
from imprint.engine.generate import generate_proxies
from imprint.engine.grid import expand_grid
from imprint.engine.incremental import (
    Protocol,
    evaluate_incremental,
    protocol_rows,
    split_sessions,
)
from imprint.engine.normalize import apply_norm_post
from imprint.engine.presample import presample_classes


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return x[:1200], y[:1200], x[1200:], y[1200:]


GRID = {
    "seeds": [3, 8],
    "norm_pre": ["none", "l2"],
    "norm_inf": ["none", "l2"],
    "gen": ["mean", "kmeans", "random", "fps", "all"],
    "k": [1, 3],
    "norm_post": ["none", "l2", "quantile"],
}


def test_one_session_of_every_class_is_the_ordinary_evaluation(digits):
    xtr, ytr, xte, yte = digits
    configs = expand_grid(GRID)
    classes = [4, 1, 7, 0, 9]
    plain = evaluate_grid(xtr, ytr, xte, yte, configs, classes=classes)
    inc = evaluate_incremental(
        xtr, ytr, xte, yte, configs, Protocol(sessions=(tuple(classes),)), joint=False
    )
    np.testing.assert_array_equal(inc["accuracy"], plain["accuracy"])
    np.testing.assert_array_equal(inc["f1_per_class"], plain["f1_per_class"])
    np.testing.assert_allclose(inc["accuracy_base"], plain["accuracy"])
    assert inc["accuracy_new"].isna().all() and (inc["session"] == 0).all()


@pytest.mark.parametrize(
    "gen", ["mean", "kmeans", "kmedoids", "fps", "random", "cov_max", "all", "none"]
)
def test_old_proxies_are_bit_identical_after_a_later_session(digits, gen):
    xtr, ytr, _, _ = digits
    protocol = Protocol(sessions=((3, 5, 8), (1, 6), (2,)), shots=5, seed=11)
    rows_of = protocol_rows(ytr, protocol)
    previous: dict = {}
    seen: list = []
    for session in protocol.sessions:
        seen = [*seen, *session]
        rows = np.sort(np.concatenate([rows_of[c] for c in seen]))
        index = np.array([seen.index(v) for v in ytr[rows]])
        train = rows_by_class(xtr, rows, index, len(seen), "cpu")
        current = {}
        for norm_pre in ("none", "l2"):
            samples, state = presample_classes(train, norm_pre, "all", 0.0, 1.0, -1, 4, seen)
            raw = generate_proxies(samples, gen, 3, 4, None, {}, state)
            for norm_post in ("none", "l2", "quantile"):
                key = (norm_pre, norm_post)
                current[key] = apply_norm_post(raw, norm_post)
                # The earlier classes come first and keep every bit of their proxies.
                for old, now in zip(previous.get(key, []), current[key], strict=False):
                    assert torch.equal(old, now), (gen, key)
        previous = current


def test_mean_imprinting_session_by_session_by_hand(digits):
    xtr, ytr, xte, yte = digits
    protocol = Protocol(
        sessions=split_sessions([0, 1, 2, 3, 4, 5, 6], base=3, way=2), shots=4, seed=2
    )
    assert protocol.sessions == ((0, 1, 2), (3, 4), (5, 6))
    configs = expand_grid({"seeds": [1], "gen": ["mean"]})  # NORMs none, AGG max
    out = evaluate_incremental(xtr, ytr, xte, yte, configs, protocol)
    rows_of = protocol_rows(ytr, protocol)
    seen = []
    for s, session in enumerate(protocol.sessions):
        seen = [*seen, *session]
        means = np.stack([xtr[rows_of[c]].astype(np.float64).mean(axis=0) for c in seen])
        test = np.isin(yte, seen)
        pred = np.array(seen)[np.argmax(xte[test] @ means.T, axis=1)]
        truth = yte[test]
        base = np.isin(truth, protocol.sessions[0])
        row = out[(out.protocol == "incremental") & (out.session == s)].iloc[0]
        assert row.accuracy == pytest.approx(100 * np.mean(pred == truth))
        assert row.accuracy_base == pytest.approx(100 * np.mean(pred[base] == truth[base]))
        if s == 0:
            assert np.isnan(row.accuracy_new)
        else:
            new = 100 * np.mean(pred[~base] == truth[~base])
            b = 100 * np.mean(pred[base] == truth[base])
            assert row.accuracy_new == pytest.approx(new)
            assert row.accuracy_harmonic == pytest.approx(2 * b * new / (b + new))
        assert row.n_seen_classes == len(seen)
    # Shots: 4 rows per new class, all rows per base class.
    assert [len(rows_of[c]) for c in (0, 3, 6)] == [int((ytr == 0).sum()), 4, 4]
    joint = out[out.protocol == "joint"].iloc[0]
    means = np.stack([xtr[ytr == c].astype(np.float64).mean(axis=0) for c in seen])
    test = np.isin(yte, seen)
    pred = np.array(seen)[np.argmax(xte[test] @ means.T, axis=1)]
    assert joint.accuracy == pytest.approx(100 * np.mean(pred == yte[test]))


def test_shot_draws_do_not_depend_on_later_sessions():
    y = np.repeat(np.arange(6), 20)
    short = protocol_rows(y, Protocol(sessions=((0, 1), (2, 3)), shots=3, seed=5))
    longer = protocol_rows(y, Protocol(sessions=((0, 1), (2, 3), (4, 5)), shots=3, seed=5))
    for c in (0, 1, 2, 3):
        np.testing.assert_array_equal(short[c], longer[c])
    assert len(longer[5]) == 3 and len(longer[0]) == 20


def test_refusals_name_what_is_not_incremental(digits):
    xtr, ytr, xte, yte = digits
    protocol = Protocol(sessions=((0, 1), (2,)))
    with pytest.raises(ValueError, match="GEN ls is not incremental"):
        evaluate_incremental(
            xtr, ytr, xte, yte, expand_grid({"seeds": [1], "gen": ["ls"]}), protocol, ls_lambda=1.0
        )
    probe = expand_grid({"seeds": [1], "gen": ["linear_probe"]})
    with pytest.raises(ValueError, match="GEN linear_probe is not incremental"):
        evaluate_incremental(xtr, ytr, xte, yte, probe, protocol)
    with pytest.raises(ValueError, match="fewshot -1"):
        evaluate_incremental(
            xtr, ytr, xte, yte, expand_grid({"seeds": [1], "fewshot": [5]}), protocol
        )
    with pytest.raises(ValueError, match="one session only"):
        Protocol(sessions=((0, 1), (1, 2)))
    with pytest.raises(ValueError, match="shots must be -1"):
        Protocol(sessions=((0, 1),), shots=0)
    with pytest.raises(ValueError, match="do not split into sessions of 3"):
        split_sessions(range(10), base=5, way=3)


def test_protocol_settings_are_refused_naming_the_key_as_the_caller_names_it():
    from imprint.engine.incremental import ProtocolError, check_protocol

    cases = [
        ({"sessions": [[0, 1], [2]], "base": 2, "way": 1}, "sessions", "excludes base, way"),
        ({"protocol": "fscil_cifar100", "sessions": [[0, 1]]}, "protocol", "excludes sessions"),
        ({"base": 2}, "way", "missing beside base: give protocol, sessions, or base with way"),
        ({"base": 2, "way": 1, "shots": 0}, "shots", "must be -1 (all rows) or >= 1, got 0"),
        ({"base": 2, "way": 1, "base_shots": -2}, "base_shots", "got -2"),
        ({"base": 2, "way": 1, "protocol_seed": -1}, "protocol_seed", "must be >= 0"),
        ({"sessions": [[0], [1, 2]]}, "sessions", "at least 2 classes"),
        ({}, None, "give protocol, sessions, or base with way"),
    ]
    for spec, key, text in cases:
        with pytest.raises(ProtocolError) as err:
            check_protocol(spec)
        assert (err.value.key, text in err.value.text) == (key, True), str(err.value)
    check_protocol({"base": 2, "way": 1, "shots": -1, "base_shots": 5, "protocol_seed": 0})

    def flag(key):
        return "--" + key.replace("_", "-")

    spec = {"sessions": [[0, 1]], "task": "0,1", "base": 2, "way": None, "shots": -1}
    with pytest.raises(ProtocolError, match=r"^--sessions: excludes --task, --base: give only one"):
        check_protocol(spec, flag)
    with pytest.raises(ProtocolError, match=r"^--base-shots: must be -1"):
        check_protocol({"sessions": [[0, 1]], "task": None, "base_shots": 0}, flag)


def test_the_sessions_of_a_task_hold_exactly_its_classes():
    from imprint.engine.incremental import ProtocolError, task_sessions

    assert task_sessions({"base": 2, "way": 1}, [4, 1, 7]) == ((4, 1), (7,))
    assert task_sessions({"sessions": [[1, 7], [4]]}, [4, 1, 7]) == ((1, 7), (4,))
    assert len(task_sessions({"protocol": "fscil_cifar100"}, range(100))) == 9
    with pytest.raises(
        ProtocolError,
        match=r"^sessions: the sessions name class\(es\) \[7\] not in task short \(its classes: \[0\.\.2\]\)",
    ):
        task_sessions({"sessions": [[0, 1], [7]]}, [0, 1, 2], what="task short")
    with pytest.raises(ProtocolError, match=r"task short's class\(es\) \[2\] arrive in no session"):
        task_sessions({"sessions": [[0, 1]]}, [0, 1, 2], what="task short")
    with pytest.raises(
        ProtocolError, match=r"^protocol: fscil_cifar100's sessions name class\(es\) \[10\.\.99\]"
    ):
        task_sessions({"protocol": "fscil_cifar100"}, range(10))
    with pytest.raises(ProtocolError, match=r"^way: 3 classes after the base session do not split"):
        task_sessions({"base": 2, "way": 2}, range(5))


def test_shots_beyond_a_class_warn_once_and_the_class_takes_all_its_rows():
    y = np.repeat(np.arange(3), [20, 20, 4])
    message = (
        r"protocol shots = 6 exceeds the training rows of 1 class\(es\) \(fewest: class 2 with "
        r"4 rows\): such a class uses all its rows"
    )
    with pytest.warns(UserWarning, match=message) as record:
        rows = protocol_rows(y, Protocol(sessions=((0, 1), (2,)), shots=6))
    assert len(record) == 1 and [len(rows[c]) for c in range(3)] == [20, 20, 4]


def test_the_incremental_command_on_digits_files(tmp_path, capsys, digits):
    import pandas as pd
    import yaml

    from imprint.cli.main import main

    xtr, ytr, xte, yte = digits
    np.savez(tmp_path / "train.npz", embeddings=xtr, labels=ytr)
    np.savez(tmp_path / "test.npz", embeddings=xte, labels=yte)
    (tmp_path / "grid.yaml").write_text(
        yaml.safe_dump({"seeds": [1], "gen": ["mean", "kmeans"], "k": [1, 3]})
    )
    common = ["--train", str(tmp_path / "train.npz"), "--test", str(tmp_path / "test.npz")]
    common += ["--grid", str(tmp_path / "grid.yaml"), "-q"]
    out = tmp_path / "inc.csv"
    args = ["incremental", *common, "--out", str(out), "--task", "all", "--base", "5", "--way", "1"]
    assert main([*args, "--shots", "5", "--tag", "backbone=pixels"]) == 0
    assert "6 sessions (5, 1, 1, 1, 1, 1 classes)" in capsys.readouterr().out
    table = pd.read_csv(out)
    assert (table["backbone"] == "pixels").all()
    assert sorted(table["session"].unique()) == [0, 1, 2, 3, 4, 5]
    assert len(table) == 3 * (6 + 1)  # configurations × (sessions + joint)
    same = [
        "incremental",
        *common,
        "--out",
        str(tmp_path / "same.csv"),
        "--sessions",
        "0,1,2,3,4/5/6/7/8/9",
        "--shots",
        "5",
    ]
    assert main(same) == 0
    timings = ["gen_seconds", "inference_seconds"]
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "same.csv").drop(columns=timings),
        table.drop(columns=["backbone", *timings]),
    )
    assert main(["incremental", *common, "--out", str(out), "--base", "5"]) == 2
    assert "give --protocol, --sessions, or --task with --base and --way" in capsys.readouterr().err


def test_the_packaged_fscil_cifar100_protocol():
    from imprint.engine.incremental import packaged_protocol

    spec = packaged_protocol("fscil_cifar100")
    sessions = spec["sessions"]
    assert sessions[0] == list(range(60)) and len(sessions) == 9
    assert [c for s in sessions[1:] for c in s] == list(range(60, 100))
    ids = spec["session_ids"]
    assert sorted(ids) == list(range(1, 9)) and all(len(v) == 25 for v in ids.values())
    flat = [i for v in ids.values() for i in v]
    assert len(set(flat)) == 200 and 0 <= min(flat) and max(flat) < 50_000
    assert ids[1][:5] == (29774, 33344, 4815, 6772, 48317)  # session_2.txt of Tao et al.
    with pytest.raises(ValueError, match="unknown protocol 'fscil'; packaged: fscil_cifar100"):
        packaged_protocol("fscil")


def test_listed_session_images_select_rows_by_image_id():
    y = np.repeat(np.arange(4), 5)
    ids = np.arange(100, 120)[::-1]  # row r shows image 119 - r: classes 2, 3 hold 109..100
    protocol = Protocol(sessions=((0, 1), (2, 3)), session_ids={1: (109, 108, 104, 103, 102)})
    rows = protocol_rows(y, protocol, ids=ids)
    assert rows[0].tolist() == list(range(5))  # base: every row
    assert sorted(ids[rows[2]].tolist()) == [108, 109] and sorted(ids[rows[3]].tolist()) == [
        102,
        103,
        104,
    ]
    with pytest.raises(ValueError, match="record no image ids"):
        protocol_rows(y, protocol)
    empty = Protocol(sessions=((0, 1), (2, 3)), session_ids={1: (109, 108)})
    with pytest.raises(ValueError, match="class 3: none of session 1's listed image ids"):
        protocol_rows(y, empty, ids=ids)


def test_the_curves_draw_one_line_per_gen_and_agg_family(digits):
    from imprint.figures.incremental_curves import draw

    xtr, ytr, xte, yte = digits
    grid = {"parts": [
        {"seeds": [1], "gen": ["mean", "kmeans"], "k": [2]},
        {"seeds": [1], "gen": ["mean", "kmeans"], "k": [2], "agg": ["mnn"],
         "distance": ["euclidean"], "m": [3]},
    ]}  # fmt: skip
    table = evaluate_incremental(
        xtr, ytr, xte, yte, expand_grid(grid), Protocol(split_sessions(range(6), 4, 1))
    )
    table = table.assign(backbone="pixels", dataset="digits", mapping="none", task="six")
    out = draw(table)
    ax = out["incremental_curves"].axes[0]
    assert len(ax.lines) == 2 * 2 * 2  # GEN × AGG family × (curve, joint bound)
    best = out["best_incremental"]
    assert sorted(best["gen"]) == ["kmeans", "mean"]  # one best configuration per GEN
    final = table[(table.protocol == "incremental") & (table.session == 2)]
    for row in best.itertuples():
        assert row.accuracy == final[final.gen == row.gen].accuracy.max()


def test_summaries_of_an_incremental_table_read_its_last_session(digits):
    from imprint.analysis.tables import seed_medians

    xtr, ytr, xte, yte = digits
    configs = expand_grid({"seeds": [1, 2], "gen": ["mean", "random"], "k": [2]})
    table = evaluate_incremental(xtr, ytr, xte, yte, configs, Protocol(((0, 1, 2), (3,), (4,))))
    table = table.assign(backbone="b", dataset="d", mapping="none", task="t")
    med = seed_medians(table)
    last = table[(table.protocol == "incremental") & (table.session == 2)]
    expected = last.groupby("config_id").accuracy.median()
    assert med.set_index("config_id").accuracy.to_dict() == expected.to_dict()


# --- Independent references for non-ascending protocols and seeded GENs -------------------
#
# Wrong versions of evaluate_incremental that passed the tests above: one that re-imprinted the
# old classes with a seed shifted at each session (every multi-session check used GEN mean,
# which draws nothing), and ones that put classes in sorted order where the protocol's order
# counts (every multi-session protocol above is ascending). The checks below pin them; the
# last test applies each wrong version (a wrapper of what evaluate_incremental calls,
# evaluate_grid or task_rows, no library code copied) and asserts that its check fails.

# Non-ascending, non-contiguous protocols: digit labels as they are, and under a mapping that
# renames, merges (0 and 5 into 13) and drops (7, 9) labels.
PLAIN_PROTOCOL = (None, Protocol(((4, 1, 7), (0,), (9,)), shots=1, seed=7))
MAPPING = {0: 13, 1: 11, 2: 17, 3: 10, 4: 19, 5: 13, 6: 12, 8: 15}
MAPPED_PROTOCOL = (
    MAPPING,
    Protocol(((17, 11, 19), (13,), (15, 10)), shots=4, base_shots=9, seed=3),
)


def _mapped(labels, mapping):
    """Labels after `mapping` (-1: dropped), by a dictionary look-up."""
    if mapping is None:
        return np.asarray(labels)
    return np.array([mapping.get(int(v), -1) for v in labels])


def _drawn_rows(labels, c, shots, seed):
    """Class c's training rows as documented: all of them, or `shots` drawn without replacement
    by numpy's generator seeded with (seed, c) from the class's rows in file order."""
    rows = np.flatnonzero(labels == c)
    if 0 < shots < rows.size:
        pick = np.random.default_rng([seed, c]).choice(rows.size, size=shots, replace=False)
        rows = rows[np.sort(pick)]
    return rows


def _nearest_mean_by_hand(xtr, ytr, xte, yte, protocol, cosine):
    """Per session (and the joint bound last): accuracy on all seen / base / new classes,
    harmonic mean and one-vs-rest F1 per class in protocol order, for GEN mean with AGG max
    (inner product, or cosine), computed with numpy alone. Labels are already mapped."""
    base = protocol.sessions[0]
    drawn = {
        c: _drawn_rows(ytr, c, protocol.base_shots if c in base else protocol.shots, protocol.seed)
        for session in protocol.sessions
        for c in session
    }
    out, seen = [], []
    joint = len(protocol.sessions)
    for s in range(joint + 1):
        seen = [*seen, *protocol.sessions[s]] if s < joint else seen
        rows = {c: drawn[c] if s < joint else np.flatnonzero(ytr == c) for c in seen}
        means = np.stack([xtr[rows[c]].astype(np.float64).mean(axis=0) for c in seen])
        test = np.isin(yte, seen)
        x, truth = xte[test].astype(np.float64), yte[test]
        if cosine:
            x = x / np.linalg.norm(x, axis=1, keepdims=True)
            means = means / np.linalg.norm(means, axis=1, keepdims=True)
        pred = np.array(seen)[np.argmax(x @ means.T, axis=1)]
        old = np.isin(truth, base)
        b = 100 * np.mean(pred[old] == truth[old])
        n = 100 * np.mean(pred[~old] == truth[~old]) if (~old).any() else np.nan
        tp = np.array([np.sum((pred == c) & (truth == c)) for c in seen])
        size = np.array([np.sum(pred == c) + np.sum(truth == c) for c in seen])
        out.append(
            {
                "accuracy": 100 * np.mean(pred == truth),
                "accuracy_base": b,
                "accuracy_new": n,
                "accuracy_harmonic": 2 * b * n / (b + n) if n == n else np.nan,
                "f1_per_class": 100 * 2 * tp / size,
            }
        )
    return out


def _check_nearest_mean_by_hand(digits, mapping, protocol):
    xtr, ytr, xte, yte = digits
    configs = expand_grid({"seeds": [1], "gen": ["mean"], "distance": ["inner_product", "cosine"]})
    table = evaluate_incremental(xtr, ytr, xte, yte, configs, protocol, mapping=mapping)
    assert len(table) == 2 * (len(protocol.sessions) + 1)
    for distance in ("inner_product", "cosine"):
        expected = _nearest_mean_by_hand(
            xtr, _mapped(ytr, mapping), xte, _mapped(yte, mapping), protocol, distance == "cosine"
        )
        rows = table[table.distance == distance]
        assert rows.protocol.tolist() == ["incremental"] * len(protocol.sessions) + ["joint"]
        for row, want in zip(rows.itertuples(), expected, strict=True):
            for key in ("accuracy", "accuracy_base", "accuracy_new", "accuracy_harmonic"):
                assert getattr(row, key) == pytest.approx(want[key], nan_ok=True), (
                    distance,
                    row.session,
                    key,
                )
            got = json.loads(row.f1_per_class)  # in protocol order, the base classes first
            np.testing.assert_allclose(got, want["f1_per_class"], atol=1e-4)


@pytest.mark.parametrize("mapping, protocol", [PLAIN_PROTOCOL, MAPPED_PROTOCOL])
def test_nearest_mean_on_a_non_ascending_protocol_by_hand(digits, mapping, protocol):
    """GEN mean + AGG max with the inner product or cosine, per session, against numpy alone:
    the protocol's order (not sorted) decides which classes are base and which new."""
    _check_nearest_mean_by_hand(digits, mapping, protocol)


@pytest.mark.parametrize("mapping, protocol", [PLAIN_PROTOCOL, MAPPED_PROTOCOL])
def test_shot_draws_of_a_non_ascending_protocol_are_the_documented_numpy_draws(
    digits, mapping, protocol
):
    _, ytr, _, _ = digits
    labels = _mapped(ytr, mapping)
    rows = protocol_rows(ytr, protocol, mapping)
    assert list(rows) == [c for s in protocol.sessions for c in s]  # protocol order
    for c, mine in rows.items():
        shots = protocol.base_shots if c in protocol.sessions[0] else protocol.shots
        np.testing.assert_array_equal(mine, _drawn_rows(labels, c, shots, protocol.seed))
        assert (labels[mine] == c).all() and len(mine) == (
            shots if shots > 0 else (labels == c).sum()
        )
    # A protocol cut after any session draws the same rows for the classes it keeps.
    for n in range(1, len(protocol.sessions)):
        cut = dataclasses.replace(protocol, sessions=protocol.sessions[:n])
        for c, mine in protocol_rows(ytr, cut, mapping).items():
            np.testing.assert_array_equal(mine, rows[c])


SEEDED_GRID = {
    "seeds": [3, 8],
    "norm_pre": ["none", "l2"],
    "gen": ["random", "fps", "kmeans", "kmedoids"],
    "k": [1, 3],
    "norm_post": ["l2"],
}


def _apart(digits, base):
    """The digits with the base classes' pixels in dimensions 0..63 and every other class's in
    64..127: every pixel is >= 0, so a later class's proxies score exactly 0 against a base
    test row (inner product and cosine) and can never take one from the base classes."""
    xtr, ytr, xte, yte = digits

    def spread(x, y):
        out = np.zeros((len(x), 128), np.float32)
        old = np.isin(y, base)
        out[old, :64], out[~old, 64:] = x[old], x[~old]
        return out

    return spread(xtr, ytr), ytr, spread(xte, yte), yte


def _check_old_proxies_kept_by_evaluate_incremental(digits):
    protocol = Protocol(((6, 2, 9), (5,), (0, 3)), shots=5, seed=4)
    base = list(protocol.sessions[0])
    xtr, ytr, xte, yte = _apart(digits, base)
    configs = expand_grid(SEEDED_GRID)
    table = evaluate_incremental(xtr, ytr, xte, yte, configs, protocol, joint=False)
    # The reference: the ordinary evaluation of the base classes alone, same seeds.
    rows = protocol_rows(ytr, protocol)
    alone = np.sort(np.concatenate([rows[c] for c in base]))
    plain = evaluate_grid(xtr[alone], ytr[alone], xte, yte, configs, classes=base)
    assert plain.accuracy.nunique() > 10  # the seeds and GENs matter on these data
    for s in range(len(protocol.sessions)):
        got = table[table.session == s].reset_index(drop=True)
        assert (got.seed == configs.seed.to_numpy()).all()
        # Equal counts of correct base test rows (a percentage apart by 0.5 or more otherwise).
        np.testing.assert_allclose(
            got.accuracy_base, plain.accuracy, rtol=1e-12, err_msg=f"session {s}"
        )
        if s == 0:
            np.testing.assert_array_equal(got.f1_per_class, plain.f1_per_class)


def test_evaluate_incremental_keeps_the_old_proxies_of_seeded_gens(digits):
    """Where the later classes cannot take a base test row, the base accuracy after every
    session of evaluate_incremental is that of the base classes imprinted alone, with the
    same seed (GEN random, fps, kmeans, kmedoids; NORMpre none and l2; two seeds)."""
    _check_old_proxies_kept_by_evaluate_incremental(digits)


def _wrong_version(kind, monkeypatch):
    """Make evaluate_incremental a wrong version, by wrapping what it calls (evaluate_grid,
    task_rows); returns the list of calls of the wrapper. `seed_shift`: the configurations'
    seeds shifted by the session index (the result's seed column restored); `sorted_seen`:
    the seen classes imprinted in sorted order; `sorted_session`: each session's classes
    sorted; `sorted_counts`: the test rows per class counted in sorted class order."""
    import imprint.engine.evaluate as engine
    import imprint.engine.incremental as incremental

    calls, state = [], {"seen": None, "session": 0, "wrong": []}
    if kind == "sorted_counts":
        real_rows = incremental.task_rows

        def wrong_rows(labels, classes, mapping=None, where="data"):
            calls.append(where)
            test = where == "test embeddings"
            return real_rows(labels, sorted(classes) if test else classes, mapping, where=where)

        monkeypatch.setattr(incremental, "task_rows", wrong_rows)
        return calls
    real = engine.evaluate_grid

    def wrong(x, y, xt, yt, configs, *args, classes, **kwargs):
        calls.append(kind)
        classes = [int(c) for c in classes]
        seen = state["seen"]  # the session index: calls since the classes stopped growing
        if seen is not None and classes[: len(seen)] == seen:
            state["session"] += 1
            new = classes[len(seen) :]
        else:
            state.update(session=0, wrong=[])
            new = classes
        state["seen"], state["wrong"] = classes, [*state["wrong"], *sorted(new)]
        if kind == "seed_shift":
            shifted = configs.assign(seed=configs["seed"] + state["session"])
            table = real(x, y, xt, yt, shifted, *args, classes=classes, **kwargs)
            return table.assign(seed=configs["seed"].to_numpy())
        order = sorted(classes) if kind == "sorted_seen" else state["wrong"]
        return real(x, y, xt, yt, configs, *args, classes=order, **kwargs)

    monkeypatch.setattr(engine, "evaluate_grid", wrong)
    return calls


@pytest.mark.parametrize(
    "kind, check, args",
    [
        ("seed_shift", _check_old_proxies_kept_by_evaluate_incremental, ()),
        ("sorted_seen", _check_nearest_mean_by_hand, PLAIN_PROTOCOL),
        ("sorted_session", _check_nearest_mean_by_hand, MAPPED_PROTOCOL),
        ("sorted_counts", _check_nearest_mean_by_hand, PLAIN_PROTOCOL),
    ],
)
def test_the_checks_catch_known_wrong_versions(digits, monkeypatch, kind, check, args):
    calls = _wrong_version(kind, monkeypatch)
    with pytest.raises(AssertionError):
        check(digits, *args)
    assert calls, f"evaluate_incremental no longer calls what the {kind} wrapper replaces"
