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
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from imprint.engine.tasks import task_rows
from imprint.engine.vocabulary import JOINT_GEN, PROBE_GEN

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
        for name in ("shots", "base_shots"):
            value = getattr(self, name)
            if value == 0 or value < -1:
                raise ValueError(f"protocol {name} must be -1 (all rows) or >= 1, got {value}")


def split_sessions(classes: Sequence[int], base: int, way: int) -> tuple[tuple[int, ...], ...]:
    """`classes` in order: the first `base` of them, then sessions of `way` classes."""
    classes = [int(c) for c in classes]
    if not 2 <= base <= len(classes):
        raise ValueError(f"base session of {base} classes: needs 2..{len(classes)}")
    if way < 1 or (len(classes) - base) % way:
        raise ValueError(
            f"{len(classes) - base} classes after the base session do not split into "
            f"sessions of {way}"
        )
    rest = classes[base:]
    return (tuple(classes[:base]), *(tuple(rest[i : i + way]) for i in range(0, len(rest), way)))


def protocol_rows(
    labels: np.ndarray,
    protocol: Protocol,
    mapping: Mapping[int, int] | None = None,
    ids: np.ndarray | None = None,
) -> dict[int, np.ndarray]:
    """{class id: training rows the protocol gives it}: all rows, or `shots` of them drawn
    without replacement by numpy's generator seeded with (seed, class id), in file order, or
    the rows of a session's listed image ids (`ids`: the training set's image ids)."""
    classes = [c for session in protocol.sessions for c in session]
    rows, index = task_rows(labels, classes, mapping, where="training embeddings")
    session_of = {c: s for s, session in enumerate(protocol.sessions) for c in session}
    listed = dict(protocol.session_ids or {})
    if listed and ids is None:
        raise ValueError(
            "the protocol lists each session's training images by id, but the training "
            "embeddings record no image ids (re-extract them)"
        )
    out = {}
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
        shots = protocol.base_shots if c in protocol.sessions[0] else protocol.shots
        if 0 < shots < mine.size:
            rng = np.random.default_rng([int(protocol.seed), int(c)])
            mine = np.sort(rng.choice(mine, size=shots, replace=False))
        out[c] = mine
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
    **options,
) -> pd.DataFrame:
    """Every configuration × seed of `configs` after every session of `protocol`, and (with
    `joint`) its all-at-once upper bound. `options` go to engine.evaluate.evaluate_grid
    (device, progress, ls_precision, data_names); `train_ids`: the training rows' image ids,
    for a protocol that lists its sessions' images. Columns: evaluate_grid's and
    INCREMENTAL_COLUMNS; protocol "incremental" or "joint"; accuracies in percent, NaN where
    a session has no new classes (the base session).
    """
    from imprint.engine.evaluate import evaluate_grid

    check_incremental_grid(configs)
    rows_of = protocol_rows(train_labels, protocol, mapping, train_ids)
    _, test_index = task_rows(
        test_labels, [c for s in protocol.sessions for c in s], mapping, where="test embeddings"
    )
    test_counts = np.bincount(test_index)

    def evaluate(x, y, classes):
        return evaluate_grid(
            x, y, test_embeddings, test_labels, configs, classes=classes, mapping=mapping,
            count_correct=True, **options,
        )  # fmt: skip

    tables, seen = [], []
    for s, session in enumerate(protocol.sessions):
        seen = [*seen, *session]
        rows = np.sort(np.concatenate([rows_of[c] for c in seen]))
        table = evaluate(train_embeddings[rows], np.asarray(train_labels)[rows], seen)
        tables.append(_session_columns(table, "incremental", s, protocol, test_counts))
    if joint:  # every class at once, from every training row
        table = evaluate(train_embeddings, train_labels, seen)
        last = len(protocol.sessions) - 1
        tables.append(_session_columns(table, "joint", last, protocol, test_counts))
    return pd.concat(tables, ignore_index=True)


def check_incremental_grid(configs: pd.DataFrame) -> None:
    """A ValueError unless every configuration is incremental (the planning checks call this
    too, so a config fails at planning with the same reason)."""
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
    return table.assign(
        protocol=kind,
        session=session,
        n_seen_classes=n_seen,
        accuracy_base=base,
        accuracy_new=new,
        accuracy_harmonic=harmonic,
    )


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

    import yaml

    if name not in PACKAGED_PROTOCOLS:
        raise ValueError(f"unknown protocol '{name}'; packaged: {', '.join(PACKAGED_PROTOCOLS)}")
    text = resources.files("imprint.data").joinpath(f"{name}.yaml").read_text()
    spec = yaml.safe_load(text)
    return {
        "sessions": [list(s) for s in spec["sessions"]],
        "session_ids": {int(k): tuple(v) for k, v in spec["session_ids"].items()},
    }
