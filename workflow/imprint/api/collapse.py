"""Neural collapse on files: the NC metrics of one embedding file, and their table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from imprint.api.common import load_mapping
from imprint.io import load_embeddings, write_table
from imprint.outputs import check_output, finite_json, write_json

if TYPE_CHECKING:
    import pandas as pd


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

    if out:
        inputs = {"embeddings": embeddings, "--mapping": mapping, "--ood": ood}
        signature = ("nc1", "vci", "cdnv", "nc2_equinorm", "rank_between", "!logme")
        check_output(out, "json", inputs, force, signature=signature)
    data = load_embeddings(embeddings)
    labels, classes = _task_labels(data.labels, mapping, classes, embeddings)
    ood_set = None if ood is None else load_embeddings(ood)
    if ood_set is not None and ood_set.dim != data.dim:
        raise ValueError(
            f"{ood} has dimension {ood_set.dim} but {embeddings} {data.dim}: the "
            "out-of-distribution embeddings must come from the same backbone"
        )
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


def _task_labels(labels, mapping, classes, embeddings) -> tuple:
    """Each row's label after the mapping, and the classes to measure (None: every label).

    Rows the mapping drops get a label no class uses instead of being copied out of the
    memmap (an ImageNet remapping would copy ~1 GB): the metrics read only the listed classes.
    """
    import numpy as np

    from imprint.engine.tasks import remap_labels

    rows, mapped = remap_labels(labels, load_mapping(mapping))
    if classes is not None:
        absent = sorted(set(map(int, classes)) - {int(c) for c in np.unique(mapped)})
        if absent:
            raise ValueError(
                f"{embeddings}: class(es) {absent} have no rows"
                + (f" after the mapping {mapping}" if mapping else "")
                + f"; labels present: {np.unique(mapped)[:20].tolist()}"
            )
    if rows.shape[0] == labels.shape[0]:
        return mapped, classes
    every = np.full(labels.shape[0], mapped.min(initial=0) - 1, dtype=np.int64)
    every[rows] = mapped
    return every, np.unique(mapped) if classes is None else classes


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
