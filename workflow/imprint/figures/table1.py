"""Table 1 as text: a GitHub Markdown table and a booktabs LaTeX tabular."""

from __future__ import annotations

import numpy as np
import pandas as pd

from imprint.analysis.tables import TABLE1_COMPONENT_COLUMNS, table1

__all__ = ["draw", "table1_latex", "table1_markdown"]


def _fmt(value: float, signed: bool = False, missing: str = "–") -> str:
    if value is None or not np.isfinite(value):
        return missing
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _best_index(df: pd.DataFrame) -> int | None:
    acc = pd.to_numeric(df["accuracy"], errors="coerce")
    return None if acc.isna().all() else int(np.nanargmax(acc.to_numpy()))


def table1_markdown(df: pd.DataFrame) -> str:
    """Table 1 (as returned by `table1`) as a GitHub markdown table; best accuracy in bold."""
    best = _best_index(df)
    head = [
        "method",
        *TABLE1_COMPONENT_COLUMNS,
        "avg. acc. %",
        "paper %",
        "Δ (pp)",
        "groups",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 6 + "---:|" * 4]
    for i, row in enumerate(df.itertuples(index=False)):
        acc = _fmt(row.accuracy)
        if i == best:
            acc = f"**{acc}**"
        cells = [
            str(row.method),
            *(str(getattr(row, c)) for c in TABLE1_COMPONENT_COLUMNS),
            acc,
            _fmt(row.paper_accuracy),
            _fmt(row.difference, signed=True),
            str(row.n_groups),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def table1_latex(df: pd.DataFrame) -> str:
    """Table 1 as a booktabs LaTeX tabular (needs \\usepackage{booktabs}); best in bold."""
    best = _best_index(df)
    head = [
        "Method",
        r"NORM\textsubscript{pre}",
        "GEN",
        r"NORM\textsubscript{post}",
        r"NORM\textsubscript{inf}",
        "AGG",
        r"Avg.\ acc.\ (\%)",
        r"Paper (\%)",
        r"$\Delta$ (pp)",
        "Groups",
    ]
    lines = [
        r"\begin{tabular}{llllllrrrr}",
        r"\toprule",
        " & ".join(head) + r" \\",
        r"\midrule",
    ]
    for i, row in enumerate(df.itertuples(index=False)):
        acc = _fmt(row.accuracy, missing="--")
        if i == best:
            acc = rf"\textbf{{{acc}}}"
        diff = _fmt(row.difference, signed=True, missing="--")
        if diff.startswith("-") and diff != "--":
            diff = "$-$" + diff[1:]  # a real minus sign, not a hyphen
        cells = [
            _tex(row.method),
            *(_tex(getattr(row, c)) for c in TABLE1_COMPONENT_COLUMNS),
            acc,
            _fmt(row.paper_accuracy, missing="--"),
            diff,
            str(row.n_groups),
        ]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def draw(results: pd.DataFrame | list[tuple[str, pd.DataFrame]]) -> dict:
    """The entry point of rule summarise_table1: Table 1 of the pooled tables, three ways.

    A configuration run by several experiments (Qi et al. is in aggfixed and aggfocus) has
    equal rows in each; table1 averages matches within a group, so pooling changes nothing.
    """
    if isinstance(results, list):
        results = pd.concat([frame for _, frame in results], ignore_index=True)
    table = table1(results)
    markdown = table1_markdown(table)
    return {"csv": table, "md": markdown, "tex": table1_latex(table), "message": markdown}
