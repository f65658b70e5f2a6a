"""File-level entry points: what the `imprint` command and the workflow's scripts call."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from imprint.arguments import check_ls_lambda
from imprint.data.ls_lambda import registered_ls_lambda
from imprint.engine.vocabulary import DEFAULT_LS_PRECISION, JOINT_GEN
from imprint.io import load_embeddings, read_yaml, save_embeddings, write_table
from imprint.outputs import (
    atomic_path,
    check_output,
    check_results_out,
    finite_json,
    write_json,
    write_outputs,
)

if TYPE_CHECKING:  # pandas is imported where it is used: a collapse job needs none (~0.5 s)
    import pandas as pd

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


def resolve_ls_lambda(ls_lambda: float | None, backbone: str | None, meta: dict) -> float | None:
    """λ for ls/kls: given explicitly, or the registered value of the backbone (named or in meta)."""
    if ls_lambda is not None:
        return check_ls_lambda(ls_lambda)
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
    force: bool = False,
) -> pd.DataFrame:
    """Evaluate a grid on one task of two embedding files and write the results table.

    classes=None: every class of the training file (after the mapping), in ascending order.
    ls_lambda=None: the registered λ of `backbone` (or of the backbone the files record);
    ls_precision=None: the default. Only grids with GEN ls/kls read either.
    extra_columns: constant columns put first in the table (e.g. backbone, dataset), so
    tables of several runs can be joined and ranked together. force: replace whatever is at
    `out` (outputs.check_output says what is refused without it).
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
) -> pd.DataFrame:
    """Evaluate a grid on several tasks of the same two embedding files, in one process, and
    write one table: each group's rows in turn, as evaluate_files would give them.

    groups: dicts with evaluate_files's `classes`, `mapping` and `extra_columns` (each may be
    left out). The workflow packs small groups into one job this way, so the start-up
    (importing torch and scikit-learn, ~5 s) is paid once per job, not once per group.
    """
    # The engine (torch, scikit-learn) is imported here, not at the top: the workflow's small
    # jobs (gathers, joins) call this module too and should not pay for it.
    from imprint.engine.evaluate import RESULT_COLUMNS
    from imprint.engine.grid import expand_grid, load_grid

    check_results_out(out, train, test, grid, groups, force)  # before the work, not after it
    for group in groups:
        clash = sorted(set(group.get("extra_columns") or ()) & set(RESULT_COLUMNS))
        if clash:
            raise ValueError(
                f"extra column(s) {clash} would replace result columns; choose other names "
                f"(result columns: {', '.join(RESULT_COLUMNS)})"
            )
    if ls_lambda is not None:
        check_ls_lambda(ls_lambda)
    train_set, test_set = load_embeddings(train), load_embeddings(test)
    check_pair(train, train_set, test, test_set)
    where = "grid" if isinstance(grid, dict) else str(grid)
    if not isinstance(grid, dict):
        where, grid = load_grid(grid)
    configs = expand_grid(grid, where=where)
    # Only ls/kls use λ: a backbone with none registered can run every other grid.
    needs_lambda = configs["gen"].isin(JOINT_GEN).any()
    lam = resolve_ls_lambda(ls_lambda, backbone, train_set.meta) if needs_lambda else None
    options = {
        "ls_lambda": lam,
        "device": device,
        "progress": progress,
        "ls_precision": ls_precision or DEFAULT_LS_PRECISION,
        "data_names": (f"training embeddings {train}", f"test embeddings {test}"),
    }
    tables, used = [], []
    for group in groups:
        table, classes = _evaluate_group(
            train_set, test_set, configs, group, (str(train), str(test)), options
        )
        tables.append(table)
        used.append(classes)
    import pandas as pd

    results = tables[0] if len(tables) == 1 else pd.concat(tables, ignore_index=True)
    results.attrs["classes"] = json.dumps(used[0] if len(used) == 1 else used)
    write_table(results, out, force)
    return results


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
) -> pd.DataFrame:
    """Class-incremental evaluation (engine.incremental) of a grid on tasks of two embedding
    files, one table: per group (evaluate_groups' classes, mapping, extra_columns) one row per
    configuration × seed × session and the joint upper bound. `protocol`: a packaged
    `protocol` name (engine.incremental.PACKAGED_PROTOCOLS), explicit `sessions` (lists of
    classes), or `base` and `way` splitting the group's classes in their order; `shots`,
    `base_shots`, `protocol_seed` as engine.incremental.Protocol takes them."""
    import pandas as pd

    from imprint.engine.grid import expand_grid, load_grid
    from imprint.engine.incremental import (
        Protocol,
        check_protocol,
        evaluate_incremental,
        packaged_protocol,
        task_sessions,
    )

    check_results_out(out, train, test, grid, groups, force, incremental=True)
    check_protocol(protocol)  # the rules the command and planning apply
    train_set, test_set = load_embeddings(train), load_embeddings(test)
    check_pair(train, train_set, test, test_set)
    where = "grid"
    if not isinstance(grid, dict):
        where, grid = load_grid(grid)
    configs = expand_grid(grid, where=where)
    session_ids = None
    if protocol.get("protocol"):  # a packaged one: its sessions and image lists
        session_ids = packaged_protocol(protocol["protocol"])["session_ids"]
    tables = []
    for group in groups:
        what = f"task {group['task']}" if group.get("task") else "the task"
        sessions = task_sessions(protocol, group.get("classes"), what=what)
        table = evaluate_incremental(
            train_set.embeddings,
            train_set.labels,
            test_set.embeddings,
            test_set.labels,
            configs,
            Protocol(
                tuple(tuple(int(c) for c in s) for s in sessions),
                int(protocol.get("shots", -1)),
                int(protocol.get("base_shots", -1)),
                int(protocol.get("protocol_seed", 0)),
                session_ids,
            ),
            mapping=load_mapping(group.get("mapping")),
            train_ids=train_set.ids,
            device=device,
            progress=progress,
            data_names=(f"training embeddings {train}", f"test embeddings {test}"),
        )
        for i, (name, value) in enumerate((group.get("extra_columns") or {}).items()):
            table.insert(i, name, value)
        tables.append(table)
    results = pd.concat(tables, ignore_index=True)
    write_table(results, out, force)
    return results


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
    for i, (name, value) in enumerate(extra.items()):
        results.insert(i, name, value)
    return results, classes


