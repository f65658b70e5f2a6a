"""What the file-level entry points share: label mappings, a training and test pair that
belong together, a task's classes, the rows of the same images across embedding sets,
constant columns put first, and tables read for figures."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imprint.io import read_yaml

log = logging.getLogger("imprint")


def load_mapping(source: str | Path | dict | None) -> dict[int, int] | None:
    """A label mapping from a dict, or a YAML/JSON file holding {old label: new label}."""
    if source is None or isinstance(source, dict):
        return {int(k): int(v) for k, v in source.items()} if source else None
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such mapping file")
    data = read_yaml(path)  # a label given twice is refused, with its line
    if not isinstance(data, dict) or not data:
        raise ValueError(
            f"{path}: a mapping file holds a non-empty mapping {{old label: new label}}"
        )
    bad = [x for pair in data.items() for x in pair if isinstance(x, float) and x != int(x)]
    if bad:
        raise ValueError(f"{path}: mapping keys and values must be integers, got {bad[0]!r}")
    try:
        return {int(k): int(v) for k, v in data.items()}
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: mapping keys and values must be integers ({err})") from err


def check_pair(train, train_set, test, test_set) -> None:
    """Refuse a training and a test set that cannot belong together (different backbones or
    datasets, as their metadata records, or the two splits swapped); warn where one file is
    both."""
    same = os.path.realpath(train) == os.path.realpath(test)
    if same:
        warnings.warn(
            f"{train} is both the training and the test file (the test rows are the training "
            "rows), so accuracies measure fit, not generalisation",
            stacklevel=3,
        )
        return
    if train_set.dim != test_set.dim:
        raise ValueError(
            f"training embeddings {train} have dimension {train_set.dim} but test embeddings "
            f"{test} {test_set.dim}: they must come from the same backbone"
        )
    for key in ("backbone", "dataset"):
        a, b = train_set.meta.get(key), test_set.meta.get(key)
        if a is not None and b is not None and a != b:
            raise ValueError(
                f"{train} and {test} come from different {key}s ({a!r} and {b!r}, as their "
                f"metadata records): training and test embeddings must share the {key}"
            )
    if (train_set.meta.get("split"), test_set.meta.get("split")) == ("test", "train"):
        raise ValueError(
            f"{train} is a test split and {test} a training split (their metadata): are "
            "--train and --test swapped?"
        )


def task_classes(
    train_set, test_set, classes, mapping, names: tuple, mapping_source=None
) -> list[int]:
    """The task's classes: `classes` as given, or every class of the training set after the
    mapping, where the test set may hold no other (its rows would be dropped unseen)."""
    if classes is not None:
        return list(classes)
    from imprint.engine.tasks import remap_labels

    train, test = names
    found = sorted({int(c) for c in remap_labels(train_set.labels, mapping)[1]})
    kept = f" after the mapping {mapping_source}" if mapping else ""
    if not found:
        raise ValueError(f"{train}: no training rows{kept}, so no classes to imprint")
    tested = {int(c) for c in remap_labels(test_set.labels, mapping)[1]}
    extra = sorted(tested - set(found))
    if extra:
        raise ValueError(
            f"{test}: class(es) {extra[:10]} have test rows but {train} has no training "
            f"rows for them{kept}; name the task's classes (--task) to evaluate the shared "
            "ones, or check that the files belong together"
        )
    return found


def put_first(table, columns: dict | None):
    """`table` with constant `columns` inserted before its own, in order (e.g. backbone,
    dataset), so tables of several runs can be joined and ranked together."""
    for i, (name, value) in enumerate((columns or {}).items()):
        table.insert(i, name, value)
    return table


def check_distinct(paths: Sequence[str | Path], what: str) -> None:
    """Refuse one file given twice (the same path or the same inode): a comparison of a set
    with itself, or a concatenation of a part with itself, is a slip, not a question."""
    from imprint.outputs import same_file

    for i, a in enumerate(paths):
        for b in paths[:i]:
            if same_file(Path(a), Path(b)):
                raise ValueError(
                    f"{a} is given twice ({what} different embedding sets; {b} is the same file)"
                )


def same_images(sets, paths, names, why: str) -> list[np.ndarray | None]:
    """For each embedding set, its rows in the first set's image order (None: in that order
    already), so sets of the same images from different backbones pair row by row.

    Where every set records image ids the rows are matched by id, and a set of other images
    (an id only in one of them) is refused, naming both; where none does, rows are paired by
    position and the sets must agree in length and label row by row; where some do and some
    do not, by position, with one warning. A disagreeing label of the same image is refused.
    """
    first, first_path = sets[0], paths[0]
    for path, found in zip(paths[1:], sets[1:], strict=True):
        for key in ("dataset", "split"):  # what their metadata records, where both do
            a, b = first.meta.get(key), found.meta.get(key)
            if a is not None and b is not None and a != b:
                raise ValueError(
                    f"{path} and {first_path} are not embeddings of the same images: their "
                    f"metadata records {key} {b!r} and {a!r}; {why}"
                )
    if not all(s.ids is not None for s in sets):
        _check_same_positions(sets, paths, why)
        return [None] * len(sets)
    order = np.argsort(first.ids, kind="stable")
    rows_of: list[np.ndarray | None] = [None]
    for name, path, found in zip(names[1:], paths[1:], sets[1:], strict=True):
        row_of = _rows_by_id(first, found, order, (path, name), (first_path, names[0]), why)
        identity = np.array_equal(row_of, np.arange(row_of.size))
        rows_of.append(None if identity else row_of)
    return rows_of


def _check_same_positions(sets, paths, why: str) -> None:
    """Sets paired by position (not all record ids): the same length and labels row by row;
    one warning where some record ids and some do not."""
    first, first_path = sets[0], paths[0]
    with_ids = [s.ids is not None for s in sets]
    if any(with_ids):
        lacking = [str(p) for p, has in zip(paths, with_ids, strict=True) if not has]
        warnings.warn(
            f"{', '.join(lacking)} record(s) no image ids: rows are paired by position "
            "(their labels agree row by row)",
            stacklevel=4,
        )
    for path, found in zip(paths[1:], sets[1:], strict=True):
        if found.labels.shape != first.labels.shape:
            differ = f"{found.labels.shape[0]} and {first.labels.shape[0]} rows"
        elif not np.array_equal(found.labels, first.labels):
            row = int(np.flatnonzero(found.labels != first.labels)[0])
            differ = f"labels differ first at row {row}"
        else:
            continue
        raise ValueError(
            f"{path} and {first_path} are not embeddings of the same images in the same "
            f"order ({differ}, and no image ids to pair them by); {why}"
        )


def _rows_by_id(first, found, order, named, first_named, why: str) -> np.ndarray:
    """The row of `found` holding each row's image of `first` (`order`: first's ids sorted),
    refusing other images or a disagreeing label; `named`, `first_named`: (path, name)."""
    (path, name), (first_path, first_name) = named, first_named
    sorted_ids = first.ids[order]
    position = np.minimum(np.searchsorted(sorted_ids, found.ids), len(sorted_ids) - 1)
    known = sorted_ids[position] == found.ids
    if not known.all() or found.ids.size != first.ids.size:
        only_here = found.ids[~known]
        only_first = np.setdiff1d(first.ids, found.ids)
        example = only_here[0] if only_here.size else only_first[0]
        raise ValueError(
            f"{path} ('{name}') and {first_path} ('{first_name}') are not embeddings of the "
            f"same images: {only_first.size} image id(s) only in '{first_name}', "
            f"{only_here.size} only in '{name}' (e.g. id {int(example)}); {why}"
        )
    row_of = np.empty(first.ids.size, dtype=np.int64)  # row of `found` per first-set row
    row_of[order[position]] = np.arange(found.ids.size)
    labels = found.labels[row_of]
    if not np.array_equal(labels, first.labels):
        bad = int(np.flatnonzero(labels != first.labels)[0])
        raise ValueError(
            f"{path} ('{name}') labels image id {int(first.ids[bad])} {int(labels[bad])}, "
            f"{first_path} ('{first_name}') {int(first.labels[bad])}"
        )
    return row_of


def compose_rows(rows_i: np.ndarray | None, rows_j: np.ndarray | None) -> np.ndarray | None:
    """The row of set j holding the image of set i's row r, from each set's rows in the first
    set's image order (None: the first set's order itself)."""
    if rows_i is None:
        return rows_j
    inverse = np.empty_like(rows_i)
    inverse[rows_i] = np.arange(rows_i.size)  # set i's row -> the first set's row
    return (np.arange(rows_i.size) if rows_j is None else rows_j)[inverse]


def read_tables(inputs: dict) -> dict:
    """{name: table} of a figure's inputs: a path is read as a table, a list of paths as
    (path, table) pairs."""
    from imprint.io import read_table

    return {
        name: read_table(value)
        if isinstance(value, str | Path)
        else [(str(p), read_table(p)) for p in value]
        for name, value in inputs.items()
    }
