"""§5.3, k against multi-modality: accuracy against k per mapping, and against merged classes i."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from imprint.analysis.tables import (
    MERGED_METHODS,
    best_k_of_mean,
    best_k_table,
    k_curves,
    merged_classes,
    merged_classes_table,
)
from imprint.figures import style

__all__ = ["draw", "plot_accuracy_vs_merged", "plot_multimodal"]

MERGED_LABELS = {
    "mean": "mean (k-means, k = 1)",
    "ls": "least squares (kls, k = 1)",
    "kmeans": "k-means, best k (numbers: k)",
    "kls": "kls, best k",
}


# --------------------------------------------------------------------------- accuracy against k


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
    curves, triple = k_curves(results, "plot_multimodal", gen, norms)
    best = best_k_table(results, gen=gen, norms=norms)
    curves["merged_classes"] = merged_classes(curves["mapping"])
    plain = curves[curves["merged_classes"].isna()]
    remapped = curves[curves["merged_classes"].notna()]
    line_keys, i_values = _k_line_keys(plain, remapped)
    styles = _multimodal_styles(line_keys, plain, i_values)
    panels = style.backbones(curves["backbone"])
    with_best = len(remapped) > 0
    fig, axes = _k_figure(len(panels), with_best, len(line_keys))
    for j, backbone in enumerate(panels):
        _draw_k_panel(axes[j], curves[curves["backbone"] == backbone], line_keys, styles)
        axes[j].set_title(style.backbone_style(backbone, j)["label"], fontsize=style.PANEL_TITLE_PT)
        axes[j].set_xlabel("proxies per class k", fontsize=style.LABEL_PT)
        style.integer_ticks(axes[j], sorted(curves["k"].unique()))
    axes[0].set_ylabel("accuracy (%)", fontsize=style.LABEL_PT)
    if with_best:
        _best_k_panel(axes[-1], curves, best)
    for ax in axes:
        style.style_axes(ax)
    _k_legend(fig, line_keys, styles)
    style.title(
        fig,
        f"Accuracy vs. k for {style.gen_style(gen)['label']} (norms {style.norm_text(triple)}; seed median, "
        "mean over tasks; rings: best k)",
    )
    return fig


def _k_line_keys(
    plain: pd.DataFrame, remapped: pd.DataFrame
) -> tuple[list[tuple[str, str, float]], list[float]]:
    """The lines against k as (dataset, mapping or "", i or NaN): each plain (dataset,
    mapping), then each dataset's remappings per i; and the values of i, ascending."""
    line_keys: list[tuple[str, str, float]] = []
    for dataset in style.datasets(plain["dataset"]):
        for mapping in sorted(plain.loc[plain["dataset"] == dataset, "mapping"].unique()):
            line_keys.append((dataset, mapping, float("nan")))
    i_values = sorted(remapped["merged_classes"].unique())
    for dataset in style.datasets(remapped["dataset"]):
        for i in i_values:
            line_keys.append((dataset, "", i))
    return line_keys, i_values


def _k_figure(n_backbones: int, with_best: bool, n_lines: int) -> tuple[Figure, np.ndarray]:
    """A row of panels, one per backbone (y shared), then the best-k panel when `with_best`;
    room below for a legend of `n_lines` entries."""
    n_cols = n_backbones + int(with_best)
    fig = Figure(
        figsize=(
            style.PANEL_IN[0] * n_cols + 0.7,
            style.PANEL_IN[1] + 0.9 + 0.25 * style.legend_rows(n_lines, 7),
        ),
        layout="constrained",
    )
    axes = fig.subplots(1, n_cols, squeeze=False)[0]
    for ax in axes[1:n_backbones]:
        ax.sharey(axes[0])
    return fig, axes


def _k_legend(fig: Figure, line_keys: list, styles: dict) -> None:
    """An entry per line against k, in the order of `line_keys`."""
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
    style.legend(fig, handles, [styles[k]["label"] for k in line_keys], max_cols=7)


def _draw_k_panel(ax, panel: pd.DataFrame, line_keys: list, styles: dict) -> None:
    """One backbone: a line per plain mapping or per i (averaged over j), a ring at its best k."""
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


