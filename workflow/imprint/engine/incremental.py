"""Class-incremental imprinting (not in the paper): classes arrive session by session.

A protocol is a sequence of sessions: a base session of B classes, then sessions of c new
classes each, optionally n-shot (n training rows per new class, drawn with the protocol's
seed, independently per class, so a later session never changes an earlier draw). After each
session the proxies of its classes are generated from its rows only and the model is
evaluated on the test rows of every class seen so far.

Why old proxies stay as they were: the engine imprints the seen classes in session order,
and every class-wise GEN makes a class's proxies from that class's rows alone — mean,
k-means (seeded per class), k-medoids, cov-max and all deterministically; random, FPS and
none from one random stream that runs class by class, so the base classes' draws come first
and are the same whatever follows; NORMpost l2 scales each proxy alone, and NORMpost quantile
maps each class onto the pool of the classes imprinted before it (sequential, as the
reference), so the rule is already incremental. Evaluating the seen classes after session s
is therefore the incremental model after session s (tests/engine/test_incremental.py checks
the old proxies bit for bit). Not incremental, and refused: GEN ls and kls (one system over
all classes at once), the linear probe (likewise) and the grid's own few-shot key (its draws
for every class precede GEN's; the protocol's shots replace it). One documented rule moves
with the sessions: AGG with the Mahalanobis distance whitens by the covariance of all proxies
seen so far, so its metric (not the proxies) is re-estimated at each session.

Reported per configuration, seed and session: the accuracy on all seen classes, on the base
classes, on the classes added after the base session, their harmonic mean, and, per
configuration and seed, the joint upper bound: every class imprinted at once from all of its
training rows.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from imprint.engine.tasks import task_rows, warn_rows_beyond
from imprint.engine.vocabulary import JOINT_GEN, METHOD_GEN, PROBE_GEN

INCREMENTAL_COLUMNS = [
    "protocol",
    "session",
    "n_seen_classes",
    "accuracy_base",
    "accuracy_new",
    "accuracy_harmonic",
]


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Sessions of class ids (after any mapping), base first; `shots` training rows per class
    added after the base session (-1: all), `base_shots` per base class; `seed` draws them;
    `session_ids` fixes a session's training images instead (a published protocol)."""

    sessions: tuple[tuple[int, ...], ...]
    shots: int = -1
    base_shots: int = -1
    seed: int = 0
    # {session index: image ids}: that session's classes train on exactly these images (a
    # published protocol's lists; needs the training set's image ids) instead of drawn shots.
    session_ids: Mapping[int, tuple[int, ...]] | None = None

    def __post_init__(self):
        classes = [c for session in self.sessions for c in session]
        if len(self.sessions) < 1 or any(len(s) == 0 for s in self.sessions):
            raise ValueError(f"a protocol needs non-empty sessions, got {self.sessions}")
        if len(set(classes)) != len(classes):
            raise ValueError(f"a class may arrive in one session only, got {self.sessions}")
        if len(self.sessions[0]) < 2:
            raise ValueError(
                f"the base session needs at least 2 classes, got {list(self.sessions[0])}"
            )
        for name in ("shots", "base_shots", "seed"):
            problem = _setting_problem(name, getattr(self, name))
            if problem:
                raise ValueError(f"protocol {name} {problem}")


# The rules of a protocol's settings live here, once: Protocol, the `imprint incremental`
# command (flags) and the workflow's planning (experiments.<name>.incremental.<key>) apply them.


class ProtocolError(ValueError):
    """A protocol setting refused: `key` (protocol, sessions, base, way, task, shots, base_shots,
    protocol_seed; None where no one key is at fault) and `text`, what is wrong and allowed.
    The message names the key as the caller's `name` does (a flag, a config key)."""

    def __init__(self, key: str | None, text: str, name: Callable[[str], str] = str):
        super().__init__(f"{name(key)}: {text}" if key else text)
        self.key, self.text = key, text


def _setting_problem(key: str, value) -> str | None:
    """What is wrong with a number of shots or a seed, or None."""
    if key in ("shots", "base_shots") and (value == 0 or value < -1):
        return f"must be -1 (all rows) or >= 1, got {value}"
    if key in ("seed", "protocol_seed") and value < 0:
        return f"must be >= 0 (it seeds the shot draws), got {value}"
    return None


