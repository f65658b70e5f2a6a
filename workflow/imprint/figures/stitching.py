"""Can one model stand in for another (not in the paper): stitched accuracy between every
ordered pair of backbones, beside their linear CKA, and its sensitivity to the source's rank."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from imprint.figures import style
from imprint.figures.model_choice import cka_matrix, heatmap

__all__ = ["draw_stitching", "plot_stitching", "plot_stitching_ranks"]

# How figures name the matchings (analysis/stitching.MATCHINGS), in panel order.
MATCHING_LABELS = {
    "direct": "direct (least squares)",
    "direct_k": "direct, K rows",
    "orthogonal": "orthogonal (Procrustes)",
    "task_loss": "task-loss matching",
}
HEATMAP_CLASSIFIER = "mean"  # the imprinted classifier: the heat maps' question


def _matrix(rows: pd.DataFrame, names: list[str], value: str) -> np.ndarray:
    """[source, target] of `value`; the diagonal is the target's own accuracy (A = B)."""
    matrix = np.full((len(names), len(names)), np.nan)
    for row in rows.itertuples():
        matrix[names.index(row.source), names.index(row.target)] = getattr(row, value)
        own = names.index(row.target)
        matrix[own, own] = row.target_accuracy
    return matrix


def plot_stitching(stitching: pd.DataFrame, similarity: pd.DataFrame | None = None) -> Figure:
    """Per dataset (a row of panels): one heat map per matching of the accuracy of the target's
    imprinted classifier on the source's mapped test embeddings (rows source, columns target;
    the diagonal: the target's own accuracy), and the linear CKA map beside them."""
    rows = stitching[stitching["classifier"] == HEATMAP_CLASSIFIER]
    datasets = style.datasets(rows["dataset"])
    names = style.backbones(pd.concat([rows["source"], rows["target"]]))
    labels = [style.backbone_style(b, n)["label"] for n, b in enumerate(names)]
    matchings = [m for m in MATCHING_LABELS if m in set(rows["matching"])]
    panels = len(matchings) + (similarity is not None)
    size = 0.55 * len(names) + 1.6
    fig = Figure(figsize=(size * panels + 1.2, (size + 0.5) * len(datasets) + 0.6))
    fig.set_layout_engine("constrained")
    axes = fig.subplots(len(datasets), panels, squeeze=False)
    accuracy_image = cka_image = None
    for r, dataset in enumerate(datasets):
        part = rows[rows["dataset"] == dataset]
        for c, matching in enumerate(matchings):
            matrix = _matrix(part[part["matching"] == matching], names, "stitched_accuracy")
            ax = axes[r, c]
            accuracy_image = heatmap(ax, matrix, labels, 0.0, 100.0, "{:.0f}", style.TICK_PT - 1)
            ax.set_title(f"{dataset}: {MATCHING_LABELS[matching]}", fontsize=style.LABEL_PT)
            if c == 0:
                ax.set_ylabel("source (mapped)", fontsize=style.LABEL_PT)
            ax.set_xlabel("target (its classifier)", fontsize=style.LABEL_PT)
        if similarity is not None:
            ax = axes[r, -1]
            cka = cka_matrix(similarity[similarity["dataset"] == dataset], names)
            cka_image = heatmap(ax, cka, labels, fontsize=style.TICK_PT - 1)
            ax.set_title(f"{dataset}: linear CKA", fontsize=style.LABEL_PT)
    fig.colorbar(accuracy_image, ax=axes[:, : len(matchings)].ravel().tolist(), shrink=0.7,
                 label="stitched accuracy (%)")  # fmt: skip
    if cka_image is not None:
        fig.colorbar(cka_image, ax=axes[:, -1].tolist(), shrink=0.7, label="linear CKA")
    style.title(
        fig,
        "Can the source stand in for the target? The target's imprinted classifier (L2 means) "
        "on the source's test embeddings, mapped into the target's space",
    )
    return fig


def plot_stitching_ranks(ranks: pd.DataFrame) -> Figure:
    """Per dataset (a row) and matching (a column): the target's imprinted classifier's accuracy
    on the source's rank-r approximation, mapped, against r (log scale), a line per ordered
    pair; the last column: the linear CKA of the rank-r source with the target."""
    rows = ranks[ranks["classifier"] == HEATMAP_CLASSIFIER]
    datasets = style.datasets(rows["dataset"])
    matchings = [m for m in MATCHING_LABELS if m in set(rows["matching"])]
    names = style.backbones(rows["source"])
    fig = Figure(
        figsize=(style.PANEL_IN[0] * (len(matchings) + 1) + 0.6, style.PANEL_IN[1] * len(datasets) + 1.2),
        layout="constrained",
    )  # fmt: skip
    axes = fig.subplots(len(datasets), len(matchings) + 1, squeeze=False, sharex=True)
    for r, dataset in enumerate(datasets):
        part = rows[rows["dataset"] == dataset]
        for c, column in enumerate([*matchings, "cka"]):
            ax = axes[r, c]
            style.style_axes(ax)
            data = part[part["matching"] == (column if column != "cka" else matchings[0])]
            value = "cka" if column == "cka" else "stitched_accuracy"
            for (source, _), pair in data.groupby(["source", "target"], sort=True):
                st = style.backbone_style(source, names.index(source))
                pair = pair.sort_values("rank")
                ax.plot(pair["rank"], pair[value], color=st["color"], marker=st["marker"],
                        markersize=3, linewidth=1, alpha=0.85)  # fmt: skip
            style.log_axis(ax, "x")
            title = "linear CKA (rank-r source)" if column == "cka" else MATCHING_LABELS[column]
            ax.set_title(f"{dataset}: {title}", fontsize=style.PANEL_TITLE_PT)
            if r == len(datasets) - 1:
                ax.set_xlabel("rank r of the source", fontsize=style.LABEL_PT)
        axes[r, 0].set_ylabel("stitched accuracy (%)", fontsize=style.LABEL_PT)
    handles = [
        Line2D([], [], color=st["color"], marker=st["marker"], linestyle="-")
        for st in (style.backbone_style(b, n) for n, b in enumerate(names))
    ]
    labels = [f"from {style.backbone_style(b, n)['label']}" for n, b in enumerate(names)]
    style.legend(fig, handles, labels)
    style.title(
        fig,
        "Stitching from the source's rank-r approximation (its top-r principal components), "
        "a line per ordered pair: a similarity measure should fall as r falls",
    )
    return fig


def draw_stitching(stitching, ranks=None, similarity=None) -> dict:
    """The entry point of rule plot_stitching: every dataset's stitching (and rank) tables,
    and the CKA tables to show beside them."""
    table = pd.concat([t for _, t in stitching])
    cka = None if not similarity else pd.concat([t for _, t in similarity])
    figures = {"stitching": plot_stitching(table, cka)}
    if ranks:
        figures["stitching_ranks"] = plot_stitching_ranks(pd.concat([t for _, t in ranks]))
    return figures
