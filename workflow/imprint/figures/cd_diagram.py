"""Critical-difference (Demšar-style) diagram drawn from a :class:`imprint.analysis.stats.CDResult`.

The rank axis runs left to right with rank 1 (best) at the LEFT. Every method hangs from its
average rank by an elbow line: the better half is labelled on the left, the worse half on the
right. Thick bars join runs of rank-adjacent methods no two of which are significantly different.
Only the object-oriented Figure API is used, so no pyplot state or GUI backend is touched; the
caller saves the returned Figure (PDF, SVG or PNG) as it likes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextPath

from imprint.analysis.ranking import (
    configuration_methods,
    describe_ranking,
    named_tables,
    rank_methods,
    stack_tables,
)
from imprint.analysis.stats import CDResult, format_p
from imprint.engine.incremental import final_sessions
from imprint.figures import style

__all__ = ["draw", "plot_cd_diagram"]

# The layout is computed in inches so that long labels and many methods grow the figure
# instead of overlapping.
ROW_IN = 0.22
LANE_IN = 0.11
GAP_IN = 0.12


def _text_width_in(text: str, size: float, weight: str = "normal") -> float:
    if not text:
        return 0.0
    path = TextPath((0, 0), text, size=size, prop=FontProperties(weight=weight))
    return path.get_extents().width / 72.0


def _caption(result: CDResult, n_shown: int, n_total: int) -> tuple[list[str], str | None]:
    """Caption lines and, when nothing is separable, a warning line drawn in colour."""
    a = f"α = {result.alpha:g}"
    lines = []
    note = None
    if not result.friedman_tested:
        p = float(result.raw_pvalues.iloc[0, 1])
        lines.append(
            f"Friedman test skipped (2 methods); Wilcoxon p = {format_p(p)}, {a}, "
            f"n = {result.n_groups} groups"
        )
    elif math.isnan(result.friedman_statistic):
        lines.append(f"Friedman p = {format_p(result.friedman_pvalue)} (all tied), {a}")
    else:
        lines.append(
            f"Friedman χ² = {result.friedman_statistic:.2f}, p = "
            f"{format_p(result.friedman_pvalue)}, {a}, n = {result.n_groups} groups"
        )
    if result.friedman_tested and not result.friedman_significant:
        note = "Friedman test NOT significant: no method is separable (one bar joins all)"
    lines.append("bars: not significantly different (Wilcoxon signed-rank + Holm)")
    scope = "average rank, 1 = best (left)"
    if n_shown < n_total:
        scope += f"; best {n_shown} of {n_total} methods shown"
    lines.append(scope)
    return lines, note


def _bars(significant: pd.DataFrame, shown: list[str]) -> list[tuple[int, int]]:
    """Bars as (first, last) positions among the shown methods, in rank order.

    Demšar's drawing: from each method, a bar reaches the furthest method such that no pair
    in between is significantly different; bars inside an earlier one are dropped. A bar never
    covers a significantly different pair — a maximal clique's best-to-worst extent can (it may
    skip a method in between), so the cliques are listed in words, not drawn.
    """
    sig = significant.loc[shown, shown].to_numpy(dtype=bool)
    bars: list[tuple[int, int]] = []
    for i in range(len(shown)):
        j = i
        while j + 1 < len(shown) and not sig[i : j + 2, j + 1].any():
            j += 1
        if j > i and (not bars or j > bars[-1][1]):
            bars.append((i, j))
    return bars


def _assign_lanes(spans: list[tuple[float, float]]) -> list[int]:
    """Greedy interval packing: bars that do not overlap may share a lane."""
    lane_end: list[float] = []
    lanes = []
    for left, right in spans:
        for k, end in enumerate(lane_end):
            if left > end + GAP_IN:
                lane_end[k] = right
                lanes.append(k)
                break
        else:
            lane_end.append(right)
            lanes.append(len(lane_end) - 1)
    return lanes


def plot_cd_diagram(
    result: CDResult, title: str | None = None, max_methods: int | None = None
) -> Figure:
    """Draw the CD diagram of ``result`` and return the Figure (nothing is saved or shown).

    ``max_methods`` keeps only the best-ranked methods (the axis then ends at the worst shown
    rank); bars are drawn among the shown methods.
    """
    ranks = result.ranks
    n_total = len(ranks)
    if max_methods is not None and max_methods < 2:
        raise ValueError("max_methods must be at least 2")
    shown_df = ranks.iloc[: max_methods or n_total]
    names = [str(m) for m in shown_df["method"]]
    avg = [float(r) for r in shown_df["average_rank"]]
    k = len(names)
    n_left = math.ceil(k / 2)

    low = 1
    high = n_total if k == n_total else max(low + 1, math.ceil(max(avg)))
    caption, note = _caption(result, k, n_total)
    x0, scale_w, width = _horizontal_layout(names, n_left, high - low, caption, note, title)

    def xpos(rank: float) -> float:
        return x0 + scale_w * (rank - low) / (high - low)

    # ---- clique bars
    bars = _bars(result.significant, list(shown_df["method"]))
    overhang = 0.04
    spans = [(xpos(avg[i]) - overhang, xpos(avg[j]) + overhang) for i, j in bars]
    lanes = _assign_lanes(spans)
    n_lanes = max(lanes, default=-1) + 1

    # ---- vertical layout (inches, y grows downwards)
    header, y = _header(title, caption, note)
    axis_y, bar_top, first_row, height = _vertical_layout(y, n_lanes, n_left)

    fig, ax = _inch_canvas(width, height)
    for ty, text, size, weight, color in header:
        ax.text(
            width / 2, ty, text, ha="center", va="center", size=size, weight=weight, color=color
        )
    _draw_axis(ax, xpos, low, high, axis_y)
    row_y = [first_row + (i if i < n_left else k - 1 - i) * ROW_IN for i in range(k)]
    _draw_elbows(ax, names, avg, n_left, xpos, (x0, x0 + scale_w), axis_y, row_y)
    # Bars over the elbows so the groups read at a glance.
    _draw_bars(ax, spans, lanes, bar_top)
    return fig


def _vertical_layout(
    header_end: float, n_lanes: int, n_rows: int
) -> tuple[float, float, float, float]:
    """(y of the rank axis, of the first bar lane, of the first label row, the figure's
    height) in inches, y growing downwards, under a header that ends at `header_end`."""
    axis_y = header_end + 0.38
    bar_top = axis_y + 0.16
    first_row = bar_top + n_lanes * LANE_IN + 0.14
    first_row = max(first_row, axis_y + 0.3)
    height = first_row + (n_rows - 1) * ROW_IN + 0.25
    return axis_y, bar_top, first_row, height


def _inch_canvas(width: float, height: float) -> tuple[Figure, Axes]:
    """A white figure of width × height inches and one axes over all of it without frame or
    ticks, in inches with y growing downwards."""
    fig = Figure(figsize=(width, height))
    fig.patch.set_facecolor("white")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    return fig, ax


def _draw_bars(ax, spans: list[tuple[float, float]], lanes: list[int], bar_top: float) -> None:
    """Each bar's span (inches) in its lane, the first lane at `bar_top`."""
    for (left_x, right_x), lane in zip(spans, lanes, strict=True):
        by = bar_top + lane * LANE_IN
        ax.plot([left_x, right_x], [by, by], color="black", lw=3.2, solid_capstyle="butt", zorder=3)


