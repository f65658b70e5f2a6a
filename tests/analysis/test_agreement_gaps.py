"""Tests that kill the surviving mutants of agreement.py that were real gaps (benchmarks/mutation.py; each one and why: benchmarks/mutation-survivors.md)."""

import pandas as pd
import pytest

from imprint.analysis.agreement import estimator_agreement

COLUMNS = ["dataset", "mapping", "task", "estimator", "target", "tau", "n_backbones"]


def test_agreement_rows_name_their_task_and_unknown_estimators_enter_as_given():
    table = pd.DataFrame(
        {
            "dataset": ["d"] * 3 + ["e"] * 3,
            "mapping": ["m"] * 3 + ["n"] * 3,
            "task": ["a"] * 6,
            "backbone": ["p", "q", "r"] * 2,
            "custom": [1.0, 2.0, 3.0, 3.0, 2.0, 1.0],
            "best_imprinting": [1.0, 2.0, 3.0, 1.0, 2.0, 3.0],
        }
    )
    out = estimator_agreement(table, estimators=["custom"])
    assert list(out.columns) == COLUMNS and out.index.equals(pd.RangeIndex(len(out)))
    per_task = out[out["task"] != "mean"]
    assert per_task[["dataset", "mapping"]].values.tolist() == [["d", "m"], ["e", "n"]]
    assert per_task["tau"].tolist() == pytest.approx([1.0, -1.0])
    assert out[out["task"] == "mean"][["dataset", "mapping"]].values.tolist() == [["all", "all"]]
    assert list(estimator_agreement(table.iloc[:0], estimators=["custom"]).columns) == COLUMNS