def collapse_file(
    embeddings: str,
    out: str | None = None,
    mapping=None,
    classes=None,
    l2_normalise=True,
    ood: str | None = None,
    force: bool = False,
) -> dict:
    """NC metrics of one embedding file (after an optional label mapping); JSON to `out`.

    `ood`: an embedding file of out-of-distribution data, for NC5 (``nc5_ood_orthogonality``).
    force: replace whatever is at `out` (outputs.check_output).
    """
    import numpy as np

    from imprint.analysis.collapse import (
        WITHIN_CLASS_METRICS,
        class_statistics,
        collapse_metrics,
        global_mean,
        undefined_reason,
    )
    from imprint.analysis.collapse_classifier import mean_classifier_metrics, ood_orthogonality
    from imprint.engine.tasks import remap_labels

    if out:
        inputs = {"embeddings": embeddings, "--mapping": mapping, "--ood": ood}
        signature = ("nc1", "vci", "cdnv", "nc2_equinorm", "rank_between", "!logme")
        check_output(out, "json", inputs, force, signature=signature)
    data = load_embeddings(embeddings)
    rows, mapped = remap_labels(data.labels, load_mapping(mapping))
    if classes is not None:
        absent = sorted(set(map(int, classes)) - {int(c) for c in np.unique(mapped)})
        if absent:
            raise ValueError(
                f"{embeddings}: class(es) {absent} have no rows"
                + (f" after the mapping {mapping}" if mapping else "")
                + f"; labels present: {np.unique(mapped)[:20].tolist()}"
            )
    ood_set = None if ood is None else load_embeddings(ood)
    if ood_set is not None and ood_set.dim != data.dim:
        raise ValueError(
            f"{ood} has dimension {ood_set.dim} but {embeddings} {data.dim}: the "
            "out-of-distribution embeddings must come from the same backbone"
        )
    labels = mapped
    if rows.shape[0] < data.labels.shape[0]:
        # Dropped rows get a label no class uses instead of being copied out of the memmap
        # (an ImageNet remapping would copy ~1 GB): the metrics read only the listed classes.
        labels = np.full(data.labels.shape[0], mapped.min(initial=0) - 1, dtype=np.int64)
        labels[rows] = mapped
        classes = np.unique(mapped) if classes is None else classes
    try:
        stats = class_statistics(data.embeddings, labels, l2_normalise, classes=classes)
    except ValueError as err:  # e.g. an all-zero row: name the file
        raise ValueError(f"{embeddings}: {err}") from None
    metrics = collapse_metrics(stats) | mean_classifier_metrics(data.embeddings, labels, stats)
    if ood_set is not None:
        ood_mean = global_mean(ood_set.embeddings, l2_normalise=l2_normalise)
        metrics["nc5_ood_orthogonality"] = ood_orthogonality(stats.means, ood_mean)
    metrics = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in metrics.items()}
    # An undefined metric is null, with one warning naming it: never a NaN in the JSON. With
    # one row per class the within-class metrics are 0 by construction, not a measurement.
    why = undefined_reason(stats)
    if int(np.max(stats.counts)) < 2:
        metrics |= {k: float("nan") for k in metrics if k.startswith(WITHIN_CLASS_METRICS)}
    metrics = finite_json(metrics, why=why)
    if out:
        write_json(metrics, out, force)
    return metrics


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
    # Image ids stay distinct across sources: source j's ids shifted by j · 2^40.
    ids = None
    if all(s.ids is not None for s in sets):
        ids = np.concatenate([s.ids + (j << 40) for j, s in enumerate(sets)])
    save_embeddings(out, x, y, meta, ids=ids)
    return int(x.shape[0])