def _class_ids(values) -> str:
    """Class ids in short: [0..59, 61, 63]."""
    values = sorted({int(v) for v in values})
    parts, start = [], 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[i - 1] + 1:
            a, b = values[start], values[i - 1]
            parts.append(f"{a}..{b}" if b - a >= 2 else ", ".join(map(str, range(a, b + 1))))
            start = i
    return f"[{', '.join(parts)}]"


def check_protocol(spec: Mapping, name: Callable[[str], str] = str) -> None:
    """Refuse protocol settings (a config's `incremental` section, or the command's flags with
    `task`) that contradict each other or cannot be: exactly one of `protocol` (a packaged
    one), `sessions` (lists of classes, each class once, a base of 2 or more) or `base` with
    `way` (and, for the command, `task`); shots and base_shots -1 or >= 1; protocol_seed
    >= 0. Unset keys are None or absent. A ProtocolError names the key by `name`."""
    split = ["task", "base", "way"] if "task" in spec else ["base", "way"]
    given = [k for k in ("protocol", "sessions", *split) if spec.get(k) is not None]
    alone = f"{name(split[0])} with {' and '.join(name(k) for k in split[1:])}"
    choices = f"{name('protocol')}, {name('sessions')}, or {alone}"
    if len(given) > 1 and given[0] in ("protocol", "sessions"):
        excluded = ", ".join(name(k) for k in given[1:])
        raise ProtocolError(given[0], f"excludes {excluded}: give only one of {choices}", name)
    if not given:
        raise ProtocolError(None, f"give {choices}", name)
    missing = [k for k in split if spec.get(k) is None]
    if given[0] in split and missing:
        beside = ", ".join(name(k) for k in given)
        raise ProtocolError(missing[0], f"missing beside {beside}: give {choices}", name)
    for key in ("shots", "base_shots", "protocol_seed"):
        problem = spec.get(key) is not None and _setting_problem(key, spec[key])
        if problem:
            raise ProtocolError(key, problem, name)
    if spec.get("protocol") is not None and spec["protocol"] not in PACKAGED_PROTOCOLS:
        packaged = ", ".join(PACKAGED_PROTOCOLS)
        raise ProtocolError("protocol", f"unknown {spec['protocol']!r}; packaged: {packaged}", name)
    if spec.get("sessions") is not None:
        try:
            Protocol(tuple(tuple(int(c) for c in s) for s in spec["sessions"]))
        except ValueError as err:
            raise ProtocolError("sessions", str(err), name) from None


def task_sessions(
    spec: Mapping,
    classes: Sequence[int] | None = None,
    name: Callable[[str], str] = str,
    what: str = "the task",
) -> tuple[tuple[int, ...], ...]:
    """The sessions settings `spec` (as check_protocol takes them) give a task of `classes`
    (in arrival order; None: no task given, as the command without --task): a packaged
    protocol's, the listed ones, or the task's classes split by base and way. The listed or
    packaged sessions must hold exactly the task's classes (a class of no session would be
    left out of results labelled with the task). `what` names the task in errors."""
    if spec.get("protocol") is not None:
        key, sessions = "protocol", packaged_protocol(spec["protocol"])["sessions"]
    elif spec.get("sessions") is not None:
        key, sessions = "sessions", spec["sessions"]
    else:
        return split_sessions(classes, spec["base"], spec["way"], name, what)
    sessions = tuple(tuple(int(c) for c in s) for s in sessions)
    if classes is not None:
        check_sessions_within(spec, sessions, classes, what, name)
        listed = {c for s in sessions for c in s}
        left = [c for c in classes if int(c) not in listed]
        if left:
            raise ProtocolError(
                key,
                f"{what}'s class(es) {_class_ids(left)} arrive in no session (the sessions "
                "hold every class of the task, and no other)",
                name,
            )
    return sessions


