"""File-level entry points for "which foundation model for my task?": baselines beside
imprinting (linear probe, dinov2's kNN), transferability estimates and representation
similarity, on embedding files (what `imprint probe`, `imprint transferability` and
`imprint similarity` call). The computations are in engine/baselines.py,
analysis/transferability.py and analysis/similarity.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from imprint.api import check_pair, load_mapping, task_classes
from imprint.arguments import check_number, check_numbers, check_seed
from imprint.io import load_embeddings, write_table
from imprint.outputs import check_output, check_table_path, finite_json, write_json

if TYPE_CHECKING:
    import pandas as pd

PROBE_COLUMNS = (
    "method",
    "k",
    "penalty",
    "temperature",
    "seed",
    "accuracy",
    "f1_macro",
    "f1_per_class",
    "fit_seconds",
    "inference_seconds",
    "penalty_search",
)


def probe_files(
    train: str | Path,
    test: str | Path,
    out: str | Path,
    classes: list[int] | None = None,
    mapping=None,
    penalties: Sequence[float] | None = None,
    ks: Sequence[int] | None = None,
    temperature: float | None = None,
    seed: int = 0,
    device: str | None = None,
    extra_columns: dict | None = None,
    force: bool = False,
) -> pd.DataFrame:
    """The linear probe and dinov2's kNN on one task of two embedding files; one row per
    method (and per kNN k), scored as imprinting is (accuracy and one-vs-rest F1, percent).

    ks=None: baselines.KNN_KS, those beyond the training rows left out (one warning); a k
    given beyond them is refused. force: replace whatever is at `out` (outputs.check_output)."""
    import pandas as pd

    from imprint.engine import baselines
    from imprint.engine.devices import resolve_device

    inputs = {"--train": train, "--test": test, "--mapping": mapping}
    check_output(out, "table", inputs, force, signature=PROBE_COLUMNS)
    penalties, ks, t, seed = _probe_settings(penalties, ks, temperature, seed)
    (x_train, y_train), (x_test, y_test), n_classes = _task_data(
        train, test, classes, mapping, resolve_device(device)
    )
    ks = _knn_ks(ks, x_train.shape[0], train)

    start = time.perf_counter()
    probe, search = baselines.linear_probe(x_train, y_train, n_classes, penalties, seed)
    fitted = time.perf_counter()
    pred = probe.predict(x_test)
    common = {"truth": y_test, "n_classes": n_classes, "seed": seed}
    rows = [
        _scored(
            pred,
            **common,
            method="linear_probe",
            k=-1,
            penalty=probe.penalty,
            temperature=float("nan"),
            fit_seconds=fitted - start,
            inference_seconds=time.perf_counter() - fitted,
            penalty_search=json.dumps({f"{p:g}": a for p, a in sorted(search.items())}),
        )
    ]
    start = time.perf_counter()
    knn = baselines.knn_predict(x_train, y_train, x_test, n_classes, ks, t)
    seconds = time.perf_counter() - start
    rows += [
        _scored(
            pred,
            **common,
            method="knn",
            k=int(k),
            penalty=float("nan"),
            temperature=t,
            fit_seconds=0.0,
            inference_seconds=seconds,
            penalty_search="",
        )
        for k, pred in knn.items()
    ]
    table = pd.DataFrame(rows, columns=list(PROBE_COLUMNS))
    for i, (name, value) in enumerate((extra_columns or {}).items()):
        table.insert(i, name, value)
    write_table(table, out, force)
    return table


# λ beyond this leaves float32 weights of zero (the probe then predicts one class); 1e300
# overflows the objective.
MAX_PENALTY = 1e15


# What a transferability JSON holds (an earlier one is replaced; any other JSON is kept).
TRANSFERABILITY_KEYS = (
    *("logme", "h_score", "loo_knn_accuracy", "ncti_etf", "ncti_ncc", "ncti_vc", "tmi"),
    *("nc1", "vci", "n_classes", "n_samples"),
)


def _probe_settings(penalties, ks, temperature, seed) -> tuple:
    """probe_files' numbers, checked by their flags before any work (temperature None: the
    default T)."""
    from imprint.engine.vocabulary import KNN_MIN_TEMPERATURE, KNN_TEMPERATURE

    if penalties is not None:
        penalties = check_numbers(
            penalties,
            "L2 penalty λ (--penalties)",
            low=0,
            low_open=True,
            high=MAX_PENALTY,
            why="larger λ only zero the weights in float32",
        )
    if ks is not None:
        ks = check_numbers(ks, "kNN k (--knn-k)", integer=True, low=1)
    t = KNN_TEMPERATURE if temperature is None else temperature
    t = check_number(
        t,
        "kNN temperature T (--temperature)",
        low=KNN_MIN_TEMPERATURE,
        why="its votes exp(s/T) overflow float64 below",
    )
    return penalties, ks, t, check_seed(seed)


def _knn_ks(ks: list[int] | None, n_train: int, train) -> list[int]:
    """kNN's k: as given, each at most the training rows; by default those of KNN_KS that
    are (one warning for the others)."""
    import warnings

    from imprint.engine.baselines import KNN_KS

    if ks is not None:
        beyond = [k for k in ks if k > n_train]
        if beyond:
            raise ValueError(
                f"kNN k (--knn-k) {beyond} exceeds the task's {n_train} training rows of "
                f"{train}: k must be at most {n_train}"
            )
        return ks
    kept = [k for k in KNN_KS if k <= n_train] or [n_train]
    if len(kept) < len(KNN_KS):
        warnings.warn(
            f"kNN k {[k for k in KNN_KS if k not in kept]} of the default {list(KNN_KS)} "
            f"exceed the task's {n_train} training rows of {train}; running k = {kept}",
            stacklevel=3,
        )
    return kept


def _scored(pred, truth, n_classes: int, seed: int, **columns) -> dict:
    """A results row: `columns`, the seed, accuracy and one-vs-rest F1 (percent)."""
    from imprint.engine.metrics import accuracy_percent, f1_per_class

    per_class = f1_per_class(pred, truth, n_classes)
    return {
        **columns,
        "seed": seed,
        "accuracy": accuracy_percent(pred, truth),
        "f1_macro": float(np.mean(per_class)),
        "f1_per_class": json.dumps(per_class),
    }


def _task_data(train, test, classes, mapping, device):
    """One task's (rows, class indices) of a training and a test file as float32 tensors on
    `device`, checked as `imprint evaluate` checks them, and the number of classes."""
    import torch

    from imprint.engine.tasks import task_rows

    train_set, test_set = load_embeddings(train), load_embeddings(test)
    check_pair(train, train_set, test, test_set)
    source, mapping = mapping, load_mapping(mapping)
    classes = task_classes(train_set, test_set, classes, mapping, (str(train), str(test)), source)
    data = []
    for found, name in (
        (train_set, f"training embeddings {train}"),
        (test_set, f"test embeddings {test}"),
    ):
        rows, index = task_rows(found.labels, classes, mapping, where=name)
        x = torch.from_numpy(np.ascontiguousarray(found.embeddings[rows], dtype=np.float32))
        data.append((x.to(device), torch.from_numpy(index).to(device)))
    return data[0], data[1], len(classes)


def transferability_file(
    embeddings: str | Path,
    out: str | Path | None = None,
    mapping=None,
    classes=None,
    force: bool = False,
) -> dict:
    """Transferability estimates of one training embedding file (after an optional mapping and
    class selection): LogME, H-score, leave-one-out kNN accuracy (5,000 seeded query rows),
    TMI, NCTI's three terms (NCTI itself ranks several backbones: gather_transferability) and
    NC1/VCI as `imprint collapse` computes them.

    An estimator that has no finite value on these data (EstimatorUndefined: e.g. TMI with no
    class of 4 rows, NC1/VCI with one row per class; analysis/transferability.py documents
    each) is written as null, with one warning naming it and why; the JSON is strict (no NaN
    or inf). Invalid input still raises ValueError. force: replace whatever is at `out`.
    """
    import warnings

    from imprint.analysis.collapse import class_statistics, collapse_metrics
    from imprint.analysis.transferability import (
        EstimatorUndefined,
        collapse_estimate,
        h_score,
        logme,
        loo_knn_accuracy,
        ncti_components,
        tmi,
    )
    from imprint.engine.tasks import remap_labels, task_rows

    if out:
        inputs = {"embeddings": embeddings, "--mapping": mapping}
        check_output(out, "json", inputs, force, signature=TRANSFERABILITY_KEYS)
    data = load_embeddings(embeddings)
    mapping = load_mapping(mapping)
    if classes is None:
        classes = sorted({int(c) for c in remap_labels(data.labels, mapping)[1]})
    rows, index = task_rows(data.labels, classes, mapping, where=str(embeddings))
    # One float32 copy of the task's rows; LogME and H-score take their float64 view themselves.
    x = np.ascontiguousarray(data.embeddings[rows], dtype=np.float32)
    stats = class_statistics(x, index, l2_normalise=True)
    collapse = collapse_metrics(stats)

    def estimate(compute, keys):
        """{key: value} of one estimator; None for each key (and one warning) where the
        estimator is undefined on these data."""
        try:
            with np.errstate(all="ignore"):  # non-finite results are caught below, by name
                value = compute()
        except EstimatorUndefined as err:
            warnings.warn(str(err), stacklevel=3)
            return dict.fromkeys(keys)
        return value if isinstance(value, dict) else {keys[0]: value}

    result = {
        **estimate(lambda: logme(x, index), ["logme"]),
        **estimate(lambda: h_score(x, index), ["h_score"]),
        **estimate(lambda: loo_knn_accuracy(x, index), ["loo_knn_accuracy"]),
        **estimate(lambda: ncti_components(x, index), ["ncti_etf", "ncti_ncc", "ncti_vc"]),
        **estimate(lambda: tmi(x, index), ["tmi"]),
        **estimate(lambda: collapse_estimate("nc1", stats, collapse), ["nc1"]),
        **estimate(lambda: collapse_estimate("vci", stats, collapse), ["vci"]),
    }
    result |= {"n_classes": len(classes), "n_samples": int(len(rows))}
    result = finite_json(result)  # a safety net: every undefined estimate is None already
    if out:
        write_json(result, out, force)
    return result


def similarity_files(
    files: Sequence[str | Path],
    out: str | Path | None = None,
    names: Sequence[str] | None = None,
    extra_columns: dict | None = None,
    force: bool = False,
) -> pd.DataFrame:
    """Linear CKA between every pair of embedding files of the same images; one row per pair,
    named by `names` (default: the paths) in columns a and b, after `extra_columns`.

    Rows are paired by image id where the files record ids (same_images), else by position
    (labels must then agree row by row). force: replace whatever is at `out`."""
    import pandas as pd

    from imprint.analysis.similarity import linear_cka

    if len(files) < 2:
        raise ValueError(f"similarity compares two or more embedding files, got {len(files)}")
    if out:
        signature = ("a", "b", "cka", "n_samples")
        check_output(out, "table", {"embeddings": list(files)}, force, signature=signature)
    sets = [load_embeddings(f) for f in files]
    _check_distinct(files, "similarity compares")
    names = [str(f) for f in files] if names is None else list(names)
    rows_of = same_images(sets, files, names, "CKA compares representations image by image")
    rows = []
    for i in range(len(files)):
        for j in range(i + 1, len(files)):
            # y_rows: j's rows in i's image order (i's in the first file's order, inverted).
            y_rows = _compose(rows_of[i], rows_of[j])
            try:
                cka = linear_cka(sets[i].embeddings, sets[j].embeddings, y_rows=y_rows)
            except ValueError as err:  # a constant embedding: name the pair
                raise ValueError(f"{files[i]} ~ {files[j]}: {err}") from None
            rows.append({"a": names[i], "b": names[j], "cka": cka})
    table = pd.DataFrame(rows)
    table["n_samples"] = sets[0].labels.shape[0]
    for i, (name, value) in enumerate((extra_columns or {}).items()):
        table.insert(i, name, value)
    if out:
        write_table(table, out, force)
    return table


def _compose(rows_i: np.ndarray | None, rows_j: np.ndarray | None) -> np.ndarray | None:
    """The row of set j holding the image of set i's row r, from each set's rows in the first
    set's image order (None: the first set's order itself)."""
    if rows_i is None:
        return rows_j
    inverse = np.empty_like(rows_i)
    inverse[rows_i] = np.arange(rows_i.size)  # set i's row -> the first set's row
    return (np.arange(rows_i.size) if rows_j is None else rows_j)[inverse]


def _check_distinct(paths: Sequence[str | Path], what: str) -> None:
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
    import warnings

    first, first_path, first_name = sets[0], paths[0], names[0]
    for path, found in zip(paths[1:], sets[1:], strict=True):
        for key in ("dataset", "split"):  # what their metadata records, where both do
            a, b = first.meta.get(key), found.meta.get(key)
            if a is not None and b is not None and a != b:
                raise ValueError(
                    f"{path} and {first_path} are not embeddings of the same images: their "
                    f"metadata records {key} {b!r} and {a!r}; {why}"
                )
    with_ids = [s.ids is not None for s in sets]
    if not all(with_ids):
        if any(with_ids):
            lacking = [str(p) for p, has in zip(paths, with_ids, strict=True) if not has]
            warnings.warn(
                f"{', '.join(lacking)} record(s) no image ids: rows are paired by position "
                "(their labels agree row by row)",
                stacklevel=3,
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
        return [None] * len(sets)
    order = np.argsort(first.ids, kind="stable")
    sorted_ids = first.ids[order]
    rows_of: list[np.ndarray | None] = [None]
    for name, path, found in zip(names[1:], paths[1:], sets[1:], strict=True):
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
        identity = np.array_equal(row_of, np.arange(row_of.size))
        rows_of.append(None if identity else row_of)
    return rows_of


def gather_transferability(
    files: Sequence[str | Path],
    groups: Sequence[Sequence[str]],
    results: Sequence[str | Path],
    out: str | Path,
    agreement_out: str | Path,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The transferability table and the estimators' agreement with the accuracies achieved.

    `files`: transferability JSON files (transferability_file), one per (dataset, backbone,
    mapping, task) of `groups`; `results`: results tables, pooled, whose best imprinting
    configuration and linear probe per group are the accuracies to predict
    (analysis.agreement.achieved_accuracies). Writes one row per group to `out` and
    the weighted Kendall τ per (dataset, mapping, task) and estimator, and their mean, to
    `agreement_out`.
    """
    import pandas as pd

    from imprint.analysis.agreement import (
        achieved_accuracies,
        estimator_agreement,
        with_ncti,
    )
    from imprint.io import read_table

    results = [results] if isinstance(results, str | Path) else list(results)
    check_table_path(out)
    check_table_path(agreement_out)
    keys = ["dataset", "backbone", "mapping", "task"]
    rows = [
        {**dict(zip(keys, group, strict=True)), **json.loads(Path(f).read_text())}
        for f, group in zip(files, groups, strict=True)
    ]
    estimates = pd.DataFrame(rows)
    achieved = achieved_accuracies(pd.concat([read_table(r) for r in results]))
    table = estimates.merge(achieved, on=keys, how="left")
    missing = table["best_imprinting"].isna()
    if missing.any():
        first = table.loc[missing, keys].iloc[0].tolist()
        raise ValueError(
            f"{', '.join(map(str, results))}: no imprinting result (presampling all, "
            f"few-shot -1) for {int(missing.sum())} transferability group(s), first {first}; "
            "the estimators are compared with the accuracies of the same groups"
        )
    table = with_ncti(table)  # NCTI compares the backbones of a task
    agreement = estimator_agreement(table)
    write_table(table, out)
    write_table(agreement, agreement_out)
    return table, agreement


