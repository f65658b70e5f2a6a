"""Baselines beside imprinting on files (not in the paper): the linear probe and dinov2's kNN
on one task of two embedding files (what `imprint probe` calls); the computations are in
engine/baselines.py."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from imprint.api.common import check_pair, load_mapping, put_first, task_classes
from imprint.arguments import check_number, check_numbers, check_seed
from imprint.io import load_embeddings, write_table
from imprint.outputs import check_output

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

    from imprint.engine.devices import resolve_device

    inputs = {"--train": train, "--test": test, "--mapping": mapping}
    check_output(out, "table", inputs, force, signature=PROBE_COLUMNS)
    penalties, ks, t, seed = _probe_settings(penalties, ks, temperature, seed)
    (x_train, y_train), (x_test, y_test), n_classes = _task_data(
        train, test, classes, mapping, resolve_device(device)
    )
    ks = _knn_ks(ks, x_train.shape[0], train)

    scoring = {"truth": y_test, "n_classes": n_classes, "seed": seed}
    rows = [_probe_row(x_train, y_train, x_test, penalties, scoring)]
    rows += _knn_rows(x_train, y_train, x_test, ks, t, scoring)
    table = pd.DataFrame(rows, columns=list(PROBE_COLUMNS))
    put_first(table, extra_columns)
    write_table(table, out, force)
    return table


def _probe_row(x_train, y_train, x_test, penalties, scoring: dict) -> dict:
    """The linear probe's results row (its λ searched among `penalties`, seeded)."""
    from imprint.engine.baselines import linear_probe

    start = time.perf_counter()
    probe, search = linear_probe(x_train, y_train, scoring["n_classes"], penalties, scoring["seed"])
    fitted = time.perf_counter()
    return _scored(
        probe.predict(x_test),
        **scoring,
        method="linear_probe",
        k=-1,
        penalty=probe.penalty,
        temperature=float("nan"),
        fit_seconds=fitted - start,
        inference_seconds=time.perf_counter() - fitted,
        penalty_search=json.dumps({f"{p:g}": a for p, a in sorted(search.items())}),
    )


def _knn_rows(x_train, y_train, x_test, ks, temperature, scoring: dict) -> list[dict]:
    """dinov2's kNN results rows, one per k (one pass over the neighbours for every k)."""
    from imprint.engine.baselines import knn_predict

    start = time.perf_counter()
    knn = knn_predict(x_train, y_train, x_test, scoring["n_classes"], ks, temperature)
    seconds = time.perf_counter() - start
    return [
        _scored(
            pred,
            **scoring,
            method="knn",
            k=int(k),
            penalty=float("nan"),
            temperature=temperature,
            fit_seconds=0.0,
            inference_seconds=seconds,
            penalty_search="",
        )
        for k, pred in knn.items()
    ]


# λ beyond this leaves float32 weights of zero (the probe then predicts one class); 1e300
# overflows the objective.
MAX_PENALTY = 1e15


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