def task_protocol(
    spec: Mapping,
    classes: Sequence[int] | None = None,
    name: Callable[[str], str] = str,
    what: str = "the task",
) -> Protocol:
    """The Protocol that settings `spec` give a task of `classes`: the one parser of a
    protocol, for the command, the workflow and the library. Checked as check_protocol
    checks it; sessions as task_sessions gives them; `shots`, `base_shots`, `protocol_seed`
    (defaults -1, -1, 0); a packaged protocol's training-image lists."""
    check_protocol(spec, name)
    sessions = task_sessions(spec, classes, name, what)
    session_ids = None
    if spec.get("protocol"):  # a packaged one: its sessions and image lists
        session_ids = packaged_protocol(spec["protocol"])["session_ids"]
    return Protocol(
        tuple(tuple(int(c) for c in s) for s in sessions),
        int(spec.get("shots", -1)),
        int(spec.get("base_shots", -1)),
        int(spec.get("protocol_seed", 0)),
        session_ids,
    )


def check_sessions_within(
    spec: Mapping,
    sessions: Sequence[Sequence[int]],
    available: Sequence[int],
    what: str,
    name: Callable[[str], str] = str,
) -> None:
    """A ProtocolError unless every class of `sessions` (those `spec` gives) is one of
    `available`, the classes of `what` (a task, a dataset under a mapping)."""
    absent = {int(c) for s in sessions for c in s} - {int(c) for c in available}
    if absent:
        packaged = spec.get("protocol")
        key = "protocol" if packaged else "sessions" if spec.get("sessions") else None
        whose = f"{packaged}'s sessions" if packaged else "the sessions"
        raise ProtocolError(
            key,
            f"{whose} name class(es) {_class_ids(absent)} not in {what} (its classes: "
            f"{_class_ids(available)})",
            name,
        )


def split_sessions(
    classes: Sequence[int],
    base: int,
    way: int,
    name: Callable[[str], str] = str,
    what: str = "the task",
) -> tuple[tuple[int, ...], ...]:
    """`classes` in order: the first `base` of them, then sessions of `way` classes (a
    ProtocolError naming base or way by `name` where they do not fit)."""
    classes = [int(c) for c in classes]
    n = len(classes)
    if not 2 <= base <= n:
        raise ProtocolError(
            "base", f"base session of {base} classes: needs 2..{n} ({what} has {n} classes)", name
        )
    if way < 1 or (n - base) % way:
        raise ProtocolError(
            "way",
            f"{n - base} classes after the base session do not split into sessions of {way} "
            f"({what} has {n} classes, base {base})",
            name,
        )
    rest = classes[base:]
    return (tuple(classes[:base]), *(tuple(rest[i : i + way]) for i in range(0, len(rest), way)))


def protocol_rows(
    labels: np.ndarray,
    protocol: Protocol,
    mapping: Mapping[int, int] | None = None,
    ids: np.ndarray | None = None,
    where: str = "training embeddings",
) -> dict[int, np.ndarray]:
    """{class id: training rows the protocol gives it}: all rows, or `shots` of them drawn
    without replacement by numpy's generator seeded with (seed, class id), in file order, or
    the rows of a session's listed image ids (`ids`: the training set's image ids). `where`
    names the labels' file in errors."""
    classes = [c for session in protocol.sessions for c in session]
    rows, index = task_rows(labels, classes, mapping, where=where)
    session_of = {c: s for s, session in enumerate(protocol.sessions) for c in session}
    listed = dict(protocol.session_ids or {})
    if listed and ids is None:
        raise ValueError(
            "the protocol lists each session's training images by id, but the training "
            "embeddings record no image ids (re-extract them)"
        )
    out, short = {}, {"base_shots": {}, "shots": {}}  # {setting: {class: rows}} beyond a class
    for i, c in enumerate(classes):
        mine = rows[index == i]
        if session_of[c] in listed:
            mine = mine[np.isin(ids[mine], listed[session_of[c]])]
            if mine.size == 0:
                raise ValueError(
                    f"class {c}: none of session {session_of[c]}'s listed image ids is one of "
                    "its training images (another dataset, or another class order?)"
                )
            out[c] = mine
            continue
        setting = "base_shots" if c in protocol.sessions[0] else "shots"
        shots = getattr(protocol, setting)
        if 0 < shots < mine.size:
            rng = np.random.default_rng([int(protocol.seed), int(c)])
            mine = np.sort(rng.choice(mine, size=shots, replace=False))
        elif shots > mine.size:
            short[setting][c] = mine.size
        out[c] = mine
    for setting, sizes in short.items():
        if sizes:  # one warning line each, worded as the grid's few-shot one
            warn_rows_beyond(f"protocol {setting}", [getattr(protocol, setting)], sizes, 4)
    return out


