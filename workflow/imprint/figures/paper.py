"""The paper's figures and Table 1, drawn from long results tables and the collapse table.

Pure functions: DataFrames in, matplotlib Figures, DataFrames or strings out. Nothing is read
or written and no pyplot state is touched; callers save the returned Figure as they like.
Seeds are always reduced to their median per configuration x group first (`seed_medians`);
averages over tasks, mappings or groups are taken of those medians.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator
from scipy import stats

from imprint.engine.vocabulary import CONFIG_KEYS

__all__ = [
    "BACKBONE_STYLE",
    "CONFIG_COLUMNS",
    "GEN_STYLE",
    "GROUP_COLUMNS",
    "TABLE1_METHODS",
    "Table1Method",
    "best_k_table",
    "gen_style",
    "plot_accuracy_overview",
    "plot_accuracy_vs_proxies",
    "plot_collapse",
    "plot_fewshot_curves",
    "plot_multimodal",
    "nc1_gain_pairs",
    "plot_nc1_vs_gain",
    "seed_medians",
    "spearman",
    "table1",
    "table1_latex",
    "table1_markdown",
]

# A group is one "voter": a (backbone, dataset, label mapping, task) combination.
GROUP_COLUMNS = ("backbone", "dataset", "mapping", "task")
CONFIG_COLUMNS = CONFIG_KEYS  # the configuration columns of a results table
NORM_COLUMNS = ("norm_pre", "norm_post", "norm_inf")
_SEED_SUMMARY_EXTRA = ("f1_macro", "n_proxies", "gen_seconds", "inference_seconds")
MAPPING_PATTERN = re.compile(r"^map(\d+)-(\d+)$")

# Okabe-Ito colours (colour-blind safe) plus two from Paul Tol's palette, because ten GENs
# need more than Okabe-Ito's eight; markers and dashes keep lines apart in greyscale too.
GEN_STYLE: dict[str, dict] = {
    "mean": {"label": "mean", "color": "#000000", "marker": "o", "linestyle": "-"},
    "kmeans": {"label": "k-means", "color": "#0072B2", "marker": "s", "linestyle": "-"},
    "kmedoids": {"label": "k-medoids", "color": "#56B4E9", "marker": "D", "linestyle": "-"},
    "fps": {"label": "FPS", "color": "#009E73", "marker": "^", "linestyle": "-"},
    "random": {"label": "random", "color": "#999999", "marker": "v", "linestyle": "-"},
    "cov_max": {"label": "cov-max", "color": "#E69F00", "marker": "P", "linestyle": "-"},
    "all": {"label": "all samples", "color": "#CC79A7", "marker": "*", "linestyle": "-"},
    "ls": {"label": "least squares", "color": "#D55E00", "marker": "X", "linestyle": "--"},
    "kls": {"label": "k-least squares", "color": "#882255", "marker": "p", "linestyle": "--"},
    "none": {"label": "untrained", "color": "#8C6D31", "marker": "h", "linestyle": ":"},
}
BACKBONE_STYLE: dict[str, dict] = {
    "resnet18": {"label": "ResNet-18", "color": "#0072B2", "marker": "o"},
    "resnet50": {"label": "ResNet-50", "color": "#56B4E9", "marker": "s"},
    "vit_b_16": {"label": "ViT-B/16", "color": "#D55E00", "marker": "^"},
    "swin_b": {"label": "Swin-B", "color": "#E69F00", "marker": "D"},
}
DATASET_STYLE: dict[str, dict] = {
    "MNIST": {"color": "#009E73", "marker": "o"},
    "FashionMNIST": {"color": "#CC79A7", "marker": "s"},
    "CIFAR-10": {"color": "#E69F00", "marker": "^"},
    "CombiDigits": {"color": "#000000", "marker": "D"},
    "ImageNet": {"color": "#0072B2", "marker": "X"},
}
_FALLBACK_COLORS = ("#332288", "#117733", "#44AA99", "#88CCEE", "#DDCC77", "#AA4499", "#661100")
_FALLBACK_MARKERS = ("o", "s", "^", "D", "v", "P", "X")

TITLE_PT = 11.5
LABEL_PT = 9.5
TICK_PT = 8.5
LEGEND_PT = 8.5
PANEL_IN = (2.7, 2.05)


# --------------------------------------------------------------------------- seeds and filters


def _normalise_mapping(values: pd.Series) -> pd.Series:
    # Plain datasets carry no remapping; NaN, None and "" all mean the same and must merge.
    out = values.astype(object).where(values.notna(), "none").map(str)
    return out.where(out != "", "none")


def _check_columns(df: pd.DataFrame, needed: Iterable[str], where: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: table lacks the column(s) {missing}")


def seed_medians(results: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration x group: the median accuracy over seeds (and its min/max).

    Rows repeating a (group, configuration, seed) - e.g. the same configuration run by two
    experiments - count once, so seeds of one configuration are pooled across experiments.
    Columns: GROUP_COLUMNS, CONFIG_COLUMNS, `config_id` (when given), `accuracy` (median),
    `accuracy_min`, `accuracy_max`, `n_seeds` and the medians of f1_macro, n_proxies and the
    timings when those columns exist. A missing mapping becomes "none".
    """
    _check_columns(results, [*GROUP_COLUMNS, *CONFIG_COLUMNS, "seed", "accuracy"], "seed_medians")
    keys = [*GROUP_COLUMNS, *CONFIG_COLUMNS]
    extra = [c for c in _SEED_SUMMARY_EXTRA if c in results.columns]
    with_id = "config_id" in results.columns
    cols = [*keys, "seed", "accuracy", *extra] + (["config_id"] if with_id else [])
    df = results[cols].copy()
    df["mapping"] = _normalise_mapping(df["mapping"])
    df = df.drop_duplicates([*keys, "seed"])
    spec = {
        "accuracy": ("accuracy", "median"),
        "accuracy_min": ("accuracy", "min"),
        "accuracy_max": ("accuracy", "max"),
        "n_seeds": ("accuracy", "count"),
        **{c: (c, "median") for c in extra},
    }
    if with_id:
        spec["config_id"] = ("config_id", "first")
    out = df.groupby(keys, dropna=False, sort=True).agg(**spec).reset_index()
    for col in ("k", "fewshot", "m"):
        if out[col].notna().all():
            out[col] = out[col].astype("int64")
    return out


def _select(df: pd.DataFrame, where: str, **conditions) -> pd.DataFrame:
    """Apply equality / membership filters in order, naming the first one that empties df."""
    if df.empty:
        raise ValueError(f"{where}: the results table has no rows")
    for col, want in conditions.items():
        if isinstance(want, list | tuple | set | frozenset):
            kept = df[df[col].isin(list(want))]
            what = f"{col} in {sorted(map(str, want))}"
        else:
            kept = df[df[col] == want]
            what = f"{col} == {want!r}"
        if kept.empty:
            present = sorted(map(str, pd.unique(df[col])))
            shown = ", ".join(present[:10]) + (", ..." if len(present) > 10 else "")
            raise ValueError(f"{where}: no rows with {what} (values present: {shown})")
        df = kept
    return df


def _pick_norms(df: pd.DataFrame, prefer: Sequence[str]) -> tuple[str, str, str]:
    """The preferred (NORMpre, NORMpost, NORMinf) when present, else the most common one."""
    counts = df.groupby(list(NORM_COLUMNS), sort=True).size()
    prefer = tuple(prefer)
    if prefer in set(counts.index):
        return prefer
    return tuple(counts.idxmax())


def _norms_per_gen(
    df: pd.DataFrame, prefer: Sequence[str]
) -> tuple[pd.DataFrame, dict[str, tuple[str, str, str]]]:
    # GENs run under different norms (kls goes without them in most grids), so each GEN
    # keeps its own preferred-or-commonest norm triple instead of being dropped.
    parts, chosen = [], {}
    for gen, part in df.groupby("gen", sort=True):
        triple = _pick_norms(part, prefer)
        chosen[gen] = triple
        mask = np.ones(len(part), dtype=bool)
        for col, value in zip(NORM_COLUMNS, triple):
            mask &= (part[col] == value).to_numpy()
        parts.append(part[mask])
    return pd.concat(parts, ignore_index=True), chosen