def _multimodal_styles(line_keys, plain, i_values) -> dict:
    cmap = colormaps["viridis"]
    styles = {}
    multi = plain.groupby("dataset")["mapping"].nunique()
    for n, (dataset, mapping, i) in enumerate(line_keys):
        if np.isnan(i):
            ds = style.dataset_style(dataset, n)
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


def _best_k_panel(ax, curves: pd.DataFrame, best: pd.DataFrame) -> None:
    rem = best[best["merged_classes"].notna()]
    of_mean = best_k_of_mean(curves)
    lines = [
        (b, d)
        for b in style.backbones(rem["backbone"])
        for d in style.datasets(rem["dataset"])
        if ((rem["backbone"] == b) & (rem["dataset"] == d)).any()
    ]
    several_sets = rem["dataset"].nunique() > 1
    for n, (backbone, dataset) in enumerate(lines):
        st = style.backbone_style(backbone, n)
        # Small horizontal offsets keep the lines' markers apart.
        offset = (n - (len(lines) - 1) / 2) * 0.08
        line = of_mean[(of_mean["backbone"] == backbone) & (of_mean["dataset"] == dataset)]
        ax.plot(
            line["merged_classes"] + offset,
            line["k"],
            color=st["color"],
            marker=style.dataset_style(dataset)["marker"] if several_sets else st["marker"],
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
    ax.set_xlabel("classes merged per label i", fontsize=style.LABEL_PT)
    ax.set_ylabel(
        "best k of the mean over j\n(band: per-j best k, mean ± std)", fontsize=style.LABEL_PT
    )
    ax.set_title("Best k vs. multi-modality", fontsize=style.PANEL_TITLE_PT)
    style.integer_ticks(ax, [int(i) for i in sorted(rem["merged_classes"].unique())])
    ax.legend(fontsize=style.LEGEND_PT - 1, frameon=False)


# --------------------------------------------------------------------------- accuracy against i


def plot_accuracy_vs_merged(table: pd.DataFrame) -> Figure:
    """The paper's §5.3 comparison: accuracy against classes merged per label, per backbone.

    One panel per (dataset with remappings, backbone); mean and ls (k = 1) solid, k-means and
    kls at their best k dashed with that k written at each point; bands: 95 % CI over the
    variations j. `table` is merged_classes_table's.
    """
    cols = style.backbones(table["backbone"]) or ["(none)"]
    rows = style.datasets(table["dataset"]) or ["(none)"]
    methods = [m for m, _, _ in MERGED_METHODS if m in set(table["method"])]
    legend_cols = 2 if len(cols) < 3 else 4
    fig, axes = style.facet_figure(
        len(rows),
        len(cols),
        sharey=False,
        legend_rows=style.legend_rows(len(methods), legend_cols) + 1,
    )
    for ax, _, _, panel in style.facet_panels(axes, table, rows, cols):
        for method in methods:
            line = panel[panel["method"] == method].sort_values("merged_classes")
            if not line.empty:
                _draw_merged_line(ax, line, method)
        style.integer_ticks(ax, [int(i) for i in sorted(table["merged_classes"].unique())])
    style.label_facets(axes, rows, cols, "classes merged per label i", "accuracy (%)")
    handles = [
        Line2D(
            [],
            [],
            color=style.gen_style(m)["color"],
            marker=style.gen_style(m)["marker"],
            markersize=3,
            linestyle="--" if m in ("kmeans", "kls") else "-",
        )
        for m in methods
    ]
    style.legend(fig, handles, [MERGED_LABELS[m] for m in methods], max_cols=legend_cols)
    style.title(
        fig,
        "Accuracy vs. classes merged per label\n(mean over variations j ± 95 % CI; "
        "best k picked on the mean)",
    )
    return fig


def _draw_merged_line(ax, line: pd.DataFrame, method: str) -> None:
    """One method against i with its 95 % CI; at the best k, that k is written at each point."""
    st = style.gen_style(method)
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
                fontsize=style.TICK_PT - 2,
                color=st["color"],
            )


def draw(results: pd.DataFrame, *, experiment: str | None = None) -> dict:
    """The registry's entry point: the best k per mapping, accuracy against k and against i."""
    merged = merged_classes_table(results)
    return {
        "best_k": best_k_table(results),
        "multimodal": plot_multimodal(results),
        "merged_table": merged,
        "accuracy_vs_merged": plot_accuracy_vs_merged(merged),
    }
