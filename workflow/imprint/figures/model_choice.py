"""Which foundation model for a task (not in the paper): transferability estimates against the
accuracies achieved, and how similar the backbones' representations are (linear CKA)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from imprint.analysis.transferability.table import COMPARED, ESTIMATORS
from imprint.figures import style

__all__ = [
    "cka_matrix",
    "draw_similarity",
    "draw_transferability",
    "heatmap",
    "plot_similarity",
    "plot_transferability",
]

TARGET_LABELS = {
    "best_imprinting": "best imprinting\naccuracy (%)",
    "linear_probe": "linear probe\naccuracy (%)",
}


def plot_transferability(table: pd.DataFrame, agreement: pd.DataFrame) -> Figure:
    """One panel per (accuracy, estimator): each (backbone, dataset, mapping, task) group's
    estimate against its accuracy, a grey line joining one task's backbones; panel titles give
    the weighted Kendall τ averaged over tasks."""
    estimators = [e for e in COMPARED if e in table.columns and table[e].notna().any()]
    targets = [t for t in TARGET_LABELS if t in table.columns and table[t].notna().any()]
    names = style.backbones(table["backbone"])
    # Each estimator its own x scale (facet_figure shares x).
    width, height = style.PANEL_IN
    fig = Figure(
        figsize=(width * len(estimators) + 0.7, (height + 0.35) * len(targets) + 0.8),
        layout="constrained",
    )
    axes = fig.subplots(len(targets), len(estimators), sharey="row", squeeze=False)
    for ax in axes.flat:
        style.style_axes(ax)
    mean = agreement[agreement["task"] == "mean"].set_index(["estimator", "target"])["tau"]
    tasks = table.groupby(["dataset", "mapping", "task"], sort=True)
    for i, target in enumerate(targets):
        for j, estimator in enumerate(estimators):
            ax = axes[i, j]
            for _, part in tasks:
                part = part.dropna(subset=[estimator, target]).sort_values(estimator)
                ax.plot(part[estimator], part[target], color="0.8", linewidth=0.8, zorder=1)
            for b, backbone in enumerate(names):
                st = style.backbone_style(backbone, b)
                rows = table[table["backbone"] == backbone]
                ax.scatter(
                    rows[estimator],
                    rows[target],
                    color=st["color"],
                    marker=st["marker"],
                    s=22,
                    zorder=2,
                )
            if ESTIMATORS[estimator].log_axis:
                style.log_axis(ax, "x")
            tau = mean.get((estimator, target), np.nan)
            title = ESTIMATORS[estimator].label
            ax.set_title(f"{title}\nτw = {tau:.2f}", fontsize=style.PANEL_TITLE_PT)
            if j == 0:
                ax.set_ylabel(TARGET_LABELS[target], fontsize=style.LABEL_PT)
    handles = [
        Line2D([], [], color=st["color"], marker=st["marker"], linestyle="")
        for st in (style.backbone_style(b, n) for n, b in enumerate(names))
    ]
    labels = [style.backbone_style(b, n)["label"] for n, b in enumerate(names)]
    style.legend(fig, handles, labels)
    n_tasks = tasks.ngroups
    style.title(
        fig,
        f"Transferability estimates against the accuracy achieved ({len(names)} backbones, "
        f"{n_tasks} task(s); τw: weighted Kendall τ across backbones, mean over tasks)",
    )
    return fig


def cka_matrix(similarity: pd.DataFrame, names: list[str]) -> np.ndarray:
    """The symmetric CKA matrix of `names` (1 on the diagonal) from one dataset's CKA rows;
    pairs of other backbones are left out."""
    matrix = np.eye(len(names))
    for row in similarity.itertuples():
        if row.a in names and row.b in names:
            i, j = names.index(row.a), names.index(row.b)
            matrix[i, j] = matrix[j, i] = row.cka
    return matrix


def heatmap(ax, matrix, labels, vmin=0.0, vmax=1.0, fmt="{:.2f}", fontsize=style.TICK_PT):
    """A labelled heat map of a backbone × backbone matrix, each finite cell's value written in
    it (black on light cells, white on dark ones); returns the image for a colour bar."""
    image = ax.imshow(matrix, vmin=vmin, vmax=vmax, cmap="viridis")
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            color = "black" if (value - vmin) > 0.6 * (vmax - vmin) else "white"
            ax.text(
                j, i, fmt.format(value), ha="center", va="center", fontsize=fontsize, color=color
            )
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=style.TICK_PT)
    ax.set_yticks(range(len(labels)), labels, fontsize=style.TICK_PT)
    return image


def plot_similarity(similarity: pd.DataFrame) -> Figure:
    """A heat map of linear CKA between every pair of backbones, one panel per dataset."""
    datasets = style.datasets(similarity["dataset"])
    names = style.backbones(pd.concat([similarity["a"], similarity["b"]]))
    size = 0.55 * len(names) + 1.6
    fig = Figure(figsize=(size * len(datasets) + 0.8, size + 0.6), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    labels = [style.backbone_style(b, n)["label"] for n, b in enumerate(names)]
    image = None
    for ax, dataset in zip(axes, datasets, strict=True):
        matrix = cka_matrix(similarity[similarity["dataset"] == dataset], names)
        image = heatmap(ax, matrix, labels)
        ax.set_title(dataset, fontsize=style.PANEL_TITLE_PT)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="linear CKA")
    style.title(fig, "Similarity of the representations (test images)")
    return fig


def draw_transferability(transferability: pd.DataFrame, agreement: pd.DataFrame) -> dict:
    """The entry point of rule plot_transferability."""
    return {"transferability": plot_transferability(transferability, agreement)}


def draw_similarity(similarity: list[tuple[str, pd.DataFrame]]) -> dict:
    """The entry point of rule plot_similarity: every dataset's CKA table."""
    return {"similarity": plot_similarity(pd.concat([t for _, t in similarity]))}
