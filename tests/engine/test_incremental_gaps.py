"""Tests that kill the surviving mutants of incremental.py that were real gaps (benchmarks/mutation.py; each one and why: benchmarks/mutation-survivors.md)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from imprint.engine.grid import expand_grid
from imprint.engine.incremental import (
    INCREMENTAL_COLUMNS,
    Protocol,
    ProtocolError,
    _class_ids,
    _session_columns,
    check_protocol,
    check_sessions_within,
    evaluate_incremental,
    final_sessions,
    protocol_rows,
    split_sessions,
    task_sessions,
)


def flag(key):
    return "--" + key.replace("_", "-")


def test_protocol_refuses_an_empty_session_and_names_the_base():
    with pytest.raises(ValueError, match=r"non-empty sessions, got \(\(0, 1\), \(\)\)"):
        Protocol(((0, 1), ()))
    with pytest.raises(ValueError, match=r"at least 2 classes, got \[5\]"):
        Protocol(((5,), (1,)))
    with pytest.raises(ValueError, match="protocol seed must be >= 0"):
        Protocol(((0, 1),), seed=-1)


def test_class_ids_in_short():
    assert _class_ids([63, 0, 1, 2, 3, 5, 7, 8, 61]) == "[0..3, 5, 7, 8, 61, 63]"


def test_protocol_errors_name_keys_by_the_callers_names():
    with pytest.raises(ProtocolError) as err:
        check_protocol({})
    assert str(err.value) == "give protocol, sessions, or base with way"
    with pytest.raises(ProtocolError, match="^--way: missing beside --task, --base"):
        check_protocol({"task": "t", "base": 5}, flag)
    with pytest.raises(ProtocolError, match="^--sessions: the base session"):
        check_protocol({"sessions": [[0]]}, flag)
    with pytest.raises(ProtocolError, match=r"^--base: .*\(task T has 3 classes\)"):
        task_sessions({"base": 5, "way": 1}, [0, 1, 2], flag, what="task T")
    with pytest.raises(ProtocolError, match=r"\(the task has 3 classes\)"):
        task_sessions({"base": 5, "way": 1}, [0, 1, 2])
    with pytest.raises(
        ProtocolError, match=r"^--sessions: task T's class\(es\) \[3\] arrive"
    ) as err:
        task_sessions({"sessions": [[0, 1], [2]]}, [0, 1, 2, 3], flag, what="task T")
    assert err.value.key == "sessions"
    with pytest.raises(ProtocolError, match=r"^--sessions: the sessions name class\(es\) \[9\]"):
        task_sessions({"sessions": [[0, 1], [9]]}, [0, 1, 2], flag)
    with pytest.raises(ProtocolError, match="^--way: ") as err:
        split_sessions([0, 1, 2, 3], 2, 3, flag)
    assert err.value.key == "way"


def test_a_packaged_protocol_is_checked_by_name():
    check_protocol({"protocol": "fscil_cifar100"})
    with pytest.raises(ProtocolError, match="^--protocol: unknown 'nope'"):
        check_protocol({"protocol": "nope"}, flag)
    with pytest.raises(
        ProtocolError, match="^protocol: unknown 'nope'; packaged: fscil_cifar100"
    ) as err:
        check_protocol({"protocol": "nope"})
    assert err.value.key == "protocol"
    with pytest.raises(ProtocolError) as err:
        task_sessions({"protocol": "fscil_cifar100"}, list(range(101)))
    assert err.value.key == "protocol"


def test_sessions_outside_a_split_task_blame_no_key():
    with pytest.raises(ProtocolError) as err:
        check_sessions_within({"base": 2, "way": 1}, [[0, 9]], [0, 1], "the task")
    assert err.value.key is None


def test_a_base_of_every_class_is_one_session_and_base_bounds():
    assert split_sessions([0, 1, 2], 3, 1) == ((0, 1, 2),)
    for base in (1, 4):
        with pytest.raises(ProtocolError, match=f"^base: base session of {base} classes") as err:
            split_sessions([0, 1, 2], base, 1)
        assert err.value.key == "base"


def test_shots_beyond_and_equal_to_a_class_rows():
    y = np.repeat([0, 1, 2], [3, 6, 3])
    with pytest.warns(UserWarning, match="protocol base_shots = 5 exceeds"):
        protocol_rows(y, Protocol(((0, 1), (2,)), base_shots=5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = protocol_rows(y, Protocol(((0, 1), (2,)), shots=3))
    assert rows[2].tolist() == [9, 10, 11]


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    ytr, yte = np.repeat(np.arange(4), 6), np.repeat(np.arange(4), 3)
    xtr = (rng.normal(size=(24, 5)) + ytr[:, None]).astype(np.float32)
    xte = (rng.normal(size=(12, 5)) + yte[:, None]).astype(np.float32)
    return xtr, ytr, xte, yte


def test_evaluate_incremental_uses_listed_ids_options_and_a_plain_index(small):
    xtr, ytr, xte, yte = small
    configs = expand_grid({"seeds": [1], "gen": ["mean"], "k": [1]})
    ids = np.arange(100, 124)
    listed = Protocol(((0, 1), (2, 3)), session_ids={1: tuple(range(112, 124, 2))})
    out = evaluate_incremental(xtr, ytr, xte, yte, configs, listed, train_ids=ids)
    assert out.index.equals(pd.RangeIndex(len(out)))
    with pytest.raises(ValueError, match="unknown ls_precision 'bogus'"):
        evaluate_incremental(
            xtr, ytr, xte, yte, configs, listed, train_ids=ids, ls_precision="bogus"
        )
    with pytest.raises(ValueError, match="^b.npz: task class"):
        evaluate_incremental(
            xtr,
            ytr,
            xte[yte < 3],
            yte[yte < 3],
            configs,
            Protocol(((0, 1), (2, 3))),
            data_names=("a.npz", "b.npz"),
        )
    with pytest.raises(ValueError, match="^a.npz: task class"):
        evaluate_incremental(
            xtr[ytr < 3],
            ytr[ytr < 3],
            xte,
            yte,
            configs,
            Protocol(((0, 1), (2, 3))),
            data_names=("a.npz", "b.npz"),
        )


def test_harmonic_mean_at_zero_and_small_accuracies():
    protocol = Protocol(((0, 1), (2,)))
    counts = np.array([100, 100, 200])
    table = pd.DataFrame({"correct_per_class": ["[0, 0, 0]", "[1, 0, 1]"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = _session_columns(table, "incremental", 1, protocol, counts)
    assert out["accuracy_harmonic"].tolist() == [0.0, pytest.approx(2 * 0.5 * 0.5 / 1.0)]
    # both accuracies small (base + new below 1 %): the harmonic mean, not 0
    table = pd.DataFrame({"correct_per_class": ["[1, 0, 1]"]})
    out = _session_columns(table, "incremental", 1, protocol, np.array([400, 400, 800]))
    base, new = 100 / 800, 100 / 800
    assert out["accuracy_harmonic"].iloc[0] == pytest.approx(2 * base * new / (base + new))


def test_final_sessions_keeps_each_groups_last_incremental_session():
    rows = []
    for dataset, last in (("a", 2), ("b", 1)):
        for s in range(last + 1):
            rows.append({"dataset": dataset, "protocol": "incremental", "session": s})
        rows.append({"dataset": dataset, "protocol": "joint", "session": last})
    table = pd.DataFrame(rows)
    for c in INCREMENTAL_COLUMNS:
        if c not in table:
            table[c] = 0.0
    table["accuracy"] = range(len(table))
    for key in ("experiment", "backbone", "dataset", "mapping", "task"):
        t = table.rename(columns={"dataset": key})
        out = final_sessions(t)
        assert out[key].tolist() == ["a", "b"] and out["accuracy"].tolist() == [2, 5]
        assert not set(INCREMENTAL_COLUMNS) & set(out.columns)
    out = final_sessions(table.drop(columns="dataset"))
    assert out["accuracy"].tolist() == [2]


# Run of 2026-12-07 at e7146e6 (benchmarks/mutation-survivors.md, top section): task_protocol,
# the one protocol parser, had no direct test.
def test_task_protocol_passes_on_every_setting_and_the_callers_names():
    # kills task_protocol 40-47, 49-56, 58-64 (the keys and defaults of shots, base_shots,
    # protocol_seed) and 16 (session_ids "" instead of None), 30, 35 (session_ids dropped)
    from imprint.engine.incremental import packaged_protocol, task_protocol

    p = task_protocol({"sessions": [[0, 1], [2]], "shots": 5, "base_shots": 7, "protocol_seed": 3})
    assert p == Protocol(((0, 1), (2,)), 5, 7, 3, None)
    assert p.session_ids is None
    q = task_protocol({"base": 2, "way": 1}, [4, 5, 6])
    assert (q.sessions, q.shots, q.base_shots, q.seed, q.session_ids) == (
        ((4, 5), (6,)), -1, -1, 0, None,
    )  # fmt: skip
    # kills 17-19 and 20-25 (a packaged protocol's image lists, line not run before)
    listed = packaged_protocol("fscil_cifar100")
    classes = [c for s in listed["sessions"] for c in s]
    r = task_protocol({"protocol": "fscil_cifar100"}, classes)
    assert r.session_ids == listed["session_ids"] and r.session_ids
    # kills 6 (name not passed to check_protocol)
    with pytest.raises(ProtocolError, match="^--way: missing beside --base"):
        task_protocol({"base": 5}, [0, 1, 2], flag)
    # kills 9 (classes dropped: sessions outside the task pass), 10, 14 (name), 11, 15 (what)
    with pytest.raises(ProtocolError, match=r"^--sessions: task T's class\(es\) \[3\] arrive"):
        task_protocol({"sessions": [[0, 1], [2]]}, [0, 1, 2, 3], flag, what="task T")
    # kills 1, 2 (the default `what`)
    with pytest.raises(ProtocolError, match=r"\(the task has 3 classes\)"):
        task_protocol({"base": 5, "way": 1}, [0, 1, 2])
