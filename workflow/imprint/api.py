"""File-level entry points: what the `imprint` command and the workflow's scripts call."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import yaml

from imprint.data.ls_lambda import registered_ls_lambda
from imprint.engine.vocabulary import DEFAULT_LS_PRECISION, JOINT_GEN
from imprint.io import atomic_path, check_table_path, load_embeddings, save_embeddings, write_table

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
    return None if name is None else registered_ls_lambda(name)


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
    ls_precision: str | None = DEFAULT_LS_PRECISION,
) -> pd.DataFrame:
    """Evaluate a grid on one task of two embedding files and write the results table.

    classes=None: every class of the training file (after the mapping), in ascending order.
    ls_lambda=None: the registered λ of `backbone` (or of the backbone the files record);
    ls_precision=None: the default. Only grids with GEN ls/kls read either.
    extra_columns: constant columns put first in the table (e.g. backbone, dataset), so
    tables of several runs can be joined and ranked together.
    """
    # The engine (torch, scikit-learn) is imported here, not at the top: the workflow's small
    # jobs (gathers, joins) call this module too and should not pay for it.
    from imprint.engine.evaluate import RESULT_COLUMNS, evaluate_grid
    from imprint.engine.grid import expand_grid, load_grid

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
        ls_precision=ls_precision or DEFAULT_LS_PRECISION,
        data_names=(f"training embeddings {train}", f"test embeddings {test}"),
    )
    for i, (name, value) in enumerate((extra_columns or {}).items()):
        results.insert(i, name, value)
    results.attrs["classes"] = json.dumps(classes)
    write_table(results, out)
    return results


def prepare_dataset(
    source: str, data_dir: str, out: str | Path, download: bool = True, classes=None
) -> dict:
    """Download (or find) a registry dataset and write its manifest: images and classes per split."""
    from imprint.data.datasets import SPLITS, build_dataset, dataset_targets

    manifest = {"dataset": source, "data_dir": data_dir}
    for split in SPLITS:
        ds = build_dataset(source, data_dir, split, download=download, classes=classes)
        labels = dataset_targets(ds)
        manifest[split] = {"n": int(labels.shape[0]), "classes": sorted({int(v) for v in labels})}
        log.info(
            "%s %s: %d images, %d classes",
            source,
            split,
            labels.shape[0],
            len(manifest[split]["classes"]),
        )
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def join_embeddings(
    parts: list[str | Path], out: str | Path, offsets: list[int], dataset: str
) -> int:
    """Concatenate the embedding sets of a joined dataset's sources, labels of part j + offsets[j].

    Returns the number of rows written.
    """
    import numpy as np

    sets = [load_embeddings(p) for p in parts]
    dims = {s.dim for s in sets}
    if len(dims) != 1:
        raise ValueError(f"sources of {dataset} have different embedding sizes {sorted(dims)}")
    x = np.concatenate([np.asarray(s.embeddings) for s in sets])
    y = np.concatenate([s.labels + off for s, off in zip(sets, offsets, strict=True)])
    meta = {
        **sets[0].meta,
        "dataset": dataset,
        "sources": [s.meta.get("dataset") for s in sets],
        "label_offsets": list(offsets),
    }
    save_embeddings(out, x, y, meta)
    return int(x.shape[0])


def gather_tables(tables: list[str | Path], out: str | Path) -> pd.DataFrame:
    """Stack per-group results tables into one."""
    table = pd.concat([pd.read_parquet(t) for t in tables], ignore_index=True)
    write_table(table, out)
    return table


def gather_collapse(
    files: list[str | Path], groups: list[tuple[str, str, str]], out: str | Path
) -> pd.DataFrame:
    """One row per collapse JSON file, with its (dataset, backbone, mapping) from `groups`."""
    rows = [
        {**json.loads(Path(f).read_text()), "dataset": d, "backbone": b, "mapping": m}
        for f, (d, b, m) in zip(files, groups, strict=True)
    ]
    table = pd.DataFrame(rows)
    write_table(table, out)
    return table
