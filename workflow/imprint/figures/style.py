"""The one look of every figure: colours and markers per GEN, backbone and dataset, font sizes,
and the facet, legend and axis helpers the figure modules share.

Only matplotlib's object-oriented API is used: no pyplot state, no GUI backend.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from imprint.analysis.tables import BACKBONE_ORDER, DATASET_ORDER, PLAIN_MAX, ordered
from imprint.engine.vocabulary import GEN_TABLE

__all__ = ["BACKBONE_STYLE", "DATASET_STYLE", "GEN_STYLE", "gen_style"]

# Each GEN's look, from the GEN table (engine/vocabulary.GEN_TABLE), in its order.
GEN_STYLE: dict[str, dict] = {
    name: {"label": g.label, "color": g.color, "marker": g.marker, "linestyle": g.linestyle}
    for name, g in GEN_TABLE.items()
}
# Keyed in the order of analysis.tables.BACKBONE_ORDER and DATASET_ORDER (a test checks it).
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

# Font sizes in points. The faceted figures:
TITLE_PT = 11.5
LABEL_PT = 9.5
PANEL_TITLE_PT = LABEL_PT + 0.5  # a facet's or panel's own title
TICK_PT = 8.5
LEGEND_PT = 8.5
# The CD diagram lays its text out in inches on a bare canvas, a little larger:
CD_TITLE_PT = 12
CD_LABEL_PT = 10
CD_TICK_PT = 9
CD_RANK_PT = 7.5
CD_CAPTION_PT = 8.5
CD_NOTE_COLOR = "#b2182b"  # the warning that nothing is separable

PANEL_IN = (2.7, 2.05)  # one facet, inches


# --------------------------------------------------------------------------- styles and order


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


def backbone_style(name: str, index: int = 0) -> dict:
    if name in BACKBONE_STYLE:
        return BACKBONE_STYLE[name]
    i = index % len(_FALLBACK_COLORS)
    return {"label": name, "color": _FALLBACK_COLORS[i], "marker": _FALLBACK_MARKERS[i]}


def dataset_style(name: str, index: int = 0) -> dict:
    if name in DATASET_STYLE:
        return DATASET_STYLE[name]
    i = index % len(_FALLBACK_COLORS)
    return {"color": _FALLBACK_COLORS[-1 - i], "marker": _FALLBACK_MARKERS[i]}


def lighten(color: str, amount: float) -> tuple[float, float, float]:
    r, g, b = to_rgb(color)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


def backbones(values: Iterable) -> list:
    return ordered(values, BACKBONE_ORDER)


def datasets(values: Iterable) -> list:
    return ordered(values, DATASET_ORDER)


def gens(values: Iterable) -> list:
    return ordered(values, GEN_STYLE)


def gen_handle(gen: str, **overrides) -> Line2D:
    st = gen_style(gen) | overrides
    return Line2D(
        [], [], color=st["color"], marker=st["marker"], linestyle=st["linestyle"], markersize=5
    )


def marker_size(marker: str) -> float:
    # Stars and pentagons look smaller than squares at the same size.
    return 6.5 if marker in ("*", "p", "h") else 4.5


def norm_text(triple: Sequence[str]) -> str:
    return triple[0] if len(set(triple)) == 1 else "/".join(triple)


def norm_suffix(triple: Sequence[str], prefer: Sequence[str]) -> str:
    if tuple(triple) == tuple(prefer):
        return ""
    return f" (norms {norm_text(triple)})"


def title(fig, text: str, results: pd.DataFrame | None = None) -> None:
    """The figure's title at TITLE_PT; with `results`, a note of the presampling methods it
    leaves undrawn (unplotted_presampling)."""
    note = "" if results is None else unplotted_presampling(results)
    fig.suptitle(text + note, fontsize=TITLE_PT)


def unplotted_presampling(results: pd.DataFrame) -> str:
    """A title note naming presampling methods in `results` that PLAIN_MAX leaves undrawn."""
    other = sorted(set(results["presampling"]) - {PLAIN_MAX["presampling"]})
    return f"\n({', '.join(other)} presampling not drawn: see the results table)" if other else ""


# --------------------------------------------------------------------------- facets and axes


def style_axes(ax, grid: str = "both") -> None:
    """Tick labels at TICK_PT and a light grid behind the data (`grid`: 'both' or 'y')."""
    ax.tick_params(labelsize=TICK_PT)
    ax.grid(True, axis=grid, color="0.9", linewidth=0.6)
    ax.set_axisbelow(True)


def facet_figure(
    n_rows: int, n_cols: int, *, sharey: str | bool = "row", legend_rows: int = 1
) -> tuple[Figure, np.ndarray]:
    width = PANEL_IN[0] * n_cols + 0.7
    height = PANEL_IN[1] * n_rows + 0.55 + 0.25 * legend_rows
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, sharex=True, sharey=sharey, squeeze=False)
    for ax in axes.flat:
        style_axes(ax)
    return fig, axes


def label_facets(axes: np.ndarray, rows: Sequence, cols: Sequence, xlabel: str, ylabel: str):
    for j, backbone in enumerate(cols):
        axes[0, j].set_title(backbone_style(backbone, j)["label"], fontsize=PANEL_TITLE_PT)
        axes[-1, j].set_xlabel(xlabel, fontsize=LABEL_PT)
    for i, dataset in enumerate(rows):
        axes[i, 0].set_ylabel(f"{dataset}\n{ylabel}", fontsize=LABEL_PT)


def facet_panels(
    axes: np.ndarray, table: pd.DataFrame, rows: Sequence, cols: Sequence
) -> Iterator[tuple[Axes, str, str, pd.DataFrame]]:
    """Each panel of a facet_figure, row by row: its axes, dataset, backbone and rows of
    `table`; a panel without rows is marked 'no data' and passed over."""
    for i, dataset in enumerate(rows):
        for j, backbone in enumerate(cols):
            panel = table[(table["dataset"] == dataset) & (table["backbone"] == backbone)]
            if panel.empty:
                no_data(axes[i, j])
                continue
            yield axes[i, j], dataset, backbone, panel


def no_data(ax) -> None:
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


def log_axis(ax, which: str) -> None:
    # Plain numbers at 1-2-5 steps instead of matplotlib's "4 x 10^-1" minor labels.
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    axis = ax.yaxis if which == "y" else ax.xaxis
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def integer_ticks(ax, ks: Sequence[int]) -> None:
    step = 1 if len(ks) <= 8 else 2
    ticks = [k for n, k in enumerate(ks) if n % step == 0]
    ax.set_xticks(ticks, [str(k) for k in ticks])


# --------------------------------------------------------------------------- legends


def legend(
    fig: Figure, handles: list, labels: list[str], max_cols: int = 6, ncols: int | None = None
) -> None:
    """A frameless legend under the figure."""
    if not handles:
        return
    if ncols is None:
        # Balanced rows (4 + 3 rather than 6 + 1) read better under a wide figure.
        ncols = math.ceil(len(handles) / legend_rows(len(handles), max_cols))
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=ncols,
        fontsize=LEGEND_PT,
        frameon=False,
        handlelength=2.4,
    )


def legend_rows(n: int, max_cols: int = 6) -> int:
    return max(1, math.ceil(n / max_cols))


def legend_grid_cols(keys: list[tuple[str, int]]) -> int | None:
    per_gen = pd.Series([g for g, _ in keys]).value_counts()
    return int(per_gen.max()) if per_gen.max() <= 5 else None


def legend_grid(keys: list[tuple[str, int]], entries: dict) -> tuple[list, list[str]]:
    """Legend entries ordered so that each GEN fills one legend row (k across columns)."""
    ncols = legend_grid_cols(keys)
    if ncols is None:
        return [entries[k][0] for k in keys], [entries[k][1] for k in keys]
    rows = list(dict.fromkeys(g for g, _ in keys))
    blank = (Line2D([], [], linestyle="none"), "")
    grid = [[entries[k] for k in keys if k[0] == g] for g in rows]
    grid = [row + [blank] * (ncols - len(row)) for row in grid]
    # fig.legend fills column by column, so feed the grid transposed.
    flat = [grid[r][c] for c in range(ncols) for r in range(len(grid))]
    return [h for h, _ in flat], [lab for _, lab in flat]
