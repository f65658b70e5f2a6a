"""Imprinting on files: a grid on tasks of a training and a test embedding file, all classes at
once (evaluate_files, evaluate_groups) or session by session (incremental_groups), and the
gathering of results tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from imprint.api.common import check_pair, load_mapping, log, put_first, task_classes
from imprint.arguments import check_ls_lambda
from imprint.data.ls_lambda import resolve_ls_lambda
from imprint.engine.vocabulary import DEFAULT_LS_PRECISION, JOINT_GEN
from imprint.io import load_embeddings, write_table
from imprint.outputs import check_results_out

if TYPE_CHECKING:  # pandas is imported where it is used
    import pandas as pd


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
    force: bool = False,
    text_proxies: str | Path | None = None,
) -> pd.DataFrame:
    """Evaluate a grid on one task of two embedding files and write the results table.

    classes=None: every class of the training file (after the mapping), in ascending order.
    ls_lambda=None: the registered λ of `backbone` (or of the backbone the files record);
    ls_precision=None: the default. Only grids with GEN ls/kls read either.
    extra_columns: constant columns put first in the table (e.g. backbone, dataset), so
    tables of several runs can be joined and ranked together. force: replace whatever is at
    `out` (outputs.check_output says what is refused without it). text_proxies: the embedding
    set of the classes' text proxies (data/text_proxies.py) that GEN text and text_mean read.
    """
    group = {"classes": classes, "mapping": mapping, "extra_columns": extra_columns}
    return evaluate_groups(
        train,
        test,
        grid,
        out,
        [group],
        ls_lambda=ls_lambda,
        backbone=backbone,
        device=device,
        progress=progress,
        ls_precision=ls_precision,
        force=force,
        text_proxies=text_proxies,
    )


def evaluate_groups(
    train: str | Path,
    test: str | Path,
    grid: str | Path | dict,
    out: str | Path,
    groups: list[dict],
    ls_lambda: float | None = None,
    backbone: str | None = None,
    device: str | None = None,
    progress: bool = True,
    ls_precision: str | None = DEFAULT_LS_PRECISION,
    force: bool = False,
    text_proxies: str | Path | None = None,
) -> pd.DataFrame:
    """Evaluate a grid on several tasks of the same two embedding files, in one process, and
    write one table: each group's rows in turn, as evaluate_files would give them.

    groups: dicts with evaluate_files's `classes`, `mapping` and `extra_columns` (each may be
    left out). The workflow packs small groups into one job this way, so the start-up
    (importing torch and scikit-learn) is paid once per job, not once per group.
    """
    check_results_out(out, train, test, grid, groups, force, text=text_proxies)  # before the work
    _check_extra_columns(groups)
    if ls_lambda is not None:
        check_ls_lambda(ls_lambda)
    train_set, test_set = _load_pair(train, test)
    configs = _configurations(grid)
    # Only ls/kls use λ: a backbone with none registered can run every other grid.
    needs_lambda = configs["gen"].isin(JOINT_GEN).any()
    backbone = backbone or train_set.meta.get("backbone")
    lam = resolve_ls_lambda(ls_lambda, backbone) if needs_lambda else None
    options = {
        "ls_lambda": lam,
        "device": device,
        "progress": progress,
        "ls_precision": ls_precision or DEFAULT_LS_PRECISION,
        "data_names": (f"training embeddings {train}", f"test embeddings {test}"),
        "text_proxies": load_text_proxies(text_proxies, configs),
    }
    tables, used = [], []
    for group in groups:
        table, classes = _evaluate_group(
            train_set, test_set, configs, group, (str(train), str(test)), options
        )
        tables.append(table)
        used.append(classes)
    results = tables[0] if len(tables) == 1 else _stack(tables)
    results.attrs["classes"] = json.dumps(used[0] if len(used) == 1 else used)
    write_table(results, out, force)
    return results


def _check_extra_columns(groups: list[dict]) -> None:
    # The engine (torch, scikit-learn) is imported where it is used, not at the top: the
    # workflow's small jobs (gathers) import this package too and should not pay for it.
    from imprint.engine.evaluate import RESULT_COLUMNS

    for group in groups:
        clash = sorted(set(group.get("extra_columns") or ()) & set(RESULT_COLUMNS))
        if clash:
            raise ValueError(
                f"extra column(s) {clash} would replace result columns; choose other names "
                f"(result columns: {', '.join(RESULT_COLUMNS)})"
            )


def _load_pair(train, test) -> tuple:
    """The training and test embedding sets, refused where they cannot belong together."""
    train_set, test_set = load_embeddings(train), load_embeddings(test)
    check_pair(train, train_set, test, test_set)
    return train_set, test_set


def _configurations(grid: str | Path | dict) -> pd.DataFrame:
    """A grid's configurations × seeds: a dict as given, or a grid file (errors name it)."""
    from imprint.engine.grid import expand_grid, load_grid

    where = "grid"
    if not isinstance(grid, dict):
        where, grid = load_grid(grid)
    return expand_grid(grid, where=where)


