"""The paper's Figure 6: accuracy against the number of proxies per class k, per GEN."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from matplotlib.figure import Figure

from imprint.analysis.tables import norms_per_gen, plain_max, seed_medians
from imprint.figures import style

__all__ = ["draw", "plot_accuracy_vs_proxies"]


def plot_accuracy_vs_proxies(
    results: pd.DataFrame, *, norms: Sequence[str] = ("l2", "l2", "l2")
) -> Figure:
    """Fig. 6: seed-median accuracy (mean over tasks) against proxies per class k, per GEN.

    Facets: rows = dataset, columns = backbone; y shared within a row. k values sit at equally
    spaced positions with 'all' (k = -1) at the right. `norms` = (NORMpre, NORMpost, NORMinf)
    preferred for every GEN; a GEN never run with them uses its commonest triple (labelled).
    GENs with a single k (mean, ls, all) are drawn as a marker plus a dotted level line.
    """
    curves, chosen = _proxy_curves(results, norms)
    ks = _k_values(curves)
    rows, cols = style.datasets(curves["dataset"]), style.backbones(curves["backbone"])
    names = style.gens(curves["gen"])
    fig, axes = style.facet_figure(len(rows), len(cols), legend_rows=style.legend_rows(len(names)))
    for ax, _, _, panel in style.facet_panels(axes, curves, rows, cols):
        _draw_gen_lines(ax, panel, names, ks)
    for ax in axes[-1]:
        ax.set_xticks(range(len(ks)), ["all" if k == -1 else str(k) for k in ks])
        ax.set_xlim(-0.4, len(ks) - 0.6)
    style.label_facets(axes, rows, cols, "proxies per class k", "accuracy (%)")
    handles = [style.gen_handle(g) for g in names]
    labels = [style.gen_style(g)["label"] + style.norm_suffix(chosen[g], norms) for g in names]
    style.legend(fig, handles, labels)
    style.title(
        fig, "Accuracy vs. number of proxies per class (seed median, mean over tasks)", results
    )
    return fig


def _proxy_curves(results: pd.DataFrame, norms: Sequence[str]) -> tuple[pd.DataFrame, dict]:
    """Accuracy per (dataset, backbone, GEN, k), mean over tasks of the seed medians, and the
    norms drawn for each GEN (norms_per_gen's choice)."""
    df = plain_max(seed_medians(results), "plot_accuracy_vs_proxies", fewshot=-1)
    df, chosen = norms_per_gen(df, norms)
    curves = df.groupby(["dataset", "backbone", "gen", "k"], sort=True)["accuracy"].mean()
    return curves.reset_index(), chosen


def _k_values(curves: pd.DataFrame) -> list[int]:
    """The k values in the order of the x axis: ascending, 'all' (k = -1) last."""
    ks = sorted(k for k in curves["k"].unique() if k > 0)
    return ks + ([-1] if (curves["k"] == -1).any() else [])


def _draw_gen_lines(ax, panel: pd.DataFrame, names: list[str], ks: list[int]) -> None:
    """One panel: a line per GEN over the k positions; a GEN with a single k also gets a dotted
    level line."""
    pos = {k: i for i, k in enumerate(ks)}
    for gen in names:
        line = panel[panel["gen"] == gen].sort_values("k", key=lambda s: s.map(pos))
        if line.empty:
            continue
        st = style.gen_style(gen)
        x = line["k"].map(pos).to_numpy()
        y = line["accuracy"].to_numpy()
        ax.plot(
            x,
            y,
            color=st["color"],
            marker=st["marker"],
            linestyle=st["linestyle"],
            markersize=style.marker_size(st["marker"]),
            linewidth=1.4,
        )
        if len(line) == 1:
            ax.axhline(y[0], color=st["color"], linestyle=":", linewidth=0.9, alpha=0.7)


def draw(results: pd.DataFrame, *, experiment: str | None = None) -> dict:
    """The registry's entry point: Figure 6 of an experiment's results table."""
    return {"accuracy_vs_proxies": plot_accuracy_vs_proxies(results)}