def _norm_text(triple: Sequence[str]) -> str:
    return triple[0] if len(set(triple)) == 1 else "/".join(triple)


def _norm_suffix(triple: Sequence[str], prefer: Sequence[str]) -> str:
    if tuple(triple) == tuple(prefer):
        return ""
    return f" (norms {_norm_text(triple)})"


# --------------------------------------------------------------------------- styles and order


def _order(values: Iterable, preferred: Iterable[str]) -> list:
    present = list(dict.fromkeys(values))
    first = [p for p in preferred if p in present]
    return first + sorted((v for v in present if v not in first), key=str)


def gen_style(gen: str) -> dict:
    """GEN_STYLE[gen], or a stable fallback style for a GEN it does not list."""
    if gen in GEN_STYLE:
        return GEN_STYLE[gen]
    i = sum(map(ord, gen)) % len(_FALLBACK_COLORS)
    return {
        "label": gen,
        "color": _FALLBACK_COLORS[i],
        "marker": _FALLBACK_MARKERS[i],
        "linestyle": "-",
    }


def _backbone_style(name: str, index: int = 0) -> dict:
    if name in BACKBONE_STYLE:
        return BACKBONE_STYLE[name]
    i = index % len(_FALLBACK_COLORS)
    return {"label": name, "color": _FALLBACK_COLORS[i], "marker": _FALLBACK_MARKERS[i]}


def _dataset_style(name: str, index: int = 0) -> dict:
    if name in DATASET_STYLE:
        return DATASET_STYLE[name]
    i = index % len(_FALLBACK_COLORS)
    return {"color": _FALLBACK_COLORS[-1 - i], "marker": _FALLBACK_MARKERS[i]}


def _lighten(color: str, amount: float) -> tuple[float, float, float]:
    r, g, b = to_rgb(color)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


def _backbones(values: Iterable) -> list:
    return _order(values, BACKBONE_STYLE)


def _datasets(values: Iterable) -> list:
    return _order(values, DATASET_STYLE)


def _gens(values: Iterable) -> list:
    return _order(values, GEN_STYLE)


def _facet_figure(
    n_rows: int, n_cols: int, *, sharey: str | bool = "row", legend_rows: int = 1
) -> tuple[Figure, np.ndarray]:
    width = PANEL_IN[0] * n_cols + 0.7
    height = PANEL_IN[1] * n_rows + 0.55 + 0.25 * legend_rows
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, sharex=True, sharey=sharey, squeeze=False)
    for ax in axes.flat:
        ax.tick_params(labelsize=TICK_PT)
        ax.grid(True, color="0.9", linewidth=0.6)
        ax.set_axisbelow(True)
    return fig, axes


def _label_facets(axes: np.ndarray, rows: Sequence, cols: Sequence, xlabel: str, ylabel: str):
    for j, backbone in enumerate(cols):
        axes[0, j].set_title(_backbone_style(backbone, j)["label"], fontsize=LABEL_PT + 0.5)
        axes[-1, j].set_xlabel(xlabel, fontsize=LABEL_PT)
    for i, dataset in enumerate(rows):
        axes[i, 0].set_ylabel(f"{dataset}\n{ylabel}", fontsize=LABEL_PT)


def _no_data(ax) -> None:
    ax.text(
        0.5,
        0.5,
        "no data",
        transform=ax.transAxes,
        ha="center",
        va="center",
        color="0.5",
        fontsize=TICK_PT,
    )


def _legend(
    fig: Figure, handles: list, labels: list[str], max_cols: int = 6, ncols: int | None = None
) -> None:
    if not handles:
        return
    if ncols is None:
        # Balanced rows (4 + 3 rather than 6 + 1) read better under a wide figure.
        ncols = math.ceil(len(handles) / _legend_rows(len(handles), max_cols))
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=ncols,
        fontsize=LEGEND_PT,
        frameon=False,
        handlelength=2.4,
    )


def _legend_rows(n: int, max_cols: int = 6) -> int:
    return max(1, math.ceil(n / max_cols))


def _legend_grid_cols(keys: list[tuple[str, int]]) -> int | None:
    per_gen = pd.Series([g for g, _ in keys]).value_counts()
    return int(per_gen.max()) if per_gen.max() <= 5 else None


def _legend_grid(keys: list[tuple[str, int]], entries: dict) -> tuple[list, list[str]]:
    """Legend entries ordered so that each GEN fills one legend row (k across columns)."""
    ncols = _legend_grid_cols(keys)
    if ncols is None:
        return [entries[k][0] for k in keys], [entries[k][1] for k in keys]
    gens = list(dict.fromkeys(g for g, _ in keys))
    blank = (Line2D([], [], linestyle="none"), "")
    grid = [[entries[k] for k in keys if k[0] == g] for g in gens]
    grid = [row + [blank] * (ncols - len(row)) for row in grid]
    # fig.legend fills column by column, so feed the grid transposed.
    flat = [grid[r][c] for c in range(ncols) for r in range(len(grid))]
    return [h for h, _ in flat], [lab for _, lab in flat]


def _log_axis(ax, which: str) -> None:
    # Plain numbers at 1-2-5 steps instead of matplotlib's "4 x 10^-1" minor labels.
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    axis = ax.yaxis if which == "y" else ax.xaxis
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _marker_size(marker: str) -> float:
    # Stars and pentagons look smaller than squares at the same size.
    return 6.5 if marker in ("*", "p", "h") else 4.5


# --------------------------------------------------------------------------- Table 1


@dataclass(frozen=True)
class Table1Method:
    """One row of the paper's Table 1: display names of the components and the row filter."""

    method: str
    components: tuple[str, str, str, str, str]
    """NORMpre, GEN, NORMpost, NORMinf, AGG as the paper prints them."""
    filters: Mapping[str, object] = field(default_factory=dict)
    paper_accuracy: float = float("nan")


_TABLE1_COMMON = {"presampling": "all", "fewshot": -1}
TABLE1_METHODS: tuple[Table1Method, ...] = (
    Table1Method(
        "Qi et al.",
        ("L2", "mean", "L2", "L2", "max"),
        {"norm_pre": "l2", "gen": "mean", "norm_post": "l2", "norm_inf": "l2"}
        | {"agg": "max", "distance": "inner_product"},
        86.79,
    ),
    Table1Method(
        "Hosoda et al.",
        ("none", "mean", "quantile", "none", "max"),
        {"norm_pre": "none", "gen": "mean", "norm_post": "quantile", "norm_inf": "none"}
        | {"agg": "max", "distance": "inner_product"},
        82.90,
    ),
    Table1Method(
        "Janson et al.",
        ("none", "mean", "none", "none", "1-NN"),
        {"norm_pre": "none", "gen": "mean", "norm_post": "none", "norm_inf": "none"}
        | {"agg": "max", "distance": "euclidean"},
        86.64,
    ),
    Table1Method(
        "Ours",
        ("L2", "k-means (k=20)", "L2", "L2", "max"),
        {"norm_pre": "l2", "gen": "kmeans", "k": 20, "norm_post": "l2", "norm_inf": "l2"}
        | {"agg": "max", "distance": "inner_product"},
        91.06,
    ),
    Table1Method(
        "Oracle",
        ("none", "least squares", "none", "none", "max"),
        {"norm_pre": "none", "gen": "ls", "norm_post": "none", "norm_inf": "none"}
        | {"agg": "max", "distance": "inner_product"},
        94.54,
    ),
)
_TABLE1_COMPONENT_COLUMNS = ("NORMpre", "GEN", "NORMpost", "NORMinf", "AGG")


