"""The estimators' agreement with the accuracies achieved (analysis/agreement.py): weighted
Kendall τ by hand, oriented by each estimator's direction, averaged over tasks, skipping what is
undefined; and the accuracies to predict."""

import math

import numpy as np
import pytest


def _weighted_tau_direct(x, y):
    """Vigna's (2015) weighted τ with additive hyperbolic weights, ties absent: for a ranking r
    (0 = the largest value), pair (i, j) weighs 1/(r_i + 1) + 1/(r_j + 1); τ is the weighted
    sum of concordance signs over the weight total; the ranking by x and the one by y are
    averaged."""
    x, y = np.asarray(x, float), np.asarray(y, float)

    def tau(rank_by):
        r = np.empty(len(rank_by), int)
        r[np.argsort(-rank_by)] = np.arange(len(rank_by))
        num = den = 0.0
        for i in range(len(x)):
            for j in range(i + 1, len(x)):
                w = 1 / (r[i] + 1) + 1 / (r[j] + 1)
                num += w * np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
                den += w
        return num / den

    return (tau(x) + tau(y)) / 2


def test_weighted_kendall_tau_equals_vignas_formula_by_hand():
    from imprint.analysis.agreement import weighted_kendall_tau

    x = [0.9, 0.1, 0.5, 0.3, 0.7]
    y = [91.0, 80.0, 84.0, 88.0, 86.0]  # the two best swapped against the estimator
    assert weighted_kendall_tau(x, y) == pytest.approx(_weighted_tau_direct(x, y))
    assert weighted_kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert weighted_kendall_tau([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    # A swap at the top costs more than the same swap at the bottom.
    top = weighted_kendall_tau([4, 3, 2, 1], [3, 4, 2, 1])
    bottom = weighted_kendall_tau([4, 3, 2, 1], [4, 3, 1, 2])
    assert top < bottom < 1
    assert math.isnan(weighted_kendall_tau([1.0], [2.0]))
    assert math.isnan(weighted_kendall_tau([1, 1, 1], [1, 2, 3]))


def test_agreement_orients_nc1_and_averages_over_tasks():
    import pandas as pd

    from imprint.analysis.agreement import estimator_agreement

    table = pd.DataFrame(
        {
            "dataset": ["d"] * 6,
            "mapping": ["none"] * 6,
            "task": ["a"] * 3 + ["b"] * 3,
            "backbone": ["p", "q", "r"] * 2,
            "nc1": [0.1, 0.2, 0.3, 0.3, 0.2, 0.1],  # task a: less collapse, lower accuracy
            "logme": [3.0, 2.0, 1.0, 1.0, 3.0, 2.0],
            "best_imprinting": [90.0, 80.0, 70.0, 60.0, 70.0, 80.0],
        }
    )
    out = estimator_agreement(table).set_index(["task", "estimator"])
    assert out.loc[("a", "nc1"), "tau"] == pytest.approx(1.0)  # −NC1 ranks like the accuracy
    assert out.loc[("b", "nc1"), "tau"] == pytest.approx(1.0)
    assert out.loc[("a", "logme"), "tau"] == pytest.approx(1.0)
    b_logme = _weighted_tau_direct([1.0, 3.0, 2.0], [60.0, 70.0, 80.0])
    assert out.loc[("b", "logme"), "tau"] == pytest.approx(b_logme)
    assert out.loc[("mean", "logme"), "tau"] == pytest.approx((1.0 + b_logme) / 2)
    assert set(out["target"]) == {"best_imprinting"}  # no linear-probe column, no such rows
    assert (out["n_backbones"] == 3).all()


def test_achieved_accuracies_take_the_best_imprinting_row_and_the_probe():
    import pandas as pd

    from imprint.analysis.agreement import achieved_accuracies
    from imprint.engine.grid import expand_grid

    configs = expand_grid(
        {
            "parts": [
                {"seeds": [1, 2, 3], "gen": ["mean", "ls", "linear_probe"]},
                {
                    "seeds": [1, 2, 3],
                    "gen": ["all"],
                    "k": [-1],
                    "agg": ["mnn"],
                    "distance": ["cosine"],
                    "weighting": ["exp_similarity"],
                    "m": [10],
                },
                {"seeds": [1, 2, 3], "gen": ["kmeans"], "k": [2], "fewshot": [5]},
            ]
        }
    )
    accuracy = {
        "mean": [70, 80, 75],
        "ls": [99, 99, 99],
        "linear_probe": [85, 86, 84],
        "all": [95, 95, 95],
        "kmeans": [98, 98, 98],
    }
    rows = []
    for row in configs.to_dict("records"):
        seed_index = [1, 2, 3].index(row["seed"])
        rows.append(
            {
                **row,
                "backbone": "p",
                "dataset": "d",
                "mapping": "none",
                "task": "t",
                "accuracy": accuracy[row["gen"]][seed_index],
            }
        )
    out = achieved_accuracies(pd.DataFrame(rows))
    # ls (oracle), kNN (a baseline) and the few-shot k-means are not what is predicted.
    assert out["best_imprinting"].tolist() == [75.0]  # the median of the mean's seeds
    assert out["linear_probe"].tolist() == [85.0]
    assert out["best_configuration"].tolist() == ["none / mean / none / none / max"]


def test_agreement_skips_an_estimator_left_undefined():
    import pandas as pd

    from imprint.analysis.agreement import estimator_agreement

    table = pd.DataFrame(
        {
            "dataset": ["d"] * 3,
            "mapping": ["none"] * 3,
            "task": ["a"] * 3,
            "backbone": ["p", "q", "r"],
            "tmi": [None, None, None],  # null in every JSON
            "logme": [3.0, None, 1.0],
            "best_imprinting": [90.0, 80.0, 70.0],
        }
    )
    out = estimator_agreement(table).set_index(["task", "estimator"])
    assert math.isnan(out.loc[("a", "tmi"), "tau"])
    assert out.loc[("a", "logme"), "tau"] == pytest.approx(1.0)  # the two defined ones