def _horizontal_layout(
    names: list[str], n_left: int, span: int, caption: list[str], note: str | None, title
) -> tuple[float, float, float]:
    """(x of rank 1, width of the rank scale, figure width) in inches."""
    rank_w = _text_width_in("00.00", style.CD_RANK_PT)
    name_w = [_text_width_in(n, style.CD_LABEL_PT) for n in names]
    left_text = max(name_w[:n_left]) + rank_w + 0.45
    right_text = max(name_w[n_left:], default=0.0) + rank_w + 0.45
    scale_w = min(max(0.42 * span, 3.0), 9.5)
    text_need = max(
        [_text_width_in(line, style.CD_CAPTION_PT) for line in caption]
        + [_text_width_in(note or "", style.CD_CAPTION_PT, "bold")]
        + [_text_width_in(title or "", style.CD_TITLE_PT, "bold")]
    )
    width = left_text + scale_w + right_text
    if text_need + 0.4 > width:
        scale_w += text_need + 0.4 - width
        width = text_need + 0.4
    return left_text, scale_w, width


def _header(title: str | None, caption: list[str], note: str | None) -> tuple[list, float]:
    """The header's lines as (y, text, size, weight, colour), and the y below them (inches)."""
    y = 0.15
    header = []
    if title:
        header.append((y + 0.12, title, style.CD_TITLE_PT, "bold", "black"))
        y += 0.32
    for line in caption:
        header.append((y + 0.08, line, style.CD_CAPTION_PT, "normal", "0.2"))
        y += 0.17
    if note:
        header.append((y + 0.08, note, style.CD_CAPTION_PT, "bold", style.CD_NOTE_COLOR))
        y += 0.17
    return header, y


