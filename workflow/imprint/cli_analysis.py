"""`imprint collapse` and `imprint cd`: neural-collapse metrics and critical-difference statistics."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np


def collapse_file(
    embeddings: str,
    out: str | None = None,
    mapping=None,
    classes=None,
    l2_normalise=True,
    ood: str | None = None,
) -> dict:
    """NC metrics of one embedding file (after an optional label mapping); JSON to `out`.

    `ood`: an embedding file of out-of-distribution data, for NC5 (``nc5_ood_orthogonality``).
    """
    from imprint.api import load_mapping
    from imprint.analysis.collapse import class_statistics, collapse_metrics, global_mean, ood_orthogonality
    from imprint.io import atomic_path, load_embeddings
    from imprint.engine.tasks import remap_labels

    data = load_embeddings(embeddings)
    rows, mapped = remap_labels(data.labels, load_mapping(mapping))
    labels = mapped
    if rows.shape[0] < data.labels.shape[0]:
        # Dropped rows get a label no class uses instead of being copied out of the memmap
        # (an ImageNet remapping would copy ~1 GB): the metrics read only the listed classes.
        labels = np.full(data.labels.shape[0], mapped.min(initial=0) - 1, dtype=np.int64)
        labels[rows] = mapped
        classes = np.unique(mapped) if classes is None else classes
    stats = class_statistics(data.embeddings, labels, l2_normalise=l2_normalise, classes=classes)
    metrics = collapse_metrics(stats)
    if ood:
        ood_mean = global_mean(load_embeddings(ood).embeddings, l2_normalise=l2_normalise)
        metrics["nc5_ood_orthogonality"] = ood_orthogonality(stats.means, ood_mean)
    metrics = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in metrics.items()}
    if out:
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


DEFAULT_CD_GROUPS = ("backbone", "dataset", "mapping", "task")


def cd_file(
    tables: str | Sequence[str],
    out_prefix: str,
    method_col: str,
    score_col: str,
    group_cols: Sequence[str] | None = None,
    seed_col: str | None = None,
    alpha: float = 0.05,
    title: str | None = None,
    max_methods: int | None = None,
):
    """CD statistics and diagram of long-format tables: <prefix>_ranks.csv, _pvalues.csv, .pdf/.png.

    Several tables are stacked (e.g. one `imprint evaluate --tag dataset=...` table per
    dataset). group_cols=None: those of DEFAULT_CD_GROUPS the tables have.
    """
    import pandas as pd

    from imprint.figures.cd_diagram import plot_cd_diagram
    from imprint.io import atomic_path, read_table, write_table
    from imprint.analysis.stats import critical_difference, describe_cliques

    tables = [tables] if isinstance(tables, (str, os.PathLike)) else list(tables)
    frames = [read_table(t) for t in tables]
    if group_cols is None:
        group_cols = [c for c in DEFAULT_CD_GROUPS if all(c in f.columns for f in frames)]
        for c in DEFAULT_CD_GROUPS:
            lacking = [str(t) for t, f in zip(tables, frames) if c not in f.columns]
            if c not in group_cols and len(lacking) < len(tables):
                raise ValueError(
                    f"column '{c}' is in some tables but not in {', '.join(lacking)}: tag every "
                    f"table alike (imprint evaluate --tag {c}=...), or name the voters with --groups"
                )
        if not group_cols:
            raise ValueError(
                f"{', '.join(map(str, tables))}: none of the default group columns "
                f"{list(DEFAULT_CD_GROUPS)}; name the columns whose values are the voters with "
                "--groups (or add them with imprint evaluate --tag dataset=...)"
            )
    needed = [method_col, score_col, *group_cols, *([seed_col] if seed_col else [])]
    for table, frame in zip(tables, frames):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(f"{table}: no column(s) {missing}; columns are {list(frame.columns)}")
    if len(frames) > 1:
        # A --tag value is text in Parquet but read back from CSV as a number: compared as
        # text, task=1 from either file is one voter, not two.
        frames = [f.astype({c: str for c in group_cols}) for f in frames]
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if max_methods:
        # The pairwise tests are quadratic in the number of methods: test only those drawn,
        # the best by average rank over every method (as the workflow's diagrams do).
        from imprint.analysis.stats import average_ranks, score_matrix

        scores, _ = score_matrix(df, method_col, score_col, group_cols, seed_col=seed_col)
        best = average_ranks(scores)[0]["method"].head(max_methods)
        df = df[df[method_col].isin(best)]
    result = critical_difference(
        df, method_col, score_col, group_cols, seed_col=seed_col, alpha=alpha
    )
    write_table(result.ranks, f"{out_prefix}_ranks.csv")
    write_table(result.pvalues.reset_index(names=method_col), f"{out_prefix}_pvalues.csv")
    fig = plot_cd_diagram(result, title=title, max_methods=max_methods)
    for ext in ("pdf", "png"):
        with atomic_path(f"{out_prefix}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=200, bbox_inches="tight")
    with atomic_path(f"{out_prefix}_summary.txt") as tmp:
        tmp.write_text(f"{result.summary}\n{describe_cliques(result.cliques)}\n")
    return result


def _collapse(args) -> None:
    from imprint.engine.tasks import parse_classes

    metrics = collapse_file(
        args.embeddings,
        out=args.out,
        mapping=args.mapping,
        classes=parse_classes(args.classes) if args.classes else None,
        l2_normalise=not args.no_l2,
        ood=args.ood,
    )
    if not args.out:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        print(f"wrote {args.out}")


def _cd(args) -> None:
    result = cd_file(
        args.tables,
        args.out_prefix,
        method_col=args.method,
        score_col=args.score,
        group_cols=args.groups.split(",") if args.groups is not None else None,
        seed_col=args.seed,
        alpha=args.alpha,
        title=args.title,
        max_methods=args.max_methods,
    )
    print(result.summary)
    print(f"wrote {args.out_prefix}_ranks.csv, _pvalues.csv, _summary.txt, .pdf, .png")


def add_commands(sub) -> None:
    co = sub.add_parser(
        "collapse",
        help="neural-collapse metrics (NC1, VCI, NC2, NC2g, CDNV; NC5 with --ood) of an embedding file",
    )
    co.add_argument("embeddings", help="embedding file (.npz or directory)")
    co.add_argument("--out", help="write the metrics as JSON here (default: print)")
    co.add_argument(
        "--mapping", help="YAML/JSON label mapping applied first (unmapped labels dropped)"
    )
    co.add_argument("--classes", help="only these classes (comma-separated, after mapping)")
    co.add_argument(
        "--no-l2",
        action="store_true",
        help="skip the per-sample L2 normalisation (the paper uses it)",
    )
    co.add_argument(
        "--ood",
        help="embedding file of out-of-distribution data: adds NC5 (nc5_ood_orthogonality)",
    )
    co.set_defaults(func=_collapse)

    cd = sub.add_parser(
        "cd", help="critical-difference statistics and diagram from a long-format table"
    )
    cd.add_argument(
        "tables", nargs="+", metavar="table", help="results tables (.csv or .parquet), stacked"
    )
    cd.add_argument("--out-prefix", required=True, help="prefix of the output files")
    cd.add_argument(
        "--method", default="config_id", help="column naming the method (default: config_id)"
    )
    cd.add_argument(
        "--score", default="accuracy", help="score column, higher is better (default: accuracy)"
    )
    cd.add_argument(
        "--groups",
        help="comma-separated columns whose value combinations are the voters (default: those "
        f"of {','.join(DEFAULT_CD_GROUPS)} the tables have)",
    )
    cd.add_argument(
        "--seed", default=None, help="seed column: seeds are aggregated by the median first"
    )
    cd.add_argument("--alpha", type=float, default=0.05)
    cd.add_argument("--title")
    cd.add_argument(
        "--max-methods",
        type=int,
        help="test and draw only the best N methods by average rank (pairwise tests grow as N²)",
    )
    cd.set_defaults(func=_cd)