def evaluate_incremental(
    train_embeddings: np.ndarray,
    train_labels: np.ndarray,
    test_embeddings: np.ndarray,
    test_labels: np.ndarray,
    configs: pd.DataFrame,
    protocol: Protocol,
    mapping: Mapping[int, int] | None = None,
    joint: bool = True,
    train_ids: np.ndarray | None = None,
    method_options: Mapping[str, Mapping] | None = None,
    **options,
) -> pd.DataFrame:
    """Every configuration × seed of `configs` after every session of `protocol`, and (with
    `joint`) its all-at-once upper bound. `options` go to engine.evaluate.evaluate_grid
    (device, progress, ls_precision, data_names); `train_ids`: the training rows' image ids,
    for a protocol that lists its sessions' images; `method_options`: {GEN fecam, ranpac or
    fetril: its options} (incremental_methods.DEFAULTS). Columns: evaluate_grid's and
    INCREMENTAL_COLUMNS; protocol "incremental" or "joint"; accuracies in percent, NaN where
    a session has no new classes (the base session)."""
    from imprint.engine.evaluate import evaluate_grid

    check_incremental_grid(configs, method_options)
    options["method_options"] = method_options
    names = options.get("data_names") or ("training embeddings", "test embeddings")
    rows_of = protocol_rows(train_labels, protocol, mapping, train_ids, where=names[0])
    every = [c for s in protocol.sessions for c in s]
    test_counts = np.bincount(task_rows(test_labels, every, mapping, where=names[1])[1])
    is_method = configs["gen"].isin(METHOD_GEN).to_numpy()
    center = _base_mean(train_embeddings, rows_of, protocol)

    def evaluate(x, y, classes, chosen, **more):
        return evaluate_grid(
            x, y, test_embeddings, test_labels, configs[chosen], classes=classes,
            mapping=mapping, count_correct=True, **options, **more,
        )  # fmt: skip

    labels = np.asarray(train_labels)
    by_session = [[] for _ in protocol.sessions]
    if is_method.any():  # FeCAM, RanPAC, FeTrIL: each through every session in one pass
        tables = _method_tables(train_embeddings, labels, (test_embeddings, test_labels),
                                configs[is_method], protocol, rows_of, mapping, center, options)  # fmt: skip
        by_session = [[t] for t in tables]
    seen = []
    for s, session in enumerate(protocol.sessions):
        seen = [*seen, *session]
        mine = np.sort(np.concatenate([rows_of[c] for c in seen]))
        if not is_method.all():  # TEEN's base: the first session; center_l2's: its mean
            base = {"center": center, "base_classes": len(protocol.sessions[0])}
            table = evaluate(train_embeddings[mine], labels[mine], seen, ~is_method, **base)
            by_session[s].insert(0, table)
    tables = [
        _session_columns(pd.concat(t, ignore_index=True), "incremental", s, protocol, test_counts)
        for s, t in enumerate(by_session)
    ]
    if joint:  # every class at once, from every training row (center_l2: their mean)
        table = evaluate(train_embeddings, train_labels, seen, np.ones(len(configs), bool))
        last = len(protocol.sessions) - 1
        tables.append(_session_columns(table, "joint", last, protocol, test_counts))
    return pd.concat(tables, ignore_index=True)


def _base_mean(train_embeddings: np.ndarray, rows_of: dict, protocol: Protocol) -> np.ndarray:
    """The float64 mean of the base session's training rows: NORMpre center_l2 subtracts it
    in every session, so it stays fixed as classes arrive."""
    base_rows = np.sort(np.concatenate([rows_of[c] for c in protocol.sessions[0]]))
    return np.asarray(train_embeddings[base_rows], dtype=np.float64).mean(axis=0)


