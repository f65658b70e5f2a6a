"""Do transferability estimates predict the accuracy a backbone reaches? The accuracies
achieved per group (best imprinting configuration, linear probe), NCTI combined across a task's
backbones, and the weighted Kendall τ of each estimator against each accuracy."""

from __future__ import annotations

import numpy as np

from imprint.analysis.transferability.ncti import ncti_scores
from imprint.analysis.transferability.table import COMPARED
from imprint.analysis.transferability.table import ESTIMATORS as ESTIMATOR_TABLE

# The estimators of a transferability table, in the order they are compared, each with the
# sign that makes "higher predicts a better accuracy" (its direction in the estimator table).
ESTIMATORS = {name: float(ESTIMATOR_TABLE[name].direction) for name in COMPARED}
TARGETS = ("best_imprinting", "linear_probe")
AGREEMENT_GROUPS = ("dataset", "mapping", "task")


def weighted_kendall_tau(estimates, accuracies) -> float:
    """Weighted Kendall τ between an estimator's values and the accuracies achieved, over the
    candidate backbones, as transferability papers report it: scipy.stats.weightedtau with
    its defaults (Vigna 2015: hyperbolic weight 1/(r + 1) on a pair's ranks, r the rank by
    decreasing value, averaged over the ranking by either variable), so an exchange among the
    best candidates costs more than one among the worst. NaN for fewer than 2 candidates or a
    constant input."""
    from scipy import stats

    x = np.asarray(estimates, dtype=float)
    y = np.asarray(accuracies, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.weightedtau(x, y).statistic)


def estimator_agreement(table, estimators=None, targets=TARGETS):
    """Weighted Kendall τ of each estimator against each achieved accuracy, across backbones,
    per (dataset, mapping, task), and their mean over those tasks (rows with task "mean").

    `table`: one row per (backbone, dataset, mapping, task) with the estimators' and targets'
    columns (transferability.csv). Estimators are oriented by ESTIMATORS' signs (unknown ones
    as given); an estimate left undefined (null in its JSON: missing here) drops out of its
    τ. Returns columns dataset, mapping, task, estimator, target, tau, n_backbones.
    """
    import pandas as pd

    table = with_ncti(table)
    estimators = [e for e in (estimators or ESTIMATORS) if e in table.columns]
    targets = [t for t in targets if t in table.columns]
    rows = []
    for (dataset, mapping, task), part in table.groupby(list(AGREEMENT_GROUPS), sort=True):
        for estimator in estimators:
            sign = ESTIMATORS.get(estimator, 1.0)
            for target in targets:
                rows.append(
                    {
                        "dataset": dataset,
                        "mapping": mapping,
                        "task": task,
                        "estimator": estimator,
                        "target": target,
                        "tau": weighted_kendall_tau(sign * part[estimator], part[target]),
                        # the backbones the τ ranks: those with both values
                        "n_backbones": int(part[[estimator, target]].notna().all(axis=1).sum()),
                    }
                )
    out = pd.DataFrame(
        rows, columns=[*AGREEMENT_GROUPS, "estimator", "target", "tau", "n_backbones"]
    )
    if out.empty:
        return out
    undefined = out[out["tau"].isna()]
    if len(undefined):  # one line, never a silent NaN: τ ranks two or more backbones
        import warnings

        which = ", ".join(
            sorted(
                {
                    f"{r.estimator} ({r.dataset}/{r.mapping}/{r.task})"
                    for r in undefined.itertuples()
                }
            )
        )
        warnings.warn(
            f"weighted Kendall τ is undefined (fewer than 2 backbones with both an estimate and "
            f"an accuracy, or all tied) and left empty for: {which}",
            stacklevel=2,
        )
    mean = out.groupby(["estimator", "target"], sort=False, as_index=False).agg(
        tau=("tau", "mean"), n_backbones=("n_backbones", "max")
    )
    mean[list(AGREEMENT_GROUPS)] = ["all", "all", "mean"]
    return pd.concat([out, mean[out.columns]], ignore_index=True)


def with_ncti(table):
    """`table` with an `ncti` column: the NCTI of each row among the backbones of its
    (dataset, mapping, task), from its ncti_etf/ncc/vc columns (unchanged without them)."""
    terms = list(ESTIMATOR_TABLE["ncti"].keys)
    if not set(terms) <= set(table.columns):
        return table
    table = table.copy()
    table["ncti"] = np.nan
    for _, part in table.groupby(list(AGREEMENT_GROUPS), sort=False):
        table.loc[part.index, "ncti"] = ncti_scores(*(part[t] for t in terms))
    return table


def achieved_accuracies(results, exclude_gen=("ls", "kls")):
    """Per (backbone, dataset, mapping, task) group of a results table: the seed-median
    accuracy of its best imprinting configuration (baselines and `exclude_gen`, the ls
    oracle, left out) and of the linear probe as Table 1 selects it (NaN where the group has
    none), both on every training row (presampling all, few-shot -1), as the estimators see
    them. Columns: GROUP_COLUMNS, best_imprinting, best_configuration, linear_probe."""
    import pandas as pd

    from imprint.analysis.tables import TABLE1_COMMON, TABLE1_METHODS, seed_medians
    from imprint.engine.grid import describe_config
    from imprint.engine.vocabulary import GROUP_COLUMNS, is_baseline

    med = seed_medians(results)
    for key, value in TABLE1_COMMON.items():
        med = med[med[key] == value]
    baseline = med.apply(is_baseline, axis=1) if len(med) else pd.Series(dtype=bool)
    imprinting = med[~baseline & ~med["gen"].isin(list(exclude_gen))]
    keys = list(GROUP_COLUMNS)
    best = imprinting.loc[imprinting.groupby(keys, sort=True)["accuracy"].idxmax()]
    out = best[keys].copy()
    out["best_imprinting"] = best["accuracy"].to_numpy()
    out["best_configuration"] = [describe_config(r) for r in best.to_dict("records")]
    probe = next(m for m in TABLE1_METHODS if m.filters.get("gen") == "linear_probe")
    selected = med
    for key, value in probe.filters.items():
        selected = selected[selected[key] == value]
    probe_acc = selected.groupby(keys, sort=True)["accuracy"].mean().rename("linear_probe")
    return out.merge(probe_acc.reset_index(), on=keys, how="left").reset_index(drop=True)