def gather_tables(tables: list[str | Path], out: str | Path) -> pd.DataFrame:
    """Stack per-group results tables into one."""
    import pandas as pd

    table = pd.concat([pd.read_parquet(t) for t in tables], ignore_index=True)
    write_table(table, out)
    return table


def gather_collapse(
    files: list[str | Path], groups: list[tuple[str, str, str]], out: str | Path
) -> pd.DataFrame:
    """One row per collapse JSON file, with its (dataset, backbone, mapping) from `groups`."""
    import pandas as pd

    rows = [
        {**json.loads(Path(f).read_text()), "dataset": d, "backbone": b, "mapping": m}
        for f, (d, b, m) in zip(files, groups, strict=True)
    ]
    table = pd.DataFrame(rows)
    write_table(table, out)
    return table


# --------------------------------------------------------------------------- figures and tables


def draw_figure(
    kind: str,
    inputs: dict,
    outputs: dict,
    options: dict | None = None,
    experiment: str | None = None,
    force: bool = False,
) -> dict:
    """Draw a registered figure kind (imprint.figures.registry) and write all it makes.

    inputs: the kind's tables by name, each a path (read as a table) or a list of paths (read
    as (path, table) pairs, stacked by the kind). outputs: a path per output name (see
    write_outputs). options: the kind's figure_options. Returns what was made, by name, including
    what no output names (the CD diagram's CDResult).
    """
    from imprint.figures.registry import FIGURE_KINDS

    if kind not in FIGURE_KINDS:
        raise ValueError(f"unknown figure kind '{kind}' (known: {', '.join(FIGURE_KINDS)})")
    draw = FIGURE_KINDS[kind].draw_function()
    made = draw(**_read_tables(inputs), experiment=experiment, **dict(options or {}))
    write_outputs(made, outputs, force)
    return made


