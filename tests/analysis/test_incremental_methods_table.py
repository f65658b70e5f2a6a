"""The last-session table per named incremental method: each row is the configuration the
method names, scored at its group's last session, beside its joint upper bound."""

import numpy as np
import pandas as pd
import pytest

from imprint.analysis.incremental_methods import BEST_IMPRINT, last_session_table


def _row(config_id, gen, session, accuracy, seed, protocol="incremental", task="all", **keys):
    base = {"norm_pre": "none", "presampling": "all", "quantile_lo": 0.0, "quantile_hi": 1.0,
            "fewshot": -1, "gen": gen, "k": 1, "alpha": -1.0, "norm_post": "none",
            "norm_inf": "none", "agg": "max", "distance": "inner_product",
            "weighting": "uniform", "m": -1}  # fmt: skip
    return {**base, **keys, "config_id": config_id, "seed": seed, "session": session,
            "protocol": protocol, "backbone": "b", "dataset": "d", "mapping": "none",
            "task": task, "accuracy": accuracy, "accuracy_base": accuracy + 1,
            "accuracy_new": accuracy - 1, "accuracy_harmonic": accuracy - 2}  # fmt: skip


@pytest.fixture
def results():
    rows = []
    for seed, shift in ((1, 0.0), (2, 2.0), (3, 10.0)):  # seed 3 is an outlier: medians
        for task, offset in (("t1", 0.0), ("t2", 4.0)):
            kw = {"seed": seed, "task": task}
            nmc = {"distance": "euclidean"}
            rows += [_row("nmc", "mean", s, 50 + s + shift + offset, **kw, **nmc) for s in (0, 1)]
            rows += [_row("nmc", "mean", 1, 90 + offset, protocol="joint", **kw, **nmc)]
            rows += [_row("km", "kmeans", s, 60 + shift + offset, k=5, **kw) for s in (0, 1)]
            rows += [_row("km", "kmeans", 1, 95, protocol="joint", k=5, **kw)]
            rows += [_row("fc", "fecam", s, 70 + shift + offset, **kw) for s in (0, 1)]
    return pd.DataFrame(rows)


def test_each_named_method_is_its_configuration_at_the_last_session(results):
    table = last_session_table(results).set_index("method")
    # NMC (Euclidean): last session 1, seed medians 51 + 2 (t1) and 55 + 2 (t2): mean 55.
    assert table.loc["NMC (Euclidean)", "accuracy"] == pytest.approx(55.0)
    assert table.loc["NMC (Euclidean)", "accuracy_new"] == pytest.approx(54.0)
    assert table.loc["NMC (Euclidean)", "joint_accuracy"] == pytest.approx(92.0)
    assert table.loc["FeCAM", "accuracy"] == pytest.approx(74.0)
    assert np.isnan(table.loc["FeCAM", "joint_accuracy"])  # no joint rows for it here
    # The best IMPRINT configuration leaves the named classifiers (FeCAM) out: k-means wins.
    assert table.loc[BEST_IMPRINT, "config_id"] == "km"
    assert table.loc[BEST_IMPRINT, "accuracy"] == pytest.approx(64.0)
    assert "NMC (cosine)" not in table.index and "TEEN" not in table.index  # not run
    assert table.loc["FeCAM", "source"] == "Goswami et al. 2023"


def test_a_table_without_sessions_is_refused():
    with pytest.raises(ValueError, match="not an incremental experiment"):
        last_session_table(pd.DataFrame({"accuracy": [1.0]}))
