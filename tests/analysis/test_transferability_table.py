"""The estimator table (analysis/transferability/table.py): one entry per estimator, read by the
agreement and the figure, and estimate_all, which runs every entry on one task as `imprint
transferability` writes it (keys in order, None and one warning per undefined estimator)."""

import inspect
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_transferability import _degenerate, _stats

from imprint.analysis.transferability.collapse_measures import collapse_estimate
from imprint.analysis.transferability.fisher import sfda
from imprint.analysis.transferability.linear import h_score, logme
from imprint.analysis.transferability.mixture import nleep
from imprint.analysis.transferability.ncti import ncti_components
from imprint.analysis.transferability.neighbours import loo_knn_accuracy, tmi
from imprint.analysis.transferability.potential import ped
from imprint.analysis.transferability.separability import gbc, parc
from imprint.analysis.transferability.table import (
    COMPARED,
    ESTIMATE_KEYS,
    ESTIMATORS,
    estimate_all,
)

# A transferability JSON's estimates, in the order it holds them.
JSON_KEYS = ("logme", "h_score", "loo_knn_accuracy", "ncti_etf", "ncti_ncc", "ncti_vc", "tmi")
JSON_KEYS += ("nc1", "vci", "sfda", "nleep", "parc", "gbc", "ped", "embedding_size")
JSON_KEYS += ("parameter_count",)


def test_the_table_names_each_estimator_once_with_its_direction_and_label():
    assert sorted(COMPARED) == sorted(ESTIMATORS)
    assert ESTIMATE_KEYS == JSON_KEYS
    # NC1 and VCI measure how little the classes have collapsed: lower predicts better.
    assert {name: e.direction for name, e in ESTIMATORS.items()} == {
        "logme": 1,
        "h_score": 1,
        "loo_knn_accuracy": 1,
        "ncti": 1,
        "tmi": 1,
        "nc1": -1,
        "vci": -1,
        "sfda": 1,
        "nleep": 1,
        "parc": 1,
        "gbc": 1,  # −Σ exp(−D_B): towards 0, the classes overlap less
        "ped": 1,
        "embedding_size": 1,
        "parameter_count": 1,
    }
    assert all(e.label for e in ESTIMATORS.values())
    logged = [name for name, e in ESTIMATORS.items() if e.log_axis]
    assert logged == ["nc1", "embedding_size", "parameter_count"]


def test_the_agreement_orients_each_estimator_by_the_table():
    from imprint.analysis.agreement import ESTIMATORS as SIGNS

    assert list(SIGNS) == list(COMPARED)
    assert SIGNS == {name: float(ESTIMATORS[name].direction) for name in COMPARED}


def test_estimate_all_is_each_estimator_called_on_the_float32_rows():
    x, y = _degenerate("constant_columns")
    x64 = x.astype(np.float64)  # estimate_all reads one float32 copy, as the command does
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = estimate_all(x64, y)
    assert tuple(result) == JSON_KEYS
    stats, metrics = _stats(x, y)
    expected = {
        "logme": logme(x, y),
        "h_score": h_score(x, y),
        "loo_knn_accuracy": loo_knn_accuracy(x, y),
        **ncti_components(x, y),
        "tmi": tmi(x, y),
        "nc1": collapse_estimate("nc1", stats, metrics),
        "vci": collapse_estimate("vci", stats, metrics),
        "sfda": sfda(x, y),
        "nleep": nleep(x, y),
        "parc": parc(x, y),
        "gbc": gbc(x, y),
        "ped": ped(x, y),
        "embedding_size": 8,
        "parameter_count": None,  # not given: null, with no warning
    }
    assert result == expected  # the same numbers, bit for bit
    assert all(math.isfinite(v) for v in result.values() if v is not None)
    assert estimate_all(x64, y, parameter_count=11_176_512)["parameter_count"] == 11_176_512


def test_estimate_all_writes_none_and_one_warning_per_undefined_estimator():
    x, y = _degenerate("one_per_class")  # NCTI, TMI, NC1, VCI, SFDA, PARC and GBC undefined
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        result = estimate_all(x, y)
    assert tuple(result) == JSON_KEYS
    nulls = [key for key, value in result.items() if value is None]
    assert nulls == ["ncti_etf", "ncti_ncc", "ncti_vc", "tmi", "nc1", "vci", "sfda", "parc"] + [
        "gbc",
        "parameter_count",  # unknown: null without a warning
    ]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 7  # one per estimator, in the table's order; no RuntimeWarning
    starts = ("NCTI needs", "TMI needs", "NC1 needs", "VCI needs", "SFDA needs", "PARC needs")
    starts += ("GBC needs",)
    for message, start in zip(messages, starts, strict=True):
        assert message.startswith(start), message
    assert {w.category for w in caught} == {UserWarning}
    # Each names the caller of estimate_all.
    assert {(Path(w.filename).name, w.lineno) for w in caught} == {(Path(__file__).name, line)}


def test_estimate_all_attributes_its_warnings_stacklevel_frames_up():
    x, y = _degenerate("one_per_class")

    def command():  # a caller of estimate_all whose own caller the warnings should name
        return estimate_all(x, y, stacklevel=3)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        command()
    assert len(caught) == 7
    assert {(Path(w.filename).name, w.lineno) for w in caught} == {(Path(__file__).name, line)}


def test_estimate_all_still_refuses_invalid_input():
    x = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="at least 2 classes") as err:
        estimate_all(x, np.zeros(4, int))
    assert not isinstance(err.value, Warning)


def test_the_figure_titles_and_scales_its_panels_by_the_table():
    from imprint.figures.model_choice import plot_transferability

    rng = np.random.default_rng(0)
    rows = [
        {"dataset": "d", "mapping": "none", "task": "t", "backbone": b}
        | {key: float(rng.uniform(0.1, 1.0)) for key in JSON_KEYS}
        | {"best_imprinting": float(rng.uniform(50, 90))}
        for b in ("resnet18", "resnet50", "vit_b16")
    ]
    table = pd.DataFrame(rows)
    table["ncti"] = rng.uniform(size=3)
    agreement = pd.DataFrame(
        {"estimator": list(COMPARED), "target": "best_imprinting", "tau": 0.5, "task": "mean"}
    )
    fig = plot_transferability(table, agreement)
    titles = [ax.get_title().split("\n")[0] for ax in fig.axes]
    assert titles == [ESTIMATORS[name].label for name in COMPARED]
    scales = [ax.get_xscale() for ax in fig.axes]
    assert scales == ["log" if ESTIMATORS[name].log_axis else "linear" for name in COMPARED]