def _draw_axis(ax, xpos: Callable[[float], float], low: int, high: int, axis_y: float) -> None:
    """The rank axis with ticks every half rank, labels on integers."""
    ax.plot([xpos(low), xpos(high)], [axis_y, axis_y], color="black", lw=1.4)
    label_every = 1 if high - low <= 30 else 5
    for h in range(2 * low, 2 * high + 1):
        r = h / 2
        major = h % 2 == 0
        tick = 0.1 if major else 0.05
        ax.plot([xpos(r), xpos(r)], [axis_y - tick, axis_y], color="black", lw=1.0)
        if major and (int(r) % label_every == 0 or int(r) in (low, high)):
            ax.text(
                xpos(r), axis_y - 0.13, str(int(r)), ha="center", va="bottom", size=style.CD_TICK_PT
            )


def _draw_elbows(
    ax,
    names: list[str],
    avg: list[float],
    n_left: int,
    xpos: Callable[[float], float],
    scale: tuple[float, float],
    axis_y: float,
    row_y: list[float],
) -> None:
    """Each method hangs from its rank: better half labelled left, worse half right."""
    rank_w = _text_width_in("00.00", style.CD_RANK_PT)
    for i, (name, rank) in enumerate(zip(names, avg, strict=True)):
        left = i < n_left
        ry = row_y[i]
        end = scale[0] - 0.1 if left else scale[1] + 0.1
        ax.plot(
            [xpos(rank), xpos(rank), end],
            [axis_y, ry, ry],
            color="0.25",
            lw=0.9,
            solid_joinstyle="miter",
        )
        sign = -1 if left else 1
        ha = "right" if left else "left"
        ax.text(
            end + sign * 0.06,
            ry,
            f"{rank:.2f}",
            ha=ha,
            va="center",
            size=style.CD_RANK_PT,
            color="0.35",
        )
        ax.text(
            end + sign * (0.12 + rank_w),
            ry,
            name,
            ha=ha,
            va="center",
            size=style.CD_LABEL_PT,
            parse_math=False,
        )


def draw(
    results: pd.DataFrame | Sequence[tuple[str, pd.DataFrame]],
    *,
    experiment: str | None = None,
    method: str = "config_id",
    score: str = "accuracy",
    groups: Sequence[str] | None = None,
    seed: str | None = "seed",
    alpha: float = 0.05,
    highlight: Sequence[str] = (),
    exclude_gen: Sequence[str] = (),
    max_methods: int | None = None,
    title: str | None = None,
) -> dict:
    """The registry's entry point, for rule rank_configurations and `imprint cd` alike.

    `results`: a table, or (name, table) pairs stacked into one (errors name the table).
    Returns the ranks, the Holm-adjusted p-values, the summary text, the diagram and the
    CDResult. With `experiment` (the workflow's rule), the methods are that experiment's
    configurations: named by their components (GENs in `exclude_gen` left out), every one of
    them listed in the ranks with its components, the summary opened by the Friedman test over
    all of them, the title naming the experiment and the selection. Without (`imprint cd`),
    the methods are the values of `method` and the ranks those of the methods tested.
    """
    table, groups = stack_tables(named_tables(results), method, score, groups, seed)
    # An incremental experiment is ranked on its last session (every class seen).
    table = final_sessions(table)
    attributes = None
    if experiment is not None:
        table, attributes = configuration_methods(table, exclude_gen)
        method = "method"
    ranking = rank_methods(
        table,
        method,
        score,
        groups,
        seed=seed,
        alpha=alpha,
        highlight=highlight,
        max_methods=max_methods,
        attributes=attributes,
    )
    result = ranking.result
    if experiment is None:
        ranks, summary = result.ranks, describe_ranking(ranking)
        fig = plot_cd_diagram(result, title=title, max_methods=max_methods)
    else:
        ranks, summary = ranking.ranks, describe_ranking(ranking, excluded=exclude_gen)
        shown = f"{ranking.selection} ({len(ranking.shown)} of {len(ranks)} configurations)"
        fig = plot_cd_diagram(result, title=title or f"{experiment}: {shown}")
    return {
        "ranks": ranks,
        "pvalues": result.pvalues.reset_index(names=method),
        "summary": summary,
        "cd_diagram": fig,
        "result": result,
        "message": summary,
    }