def table1(results: pd.DataFrame, methods: Sequence[Table1Method] = TABLE1_METHODS) -> pd.DataFrame:
    """The paper's Table 1 measured on `results`.

    accuracy = mean over the (backbone, dataset, mapping, task) groups present of the
    seed-median accuracy (if several configurations match a method in one group they are
    averaged first). Presampling 'all' and few-shot -1 throughout. A method without rows gets
    NaN accuracy and n_groups 0.
    """
    med = seed_medians(results)
    if med.empty:
        raise ValueError("table1: the results table has no rows")
    rows = []
    for method in methods:
        mask = np.ones(len(med), dtype=bool)
        for col, value in (_TABLE1_COMMON | dict(method.filters)).items():
            mask &= (med[col] == value).to_numpy()
        per_group = med[mask].groupby(list(GROUP_COLUMNS), sort=False)["accuracy"].mean()
        accuracy = float(per_group.mean()) if len(per_group) else float("nan")
        rows.append(
            {
                "method": method.method,
                **dict(zip(_TABLE1_COMPONENT_COLUMNS, method.components)),
                "accuracy": accuracy,
                "n_groups": int(len(per_group)),
                "paper_accuracy": method.paper_accuracy,
                "difference": accuracy - method.paper_accuracy,
            }
        )
    return pd.DataFrame(rows)


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
        *_TABLE1_COMPONENT_COLUMNS,
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
            *(str(getattr(row, c)) for c in _TABLE1_COMPONENT_COLUMNS),
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
            *(_tex(getattr(row, c)) for c in _TABLE1_COMPONENT_COLUMNS),
            acc,
            _fmt(row.paper_accuracy, missing="--"),
            diff,
            str(row.n_groups),
        ]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- Figure 6


# The figures compare GENs under plain max aggregation on full, unfiltered training sets.
PLAIN_MAX = {"agg": "max", "distance": "inner_product", "presampling": "all"}


def _max_inner(med: pd.DataFrame, where: str, **extra) -> pd.DataFrame:
    return _select(med, where, **PLAIN_MAX, **extra)


def _unplotted_presampling(results: pd.DataFrame) -> str:
    """A title note naming presampling methods in `results` that PLAIN_MAX leaves undrawn."""
    other = sorted(set(results["presampling"]) - {PLAIN_MAX["presampling"]})
    return f"\n({', '.join(other)} presampling not drawn: see the results table)" if other else ""


def _has_plain_max_rows(results: pd.DataFrame, gen: str, **extra) -> bool:
    """Whether _max_inner(…, gen=gen, **extra) would keep any row with k >= 1."""
    wanted = {**PLAIN_MAX, "gen": gen, **extra}
    keep = (results[list(wanted)] == pd.Series(wanted)).all(axis=1) & (results["k"] >= 1)
    return bool(keep.any())


def plot_accuracy_vs_proxies(
    results: pd.DataFrame, *, norms: Sequence[str] = ("l2", "l2", "l2")
) -> Figure:
    """Fig. 6: seed-median accuracy (mean over tasks) against proxies per class k, per GEN.

    Facets: rows = dataset, columns = backbone; y shared within a row. k values sit at equally
    spaced positions with 'all' (k = -1) at the right. `norms` = (NORMpre, NORMpost, NORMinf)
    preferred for every GEN; a GEN never run with them uses its commonest triple (labelled).
    GENs with a single k (mean, ls, all) are drawn as a marker plus a dotted level line.
    """
    where = "plot_accuracy_vs_proxies"
    df = _max_inner(seed_medians(results), where, fewshot=-1)
    df, chosen = _norms_per_gen(df, norms)
    curves = df.groupby(["dataset", "backbone", "gen", "k"], sort=True)["accuracy"].mean()
    curves = curves.reset_index()

    ks = sorted(k for k in curves["k"].unique() if k > 0) + (
        [-1] if (curves["k"] == -1).any() else []
    )
    pos = {k: i for i, k in enumerate(ks)}
    datasets, backbones = _datasets(curves["dataset"]), _backbones(curves["backbone"])
    gens = _gens(curves["gen"])
    fig, axes = _facet_figure(len(datasets), len(backbones), legend_rows=_legend_rows(len(gens)))
    for i, dataset in enumerate(datasets):
        for j, backbone in enumerate(backbones):
            ax = axes[i, j]
            panel = curves[(curves["dataset"] == dataset) & (curves["backbone"] == backbone)]
            if panel.empty:
                _no_data(ax)
            for gen in gens:
                line = panel[panel["gen"] == gen].sort_values("k", key=lambda s: s.map(pos))
                if line.empty:
                    continue
                st = gen_style(gen)
                x = line["k"].map(pos).to_numpy()
                y = line["accuracy"].to_numpy()
                ax.plot(
                    x,
                    y,
                    color=st["color"],
                    marker=st["marker"],
                    linestyle=st["linestyle"],
                    markersize=_marker_size(st["marker"]),
                    linewidth=1.4,
                )
                if len(line) == 1:
                    ax.axhline(y[0], color=st["color"], linestyle=":", linewidth=0.9, alpha=0.7)
    labels = ["all" if k == -1 else str(k) for k in ks]
    for ax in axes[-1]:
        ax.set_xticks(range(len(ks)), labels)
        ax.set_xlim(-0.4, len(ks) - 0.6)
    _label_facets(axes, datasets, backbones, "proxies per class k", "accuracy (%)")
    handles = [_gen_handle(g) for g in gens]
    _legend(fig, handles, [gen_style(g)["label"] + _norm_suffix(chosen[g], norms) for g in gens])
    fig.suptitle(
        "Accuracy vs. number of proxies per class (seed median, mean over tasks)"
        + _unplotted_presampling(results),
        fontsize=TITLE_PT,
    )
    return fig


def _gen_handle(gen: str, **overrides) -> Line2D:
    st = gen_style(gen) | overrides
    return Line2D(
        [], [], color=st["color"], marker=st["marker"], linestyle=st["linestyle"], markersize=5
    )


# --------------------------------------------------------------------------- §5.2 few-shot


