"""Every transferability estimator in one table (ESTIMATORS: name -> its function, the keys it
writes, its direction and its figure label) and estimate_all, which runs them on one task.

Adding an estimator: its function, in the module of its family; its entry in ESTIMATORS (whose
order is the order of a transferability JSON's keys); its name in COMPARED (the order of the
agreement table and the figure's panels)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from imprint.analysis.transferability.collapse_measures import collapse_estimate
from imprint.analysis.transferability.common import EstimatorUndefined
from imprint.analysis.transferability.fisher import sfda
from imprint.analysis.transferability.linear import h_score, logme
from imprint.analysis.transferability.mixture import nleep
from imprint.analysis.transferability.ncti import ncti_components
from imprint.analysis.transferability.neighbours import loo_knn_accuracy, tmi
from imprint.analysis.transferability.potential import ped
from imprint.analysis.transferability.separability import gbc, parc
from imprint.analysis.transferability.static import embedding_size

if TYPE_CHECKING:
    from imprint.analysis.collapse import ClassStatistics


@dataclass(frozen=True)
class Task:
    """One task's rows as the estimators read them: float32 features [n, D], class indices
    [n], the class statistics of the L2-normalised rows with their collapse metrics
    (analysis/collapse.py), which NC1 and VCI read, and the backbone's parameter count where
    known (else None)."""

    features: np.ndarray
    labels: np.ndarray
    collapse_stats: ClassStatistics
    collapse_metrics: dict
    parameter_count: int | None = None


@dataclass(frozen=True)
class Estimator:
    """One transferability estimator. compute(task): its value, or {key: value} for one of
    several keys; keys: what it writes to a transferability JSON, in order; direction: +1
    where a higher value predicts a better accuracy, -1 where a lower one does; label: its
    name in figures; log_axis: whether figures plot it on a log scale."""

    compute: Callable[[Task], float | dict[str, float] | None]
    keys: tuple[str, ...]
    direction: int
    label: str
    log_axis: bool = False


def _of_rows(function: Callable) -> Callable[[Task], float | dict[str, float]]:
    """An estimator of the task's features and class indices."""
    return lambda task: function(task.features, task.labels)


def _of_collapse(name: str) -> Callable[[Task], float]:
    """NC1 or VCI, read from the task's collapse metrics."""
    return lambda task: collapse_estimate(name, task.collapse_stats, task.collapse_metrics)


ESTIMATORS: dict[str, Estimator] = {
    "logme": Estimator(_of_rows(logme), ("logme",), +1, "LogME"),
    "h_score": Estimator(_of_rows(h_score), ("h_score",), +1, "H-score"),
    "loo_knn_accuracy": Estimator(
        _of_rows(loo_knn_accuracy), ("loo_knn_accuracy",), +1, "leave-one-out kNN (%)"
    ),
    # Its three terms; NCTI itself ranks the backbones of a task (agreement.with_ncti).
    "ncti": Estimator(
        _of_rows(ncti_components),
        ("ncti_etf", "ncti_ncc", "ncti_vc"),
        +1,
        "NCTI (across backbones)",
    ),
    "tmi": Estimator(_of_rows(tmi), ("tmi",), +1, "TMI (intra-class entropy)"),
    # NC1 and VCI measure how little the classes have collapsed: lower predicts better.
    "nc1": Estimator(_of_collapse("nc1"), ("nc1",), -1, "NC1 (log; lower: more collapsed)", True),
    "vci": Estimator(_of_collapse("vci"), ("vci",), -1, "VCI (lower: more collapsed)"),
    "sfda": Estimator(_of_rows(sfda), ("sfda",), +1, "SFDA"),
    "nleep": Estimator(_of_rows(nleep), ("nleep",), +1, "NLEEP"),
    "parc": Estimator(_of_rows(parc), ("parc",), +1, "PARC"),
    "gbc": Estimator(_of_rows(gbc), ("gbc",), +1, "GBC"),
    "ped": Estimator(_of_rows(ped), ("ped",), +1, "PED + LogME"),
    # Static baselines: the feature dimension, and the backbone's size where recorded (None,
    # with no warning, where not: older embeddings, the pixels backbone, .npz files).
    "embedding_size": Estimator(
        _of_rows(embedding_size), ("embedding_size",), +1, "embedding size", True
    ),
    "parameter_count": Estimator(
        lambda task: task.parameter_count, ("parameter_count",), +1, "parameters", True
    ),
}
# The order in which the agreement table and the figure list the estimators.
COMPARED = ("ncti", "tmi", "logme", "h_score", "loo_knn_accuracy", "nc1", "vci")
COMPARED += ("sfda", "nleep", "parc", "gbc", "ped", "embedding_size", "parameter_count")
# Every key estimate_all returns, in order.
ESTIMATE_KEYS = tuple(key for estimator in ESTIMATORS.values() for key in estimator.keys)


def estimate_all(
    features: np.ndarray,
    labels: np.ndarray,
    stacklevel: int = 2,
    parameter_count: int | None = None,
) -> dict[str, float | None]:
    """Every estimator of ESTIMATORS on one task's rows: features [n, D] (read as one float32
    copy; the estimators that compute in float64 take their view themselves) and class
    indices [n]; parameter_count: the backbone's, where known (else its estimate is None, with
    no warning). Returns {key: value} in the order of ESTIMATE_KEYS.

    An estimator that has no finite value on these data (EstimatorUndefined) gives None for
    each of its keys and one warning naming it and why, attributed `stacklevel` frames up (2:
    the caller of estimate_all). Invalid input still raises ValueError."""
    from imprint.analysis.collapse import class_statistics, collapse_metrics

    x = np.ascontiguousarray(features, dtype=np.float32)
    stats = class_statistics(x, labels, l2_normalise=True)
    task = Task(x, labels, stats, collapse_metrics(stats), parameter_count)
    result = {}
    for estimator in ESTIMATORS.values():
        try:
            # No RuntimeWarning: each estimator refuses a non-finite value itself, by name.
            with np.errstate(all="ignore"):
                value = estimator.compute(task)
        except EstimatorUndefined as err:
            warnings.warn(str(err), stacklevel=stacklevel)
            value = dict.fromkeys(estimator.keys)
        result |= value if isinstance(value, dict) else {estimator.keys[0]: value}
    return result
