"""Figures and tables on files: any registered figure kind, the critical-difference statistics
of results tables, Table 1, and the collapse and model-choice figures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imprint.api.common import read_tables
from imprint.outputs import check_output, write_outputs

if TYPE_CHECKING:
    import pandas as pd


def draw_figure(
    kind: str,
    inputs: dict,
    outputs: dict,
    options: dict | None = None,
    experiment: str | None = None,
    force: bool = False,
) -> dict:
    """Draw a registered figure kind (imprint.planning.figure_kinds) and write all it makes.

    inputs: the kind's tables by name, each a path (read as a table) or a list of paths (read
    as (path, table) pairs, stacked by the kind). outputs: a path per output name (see
    write_outputs). options: the kind's figure_options. Returns what was made, by name, including
    what no output names (the CD diagram's CDResult).
    """
    from imprint.figures.registry import draw_function

    draw = draw_function(kind)
    made = draw(**read_tables(inputs), experiment=experiment, **dict(options or {}))
    write_outputs(made, outputs, force)
    return made


def critical_difference_files(
    tables, out_prefix: str, seed: str | None = None, force: bool = False, **options
):
    """CD statistics and diagram of long-format tables: <prefix>_ranks.csv, _pvalues.csv,
    _summary.txt, .pdf and .png; returns the CDResult.

    Several tables are stacked (e.g. one `imprint evaluate --tag dataset=...` table per
    dataset). seed: a seed column, aggregated by the median first (None: none). options: the
    cd_diagram kind's (figures/cd_diagram.draw), named as `imprint cd` names them: method
    (default config_id), score (accuracy, higher is better), groups (None: those of the
    default voters, analysis.tables.GROUP_COLUMNS, the tables have), alpha (0.05), title,
    max_methods (test and draw only the best by average rank over every method). The
    workflow's rule rank_configurations draws the same kind.
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
    options |= {"seed": seed}
    return draw_figure("cd_diagram", {"results": tables}, outputs, options, force=force)["result"]


def summarise_table1(tables: list[str | Path], outputs: dict) -> pd.DataFrame:
    """The paper's Table 1 over the pooled results tables: outputs csv, md and tex."""
    from imprint.figures import table1

    made = table1.draw(**read_tables({"results": list(tables)}))
    write_outputs(made, outputs)
    return made["csv"]


def plot_collapse(collapse: str | Path, outputs: dict) -> None:
    """NC1 and VCI of the collapse table: outputs nc1_pdf and nc1_png."""
    from imprint.figures import collapse as figure

    write_outputs(figure.draw(**read_tables({"collapse": collapse})), outputs)


def plot_model_choice(kind: str, inputs: dict, outputs: dict) -> None:
    """The model-choice figures (not in the paper): kind "transferability" (inputs
    transferability and agreement tables), "similarity" (input similarity: the CKA tables) or
    "stitching" (inputs stitching and ranks: the stitching tables; similarity: CKA's)."""
    from imprint.figures import model_choice as figure
    from imprint.figures import stitching

    draws = {
        "transferability": figure.draw_transferability,
        "similarity": figure.draw_similarity,
        "stitching": stitching.draw_stitching,
    }
    write_outputs(draws[kind](**read_tables(inputs)), outputs)
