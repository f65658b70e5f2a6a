"""File-level entry points: what the `imprint` command and the workflow's scripts call."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import yaml

from imprint.engine.evaluate import RESULT_COLUMNS, evaluate_grid
from imprint.engine.grid import expand_grid, load_grid
from imprint.io import check_table_path, load_embeddings, write_table
from imprint.engine.vocabulary import JOINT_GEN

log = logging.getLogger("imprint")


def load_mapping(source: str | Path | dict | None) -> dict[int, int] | None:
    """A label mapping from a dict, or a YAML/JSON file holding {old label: new label}."""
    if source is None or isinstance(source, dict):
        return {int(k): int(v) for k, v in source.items()} if source else None
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such mapping file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not a valid YAML/JSON mapping file ({err})") from err
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


def resolve_ls_lambda(ls_lambda: float | None, backbone: str | None, meta: dict) -> float | None:
    """λ for ls/kls: given explicitly, or the registered value of the backbone (named or in meta)."""
    if ls_lambda is not None:
        return float(ls_lambda)
    name = backbone or meta.get("backbone")
    if name is None:
        return None
    from imprint.data.backbones import LS_LAMBDA

    if name not in LS_LAMBDA:
        raise ValueError(
            f"no ls λ registered for backbone '{name}' (known: {', '.join(sorted(LS_LAMBDA))}); "
            "pass it with --ls-lambda"
        )
    return LS_LAMBDA[name]


def evaluate_files(
    train: str | Path,
    test: str | Path,
    grid: str | Path | dict,
    out: str | Path,
    classes: list[int] | None = None,
    mapping=None,
    ls_lambda: float | None = None,
    backbone: str | None = None,
    device: str | None = None,
    progress: bool = True,
    extra_columns: dict | None = None,
    ls_precision: str = "float64",
) -> pd.DataFrame:
    """Evaluate a grid on one task of two embedding files and write the results table.

    classes=None: every class of the training file (after the mapping), in ascending order.
    extra_columns: constant columns put first in the table (e.g. backbone, dataset), so
    tables of several runs can be joined and ranked together.
    """
    check_table_path(out)  # before the work, not after it
    clash = sorted(set(extra_columns or ()) & set(RESULT_COLUMNS))
    if clash:
        raise ValueError(
            f"extra column(s) {clash} would replace result columns; choose other names "
            f"(result columns: {', '.join(RESULT_COLUMNS)})"
        )
    train_set, test_set = load_embeddings(train), load_embeddings(test)
    where = "grid" if isinstance(grid, dict) else str(grid)
    if not isinstance(grid, dict):
        where, grid = load_grid(grid)
    configs = expand_grid(grid, where=where)
    mapping = load_mapping(mapping)
    if classes is None:
        from imprint.engine.tasks import remap_labels

        classes = sorted({int(c) for c in remap_labels(train_set.labels, mapping)[1]})
        if not classes:
            kept = " after the mapping" if mapping else ""
            raise ValueError(f"{train}: no training rows{kept}, so no classes to imprint")
    # Only ls/kls use λ: a backbone with none registered can run every other grid.
    needs_lambda = configs["gen"].isin(JOINT_GEN).any()
    lam = resolve_ls_lambda(ls_lambda, backbone, train_set.meta) if needs_lambda else None
    log.info("evaluating %d configuration runs on classes %s of %s", len(configs), classes, train)
    results = evaluate_grid(
        train_set.embeddings,
        train_set.labels,
        test_set.embeddings,
        test_set.labels,
        configs,
        classes=classes,
        mapping=mapping,
        ls_lambda=lam,
        device=device,
        progress=progress,
        ls_precision=ls_precision,
        data_names=(f"training embeddings {train}", f"test embeddings {test}"),
    )
    for i, (name, value) in enumerate((extra_columns or {}).items()):
        results.insert(i, name, value)
    results.attrs["classes"] = json.dumps(classes)
    write_table(results, out)
    return results
