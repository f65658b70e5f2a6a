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


def test_agreement_rows_come_sorted_by_task_then_means_in_the_given_order():
    # kills: task groupby sort=True → False (estimator_agreement 14); means' sort=False → True / dropped (78, 84)
    keys = [("e", "m", "b"), ("d", "n", "a"), ("d", "m", "b"), ("d", "m", "a")]  # unsorted
    rows = []
    for dataset, mapping, task in keys:
        for backbone, value in zip("pqr", (1.0, 2.0, 3.0), strict=True):
            rows.append(
                {
                    "dataset": dataset,
                    "mapping": mapping,
                    "task": task,
                    "backbone": backbone,
                    "zeta": value,
                    "alpha": -value,
                    "best_imprinting": value,
                    "linear_probe": value,
                }
            )
    out = estimator_agreement(pd.DataFrame(rows), estimators=["zeta", "alpha"])
    per_task = out[out["task"] != "mean"]
    assert list(per_task.itertuples(index=False, name=None))[::4] == [
        ("d", "m", "a", "zeta", "best_imprinting", pytest.approx(1.0), 3),
        ("d", "m", "b", "zeta", "best_imprinting", pytest.approx(1.0), 3),
        ("d", "n", "a", "zeta", "best_imprinting", pytest.approx(1.0), 3),
        ("e", "m", "b", "zeta", "best_imprinting", pytest.approx(1.0), 3),
    ]
    means = out[out["task"] == "mean"]
    assert means[["estimator", "target"]].values.tolist() == [
        ["zeta", "best_imprinting"],
        ["zeta", "linear_probe"],
        ["alpha", "best_imprinting"],
        ["alpha", "linear_probe"],
    ]
    assert means["tau"].tolist() == pytest.approx([1.0, 1.0, -1.0, -1.0])


def test_with_ncti_adds_one_column_named_ncti():
    # kills: `table["ncti"] = np.nan` → `table["XXnctiXX"] = np.nan` / `table["NCTI"] = ...`
    from imprint.analysis.agreement import with_ncti

    table = pd.DataFrame(
        {
            "dataset": ["d"] * 3,
            "mapping": ["m"] * 3,
            "task": ["a"] * 3,
            "backbone": ["p", "q", "r"],
            "ncti_etf": [1.0, 3.0, 2.0],
            "ncti_ncc": [0.5, 0.7, 0.9],
            "ncti_vc": [2.0, 1.0, 4.0],
        }
    )
    out = with_ncti(table)
    assert list(out.columns) == [*table.columns, "ncti"]
    # By hand: min-max scaled ncc + etf − vc: p 0 + 0 − 1/3, q 1/2 + 1 − 0, r 1 + 1/2 − 1.
    assert out["ncti"].tolist() == pytest.approx([-1 / 3, 1.5, 0.5])


def test_achieved_accuracies_have_exactly_the_documented_columns():
    # kills: `.reset_index(drop=True)` → drop=None / drop=False: an 'index' column (achieved_accuracies 67, 76)
    from imprint.analysis.agreement import achieved_accuracies
    from imprint.engine.grid import expand_grid

    configs = expand_grid({"parts": [{"seeds": [1, 2], "gen": ["mean", "linear_probe"]}]})
    rows = [
        {
            **row,
            "backbone": backbone,
            "dataset": dataset,
            "mapping": "none",
            "task": "t",
            "accuracy": base + row["seed"] + (row["gen"] == "linear_probe"),
        }
        for backbone, dataset, base in (("q", "d", 70), ("p", "e", 60), ("p", "d", 80))
        for row in configs.to_dict("records")
    ]
    out = achieved_accuracies(pd.DataFrame(rows))
    assert list(out.columns) == [
        "backbone",
        "dataset",
        "mapping",
        "task",
        "best_imprinting",
        "best_configuration",
        "linear_probe",
    ]
    # By hand: the seed median of base + 1 and base + 2; the probe's one more; sorted groups.
    assert out[["backbone", "dataset", "best_imprinting", "linear_probe"]].values.tolist() == [
        ["p", "d", 81.5, 82.5],
        ["p", "e", 61.5, 62.5],
        ["q", "d", 71.5, 72.5],
    ]


# Run of 2026-12-07 at e7146e6 (benchmarks/mutation-survivors.md, top section): the row of
# weighted_kendall_tau 22, 25 said "killed by the proposed tests", but no test was written.
def test_weighted_tau_of_variables_with_a_range_of_exactly_one():
    # kills `np.ptp(x) == 0` → `== 1` and `np.ptp(y) == 0` → `== 1` (weighted_kendall_tau 22,
    # 25): both rankings agree perfectly, so τ is 1 by definition, not NaN
    from imprint.analysis.agreement import weighted_kendall_tau

    assert weighted_kendall_tau([1.0, 2.0, 1.5], [10.0, 11.0, 10.5]) == pytest.approx(1.0)
    assert weighted_kendall_tau([1.0, 2.0, 1.5], [10.5, 10.0, 11.0]) < 1.0


def test_a_group_without_a_linear_probe_keeps_its_row_with_nan():
    # kills: the merge's how="left" dropped (an inner join loses the group without a probe;
    # achieved_accuracies 73). Mutant 72 (on=keys dropped) is equivalent: the shared columns
    # are exactly the keys.
    from imprint.analysis.agreement import achieved_accuracies
    from imprint.engine.grid import expand_grid

    both = expand_grid({"parts": [{"seeds": [1, 2], "gen": ["mean", "linear_probe"]}]})
    mean_only = expand_grid({"parts": [{"seeds": [1, 2], "gen": ["mean"]}]})
    rows = [
        {**row, "backbone": b, "dataset": "d", "mapping": "none", "task": "t"}
        | {"accuracy": base + row["seed"] + (row["gen"] == "linear_probe")}
        for b, base, configs in (("a", 50, both), ("b", 60, mean_only))
        for row in configs.to_dict("records")
    ]
    out = achieved_accuracies(pd.DataFrame(rows)).set_index("backbone")
    assert list(out.index) == ["a", "b"]
    # By hand: seed medians of base + 1 and base + 2; the probe one more; b has none.
    assert out.loc["a", "best_imprinting"] == 51.5 and out.loc["a", "linear_probe"] == 52.5
    assert out.loc["b", "best_imprinting"] == 61.5 and pd.isna(out.loc["b", "linear_probe"])
