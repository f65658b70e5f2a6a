"""The last session of a class-incremental experiment per named method (not in the paper):
the training-free baselines on frozen features the continual-learning literature reports,
each as the IMPRINT configuration or named method that is it, beside the best IMPRINT
configuration and each one's joint upper bound.

A method's row is its best configuration among those the grid ran that match its components
(several match where the grid varies a key the method leaves open, e.g. TEEN's α or NORMpre),
by last-session accuracy: the seed median, then the mean over the group's tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from imprint.engine.grid import describe_config
from imprint.engine.vocabulary import is_baseline

ACCURACIES = ["accuracy", "accuracy_base", "accuracy_new", "accuracy_harmonic"]
PANEL = ["backbone", "dataset"]
GROUP = ["backbone", "dataset", "mapping", "task"]


@dataclass(frozen=True)
class NamedMethod:
    """A method, its source, and the configuration keys (CONFIG_KEYS) whose values make it."""

    name: str
    source: str
    components: dict


NAMED_METHODS = (
    # "A Simple Baseline that Questions the Use of Pretrained-Models in Continual Learning"
    # (Janson et al. 2022): the nearest class mean of the frozen features; the IMPRINT paper's
    # Table 1 reads its distance as Euclidean, the cosine form is the common re-implementation.
    NamedMethod("NMC (Euclidean)", "Janson et al. 2022",
                {"norm_pre": "none", "gen": "mean", "norm_post": "none", "norm_inf": "none",
                 "agg": "max", "distance": "euclidean"}),
    NamedMethod("NMC (cosine)", "Janson et al. 2022",
                {"norm_pre": "none", "gen": "mean", "norm_post": "l2", "agg": "max",
                 "distance": "inner_product"}),
    # SimpleShot's CL2N (Wang et al. 2019): centred by the base session's mean, L2, nearest
    # centroid by Euclidean distance.
    NamedMethod("SimpleShot (CL2N)", "Wang et al. 2019",
                {"norm_pre": "center_l2", "gen": "mean", "norm_post": "none", "agg": "max",
                 "distance": "euclidean"}),
    # TEEN (Wang et al. 2023): calibrated prototypes, cosine classifier.
    NamedMethod("TEEN", "Wang et al. 2023",
                {"gen": "teen", "norm_post": "l2", "agg": "max", "distance": "inner_product"}),
    NamedMethod("FeCAM", "Goswami et al. 2023", {"gen": "fecam"}),
    NamedMethod("RanPAC", "McDonnell et al. 2023", {"gen": "ranpac"}),
    NamedMethod("FeTrIL", "Petit et al. 2023", {"gen": "fetril"}),
)  # fmt: skip
BEST_IMPRINT = "best IMPRINT configuration"


def last_session_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per (backbone, dataset): each named method the results hold and the best IMPRINT
    configuration (no baseline, no named classifier), with its last-session accuracy on all,
    base and new classes and their harmonic mean, and `joint_accuracy`: the same
    configuration imprinting every class at once (seed median, mean over tasks)."""
    if "session" not in results.columns:
        raise ValueError("last_session_table: not an incremental experiment's table")
    inc = results[results["protocol"] == "incremental"]
    last = inc[inc["session"] == inc.groupby(GROUP)["session"].transform("max")]
    medians = last.groupby([*GROUP, "config_id"])[ACCURACIES].median()
    per_config = medians.groupby([*PANEL, "config_id"]).mean().reset_index()
    configs = results.drop_duplicates("config_id").set_index("config_id")
    joint = (
        results[results["protocol"] == "joint"]
        .groupby([*GROUP, "config_id"])["accuracy"]
        .median()
        .groupby([*PANEL, "config_id"])
        .mean()
        .rename("joint_accuracy")
    )
    rows = []
    for (backbone, dataset), panel in per_config.groupby(PANEL, sort=False):
        for name, source, ids in _candidates(panel, configs):
            best = panel[panel["config_id"].isin(ids)].sort_values("accuracy").iloc[-1]
            bound = joint.get((backbone, dataset, best["config_id"]), float("nan"))
            rows.append({"backbone": backbone, "dataset": dataset, "method": name,
                         "source": source, "configuration": describe_config(
                             configs.loc[best["config_id"]]), "config_id": best["config_id"],
                         **{k: best[k] for k in ACCURACIES}, "joint_accuracy": bound})  # fmt: skip
    return pd.DataFrame(rows)


def _candidates(panel: pd.DataFrame, configs: pd.DataFrame):
    """(name, source, matching config ids) of each named method present, then the best
    IMPRINT configuration's."""
    here = configs.loc[panel["config_id"].unique()]
    for method in NAMED_METHODS:
        match = pd.Series(True, index=here.index)
        for key, value in method.components.items():
            match &= here[key] == value
        if match.any():
            yield method.name, method.source, list(here.index[match])
    imprinting = [c for c, row in here.iterrows() if not is_baseline(row)]
    if imprinting:
        yield BEST_IMPRINT, "IMPRINT (this grid)", imprinting