def plot_fewshot_curves(
    results: pd.DataFrame, *, norms: Sequence[str] = ("l2", "l2", "l2")
) -> Figure:
    """§5.2: seed-median accuracy against few-shot n per class, one line per (GEN, k).

    x is logarithmic with 'all' (n = -1) at the right. k is the nominal k of the line: where
    n < k the grid lowered the stored k to n, so the line continues through those rows. The
    band is the seed spread (mean over tasks of the per-group min and max over seeds).
    """
    where = "plot_fewshot_curves"
    df = _max_inner(seed_medians(results), where)
    if not (df["fewshot"] > 0).any():
        raise ValueError(f"{where}: no rows with fewshot > 0 (only fewshot = -1, i.e. all)")
    # Only (GEN, norms) combinations that were run few-shot draw a curve.
    combo = ["gen", "norm_pre", "norm_post", "norm_inf"]
    df = df.merge(df.loc[df["fewshot"] > 0, combo].drop_duplicates(), on=combo)
    df, chosen = _norms_per_gen(df, norms)

    lines = []
    for gen, g in df.groupby("gen", sort=False):
        # Nominal k: those stored at the largest n (all = -1 counts as largest), where the
        # grid lowered none of them; smaller n also hold the lowered k = n.
        size = g["fewshot"].replace(-1, np.inf)
        at_largest = g.loc[size == size.max(), "k"]
        nominal = sorted(set(at_largest), key=lambda k: (k == -1, k))
        for k in nominal:
            n = g["fewshot"].to_numpy()
            lowered = (n > 0) & (n < k) if k > 0 else np.zeros(len(n), dtype=bool)
            stored = np.where(lowered, n, k)
            part = g[g["k"].to_numpy() == stored]
            cols = ["accuracy", "accuracy_min", "accuracy_max"]
            agg = part.groupby(["dataset", "backbone", "fewshot"], sort=True)[cols].mean()
            lines.append(agg.reset_index().assign(gen=gen, k_nominal=k))
    curves = pd.concat(lines, ignore_index=True)

    max_n = int(curves.loc[curves["fewshot"] > 0, "fewshot"].max())
    all_x = max_n * 4.0
    curves["x"] = curves["fewshot"].where(curves["fewshot"] > 0, all_x).astype(float)
    keys = sorted(
        {(g, k) for g, k in zip(curves["gen"], curves["k_nominal"])},
        key=lambda gk: (_gens(curves["gen"]).index(gk[0]), gk[1] == -1, gk[1]),
    )
    styles = _fewshot_styles(keys)
    datasets, backbones = _datasets(curves["dataset"]), _backbones(curves["backbone"])
    fig, axes = _facet_figure(len(datasets), len(backbones), legend_rows=_legend_rows(len(keys), 5))
    for i, dataset in enumerate(datasets):
        for j, backbone in enumerate(backbones):
            ax = axes[i, j]
            ax.set_xscale("log")
            panel = curves[(curves["dataset"] == dataset) & (curves["backbone"] == backbone)]
            if panel.empty:
                _no_data(ax)
            for key in keys:
                line = panel[(panel["gen"] == key[0]) & (panel["k_nominal"] == key[1])]
                line = line.sort_values("x")
                if line.empty:
                    continue
                st = styles[key]
                x = line["x"].to_numpy()
                lo, hi = line["accuracy_min"].to_numpy(), line["accuracy_max"].to_numpy()
                if np.any(hi > lo):
                    ax.fill_between(x, lo, hi, color=st["color"], alpha=0.15, linewidth=0)
                finite = x < all_x
                ax.plot(
                    x[finite],
                    line["accuracy"].to_numpy()[finite],
                    color=st["color"],
                    marker=st["marker"],
                    linestyle=st["linestyle"],
                    markersize=3.5,
                    linewidth=1.3,
                )
                if (~finite).any():
                    # 'all' is not a point on the n axis, so it hangs off a dotted link.
                    tail = slice(max(int(finite.sum()) - 1, 0), None)
                    ax.plot(
                        x[tail],
                        line["accuracy"].to_numpy()[tail],
                        color=st["color"],
                        linestyle=":",
                        linewidth=1.0,
                    )
                    ax.plot(
                        x[~finite],
                        line["accuracy"].to_numpy()[~finite],
                        color=st["color"],
                        marker=st["marker"],
                        linestyle="none",
                        markersize=4.5,
                    )
            ax.axvline(math.sqrt(max_n * all_x), color="0.75", linewidth=0.8, linestyle="--")
    decades = [10**e for e in range(0, int(math.log10(max_n)) + 1)]
    for ax in axes.flat:
        ax.set_xticks([*decades, all_x], [f"{d:g}" for d in decades] + ["all"])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(0.7, all_x * 1.4)
    _label_facets(axes, datasets, backbones, "training samples per class n", "accuracy (%)")
    entries = {
        key: (
            Line2D(
                [],
                [],
                color=styles[key]["color"],
                marker=styles[key]["marker"],
                linestyle=styles[key]["linestyle"],
                markersize=5,
            ),
            f"{gen_style(key[0])['label']}, k={'all' if key[1] == -1 else key[1]}"
            + _norm_suffix(chosen[key[0]], norms),
        )
        for key in keys
    }
    _legend(fig, *_legend_grid(keys, entries), ncols=_legend_grid_cols(keys))
    fig.suptitle(
        "Few-shot accuracy (seed median, mean over tasks; band: seed min–max)"
        + _unplotted_presampling(results),
        fontsize=TITLE_PT,
    )
    return fig


def _fewshot_styles(keys: list[tuple[str, int]]) -> dict[tuple[str, int], dict]:
    # One hue per GEN; within a GEN larger k is darker and changes dash, so k reads from both.
    dashes = ("-", "--", "-.", ":")
    out = {}
    for gen in dict.fromkeys(g for g, _ in keys):
        ks = [k for g, k in keys if g == gen]
        base = gen_style(gen)
        for rank, k in enumerate(ks):
            light = 0.55 * (len(ks) - 1 - rank) / max(len(ks) - 1, 1)
            out[(gen, k)] = {
                "color": _lighten(base["color"], light),
                "marker": base["marker"],
                "linestyle": dashes[rank % len(dashes)] if len(ks) > 1 else base["linestyle"],
            }
    return out


# --------------------------------------------------------------------------- §5.3 multi-modality


def _k_curves(
    results: pd.DataFrame, where: str, gen: str, norms: Sequence[str]
) -> tuple[pd.DataFrame, tuple[str, str, str]]:
    """Seed-median accuracy per (backbone, dataset, mapping, k >= 1), mean over tasks."""
    df = _max_inner(seed_medians(results), where, fewshot=-1, gen=gen)
    df = df[df["k"] >= 1]
    if df.empty:
        raise ValueError(f"{where}: no rows with gen == {gen!r} and k >= 1")
    triple = _pick_norms(df, norms)
    df = _select(df, where, **dict(zip(NORM_COLUMNS, triple)))
    grouped = df.groupby(["backbone", "dataset", "mapping", "k"], sort=True)
    curves = grouped.agg(accuracy=("accuracy", "mean"), n_tasks=("task", "nunique"))
    return curves.reset_index(), triple


def _mapping_parts(mapping: str) -> tuple[float, float]:
    match = MAPPING_PATTERN.match(str(mapping))
    return (float(match[1]), float(match[2])) if match else (float("nan"), float("nan"))


def best_k_table(
    results: pd.DataFrame, *, gen: str = "kmeans", norms: Sequence[str] = ("l2", "l2", "l2")
) -> pd.DataFrame:
    """Per (backbone, dataset, mapping): the k with the best seed-median accuracy.

    Accuracy is the seed median averaged over tasks; ties go to the smallest k. Columns:
    backbone, dataset, mapping, merged_classes (i of 'map{i}-{j}', else NaN), variation (j),
    best_k, best_accuracy, accuracy_k1, gain_over_k1, n_k, n_tasks, norm_pre/post/inf.
    """
    curves, triple = _k_curves(results, "best_k_table", gen, norms)
    rows = []
    for (backbone, dataset, mapping), part in curves.groupby(
        ["backbone", "dataset", "mapping"], sort=False
    ):
        acc = part["accuracy"].to_numpy()
        best = np.nanmax(acc)
        best_k = int(part["k"].to_numpy()[np.isclose(acc, best, rtol=0, atol=1e-9)].min())
        at_one = part.loc[part["k"] == 1, "accuracy"]
        k1 = float(at_one.iloc[0]) if len(at_one) else float("nan")
        i, j = _mapping_parts(mapping)
        rows.append(
            {
                "backbone": backbone,
                "dataset": dataset,
                "mapping": mapping,
                "merged_classes": i,
                "variation": j,
                "best_k": best_k,
                "best_accuracy": float(best),
                "accuracy_k1": k1,
                "gain_over_k1": float(best) - k1,
                "n_k": int(part["k"].nunique()),
                "n_tasks": int(part["n_tasks"].max()),
                **dict(zip(NORM_COLUMNS, triple)),
            }
        )
    out = pd.DataFrame(rows)
    order_b = {b: n for n, b in enumerate(_backbones(out["backbone"]))}
    order_d = {d: n for n, d in enumerate(_datasets(out["dataset"]))}
    out = out.assign(_b=out["backbone"].map(order_b), _d=out["dataset"].map(order_d)).sort_values(
        ["_b", "_d", "merged_classes", "variation", "mapping"], na_position="first"
    )
    return out.drop(columns=["_b", "_d"]).reset_index(drop=True)


MERGED_METHODS = (  # (method, GEN whose curve it reads, k: 1 or the best)
    ("mean", "kmeans", "one"),
    ("ls", "kls", "one"),
    ("kmeans", "kmeans", "best"),
    ("kls", "kls", "best"),
)