def critical_difference_files(
    tables,
    out_prefix: str,
    method_col: str = "config_id",
    score_col: str = "accuracy",
    group_cols: list[str] | None = None,
    seed_col: str | None = None,
    alpha: float = 0.05,
    title: str | None = None,
    max_methods: int | None = None,
    force: bool = False,
):
    """CD statistics and diagram of long-format tables: <prefix>_ranks.csv, _pvalues.csv,
    _summary.txt, .pdf and .png; returns the CDResult.

    Several tables are stacked (e.g. one `imprint evaluate --tag dataset=...` table per
    dataset). group_cols=None: those of the default voters (analysis.tables.GROUP_COLUMNS) the
    tables have. max_methods: test and draw only the best by average rank over every method.
    The workflow's rule rank_configurations draws the same kind (cd_diagram).
    """
    import os

    tables = [tables] if isinstance(tables, str | os.PathLike) else list(tables)
    if str(out_prefix).endswith(("/", os.sep)) or Path(out_prefix).is_dir():
        raise ValueError(
            f"--out-prefix {out_prefix}: a prefix of file names (e.g. {out_prefix.rstrip('/')}/cd "
            "writes cd_ranks.csv, cd.pdf, … there), not a folder"
        )
    outputs = {
        "ranks": f"{out_prefix}_ranks.csv",
        "pvalues": f"{out_prefix}_pvalues.csv",
        "cd_diagram_pdf": f"{out_prefix}.pdf",
        "cd_diagram_png": f"{out_prefix}.png",
        "summary": f"{out_prefix}_summary.txt",
    }
    kinds = {  # each output's format and what an earlier one of its kind holds
        "ranks": ("table", ("method", "average_rank")),
        "pvalues": ("pvalues", ()),
        "summary": ("text", ("methods compared over",)),
    }
    for name, path in outputs.items():
        kind, signature = kinds.get(name, (name.rpartition("_")[2], ()))  # pdf, png: drawn
        check_output(path, kind, {"table": tables}, force, "--out-prefix", signature)
    options = {
        "method": method_col,
        "score": score_col,
        "groups": group_cols,
        "seed": seed_col,
        "alpha": alpha,
        "title": title,
        "max_methods": max_methods,
    }
    return draw_figure("cd_diagram", {"results": tables}, outputs, options, force=force)["result"]


def summarise_table1(tables: list[str | Path], outputs: dict) -> pd.DataFrame:
    """The paper's Table 1 over the pooled results tables: outputs csv, md and tex."""
    from imprint.figures import table1

    made = table1.draw(**_read_tables({"results": list(tables)}))
    write_outputs(made, outputs)
    return made["csv"]


def plot_collapse(collapse: str | Path, outputs: dict) -> None:
    """NC1 and VCI of the collapse table: outputs nc1_pdf and nc1_png."""
    from imprint.figures import collapse as figure

    write_outputs(figure.draw(**_read_tables({"collapse": collapse})), outputs)


def plot_model_choice(kind: str, inputs: dict, outputs: dict) -> None:
    """The model-choice figures (not in the paper): kind "transferability" (inputs
    transferability and agreement tables) or "similarity" (input similarity: the CKA tables)."""
    from imprint.figures import model_choice as figure

    draws = {"transferability": figure.draw_transferability, "similarity": figure.draw_similarity}
    write_outputs(draws[kind](**_read_tables(inputs)), outputs)


def _read_tables(inputs: dict) -> dict:
    from imprint.io import read_table

    return {
        name: read_table(value)
        if isinstance(value, str | Path)
        else [(str(p), read_table(p)) for p in value]
        for name, value in inputs.items()
    }
