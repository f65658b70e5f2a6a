"""Seed-median accuracy per GEN for any grid: a box and the configurations' points per GEN."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from imprint.analysis.tables import CONFIG_COLUMNS, seed_medians
from imprint.figures import style

__all__ = ["draw", "plot_accuracy_overview"]


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
    panels, names = style.backbones(per_config["backbone"]), style.gens(per_config["gen"])
    n_cols = min(len(panels), 4)
    n_rows = math.ceil(len(panels) / n_cols)
    panel_w = max(2.6, 0.42 * len(names) + 0.8)
    fig = Figure(figsize=(panel_w * n_cols + 0.6, 2.9 * n_rows + 0.6), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, sharey=True, squeeze=False)
    rng = np.random.default_rng(0)  # fixed jitter: the same table gives the same picture
    for n, ax in enumerate(axes.flat):
        if n >= len(panels):
            ax.set_visible(False)
            continue
        panel = per_config[per_config["backbone"] == panels[n]]
        _draw_panel(
            ax, [panel.loc[panel["gen"] == g, "accuracy"].to_numpy() for g in names], names, rng
        )
        ax.set_title(style.backbone_style(panels[n], n)["label"], fontsize=style.PANEL_TITLE_PT)
        style.style_axes(ax, grid="y")
        if n % n_cols == 0:
            ax.set_ylabel("accuracy (%)", fontsize=style.LABEL_PT)
    n_cfg = per_config[list(CONFIG_COLUMNS)].drop_duplicates().shape[0]
    style.title(
        fig,
        title
        or f"Seed-median accuracy per GEN ({n_cfg} configurations; mean over dataset/task groups)",
    )
    return fig


def _draw_panel(ax, data: list[np.ndarray], names: list[str], rng: np.random.Generator) -> None:
    """One backbone: a box per GEN over its configurations' accuracies, and jittered points."""
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
        patch.set_facecolor(style.lighten(style.gen_style(names[i])["color"], 0.7))
        patch.set_edgecolor("0.4")
    for i in present:
        st = style.gen_style(names[i])
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
        range(len(names)),
        [style.gen_style(g)["label"] for g in names],
        rotation=40,
        ha="right",
        rotation_mode="anchor",
    )
    ax.set_xlim(-0.6, len(names) - 0.4)


def draw(results: pd.DataFrame, *, experiment: str | None = None) -> dict:
    """The registry's entry point: the overview of an experiment's results table."""
    return {"accuracy_overview": plot_accuracy_overview(results)}
