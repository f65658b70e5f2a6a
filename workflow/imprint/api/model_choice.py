"""Which foundation model for my task? on files (not in the paper): transferability estimates
of a training embedding file, their agreement with the accuracies achieved, and the
representation similarity of backbones (what `imprint transferability` and `imprint
similarity` call); the computations are in analysis/."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imprint.api.common import check_distinct, compose_rows, load_mapping, put_first, same_images
from imprint.io import load_embeddings, write_table
from imprint.outputs import check_output, check_table_path, finite_json, write_json

if TYPE_CHECKING:
    import pandas as pd

# What a transferability JSON holds (an earlier one is replaced; any other JSON is kept).
TRANSFERABILITY_KEYS = (
    *("logme", "h_score", "loo_knn_accuracy", "ncti_etf", "ncti_ncc", "ncti_vc", "tmi"),
    *("nc1", "vci", "sfda", "nleep", "parc", "gbc", "ped", "embedding_size"),
    *("parameter_count", "n_classes", "n_samples"),
)


def transferability_file(
    embeddings: str | Path,
    out: str | Path | None = None,
    mapping=None,
    classes=None,
    force: bool = False,
) -> dict:
    """Transferability estimates of one training embedding file (after an optional mapping and
    class selection): LogME, H-score, leave-one-out kNN accuracy (5,000 seeded query rows),
    TMI, NCTI's three terms (NCTI itself ranks several backbones: gather_transferability),
    NC1/VCI as `imprint collapse` computes them, SFDA, NLEEP, PARC, GBC, PED (+ LogME), and
    the static baselines embedding_size (the dimension) and parameter_count (the backbone's
    number of parameters, read from the embedding directory's meta.json, which extraction
    writes; null, with no warning, where it records none: older embeddings, .npz files, a
    concatenation with a part of unknown size).

    An estimator that has no finite value on these data (EstimatorUndefined: e.g. TMI with no
    class of 4 rows, NC1/VCI with one row per class; analysis/transferability/ documents
    each) is written as null, with one warning naming it and why; the JSON is strict (no NaN
    or inf). Invalid input still raises ValueError. force: replace whatever is at `out`.
    """
    from imprint.analysis.transferability.table import estimate_all
    from imprint.engine.tasks import remap_labels, task_rows

    if out:
        inputs = {"embeddings": embeddings, "--mapping": mapping}
        check_output(out, "json", inputs, force, signature=TRANSFERABILITY_KEYS)
    data = load_embeddings(embeddings)
    mapping = load_mapping(mapping)
    if classes is None:
        classes = sorted({int(c) for c in remap_labels(data.labels, mapping)[1]})
    rows, index = task_rows(data.labels, classes, mapping, where=str(embeddings))
    # stacklevel 3: each warning names the caller of transferability_file.
    count = data.meta.get("parameter_count")
    count = int(count) if isinstance(count, int | float) and count == count else None
    result = estimate_all(data.embeddings[rows], index, stacklevel=3, parameter_count=count)
    result |= {"n_classes": len(classes), "n_samples": int(len(rows))}
    result = finite_json(result)  # a safety net: every undefined estimate is None already
    if out:
        write_json(result, out, force)
    return result


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
    check_distinct(files, "similarity compares")
    names = [str(f) for f in files] if names is None else list(names)
    rows_of = same_images(sets, files, names, "CKA compares representations image by image")
    rows = []
    for i in range(len(files)):
        for j in range(i + 1, len(files)):
            # y_rows: j's rows in i's image order (i's in the first file's order, inverted).
            y_rows = compose_rows(rows_of[i], rows_of[j])
            try:
                cka = linear_cka(sets[i].embeddings, sets[j].embeddings, y_rows=y_rows)
            except ValueError as err:  # a constant embedding: name the pair
                raise ValueError(f"{files[i]} ~ {files[j]}: {err}") from None
            rows.append({"a": names[i], "b": names[j], "cka": cka})
    table = pd.DataFrame(rows)
    table["n_samples"] = sets[0].labels.shape[0]
    put_first(table, extra_columns)
    if out:
        write_table(table, out, force)
    return table