CONCAT_NORMALISATIONS = ("l2", "none")


def concat_embeddings(
    parts: Sequence[str | Path],
    out: str | Path,
    names: Sequence[str],
    normalise: str = "l2",
    extra_meta: dict | None = None,
    force: bool = False,
) -> int:
    """One backbone's embeddings as the concatenation of others' of the same images (Zhang &
    Bottou's rich representations): rows are joined by image identity (each set's ids), not by
    position; each part L2-normalised first (`normalise` "l2", so no part dominates by its
    scale) or as stored ("none"). Rows come in the first part's order. Every part must hold
    the same images with the same labels: a missing image, an extra one or a disagreeing
    label is an error naming the parts; so is one file given twice. An all-zero row has no
    direction and stays zero under "l2" (one warning). Returns the number of rows written.
    force: replace whatever is at `out` (outputs.check_output).
    """
    import warnings

    from imprint.io import save_embeddings

    if normalise not in CONCAT_NORMALISATIONS:
        raise ValueError(
            f"concat normalise '{normalise}' is not allowed; allowed: {', '.join(CONCAT_NORMALISATIONS)}"
        )
    if len(parts) < 2:
        raise ValueError(f"a concatenated backbone needs two or more parts, got {list(names)}")
    check_output(out, "embeddings", {"part": list(parts)}, force, signature=("concat",))
    sets = [load_embeddings(p) for p in parts]
    _check_distinct(parts, "a concatenation joins")
    for name, path, found in zip(names, parts, sets, strict=True):
        if found.ids is None:
            raise ValueError(
                f"{path} (part '{name}') records no image ids, so its rows cannot be joined by "
                "image: re-extract it, or give the .npz an 'ids' array (one integer per row)"
            )
    first = sets[0]
    rows_of = same_images(sets, parts, names, "a concatenation joins rows of the same image")
    blocks = []
    for name, path, found, row_of in zip(names, parts, sets, rows_of, strict=True):
        rows = slice(None) if row_of is None else row_of
        x = np.asarray(found.embeddings[rows], dtype=np.float32)
        if normalise == "l2":
            norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
            zero = np.flatnonzero(norms[:, 0] == 0)
            if zero.size:
                warnings.warn(
                    f"{path} (part '{name}'): {zero.size} row(s) are all zero (first image ids "
                    f"{first.ids[zero[:5]].tolist()}) and stay zero after L2 normalisation: "
                    "that part says nothing about those images",
                    stacklevel=2,
                )
            x = (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        blocks.append(x)
    meta = {
        **(extra_meta or {}),
        "concat": list(names),
        "concat_normalise": normalise,
        "part_dims": [int(b.shape[1]) for b in blocks],
        "dataset": first.meta.get("dataset"),
        "split": first.meta.get("split"),
    }
    joined = np.concatenate(blocks, axis=1)
    save_embeddings(out, joined, first.labels, meta, ids=first.ids, force=force)
    return int(first.ids.size)