def _method_tables(x, labels, test, configs, protocol, rows_of, mapping, center, options):
    """Per session, the named methods' table (engine/method_runs.py) on the protocol's rows."""
    from imprint.engine.method_runs import method_session_tables

    rows = np.sort(np.concatenate(list(rows_of.values())))
    keep = {k: options[k] for k in ("device", "data_names", "method_options") if k in options}
    return method_session_tables(
        (x[rows], labels[rows]), test, configs, protocol.sessions, mapping, center, **keep
    )


def check_incremental_grid(configs: pd.DataFrame, method_options: Mapping | None = None) -> None:
    """A ValueError unless every configuration is incremental (the planning checks call this
    too, so a config fails at planning with the same reason) and every method option is known
    (engine/incremental_methods.check_method_options)."""
    if method_options:  # refused before any work: names and values
        from imprint.engine.incremental_methods import check_method_options

        check_method_options(method_options)
    joint = sorted(set(configs["gen"]) & {*JOINT_GEN, PROBE_GEN})
    if joint:
        raise ValueError(
            f"GEN {', '.join(joint)} is not incremental (fitted on all classes at once, so "
            "every class's weights change when a class arrives); leave it out of an "
            "incremental grid"
        )
    if (configs["fewshot"] != -1).any():
        raise ValueError(
            "an incremental grid takes fewshot -1: the protocol's shots select each session's "
            "rows (the grid's few-shot draws for every class precede GEN's, so a later session "
            "would change earlier proxies)"
        )


def _session_columns(
    table: pd.DataFrame, kind: str, session: int, protocol: Protocol, test_counts: np.ndarray
) -> pd.DataFrame:
    """`table` with INCREMENTAL_COLUMNS; classes in task order = session order."""
    n_seen = sum(len(s) for s in protocol.sessions[: session + 1])
    n_base = len(protocol.sessions[0])
    counts = test_counts[:n_seen]
    correct = np.array([json.loads(v) for v in table.pop("correct_per_class")], dtype=float)
    base = 100.0 * correct[:, :n_base].sum(axis=1) / counts[:n_base].sum()
    if n_seen > n_base:
        new = 100.0 * correct[:, n_base:].sum(axis=1) / counts[n_base:].sum()
        total = base + new
        harmonic = np.where(total > 0, 2.0 * base * new / np.where(total > 0, total, 1.0), 0.0)
    else:
        new = harmonic = np.full(len(table), np.nan)
    accuracies = {"accuracy_base": base, "accuracy_new": new, "accuracy_harmonic": harmonic}
    return table.assign(protocol=kind, session=session, n_seen_classes=n_seen, **accuracies)


def final_sessions(results: pd.DataFrame) -> pd.DataFrame:
    """The incremental rows of each group's last session (what a final-session CD diagram
    ranks); a table without session columns is returned as it is."""
    if "session" not in results.columns:
        return results
    rows = results[results["protocol"] == "incremental"]
    keys = [c for c in ("experiment", "backbone", "dataset", "mapping", "task") if c in rows]
    last = (
        rows.groupby(keys, sort=False)["session"].transform("max")
        if keys
        else rows["session"].max()
    )
    return rows[rows["session"] == last].drop(columns=INCREMENTAL_COLUMNS)


PACKAGED_PROTOCOLS = ("fscil_cifar100",)


def packaged_protocol(name: str) -> dict:
    """A published protocol shipped with the package: {sessions, session_ids} (data/<name>.yaml)."""
    from importlib import resources

    from imprint.io import load_yaml_text

    if name not in PACKAGED_PROTOCOLS:
        raise ValueError(f"unknown protocol '{name}'; packaged: {', '.join(PACKAGED_PROTOCOLS)}")
    text = resources.files("imprint.data").joinpath(f"{name}.yaml").read_text()
    spec = load_yaml_text(text, f"imprint/data/{name}.yaml")
    return {
        "sessions": [list(s) for s in spec["sessions"]],
        "session_ids": {int(k): tuple(v) for k, v in spec["session_ids"].items()},
    }
