"""NC1 and VCI, the neural-collapse measures of analysis/collapse.py, as transferability
estimates (lower: more collapsed)."""

from __future__ import annotations

import math

import numpy as np

from imprint.analysis.transferability.common import EstimatorUndefined


def collapse_estimate(name: str, stats, metrics: dict) -> float:
    """NC1 or VCI (`name`: "nc1" or "vci") of collapse_metrics(stats) as a transferability
    estimate (lower: more collapsed). Both measure within-class against between-class
    variability of the L2-normalised rows (analysis/collapse.py); EstimatorUndefined (a
    ValueError) where that is not defined: every class of one row (no within-class
    variability to measure: collapse_metrics would report a meaningless 0) or coinciding class
    means (Σ_B = 0: NC1 inverts it, VCI divides by its rank).
    """
    label = name.upper()
    if int(np.max(stats.counts)) < 2:
        raise EstimatorUndefined(
            f"{label} needs a class of at least 2 rows to measure within-class variability; "
            "every class here has 1 row"
        )
    value = float(metrics[name])
    if metrics["rank_between"] == 0 or not math.isfinite(value):
        what = "it inverts" if name == "nc1" else "whose rank it divides by"
        raise EstimatorUndefined(
            f"{label} is undefined here: the class means (of the L2-normalised rows) "
            f"coincide, so the between-class covariance {what} is zero; it needs classes "
            "whose mean directions differ"
        )
    return value