def load_text_proxies(path: str | Path | None, configs: pd.DataFrame):
    """(vectors, labels) of a text-proxy set where the grid has GEN text or text_mean (None
    where it has neither); a ValueError where such a grid has none to read."""
    from imprint.engine.vocabulary import TEXT_GEN

    gens = sorted(set(configs["gen"]) & set(TEXT_GEN))
    if not gens:
        return None
    if path is None:
        raise ValueError(
            f"GEN {', '.join(gens)} reads the classes' text proxies: give their embedding set "
            "(--text-proxies DIR, made by `imprint text-proxies` from a CLIP-like model)"
        )
    import numpy as np

    text = load_embeddings(path)
    return np.asarray(text.embeddings), np.asarray(text.labels)


def _stack(tables: list) -> pd.DataFrame:
    import pandas as pd

    return pd.concat(tables, ignore_index=True)


def _evaluate_group(train_set, test_set, configs, group: dict, names: tuple, options: dict):
    """One group's results table and the classes it imprinted (see evaluate_groups)."""
    from imprint.engine.evaluate import evaluate_grid

    (train, _test), mapping = names, load_mapping(group.get("mapping"))
    classes = task_classes(
        train_set, test_set, group.get("classes"), mapping, names, group.get("mapping")
    )
    extra = group.get("extra_columns") or {}
    label = " ".join(f"{k}={v}" for k, v in extra.items() if k in ("mapping", "task"))
    log.info(
        "evaluating %d configuration runs on classes %s of %s%s",
        len(configs),
        classes,
        train,
        f" ({label})" if label else "",
    )
    results = evaluate_grid(
        train_set.embeddings,
        train_set.labels,
        test_set.embeddings,
        test_set.labels,
        configs,
        classes=list(classes),
        mapping=mapping,
        **options,
    )
    return put_first(results, extra), classes


def incremental_groups(
    train: str | Path,
    test: str | Path,
    grid: str | Path | dict,
    out: str | Path,
    protocol: dict,
    groups: list[dict],
    device: str | None = None,
    progress: bool = True,
    force: bool = False,
    text_proxies: str | Path | None = None,
) -> pd.DataFrame:
    """Class-incremental evaluation (engine.incremental) of a grid on tasks of two embedding
    files, one table: per group (evaluate_groups' classes, mapping, extra_columns) one row per
    configuration × seed × session and the joint upper bound. `protocol`: a packaged
    `protocol` name (engine.incremental.PACKAGED_PROTOCOLS), explicit `sessions` (lists of
    classes), or `base` and `way` splitting the group's classes in their order; `shots`,
    `base_shots`, `protocol_seed` as engine.incremental.Protocol takes them; `methods`:
    {GEN fecam, ranpac or fetril: its options} (engine/incremental_methods.DEFAULTS)."""
    from imprint.engine.incremental import check_protocol, evaluate_incremental, task_protocol

    check_results_out(out, train, test, grid, groups, force, incremental=True, text=text_proxies)
    check_protocol(protocol)  # before the work; task_protocol applies it again per task
    method_options = dict(protocol.get("methods") or {})
    if method_options:
        from imprint.engine.incremental_methods import check_method_options

        check_method_options(method_options)
    train_set, test_set = _load_pair(train, test)
    configs = _configurations(grid)
    texts = load_text_proxies(text_proxies, configs)
    tables = []
    for group in groups:
        what = f"task {group['task']}" if group.get("task") else "the task"
        table = evaluate_incremental(
            train_set.embeddings,
            train_set.labels,
            test_set.embeddings,
            test_set.labels,
            configs,
            task_protocol(protocol, group.get("classes"), what=what),
            mapping=load_mapping(group.get("mapping")),
            train_ids=train_set.ids,
            device=device,
            progress=progress,
            data_names=(f"training embeddings {train}", f"test embeddings {test}"),
            text_proxies=texts,
            method_options=method_options,
        )
        tables.append(put_first(table, group.get("extra_columns")))
    results = _stack(tables)
    write_table(results, out, force)
    return results


def gather_tables(tables: list[str | Path], out: str | Path) -> pd.DataFrame:
    """Stack per-group results tables into one."""
    import pandas as pd

    table = pd.concat([pd.read_parquet(t) for t in tables], ignore_index=True)
    write_table(table, out)
    return table
