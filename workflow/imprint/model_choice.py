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
from imprint.io import check_table_path, check_writable, load_embeddings, write_table

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
) -> pd.DataFrame:
    """The linear probe and dinov2's kNN on one task of two embedding files; one row per
    method (and per kNN k), scored as imprinting is (accuracy and one-vs-rest F1, percent)."""
    import pandas as pd

    from imprint.engine import baselines
    from imprint.engine.devices import resolve_device

    check_table_path(out)
    (x_train, y_train), (x_test, y_test), n_classes = _task_data(
        train, test, classes, mapping, resolve_device(device)
    )

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
    t = baselines.KNN_TEMPERATURE if temperature is None else temperature
    start = time.perf_counter()
    knn = baselines.knn_predict(x_train, y_train, x_test, n_classes, ks or baselines.KNN_KS, t)
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
    write_table(table, out)
    return table


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
    embeddings: str | Path, out: str | Path | None = None, mapping=None, classes=None
) -> dict:
    """Transferability estimates of one training embedding file (after an optional mapping and
    class selection): LogME, H-score, leave-one-out kNN accuracy (5,000 seeded query rows),
    TMI, NCTI's three terms (NCTI itself ranks several backbones: gather_transferability) and
    NC1/VCI as `imprint collapse` computes them."""
    from imprint.analysis.collapse import class_statistics, collapse_metrics
    from imprint.analysis.transferability import (
        h_score,
        logme,
        loo_knn_accuracy,
        ncti_components,
        tmi,
    )
    from imprint.engine.tasks import remap_labels, task_rows

    if out:
        check_writable(out)
    data = load_embeddings(embeddings)
    mapping = load_mapping(mapping)
    if classes is None:
        classes = sorted({int(c) for c in remap_labels(data.labels, mapping)[1]})
    rows, index = task_rows(data.labels, classes, mapping, where=str(embeddings))
    # One float32 copy of the task's rows; LogME and H-score take their float64 view themselves.
    x = np.ascontiguousarray(data.embeddings[rows], dtype=np.float32)
    stats = class_statistics(x, index, l2_normalise=True)
    collapse = collapse_metrics(stats)
    result = {
        "logme": logme(x, index),
        "h_score": h_score(x, index),
        "loo_knn_accuracy": loo_knn_accuracy(x, index),
        **ncti_components(x, index),
        "tmi": tmi(x, index),
        "nc1": float(collapse["nc1"]),
        "vci": float(collapse["vci"]),
        "n_classes": len(classes),
        "n_samples": int(len(rows)),
    }
    if out:
        from imprint.io import atomic_path

        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def similarity_files(
    files: Sequence[str | Path],
    out: str | Path | None = None,
    names: Sequence[str] | None = None,
    extra_columns: dict | None = None,
) -> pd.DataFrame:
    """Linear CKA between every pair of embedding files of the same images (rows in the same
    order: their labels must agree row by row); one row per pair, named by `names` (default:
    the paths) in columns a and b, after `extra_columns`."""
    import pandas as pd

    from imprint.analysis.similarity import linear_cka

    if len(files) < 2:
        raise ValueError(f"similarity compares two or more embedding files, got {len(files)}")
    if out:
        check_table_path(out)
    sets = [load_embeddings(f) for f in files]
    first = sets[0]
    for f, s in zip(files[1:], sets[1:], strict=True):
        if s.labels.shape != first.labels.shape or not np.array_equal(s.labels, first.labels):
            differ = (
                "different row counts"
                if s.labels.shape != first.labels.shape
                else f"labels differ first at row {int(np.flatnonzero(s.labels != first.labels)[0])}"
            )
            raise ValueError(
                f"{f} and {files[0]} are not embeddings of the same images in the same order "
                f"({differ}); CKA compares representations row by row"
            )
    names = [str(f) for f in files] if names is None else list(names)
    rows = [
        {
            "a": names[i],
            "b": names[j],
            "cka": linear_cka(sets[i].embeddings, sets[j].embeddings),
        }
        for i in range(len(files))
        for j in range(i + 1, len(files))
    ]
    table = pd.DataFrame(rows)
    table["n_samples"] = first.labels.shape[0]
    for i, (name, value) in enumerate((extra_columns or {}).items()):
        table.insert(i, name, value)
    if out:
        write_table(table, out)
    return table


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
    (analysis.transferability.achieved_accuracies). Writes one row per group to `out` and
    the weighted Kendall τ per (dataset, mapping, task) and estimator, and their mean, to
    `agreement_out`.
    """
    import pandas as pd

    from imprint.analysis.transferability import (
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
) -> int:
    """One backbone's embeddings as the concatenation of others' of the same images (Zhang &
    Bottou's rich representations): rows are joined by image identity (each set's ids), not by
    position; each part L2-normalised first (`normalise` "l2", so no part dominates by its
    scale) or as stored ("none"). Rows come in the first part's order. Every part must hold
    the same images with the same labels: a missing image, an extra one or a disagreeing
    label is an error naming the parts. Returns the number of rows written.
    """
    from imprint.io import save_embeddings

    if normalise not in CONCAT_NORMALISATIONS:
        raise ValueError(
            f"concat normalise '{normalise}' is not allowed; allowed: {', '.join(CONCAT_NORMALISATIONS)}"
        )
    if len(parts) < 2:
        raise ValueError(f"a concatenated backbone needs two or more parts, got {list(names)}")
    sets = [load_embeddings(p) for p in parts]
    for name, path, found in zip(names, parts, sets, strict=True):
        if found.ids is None:
            raise ValueError(
                f"{path} (part '{name}') records no image ids, so its rows cannot be joined by "
                "image: re-extract it, or give the .npz an 'ids' array (one integer per row)"
            )
    first = sets[0]
    order = np.argsort(first.ids, kind="stable")
    sorted_ids = first.ids[order]
    blocks = []
    for name, path, found in zip(names, parts, sets, strict=True):
        position = np.searchsorted(sorted_ids, found.ids)
        position = np.minimum(position, len(sorted_ids) - 1)
        known = sorted_ids[position] == found.ids
        if not known.all() or found.ids.size != first.ids.size:
            only_second = found.ids[~known]
            only_first = np.setdiff1d(first.ids, found.ids)
            example = only_second[0] if only_second.size else only_first[0]
            raise ValueError(
                f"{path} (part '{name}') and {parts[0]} (part '{names[0]}') are not embeddings "
                f"of the same images: {only_first.size} image id(s) only in '{names[0]}', "
                f"{only_second.size} only in '{name}' (e.g. id {int(example)})"
            )
        # row_of[i]: the row of `found` holding the image of the first part's row i.
        row_of = np.empty(first.ids.size, dtype=np.int64)
        row_of[order[position]] = np.arange(found.ids.size)
        labels = found.labels[row_of]
        if not np.array_equal(labels, first.labels):
            bad = int(np.flatnonzero(labels != first.labels)[0])
            raise ValueError(
                f"{path} (part '{name}') labels image id {int(first.ids[bad])} "
                f"{int(labels[bad])}, {parts[0]} (part '{names[0]}') {int(first.labels[bad])}"
            )
        x = np.asarray(found.embeddings[row_of], dtype=np.float32)
        if normalise == "l2":
            norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
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
    save_embeddings(out, np.concatenate(blocks, axis=1), first.labels, meta, ids=first.ids)
    return int(first.ids.size)
