"""Tasks: label remapping (unmapped labels dropped) and the class split a task imprints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# The twelve-task structure of §5.1 (class ids after any remapping).
TASK_SPLITS = {
    "all": list(range(10)),
    "even": [0, 2, 4, 6, 8],
    "odd": [1, 3, 5, 7, 9],
    "short": [0, 1, 2],
}


def remap_labels(
    labels: np.ndarray, mapping: Mapping[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Apply a label mapping; returns (row indices kept, new labels of those rows).

    With no mapping every row is kept unchanged. Labels the mapping does not name are dropped.
    """
    labels = np.asarray(labels)
    if not mapping:
        return np.arange(labels.shape[0]), labels
    keys = np.fromiter((int(k) for k in mapping), dtype=np.int64)
    values = np.fromiter((int(v) for v in mapping.values()), dtype=np.int64)
    order = np.argsort(keys)
    keys, values = keys[order], values[order]
    pos = np.clip(np.searchsorted(keys, labels), 0, len(keys) - 1)
    keep = keys[pos] == labels
    return np.flatnonzero(keep), values[pos[keep]]


def task_rows(
    labels: np.ndarray,
    classes: Sequence[int],
    mapping: Mapping[int, int] | None = None,
    where: str = "data",
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of one task and their class index (position of the class in `classes`).

    Classes are named after remapping. A task class with no row raises a ValueError naming it.
    """
    classes = [int(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise ValueError(f"task classes must be distinct, got {classes}")
    if len(classes) < 2:
        raise ValueError(f"a task needs at least 2 classes, got {classes}")
    rows, mapped = remap_labels(labels, mapping)
    lookup = {c: i for i, c in enumerate(classes)}
    index = np.fromiter(
        (lookup.get(int(v), -1) for v in mapped), dtype=np.int64, count=mapped.shape[0]
    )
    keep = index >= 0
    rows, index = rows[keep], index[keep]
    counts = np.bincount(index, minlength=len(classes))
    empty = [classes[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        present = sorted({int(v) for v in np.unique(mapped)})
        raise ValueError(
            f"{where}: task class(es) {empty} have no samples"
            + (" after remapping" if mapping else "")
            + f"; labels present: {present[:20]}{' ...' if len(present) > 20 else ''}"
        )
    return rows, index


def parse_classes(text: str, flag: str = "--task") -> list[int]:
    """'0,2,4' or a split name ('all', 'even', 'odd', 'short') → class list, each class once;
    errors name `flag`, the option that gave `text`."""
    if text in TASK_SPLITS:
        return list(TASK_SPLITS[text])
    hint = f"give comma-separated class ids or one of {', '.join(TASK_SPLITS)}"
    items = text.split(",")
    if not text.strip() or all(not c.strip() for c in items):
        raise ValueError(f"{flag} {text!r} names no class: {hint}")
    if any(not c.strip() for c in items):  # "0,,1": a class left out by a slip
        raise ValueError(f"{flag} {text!r} has an empty item: {hint}")
    try:
        classes = [int(c) for c in items]
    except ValueError as err:
        raise ValueError(f"{flag} '{text}': {hint}") from err
    if len(set(classes)) < len(classes):
        raise ValueError(f"{flag} {text!r}: classes must be distinct, got {classes}")
    return classes


def task_text_proxies(
    vectors: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[int],
    mapping: Mapping[int, int] | None,
    where: str = "text proxies",
) -> list[np.ndarray]:
    """Each task class's text proxy [1, D] (task order), from one row per dataset label.

    A class that a mapping makes of several labels gets the normalised mean of their proxies
    (as a class's prompts are averaged); a class of one label its proxy as stored.
    """
    vectors, labels = np.asarray(vectors, dtype=np.float32), np.asarray(labels)
    kept, mapped = remap_labels(labels, mapping)
    out = []
    for c in classes:
        rows = kept[mapped == int(c)]
        if rows.size == 0:
            raise ValueError(
                f"{where}: no text proxy for class {c} (they cover labels "
                f"{', '.join(map(str, labels[:10]))}{', ...' if labels.size > 10 else ''})"
            )
        if rows.size == 1:
            out.append(vectors[rows])
            continue
        mean = vectors[rows].astype(np.float64).mean(axis=0, keepdims=True)
        out.append((mean / np.linalg.norm(mean)).astype(np.float32))
    return out


def warn_rows_beyond(what: str, ns, sizes: Mapping[int, int], stacklevel: int = 3) -> None:
    """One warning line where a number of training rows to draw per class (`what` = n, e.g.
    the grid's few-shot n or an incremental protocol's shots) exceeds some classes' rows
    (`sizes`: {class: rows}): such a class uses all its rows (SPEC), so that n-shot is partly
    a larger-shot run."""
    short = {c: n for c, n in sizes.items() if n < max(ns)}
    if short:
        import warnings

        fewest = min(short, key=short.get)
        ns = sorted({int(n) for n in ns if n > short[fewest]})
        warnings.warn(
            f"{what} = {', '.join(map(str, ns))} exceeds the training rows of "
            f"{len(short)} class(es) (fewest: class {fewest} with {short[fewest]} "
            f"row{'s' if short[fewest] != 1 else ''}): such "
            "a class uses all its rows",
            stacklevel=stacklevel,
        )
