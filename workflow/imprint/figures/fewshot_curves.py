"""§5.2: accuracy against the training samples per class n, one line per (GEN, k)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from imprint.analysis.tables import norms_per_gen, plain_max, seed_medians
from imprint.figures import style

__all__ = ["draw", "plot_fewshot_curves"]


def plot_fewshot_curves(
    results: pd.DataFrame, *, norms: Sequence[str] = ("l2", "l2", "l2")
) -> Figure:
    """§5.2: seed-median accuracy against few-shot n per class, one line per (GEN, k).

    x is logarithmic with 'all' (n = -1) at the right. k is the nominal k of the line: where
    n < k the grid lowered the stored k to n, so the line continues through those rows. The
    band is the seed spread (mean over tasks of the per-group min and max over seeds).
    """
    df, chosen = _fewshot_rows(results, norms)
    curves = _nominal_k_curves(df)
    max_n = int(curves.loc[curves["fewshot"] > 0, "fewshot"].max())
    all_x = max_n * 4.0
    curves["x"] = curves["fewshot"].where(curves["fewshot"] > 0, all_x).astype(float)
    keys = sorted(
        {(g, k) for g, k in zip(curves["gen"], curves["k_nominal"])},
        key=lambda gk: (style.gens(curves["gen"]).index(gk[0]), gk[1] == -1, gk[1]),
    )
    styles = _fewshot_styles(keys)
    rows, cols = style.datasets(curves["dataset"]), style.backbones(curves["backbone"])
    fig, axes = style.facet_figure(
        len(rows), len(cols), legend_rows=style.legend_rows(len(keys), 5)
    )
    for ax in axes.flat:
        ax.set_xscale("log")
    for ax, _, _, panel in style.facet_panels(axes, curves, rows, cols):
        for key in keys:
            line = panel[(panel["gen"] == key[0]) & (panel["k_nominal"] == key[1])]
            if not line.empty:
                _draw_line(ax, line.sort_values("x"), styles[key], all_x)
    _n_axis(axes, max_n, all_x)
    style.label_facets(axes, rows, cols, "training samples per class n", "accuracy (%)")
    _fewshot_legend(fig, keys, styles, chosen, norms)
    style.title(
        fig, "Few-shot accuracy (seed median, mean over tasks; band: seed min–max)", results
    )
    return fig


def _fewshot_rows(results: pd.DataFrame, norms: Sequence[str]) -> tuple[pd.DataFrame, dict]:
    """The seed medians of the (GEN, norms) combinations run few-shot, with the norms drawn
    for each GEN (norms_per_gen's choice)."""
    where = "plot_fewshot_curves"
    df = plain_max(seed_medians(results), where)
    if not (df["fewshot"] > 0).any():
        raise ValueError(f"{where}: no rows with fewshot > 0 (only fewshot = -1, i.e. all)")
    # Only (GEN, norms) combinations that were run few-shot draw a curve.
    combo = ["gen", "norm_pre", "norm_post", "norm_inf"]
    df = df.merge(df.loc[df["fewshot"] > 0, combo].drop_duplicates(), on=combo)
    return norms_per_gen(df, norms)


def _n_axis(axes: np.ndarray, max_n: int, all_x: float) -> None:
    """Every panel's n axis: ticks at the decades and at 'all' (all_x), a dashed line between
    the largest n and 'all'."""
    for ax in axes.flat:
        ax.axvline(math.sqrt(max_n * all_x), color="0.75", linewidth=0.8, linestyle="--")
    decades = [10**e for e in range(0, int(math.log10(max_n)) + 1)]
    for ax in axes.flat:
        ax.set_xticks([*decades, all_x], [f"{d:g}" for d in decades] + ["all"])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(0.7, all_x * 1.4)


def _fewshot_legend(
    fig: Figure, keys: list, styles: dict, chosen: dict, norms: Sequence[str]
) -> None:
    """A legend row per GEN, its k across the columns; a GEN drawn with norms other than
    `norms` (`chosen`: by GEN) says which."""
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
            f"{style.gen_style(key[0])['label']}, k={'all' if key[1] == -1 else key[1]}"
            + style.norm_suffix(chosen[key[0]], norms),
        )
        for key in keys
    }
    style.legend(fig, *style.legend_grid(keys, entries), ncols=style.legend_grid_cols(keys))


def _nominal_k_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and seed band per (dataset, backbone, n), one curve per (GEN, nominal k)."""
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
    return pd.concat(lines, ignore_index=True)


def _draw_line(ax, line: pd.DataFrame, st: dict, all_x: float) -> None:
    """One (GEN, k) curve with its seed band; 'all' hangs off a dotted link at x = all_x."""
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


def _fewshot_styles(keys: list[tuple[str, int]]) -> dict[tuple[str, int], dict]:
    # One hue per GEN; within a GEN larger k is darker and changes dash, so k reads from both.
    dashes = ("-", "--", "-.", ":")
    out = {}
    for gen in dict.fromkeys(g for g, _ in keys):
        ks = [k for g, k in keys if g == gen]
        base = style.gen_style(gen)
        for rank, k in enumerate(ks):
            light = 0.55 * (len(ks) - 1 - rank) / max(len(ks) - 1, 1)
            out[(gen, k)] = {
                "color": style.lighten(base["color"], light),
                "marker": base["marker"],
                "linestyle": dashes[rank % len(dashes)] if len(ks) > 1 else base["linestyle"],
            }
    return out


def draw(results: pd.DataFrame, *, experiment: str | None = None) -> dict:
    """The registry's entry point: the few-shot curves of an experiment's results table."""
    return {"fewshot_curves": plot_fewshot_curves(results)}