def _pick_best_k(per_k: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The row of the best accuracy per group of `keys`; ties (1e-9) go to the smallest k."""
    per_k = per_k.sort_values([*keys, "k"])
    top = per_k.groupby(keys)["accuracy"].transform("max")
    best = per_k[np.isclose(per_k["accuracy"], top, rtol=0, atol=1e-9)]
    return best.groupby(keys, sort=False).head(1)


def merged_classes_table(
    results: pd.DataFrame,
    *,
    norms: Sequence[str] = ("l2", "l2", "l2"),
    oracle_norms: Sequence[str] = ("none", "none", "none"),
) -> pd.DataFrame:
    """§5.3 as the paper plots it: accuracy against i, the classes merged into one label.

    Over the remappings 'map{i}-{j}': the seed-median accuracy (mean over tasks) is averaged
    over the variations j for every k, and then — as the reference's analysis does — the k
    with the best average is picked (ties: the smallest k). Several tasks of one remapping are
    averaged first (the paper's §5.3 grids have the one task 'all'). Methods: mean and ls are
    k-means and kls at k = 1; kmeans and kls at their best k. kls uses `oracle_norms`, the
    others `norms` (each falls back to the first norm triple present). Columns: backbone, dataset,
    merged_classes, method, gen, k, accuracy (mean over j), std (over j), n_variations, ci95
    (1.96 std / sqrt(n)), norm_pre/post/inf. Empty when no remapping is present.
    """
    columns = ["backbone", "dataset", "merged_classes", "method", "gen", "k", "accuracy"]
    columns += ["std", "n_variations", "ci95", *NORM_COLUMNS]
    parts = []
    keys = ["backbone", "dataset", "merged_classes"]
    for gen in dict.fromkeys(g for _, g, _ in MERGED_METHODS):  # each curve once: kmeans, kls
        if not _has_plain_max_rows(results, gen, fewshot=-1):
            continue  # e.g. kls only in few-shot or mNN rows: no such lines
        curves, triple = _k_curves(
            results, "merged_classes_table", gen, oracle_norms if gen == "kls" else norms
        )
        curves["merged_classes"] = [_mapping_parts(m)[0] for m in curves["mapping"]]
        curves = curves[curves["merged_classes"].notna()]
        if curves.empty:
            continue
        per_k = (
            curves.groupby([*keys, "k"], sort=True)["accuracy"]
            .agg(accuracy="mean", std="std", n_variations="count")
            .reset_index()
        )
        for method, _, which in (m for m in MERGED_METHODS if m[1] == gen):
            chosen = per_k[per_k["k"] == 1] if which == "one" else _pick_best_k(per_k, keys)
            parts.append(chosen.assign(method=method, gen=gen, **dict(zip(NORM_COLUMNS, triple))))
    if not parts:
        return pd.DataFrame(columns=columns)
    out = pd.concat(parts, ignore_index=True)
    out["ci95"] = 1.96 * out["std"] / np.sqrt(out["n_variations"])
    out["k"] = out["k"].astype(int)
    order_b = {b: n for n, b in enumerate(_backbones(out["backbone"]))}
    order_m = {m: n for n, (m, _, _) in enumerate(MERGED_METHODS)}
    out = out.assign(_b=out["backbone"].map(order_b), _m=out["method"].map(order_m))
    out = out.sort_values(["_b", "dataset", "_m", "merged_classes"])
    return out[columns].reset_index(drop=True)


def plot_accuracy_vs_merged(table: pd.DataFrame) -> Figure:
    """The paper's §5.3 comparison: accuracy against classes merged per label, per backbone.

    One panel per (dataset with remappings, backbone); mean and ls (k = 1) solid, k-means and
    kls at their best k dashed with that k written at each point; bands: 95 % CI over the
    variations j. `table` is merged_classes_table's.
    """
    backbones = _backbones(table["backbone"]) or ["(none)"]
    datasets = _datasets(table["dataset"]) or ["(none)"]
    methods = [m for m, _, _ in MERGED_METHODS if m in set(table["method"])]
    legend_cols = 2 if len(backbones) < 3 else 4
    fig, axes = _facet_figure(
        len(datasets),
        len(backbones),
        sharey=False,
        legend_rows=_legend_rows(len(methods), legend_cols) + 1,
    )
    for r, dataset in enumerate(datasets):
        for c, backbone in enumerate(backbones):
            ax = axes[r, c]
            panel = table[(table["dataset"] == dataset) & (table["backbone"] == backbone)]
            if panel.empty:
                _no_data(ax)
                continue
            for method in methods:
                line = panel[panel["method"] == method].sort_values("merged_classes")
                if line.empty:
                    continue
                st = gen_style(method)
                best = method in ("kmeans", "kls")
                x, y = line["merged_classes"].to_numpy(), line["accuracy"].to_numpy()
                ax.plot(
                    x,
                    y,
                    color=st["color"],
                    linestyle="--" if best else "-",
                    marker=st["marker"],
                    markersize=3,
                    linewidth=1.5,
                )
                ci = line["ci95"].fillna(0.0).to_numpy()
                if len(x) > 1:
                    ax.fill_between(x, y - ci, y + ci, color=st["color"], alpha=0.15, linewidth=0)
                else:  # a band needs two points
                    ax.errorbar(x, y, yerr=ci, color=st["color"], capsize=3, linewidth=1)
                if best:
                    for xi, yi, k in zip(x, y, line["k"]):
                        ax.annotate(
                            f"{k}",
                            (xi, yi),
                            xytext=(0, 3),
                            textcoords="offset points",
                            ha="center",
                            fontsize=TICK_PT - 2,
                            color=st["color"],
                        )
            _integer_ticks(ax, [int(i) for i in sorted(table["merged_classes"].unique())])
    _label_facets(axes, datasets, backbones, "classes merged per label i", "accuracy (%)")
    labels = {
        "mean": "mean (k-means, k = 1)",
        "ls": "least squares (kls, k = 1)",
        "kmeans": "k-means, best k (numbers: k)",
        "kls": "kls, best k",
    }
    handles = [
        Line2D(
            [],
            [],
            color=gen_style(m)["color"],
            marker=gen_style(m)["marker"],
            markersize=3,
            linestyle="--" if m in ("kmeans", "kls") else "-",
        )
        for m in methods
    ]
    _legend(fig, handles, [labels[m] for m in methods], max_cols=legend_cols)
    fig.suptitle(
        "Accuracy vs. classes merged per label\n(mean over variations j ± 95 % CI; "
        "best k picked on the mean)",
        fontsize=TITLE_PT,
    )
    return fig


def plot_multimodal(
    results: pd.DataFrame, *, gen: str = "kmeans", norms: Sequence[str] = ("l2", "l2", "l2")
) -> Figure:
    """§5.3: accuracy against k per mapping group, one panel per backbone.

    A plain (dataset, mapping) is one dotted line; remappings 'map{i}-{j}' are averaged over the
    variations j into one line per i (sequential colours). When such remappings exist an extra
    panel shows, per backbone, the best k of each averaged line against i (the reference's
    order: average over j, then pick k) over a band of the per-variation best k (mean ± std).
    Rings mark each line's best k.
    """
    where = "plot_multimodal"
    curves, triple = _k_curves(results, where, gen, norms)
    best = best_k_table(results, gen=gen, norms=norms)
    parts = curves["mapping"].map(_mapping_parts)
    curves["merged_classes"] = [p[0] for p in parts]
    plain = curves[curves["merged_classes"].isna()]
    remapped = curves[curves["merged_classes"].notna()]

    line_keys: list[tuple[str, str, float]] = []  # (dataset, mapping or "", i or NaN)
    for dataset in _datasets(plain["dataset"]):
        for mapping in sorted(plain.loc[plain["dataset"] == dataset, "mapping"].unique()):
            line_keys.append((dataset, mapping, float("nan")))
    remap_sets = _datasets(remapped["dataset"])
    i_values = sorted(remapped["merged_classes"].unique())
    for dataset in remap_sets:
        for i in i_values:
            line_keys.append((dataset, "", i))
    styles = _multimodal_styles(line_keys, plain, i_values)

    backbones = _backbones(curves["backbone"])
    with_best = len(remapped) > 0
    n_cols = len(backbones) + int(with_best)
    fig = Figure(
        figsize=(
            PANEL_IN[0] * n_cols + 0.7,
            PANEL_IN[1] + 0.9 + 0.25 * _legend_rows(len(line_keys), 7),
        ),
        layout="constrained",
    )
    axes = fig.subplots(1, n_cols, squeeze=False)[0]
    for ax in axes[1 : len(backbones)]:
        ax.sharey(axes[0])
    for j, backbone in enumerate(backbones):
        ax = axes[j]
        panel = curves[curves["backbone"] == backbone]
        for key in line_keys:
            dataset, mapping, i = key
            if np.isnan(i):
                line = panel[(panel["dataset"] == dataset) & (panel["mapping"] == mapping)]
            else:
                line = panel[(panel["dataset"] == dataset) & (panel["merged_classes"] == i)]
                line = line.groupby("k", as_index=False)["accuracy"].mean()
            if line.empty:
                continue
            line = line.sort_values("k")
            st = styles[key]
            x, y = line["k"].to_numpy(), line["accuracy"].to_numpy()
            ax.plot(
                x,
                y,
                color=st["color"],
                linestyle=st["linestyle"],
                marker=st["marker"],
                markersize=2.5,
                linewidth=1.3,
            )
            top = int(np.nanargmax(y))
            ax.plot(
                x[top],
                y[top],
                marker="o",
                markersize=7,
                markerfacecolor="none",
                markeredgecolor=st["color"],
                markeredgewidth=1.2,
                linestyle="none",
            )
        ax.set_title(_backbone_style(backbone, j)["label"], fontsize=LABEL_PT + 0.5)
        ax.set_xlabel("proxies per class k", fontsize=LABEL_PT)
        _integer_ticks(ax, sorted(curves["k"].unique()))
    axes[0].set_ylabel("accuracy (%)", fontsize=LABEL_PT)
    if with_best:
        _best_k_panel(axes[-1], curves, best)
    for ax in axes:
        ax.tick_params(labelsize=TICK_PT)
        ax.grid(True, color="0.9", linewidth=0.6)
        ax.set_axisbelow(True)
    handles = [
        Line2D(
            [],
            [],
            color=styles[k]["color"],
            linestyle=styles[k]["linestyle"],
            marker=styles[k]["marker"],
            markersize=4,
        )
        for k in line_keys
    ]
    _legend(fig, handles, [styles[k]["label"] for k in line_keys], max_cols=7)
    fig.suptitle(
        f"Accuracy vs. k for {gen_style(gen)['label']} (norms {_norm_text(triple)}; seed median, "
        "mean over tasks; rings: best k)",
        fontsize=TITLE_PT,
    )
    return fig


def _integer_ticks(ax, ks: Sequence[int]) -> None:
    step = 1 if len(ks) <= 8 else 2
    ticks = [k for n, k in enumerate(ks) if n % step == 0]
    ax.set_xticks(ticks, [str(k) for k in ticks])


def _multimodal_styles(line_keys, plain, i_values) -> dict:
    cmap = colormaps["viridis"]
    styles = {}
    multi = plain.groupby("dataset")["mapping"].nunique()
    for n, (dataset, mapping, i) in enumerate(line_keys):
        if np.isnan(i):
            ds = _dataset_style(dataset, n)
            label = dataset if multi.get(dataset, 1) == 1 else f"{dataset} ({mapping})"
            styles[(dataset, mapping, i)] = {
                "color": ds["color"],
                "linestyle": ":",
                "marker": ds["marker"],
                "label": label,
            }
        else:
            t = 0.0 if len(i_values) == 1 else i_values.index(i) / (len(i_values) - 1)
            styles[(dataset, mapping, i)] = {
                "color": cmap(0.9 * t),
                "linestyle": "-",
                "marker": "",
                "label": f"{dataset} i={int(i)}",
            }
    return styles


def _best_k_of_mean(curves: pd.DataFrame) -> pd.DataFrame:
    """Per (backbone, dataset, i): the k whose accuracy, averaged over the variations j, is best.

    The reference's order (average over j, then pick k); ties go to the smallest k.
    """
    rem = curves[curves["merged_classes"].notna()]
    keys = ["backbone", "dataset", "merged_classes"]
    per_k = rem.groupby([*keys, "k"], sort=True)["accuracy"].mean().reset_index()
    return _pick_best_k(per_k, keys)


def _best_k_panel(ax, curves: pd.DataFrame, best: pd.DataFrame) -> None:
    rem = best[best["merged_classes"].notna()]
    of_mean = _best_k_of_mean(curves)
    lines = [
        (b, d)
        for b in _backbones(rem["backbone"])
        for d in _datasets(rem["dataset"])
        if ((rem["backbone"] == b) & (rem["dataset"] == d)).any()
    ]
    several_sets = rem["dataset"].nunique() > 1
    for n, (backbone, dataset) in enumerate(lines):
        st = _backbone_style(backbone, n)
        # Small horizontal offsets keep the lines' markers apart.
        offset = (n - (len(lines) - 1) / 2) * 0.08
        line = of_mean[(of_mean["backbone"] == backbone) & (of_mean["dataset"] == dataset)]
        ax.plot(
            line["merged_classes"] + offset,
            line["k"],
            color=st["color"],
            marker=_dataset_style(dataset)["marker"] if several_sets else st["marker"],
            markersize=4,
            linewidth=1.2,
            label=f"{st['label']} · {dataset}" if several_sets else st["label"],
        )
        mine = rem[(rem["backbone"] == backbone) & (rem["dataset"] == dataset)]
        stat = mine.groupby("merged_classes")["best_k"].agg(["mean", "std"]).reset_index()
        ax.fill_between(
            stat["merged_classes"] + offset,
            stat["mean"] - stat["std"].fillna(0.0),
            stat["mean"] + stat["std"].fillna(0.0),
            color=st["color"],
            alpha=0.12,
            linewidth=0,
        )
    ax.set_xlabel("classes merged per label i", fontsize=LABEL_PT)
    ax.set_ylabel("best k of the mean over j\n(band: per-j best k, mean ± std)", fontsize=LABEL_PT)
    ax.set_title("Best k vs. multi-modality", fontsize=LABEL_PT + 0.5)
    _integer_ticks(ax, [int(i) for i in sorted(rem["merged_classes"].unique())])
    ax.legend(fontsize=LEGEND_PT - 1, frameon=False)


# --------------------------------------------------------------------------- neural collapse


def _collapse_table(collapse: pd.DataFrame, where: str, needed: Sequence[str]) -> pd.DataFrame:
    _check_columns(collapse, ["dataset", "backbone", "mapping", *needed], where)
    if collapse.empty:
        raise ValueError(f"{where}: the collapse table has no rows")
    df = collapse.copy()
    df["mapping"] = _normalise_mapping(df["mapping"])
    return df


def plot_collapse(
    collapse: pd.DataFrame,
    *,
    nc1_column: str = "nc1",
    reference_column: str = "nc1_reference_centring",
) -> Figure:
    """NC1 (log) and VCI per backbone and dataset, reference-centred NC1 hatched beside NC1.

    Plain (dataset, mapping) rows are grouped bars; 'map{i}-{j}' remappings get an extra
    column of panels: the metric against i, mean over variations j with a min-max band
    (dashed: the reference-centring variant).
    """
    where = "plot_collapse"
    df = _collapse_table(collapse, where, [nc1_column, "vci"])
    with_ref = reference_column in df.columns and df[reference_column].notna().any()
    parts = df["mapping"].map(_mapping_parts)
    df["merged_classes"] = [p[0] for p in parts]
    plain = df[df["merged_classes"].isna()]
    remapped = df[df["merged_classes"].notna()]
    backbones = _backbones(df["backbone"])

    cats = []
    for dataset in _datasets(plain["dataset"]):
        for mapping in sorted(plain.loc[plain["dataset"] == dataset, "mapping"].unique()):
            cats.append((dataset, mapping))
    n_maps = plain.groupby("dataset")["mapping"].nunique()
    cat_labels = [d if n_maps.get(d, 1) == 1 else f"{d}\n({m})" for d, m in cats]

    widths = []
    if cats:
        widths.append(max(3.4, 0.15 * len(cats) * len(backbones) * (1 + with_ref) + 1.4))
    if len(remapped):
        widths.append(3.4)
    fig = Figure(figsize=(sum(widths) + 0.6, 5.6), layout="constrained")
    axes = fig.subplots(2, len(widths), squeeze=False, width_ratios=widths)
    metrics = [(nc1_column, "NC1 (log scale)", True), ("vci", "VCI", False)]

    if cats:
        for row, (col, ylabel, log) in enumerate(metrics):
            ax = axes[row, 0]
            n_var = 2 if with_ref and log else 1
            bar_w = 0.8 / (len(backbones) * n_var)
            for b, backbone in enumerate(backbones):
                st = _backbone_style(backbone, b)
                for c, (dataset, mapping) in enumerate(cats):
                    sel = plain[
                        (plain["backbone"] == backbone)
                        & (plain["dataset"] == dataset)
                        & (plain["mapping"] == mapping)
                    ]
                    if sel[col].isna().all():
                        continue
                    x0 = c - 0.4 + (b * n_var + 0.5) * bar_w
                    ax.bar(x0, sel[col].mean(), bar_w, color=st["color"], edgecolor=st["color"])
                    if with_ref and log:
                        ax.bar(
                            x0 + bar_w,
                            sel[reference_column].mean(),
                            bar_w,
                            facecolor="white",
                            edgecolor=st["color"],
                            hatch="////",
                            linewidth=0.8,
                        )
            ax.set_xticks(range(len(cats)), cat_labels)
            ax.set_xlim(-0.55, len(cats) - 0.45)
            ax.set_ylabel(ylabel, fontsize=LABEL_PT)
            if log:
                _log_axis(ax, "y")
                ax.axhline(1.0, color="0.4", linewidth=0.8, linestyle="--")
                ax.annotate(
                    "NC1 = 1",
                    (1.0, 1.0),
                    xycoords=("axes fraction", "data"),
                    xytext=(-2, 2),
                    textcoords="offset points",
                    ha="right",
                    va="bottom",
                    fontsize=TICK_PT - 1,
                    color="0.35",
                )
        axes[0, 0].set_title("NC1 per backbone and dataset", fontsize=LABEL_PT + 0.5)
        axes[1, 0].set_title("VCI per backbone and dataset", fontsize=LABEL_PT + 0.5)

    if len(remapped):
        for row, (col, ylabel, log) in enumerate(metrics):
            ax = axes[row, -1]
            variants = [(col, "-")] + ([(reference_column, "--")] if with_ref and log else [])
            for b, backbone in enumerate(backbones):
                part = remapped[remapped["backbone"] == backbone]
                if part.empty:
                    continue
                st = _backbone_style(backbone, b)
                for value_col, dash in variants:
                    stat = part.groupby("merged_classes")[value_col].agg(["mean", "min", "max"])
                    x = stat.index.to_numpy()
                    if dash == "-":
                        ax.fill_between(
                            x, stat["min"], stat["max"], color=st["color"], alpha=0.15, linewidth=0
                        )
                    ax.plot(
                        x,
                        stat["mean"],
                        color=st["color"],
                        linestyle=dash,
                        marker=st["marker"] if dash == "-" else "",
                        markersize=3.5,
                        linewidth=1.2,
                    )
            ax.set_xlabel("classes merged per label i", fontsize=LABEL_PT)
            ax.set_ylabel(ylabel, fontsize=LABEL_PT)
            if log:
                _log_axis(ax, "y")
            _integer_ticks(ax, [int(i) for i in sorted(remapped["merged_classes"].unique())])
        names = ", ".join(_datasets(remapped["dataset"]))
        axes[0, -1].set_title(f"NC1, {names} remappings", fontsize=LABEL_PT + 0.5)
        axes[1, -1].set_title(f"VCI, {names} remappings", fontsize=LABEL_PT + 0.5)

    for ax in axes.flat:
        ax.tick_params(labelsize=TICK_PT)
        ax.grid(True, axis="y", color="0.9", linewidth=0.6)
        ax.set_axisbelow(True)
    handles = [Patch(color=_backbone_style(b, n)["color"]) for n, b in enumerate(backbones)]
    labels = [_backbone_style(b, n)["label"] for n, b in enumerate(backbones)]
    if with_ref:
        handles += [
            Patch(facecolor="0.35", edgecolor="0.35"),
            Patch(facecolor="white", edgecolor="0.35", hatch="////"),
        ]
        labels += ["NC1 (class-mean centring)", "NC1, reference centring (dashed in lines)"]
    _legend(fig, handles, labels, max_cols=6)
    fig.suptitle("Neural collapse of the training embeddings", fontsize=TITLE_PT)
    return fig


def nc1_gain_pairs(
    collapse: pd.DataFrame,
    results: pd.DataFrame,
    *,
    gen: str = "kmeans",
    norms: Sequence[str] = ("l2", "l2", "l2"),
    nc1_column: str = "nc1",
    gain_k: int | None = 5,
    pool_variations: bool = True,
) -> tuple[pd.DataFrame, tuple[str, str, str]]:
    """NC1 beside the gain from multiple proxies, one row per (backbone, dataset, mapping).

    gain = seed-median accuracy of `gen` at k = `gain_k` minus at k = 1 (the paper's Fig. 12
    uses k = 5; None: the best k > 1), means over tasks, one norm triple (`norms` when present,
    else the commonest; the triple used is returned). With `pool_variations`, the variations
    j of an ImageNet remapping map{i}-{j} are averaged (NC1 and gain) into one point 'map{i}'
    per number of merged classes, as in the paper. Rows: backbone, dataset, mapping, gain,
    `nc1_column`, n_variations.
    """
    where = "plot_nc1_vs_gain"
    nc = _collapse_table(collapse, where, [nc1_column])
    curves, triple = _k_curves(results, where, gen, norms)
    keys = ["backbone", "dataset", "mapping"]
    gains = []
    for key, part in curves.groupby(keys, sort=False):
        at_one = part.loc[part["k"] == 1, "accuracy"]
        more = part.loc[part["k"] == gain_k if gain_k is not None else part["k"] > 1, "accuracy"]
        if len(at_one) and len(more):
            gains.append((*key, float(more.max()) - float(at_one.iloc[0])))
    if not gains:
        wanted = f"k = {gain_k}" if gain_k is not None else "k > 1"
        raise ValueError(
            f"{where}: no (backbone, dataset, mapping) has both k = 1 and {wanted}; "
            f"k values present: {sorted(curves['k'].unique().tolist())}"
        )
    gain = pd.DataFrame(gains, columns=[*keys, "gain"])
    nc_mean = nc.groupby(keys, as_index=False)[nc1_column].mean()
    pairs = gain.merge(nc_mean, on=keys, how="inner").dropna(subset=[nc1_column, "gain"])
    if pairs.empty:
        raise ValueError(
            f"{where}: no (backbone, dataset, mapping) is in both tables; results have "
            f"{sorted(set(map(tuple, gain[keys].to_numpy())))[:5]}, collapse has "
            f"{sorted(set(map(tuple, nc_mean[keys].to_numpy())))[:5]}"
        )
    pairs["n_variations"] = 1
    if pool_variations:
        pairs["mapping"] = pairs["mapping"].map(_pooled_mapping)
        pairs = pairs.groupby(keys, as_index=False, sort=False, dropna=False).agg(
            gain=("gain", "mean"),
            **{nc1_column: (nc1_column, "mean")},
            n_variations=("n_variations", "sum"),
        )
    return pairs.reset_index(drop=True), triple


def _pooled_mapping(mapping):
    """'map{i}-{j}' -> 'map{i}' (the variations j of i merged classes pooled); others as is."""
    match = MAPPING_PATTERN.match(str(mapping))
    return f"map{match[1]}" if match else mapping


def loglinear_r2(nc1, gain) -> float:
    """R² of the least-squares line gain = a + b·log10(NC1); NaN for fewer than 3 points or a
    constant input."""
    x = np.log10(np.asarray(nc1, dtype=float))
    y = np.asarray(gain, dtype=float)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.linregress(x, y).rvalue ** 2)


EXACT_SPEARMAN_MAX_N = 8


def spearman(x, y) -> tuple[float, float]:
    """Spearman's rho and two-sided p-value; NaN (not an error) for constant input or < 3 points.

    Up to EXACT_SPEARMAN_MAX_N points the p-value is exact: the share of all pairings of the
    ranks (at most 8! = 40,320) whose |rho| reaches the observed |rho| (with tied ranks the
    null distribution is not symmetric, so this, not twice a one-sided p). scipy's t
    approximation says p = 0 for a perfect rank order of 6 points; exactly it is 2/720.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.spearmanr(x, y)
    rho, p = float(res.statistic), float(res.pvalue)
    n = len(x)
    if np.isfinite(rho) and 3 <= n <= EXACT_SPEARMAN_MAX_N:
        rx, ry = stats.rankdata(x), stats.rankdata(y)
        b = ry - ry.mean()

        def abs_rank_correlation(a, axis=-1):
            a = a - a.mean(axis=axis, keepdims=True)
            r = (a * b).sum(axis=axis) / np.sqrt((a * a).sum(axis=axis) * (b * b).sum())
            return np.abs(r)

        exact = stats.permutation_test(
            (rx,),
            abs_rank_correlation,
            permutation_type="pairings",
            vectorized=True,
            n_resamples=np.inf,
            alternative="greater",
        )
        p = float(exact.pvalue)
    return rho, p


def plot_nc1_vs_gain(
    collapse: pd.DataFrame,
    results: pd.DataFrame,
    *,
    gen: str = "kmeans",
    norms: Sequence[str] = ("l2", "l2", "l2"),
    nc1_column: str = "nc1",
    gain_k: int | None = 5,
    pool_variations: bool = True,
) -> tuple[Figure, float, float]:
    """NC1 against the gain from multiple proxies (see nc1_gain_pairs), per (backbone, dataset,
    mapping). Returns the figure and Spearman's rho and p-value over the points (NaN when
    undefined, e.g. constant input); the title also gives R² of gain against log10 NC1.
    """
    pairs, triple = nc1_gain_pairs(
        collapse,
        results,
        gen=gen,
        norms=norms,
        nc1_column=nc1_column,
        gain_k=gain_k,
        pool_variations=pool_variations,
    )
    rho, p = spearman(pairs[nc1_column], pairs["gain"])
    r2 = loglinear_r2(pairs[nc1_column], pairs["gain"])

    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    backbones, datasets = _backbones(pairs["backbone"]), _datasets(pairs["dataset"])
    for b, backbone in enumerate(backbones):
        colour = _backbone_style(backbone, b)["color"]
        for d, dataset in enumerate(datasets):
            sel = pairs[(pairs["backbone"] == backbone) & (pairs["dataset"] == dataset)]
            if sel.empty:
                continue
            many = len(sel) > 3  # remapping clouds: smaller, translucent points
            ax.scatter(
                sel[nc1_column],
                sel["gain"],
                color=colour,
                marker=_dataset_style(dataset, d)["marker"],
                s=16 if many else 42,
                alpha=0.55 if many else 0.95,
                edgecolors="white",
                linewidths=0.4,
            )
    _log_axis(ax, "x")
    ax.axhline(0.0, color="0.4", linewidth=0.8, linestyle="--")
    ax.set_xlabel(f"NC1 ({nc1_column}, log scale)", fontsize=LABEL_PT)
    better = f"k={gain_k}" if gain_k is not None else "best k>1"
    ax.set_ylabel(f"accuracy gain, {better} − k=1 (% points)", fontsize=LABEL_PT)
    ax.tick_params(labelsize=TICK_PT)
    ax.grid(True, color="0.9", linewidth=0.6)
    ax.set_axisbelow(True)
    rho_text = "n/a" if not np.isfinite(rho) else f"{rho:.2f}"
    p_text = "= n/a" if not np.isfinite(p) else ("< 0.001" if p < 1e-3 else f"= {p:.2g}")
    r2_text = "n/a" if not np.isfinite(r2) else f"{r2:.2f}"
    ax.set_title(
        f"Gain from multiple proxies ({gen_style(gen)['label']}, norms {_norm_text(triple)}) "
        "vs. NC1\n"
        f"Spearman ρ = {rho_text} (p {p_text}, n = {len(pairs)})\n"
        f"R² (gain ~ log NC1) = {r2_text}",
        fontsize=TITLE_PT - 1,
    )
    handles = [Patch(color=_backbone_style(b, n)["color"]) for n, b in enumerate(backbones)]
    handles += [
        Line2D([], [], color="0.3", marker=_dataset_style(d, n)["marker"], linestyle="none")
        for n, d in enumerate(datasets)
    ]
    labels = [_backbone_style(b, n)["label"] for n, b in enumerate(backbones)] + list(datasets)
    # Outside the axes: dense remapping clouds leave no free corner for it.
    fig.legend(handles, labels, fontsize=LEGEND_PT, frameon=False, loc="outside right upper")
    return fig, rho, p


# --------------------------------------------------------------------------- overview


def plot_accuracy_overview(results: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Seed-median accuracy per GEN for any grid: one point per configuration, box per GEN.

    Each point is one configuration's seed-median accuracy averaged over the groups (dataset,
    mapping, task) of that backbone; panels = backbones (at most 4 per row).
    """
    where = "plot_accuracy_overview"
    med = seed_medians(results)
    if med.empty:
        raise ValueError(f"{where}: the results table has no rows")
    per_config = (
        med.groupby(["backbone", *CONFIG_COLUMNS], dropna=False, sort=False)
        .agg(accuracy=("accuracy", "mean"), n_groups=("accuracy", "size"))
        .reset_index()
    )
    backbones, gens = _backbones(per_config["backbone"]), _gens(per_config["gen"])
    n_cols = min(len(backbones), 4)
    n_rows = math.ceil(len(backbones) / n_cols)
    panel_w = max(2.6, 0.42 * len(gens) + 0.8)
    fig = Figure(figsize=(panel_w * n_cols + 0.6, 2.9 * n_rows + 0.6), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, sharey=True, squeeze=False)
    rng = np.random.default_rng(0)  # fixed jitter: the same table gives the same picture
    for n, ax in enumerate(axes.flat):
        if n >= len(backbones):
            ax.set_visible(False)
            continue
        backbone = backbones[n]
        panel = per_config[per_config["backbone"] == backbone]
        data = [panel.loc[panel["gen"] == g, "accuracy"].to_numpy() for g in gens]
        present = [i for i, d in enumerate(data) if len(d)]
        box = ax.boxplot(
            [data[i] for i in present],
            positions=present,
            widths=0.6,
            patch_artist=True,
            showfliers=False,
            medianprops={"color": "0.15", "linewidth": 1.2},
        )
        for patch, i in zip(box["boxes"], present):
            patch.set_facecolor(_lighten(gen_style(gens[i])["color"], 0.7))
            patch.set_edgecolor("0.4")
        for i in present:
            st = gen_style(gens[i])
            x = i + rng.uniform(-0.18, 0.18, size=len(data[i]))
            ax.scatter(
                x,
                data[i],
                s=12,
                color=st["color"],
                marker=st["marker"],
                alpha=0.8,
                edgecolors="none",
                zorder=3,
            )
        ax.set_xticks(
            range(len(gens)),
            [gen_style(g)["label"] for g in gens],
            rotation=40,
            ha="right",
            rotation_mode="anchor",
        )
        ax.set_xlim(-0.6, len(gens) - 0.4)
        ax.set_title(_backbone_style(backbone, n)["label"], fontsize=LABEL_PT + 0.5)
        ax.tick_params(labelsize=TICK_PT)
        ax.grid(True, axis="y", color="0.9", linewidth=0.6)
        ax.set_axisbelow(True)
        if n % n_cols == 0:
            ax.set_ylabel("accuracy (%)", fontsize=LABEL_PT)
    n_cfg = per_config[list(CONFIG_COLUMNS)].drop_duplicates().shape[0]
    fig.suptitle(
        title
        or f"Seed-median accuracy per GEN ({n_cfg} configurations; mean over dataset/task groups)",
        fontsize=TITLE_PT,
    )
    return fig
