"""Neural collapse of the training embeddings: NC1 and VCI per backbone, dataset and mapping."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from imprint.analysis.tables import collapse_table, merged_classes
from imprint.figures import style

__all__ = ["draw", "plot_collapse"]


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
    df = collapse_table(collapse, "plot_collapse", [nc1_column, "vci"])
    with_ref = reference_column in df.columns and df[reference_column].notna().any()
    df["merged_classes"] = merged_classes(df["mapping"])
    plain = df[df["merged_classes"].isna()]
    remapped = df[df["merged_classes"].notna()]
    names = style.backbones(df["backbone"])

    cats = []
    for dataset in style.datasets(plain["dataset"]):
        for mapping in sorted(plain.loc[plain["dataset"] == dataset, "mapping"].unique()):
            cats.append((dataset, mapping))

    widths = []
    if cats:
        widths.append(max(3.4, 0.15 * len(cats) * len(names) * (1 + with_ref) + 1.4))
    if len(remapped):
        widths.append(3.4)
    fig = Figure(figsize=(sum(widths) + 0.6, 5.6), layout="constrained")
    axes = fig.subplots(2, len(widths), squeeze=False, width_ratios=widths)
    metrics = [(nc1_column, "NC1 (log scale)", True), ("vci", "VCI", False)]
    reference = reference_column if with_ref else None
    if cats:
        _draw_bars(axes[:, 0], plain, cats, names, metrics, reference)
    if len(remapped):
        _draw_remapped(axes[:, -1], remapped, names, metrics, reference)
    for ax in axes.flat:
        style.style_axes(ax, grid="y")
    handles = [Patch(color=style.backbone_style(b, n)["color"]) for n, b in enumerate(names)]
    labels = [style.backbone_style(b, n)["label"] for n, b in enumerate(names)]
    if with_ref:
        handles += [
            Patch(facecolor="0.35", edgecolor="0.35"),
            Patch(facecolor="white", edgecolor="0.35", hatch="////"),
        ]
        labels += ["NC1 (class-mean centring)", "NC1, reference centring (dashed in lines)"]
    style.legend(fig, handles, labels, max_cols=6)
    style.title(fig, "Neural collapse of the training embeddings")
    return fig


def _draw_bars(axes, plain, cats, names, metrics, reference: str | None) -> None:
    """Grouped bars per plain (dataset, mapping), NC1 above VCI; hatched: reference centring."""
    n_maps = plain.groupby("dataset")["mapping"].nunique()
    cat_labels = [d if n_maps.get(d, 1) == 1 else f"{d}\n({m})" for d, m in cats]
    for ax, (col, ylabel, log) in zip(axes, metrics):
        n_var = 2 if reference and log else 1
        bar_w = 0.8 / (len(names) * n_var)
        for b, backbone in enumerate(names):
            st = style.backbone_style(backbone, b)
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
                if reference and log:
                    ax.bar(
                        x0 + bar_w,
                        sel[reference].mean(),
                        bar_w,
                        facecolor="white",
                        edgecolor=st["color"],
                        hatch="////",
                        linewidth=0.8,
                    )
        ax.set_xticks(range(len(cats)), cat_labels)
        ax.set_xlim(-0.55, len(cats) - 0.45)
        ax.set_ylabel(ylabel, fontsize=style.LABEL_PT)
        if log:
            style.log_axis(ax, "y")
            ax.axhline(1.0, color="0.4", linewidth=0.8, linestyle="--")
            ax.annotate(
                "NC1 = 1",
                (1.0, 1.0),
                xycoords=("axes fraction", "data"),
                xytext=(-2, 2),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=style.TICK_PT - 1,
                color="0.35",
            )
    axes[0].set_title("NC1 per backbone and dataset", fontsize=style.PANEL_TITLE_PT)
    axes[1].set_title("VCI per backbone and dataset", fontsize=style.PANEL_TITLE_PT)


def _draw_remapped(axes, remapped, names, metrics, reference: str | None) -> None:
    """NC1 and VCI against i, mean over the variations j with a min-max band, per backbone."""
    for ax, (col, ylabel, log) in zip(axes, metrics):
        variants = [(col, "-")] + ([(reference, "--")] if reference and log else [])
        for b, backbone in enumerate(names):
            part = remapped[remapped["backbone"] == backbone]
            if part.empty:
                continue
            st = style.backbone_style(backbone, b)
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
        ax.set_xlabel("classes merged per label i", fontsize=style.LABEL_PT)
        ax.set_ylabel(ylabel, fontsize=style.LABEL_PT)
        if log:
            style.log_axis(ax, "y")
        style.integer_ticks(ax, [int(i) for i in sorted(remapped["merged_classes"].unique())])
    shown = ", ".join(style.datasets(remapped["dataset"]))
    axes[0].set_title(f"NC1, {shown} remappings", fontsize=style.PANEL_TITLE_PT)
    axes[1].set_title(f"VCI, {shown} remappings", fontsize=style.PANEL_TITLE_PT)


def draw(collapse: pd.DataFrame) -> dict:
    """The entry point of rule plot_collapse: the figure of the collapse table."""
    return {"nc1": plot_collapse(collapse)}
