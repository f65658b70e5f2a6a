"""The paper's Figure 12: NC1 against the gain from several proxies per class, with Spearman's rho."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from imprint.analysis.correlation import loglinear_r2, spearman
from imprint.analysis.tables import nc1_gain_pairs
from imprint.figures import style

__all__ = ["draw", "plot_nc1_vs_gain"]


def plot_nc1_vs_gain(
    collapse: pd.DataFrame,
    results: pd.DataFrame,
    *,
    gen: str = "kmeans",
    nc1_column: str = "nc1",
    gain_k: int | None = 5,
    **options,
) -> tuple[Figure, float, float]:
    """NC1 against the gain from multiple proxies (see nc1_gain_pairs, which also takes the
    `options` norms and pool_variations), per (backbone, dataset, mapping). Returns the figure
    and Spearman's rho and p-value over the points (NaN when undefined, e.g. constant input);
    the title also gives R² of gain against log10 NC1.
    """
    pairs, triple = nc1_gain_pairs(
        collapse, results, gen=gen, nc1_column=nc1_column, gain_k=gain_k, **options
    )
    rho, p = spearman(pairs[nc1_column], pairs["gain"])
    r2 = loglinear_r2(pairs[nc1_column], pairs["gain"])
    fig = _draw(pairs, triple, rho, p, r2, gen=gen, nc1_column=nc1_column, gain_k=gain_k)
    return fig, rho, p


def _draw(
    pairs: pd.DataFrame,
    triple: Sequence[str],
    rho: float,
    p: float,
    r2: float,
    *,
    gen: str,
    nc1_column: str,
    gain_k: int | None,
) -> Figure:
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    rows, sets = style.backbones(pairs["backbone"]), style.datasets(pairs["dataset"])
    for b, backbone in enumerate(rows):
        colour = style.backbone_style(backbone, b)["color"]
        for d, dataset in enumerate(sets):
            sel = pairs[(pairs["backbone"] == backbone) & (pairs["dataset"] == dataset)]
            if sel.empty:
                continue
            many = len(sel) > 3  # remapping clouds: smaller, translucent points
            ax.scatter(
                sel[nc1_column],
                sel["gain"],
                color=colour,
                marker=style.dataset_style(dataset, d)["marker"],
                s=16 if many else 42,
                alpha=0.55 if many else 0.95,
                edgecolors="white",
                linewidths=0.4,
            )
    style.log_axis(ax, "x")
    ax.axhline(0.0, color="0.4", linewidth=0.8, linestyle="--")
    ax.set_xlabel(f"NC1 ({nc1_column}, log scale)", fontsize=style.LABEL_PT)
    better = f"k={gain_k}" if gain_k is not None else "best k>1"
    ax.set_ylabel(f"accuracy gain, {better} − k=1 (% points)", fontsize=style.LABEL_PT)
    style.style_axes(ax)
    rho_text = "n/a" if not np.isfinite(rho) else f"{rho:.2f}"
    p_text = "= n/a" if not np.isfinite(p) else ("< 0.001" if p < 1e-3 else f"= {p:.2g}")
    r2_text = "n/a" if not np.isfinite(r2) else f"{r2:.2f}"
    ax.set_title(
        f"Gain from multiple proxies ({style.gen_style(gen)['label']}, norms {style.norm_text(triple)}) "
        "vs. NC1\n"
        f"Spearman ρ = {rho_text} (p {p_text}, n = {len(pairs)})\n"
        f"R² (gain ~ log NC1) = {r2_text}",
        fontsize=style.TITLE_PT - 1,
    )
    handles = [Patch(color=style.backbone_style(b, n)["color"]) for n, b in enumerate(rows)]
    handles += [
        Line2D([], [], color="0.3", marker=style.dataset_style(d, n)["marker"], linestyle="none")
        for n, d in enumerate(sets)
    ]
    labels = [style.backbone_style(b, n)["label"] for n, b in enumerate(rows)] + list(sets)
    # Outside the axes: dense remapping clouds leave no free corner for it.
    fig.legend(handles, labels, fontsize=style.LEGEND_PT, frameon=False, loc="outside right upper")
    return fig


def draw(
    results: pd.DataFrame, collapse: pd.DataFrame, *, experiment: str | None = None, **options
) -> dict:
    """The registry's entry point: the figure and its points (rho, p and R² on every row).

    `options`: plot_nc1_vs_gain's keywords (gain_k, pool_variations, nc1_column, ...).
    """
    fig, rho, p = plot_nc1_vs_gain(collapse, results, **options)
    pairs, _ = nc1_gain_pairs(collapse, results, **options)
    r2 = loglinear_r2(pairs[options.get("nc1_column", "nc1")], pairs["gain"])
    return {
        "pairs": pairs.assign(spearman_rho=rho, spearman_p=p, loglinear_r2=r2),
        "nc1_vs_gain": fig,
        "message": f"Spearman rho = {rho:.3f} (p = {p:.3g}), R² of gain ~ log10 NC1 = {r2:.3f}, "
        f"over {len(pairs)} (backbone, dataset, mapping); options {options}",
    }
