"""Class-incremental imprinting (not in the paper): accuracy against the session, per GEN."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from imprint.engine.grid import describe_config
from imprint.figures import style

__all__ = ["draw", "plot_incremental_curves"]

KEYS = ["backbone", "dataset", "mapping", "task", "config_id"]


AGG_DASHES = ("-", "--", ":", "-.")


def agg_family(row) -> str:
    """A configuration's AGG family: max, max-<distance> (1-NN) or mnn-<distance>."""
    if row["agg"] == "max":
        return "max" if row["distance"] == "inner_product" else f"max-{row['distance']}"
    return f"mnn-{row['distance']}"


def plot_incremental_curves(results: pd.DataFrame):
    """Seed-median accuracy on every class seen so far against the session, one line per GEN
    and AGG family (its configuration with the best last-session accuracy, mean over the
    panel's tasks; colour: GEN, dashes: AGG family where there are several); panels per
    dataset × backbone; a hollow marker right of the last session: that configuration's joint
    upper bound (every class at once, every training row)."""
    med = _session_medians(results)
    inc, joint = med[med["protocol"] == "incremental"], med[med["protocol"] == "joint"]
    rows, cols = style.datasets(med["dataset"]), style.backbones(med["backbone"])
    families = sorted(med["family"].unique(), key=lambda f: (f != "max", f))
    dashes = {f: AGG_DASHES[n % len(AGG_DASHES)] for n, f in enumerate(families)}
    lines = [(g, f) for g in style.gens(med["gen"]) for f in families]
    fig, axes = style.facet_figure(len(rows), len(cols), sharey=False)
    drawn = set()
    for ax, dataset, backbone, panel in style.facet_panels(axes, inc, rows, cols):
        bounds = joint[(joint["dataset"] == dataset) & (joint["backbone"] == backbone)]
        drawn |= _draw_best_lines(ax, panel, bounds, lines, dashes)
    style.label_facets(axes, rows, cols, "session (0: base)", "accuracy, seen classes (%)")
    gens = [g for g in style.gens(med["gen"]) if any(d[0] == g for d in drawn)]
    _incremental_legend(fig, gens, families, dashes)
    style.title(
        fig,
        "Class-incremental imprinting: accuracy on the classes seen so far\n"
        + "the best configuration per GEN"
        + (" and AGG family" if len(families) > 1 else "")
        + " at the last session",
    )
    return fig


def _session_medians(results: pd.DataFrame) -> pd.DataFrame:
    """Seed-median accuracy per configuration, AGG family, protocol and session."""
    where = "plot_incremental_curves"
    if "session" not in results.columns:
        raise ValueError(f"{where}: not an incremental experiment's table (no session column)")
    results = results.assign(family=[agg_family(r) for r in results.to_dict("records")])
    return (
        results.groupby([*KEYS, "gen", "family", "protocol", "session"], sort=False)["accuracy"]
        .median()
        .reset_index()
    )


def _draw_best_lines(
    ax, panel: pd.DataFrame, bounds: pd.DataFrame, lines: list, dashes: dict
) -> set[tuple[str, str]]:
    """One panel: per (GEN, AGG family) of `lines`, the configuration best at the last session
    against the session, and its joint upper bound (`bounds`) right of the last session.
    Returns the (GEN, AGG family) pairs drawn."""
    curves = panel.groupby(["gen", "family", "config_id", "session"])["accuracy"].mean()
    last = int(panel["session"].max())
    drawn = set()
    for gen, family in lines:
        if (gen, family) not in curves.index.droplevel([2, 3]):
            continue
        by_config = curves[gen, family].unstack("session")
        best = by_config[last].idxmax()
        st = style.gen_style(gen)
        look = {"color": st["color"], "marker": st["marker"], "markersize": 4}
        ax.plot(by_config.columns.to_numpy(), by_config.loc[best].to_numpy(),
                linestyle=dashes[family], **look)  # fmt: skip
        bound = bounds[bounds["config_id"] == best]["accuracy"]
        if len(bound):
            ax.plot([last + 0.35], [bound.mean()], linestyle="", markerfacecolor="white",
                    **look)  # fmt: skip
        drawn.add((gen, family))
    ax.set_xticks(np.arange(last + 1))
    return drawn


def _incremental_legend(fig, gens: list[str], families: list[str], dashes: dict) -> None:
    """A colour per GEN drawn, a dash per AGG family where there are several, and the hollow
    marker of the joint upper bound."""
    handles = [style.gen_handle(g) for g in gens]
    labels = [style.gen_style(g)["label"] for g in gens]
    if len(families) > 1:
        handles += [Line2D([], [], color="0.3", linestyle=dashes[f]) for f in families]
        labels += [f"AGG {f}" for f in families]
    handles.append(Line2D([], [], color="0.3", marker="o", markerfacecolor="white", linestyle=""))
    style.legend(fig, handles, [*labels, "joint upper bound"])


def best_configurations(results: pd.DataFrame) -> pd.DataFrame:
    """Per (backbone, dataset, GEN): the configuration with the best last-session accuracy
    (mean over tasks of the seed median), with its components and its joint upper bound."""
    inc = results[results["protocol"] == "incremental"]
    last = inc[inc["session"] == inc.groupby(KEYS[:4])["session"].transform("max")]
    med = last.groupby([*KEYS, "gen"])[
        ["accuracy", "accuracy_base", "accuracy_new", "accuracy_harmonic"]
    ].median()
    mean = med.groupby(["backbone", "dataset", "gen", "config_id"]).mean().reset_index()
    best = mean.loc[mean.groupby(["backbone", "dataset", "gen"])["accuracy"].idxmax()]
    configs = results.drop_duplicates("config_id").set_index("config_id")
    best = best.assign(configuration=[describe_config(configs.loc[c]) for c in best["config_id"]])
    joint = (
        results[results["protocol"] == "joint"]
        .groupby(["backbone", "dataset", "config_id"])["accuracy"]
        .median()
        .rename("joint_accuracy")
    )
    return best.merge(joint.reset_index(), on=["backbone", "dataset", "config_id"], how="left")


def draw(results: pd.DataFrame, experiment: str | None = None) -> dict:
    """The registry's entry point: the curves, the best configuration per GEN, and the last
    session per named method (analysis/incremental_methods.py)."""
    from imprint.analysis.incremental_methods import last_session_table

    return {
        "incremental_curves": plot_incremental_curves(results),
        "best_incremental": best_configurations(results),
        "last_session": last_session_table(results),
    }
