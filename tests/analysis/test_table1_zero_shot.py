"""Table 1's zero-shot row (GEN text, not in the paper): present only where results have GEN
text rows, its accuracy the mean over groups of the seed-median accuracies, by hand."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from _results import DEFAULTS

from imprint.analysis.tables import table1
from imprint.figures.table1 import table1_markdown

ZERO_SHOT = "Zero-shot (text), not in the paper"
OTHER_METHODS = [
    "Qi et al.",
    "Hosoda et al.",
    "Janson et al.",
    "Ours",
    "Oracle",
    "Linear probe, not in the paper",
    "kNN (dinov2), not in the paper",
]
GROUPS = list(itertools.product(["clip_b32", "clip_b16"], ["CIFAR-10"], ["none"], ["all", "odd"]))
SEEDS = (1, 2, 3)

# Every configuration column of a results table, with the values of a plain GEN mean run.
PLAIN = {k: v for k, v in DEFAULTS.items() if k not in ("experiment", "mapping")}
PLAIN["alpha"] = -1.0
QI = {"norm_pre": "l2", "norm_post": "l2", "norm_inf": "l2"}
METHOD_CONFIGS = {
    "Qi et al.": QI,
    "Hosoda et al.": {"norm_post": "quantile"},
    "Janson et al.": {"distance": "euclidean"},
    "Ours": QI | {"gen": "kmeans", "k": 20},
    "Oracle": {"gen": "ls"},
    "Linear probe, not in the paper": {"gen": "linear_probe"},
    "kNN (dinov2), not in the paper": {
        "gen": "all",
        "k": -1,
        "agg": "mnn",
        "distance": "cosine",
        "weighting": "exp_similarity",
        "m": 20,
    },
}
TEXT = {"gen": "text"}  # GEN text with every other key as PLAIN


def rows(config: dict, accuracies, groups=GROUPS) -> list[dict]:
    """One row per group and seed; accuracies[g][s] for group g, seed s."""
    out = []
    for (backbone, dataset, mapping, task), per_seed in zip(groups, accuracies, strict=True):
        for seed, acc in zip(SEEDS, per_seed, strict=True):
            out.append(
                {
                    "experiment": "e",
                    "backbone": backbone,
                    "dataset": dataset,
                    "mapping": mapping,
                    "task": task,
                    "config_id": "id",
                    **(PLAIN | config),
                    "seed": seed,
                    "accuracy": float(acc),
                    "f1_macro": float(acc) / 100,
                    "f1_per_class": "[]",
                    "n_proxies": 10,
                    "gen_seconds": 0.1,
                    "inference_seconds": 0.1,
                }
            )
    return out


def paper_rows() -> list[dict]:
    out = []
    for i, config in enumerate(METHOD_CONFIGS.values()):
        out += rows(config, [[50 + i, 51 + i, 52 + i]] * len(GROUPS))
    return out


def test_without_text_rows_there_is_no_zero_shot_row():
    out = table1(pd.DataFrame(paper_rows()))
    assert list(out["method"]) == OTHER_METHODS
    assert (out["n_groups"] == len(GROUPS)).all()
    for i, method in enumerate(OTHER_METHODS):  # seed medians 51 + i in every group
        assert out.set_index("method").loc[method, "accuracy"] == pytest.approx(51 + i)


def test_text_rows_of_other_configurations_make_no_zero_shot_row():
    # text_mean, or GEN text under other norms or few-shot: not the zero-shot row.
    decoys = rows({"gen": "text_mean", "alpha": 0.5}, [[70, 71, 72]] * len(GROUPS))
    decoys += rows(TEXT | {"norm_post": "l2"}, [[73, 74, 75]] * len(GROUPS))
    decoys += rows(TEXT | {"fewshot": 2}, [[76, 77, 78]] * len(GROUPS))
    decoys += rows(TEXT | QI, [[79, 80, 81]] * len(GROUPS))
    out = table1(pd.DataFrame(paper_rows() + decoys))
    assert ZERO_SHOT not in set(out["method"])
    assert len(out) == 7


def test_the_zero_shot_row_is_the_mean_of_group_seed_medians():
    # Seed spreads whose mean differs from the median, so a mean over seeds shows.
    per_group = [[60.0, 40.0, 61.0], [70.0, 99.0, 69.0], [30.0, 35.0, 90.0], [55.0, 55.0, 10.0]]
    decoys = rows(TEXT | {"norm_post": "l2"}, [[1.0, 2.0, 3.0]] * len(GROUPS))
    decoys += rows({"gen": "text_mean", "alpha": 0.5}, [[4.0, 5.0, 6.0]] * len(GROUPS))
    results = pd.DataFrame(paper_rows() + rows(TEXT, per_group) + decoys)
    out = table1(results)
    assert list(out["method"]) == [*OTHER_METHODS, ZERO_SHOT]
    row = out.set_index("method").loc[ZERO_SHOT]
    medians = [sorted(seeds)[1] for seeds in per_group]  # 60, 70, 35, 55
    assert row["accuracy"] == pytest.approx(sum(medians) / len(medians))
    assert row["accuracy"] != pytest.approx(np.mean(per_group))
    assert row["n_groups"] == len(GROUPS)
    assert math.isnan(row["paper_accuracy"]) and math.isnan(row["difference"])
    assert list(row[["NORMpre", "GEN", "NORMpost", "NORMinf", "AGG"]]) == [
        "none",
        "text",
        "none",
        "none",
        "max",
    ]
    line = next(r for r in table1_markdown(out).splitlines() if r.startswith(f"| {ZERO_SHOT} "))
    assert "| text |" in line and "55.00" in line
    # The other rows are unchanged by the text rows.
    plain = table1(pd.DataFrame(paper_rows())).set_index("method")
    pd.testing.assert_frame_equal(out.set_index("method").loc[OTHER_METHODS], plain)


def test_the_zero_shot_row_counts_only_the_groups_that_ran_it():
    some = GROUPS[:2]
    results = pd.DataFrame(paper_rows() + rows(TEXT, [[80, 81, 95], [60, 20, 62]], some))
    row = table1(results).set_index("method").loc[ZERO_SHOT]
    assert row["n_groups"] == 2
    assert row["accuracy"] == pytest.approx((81 + 60) / 2)


def test_only_text_rows_give_the_zero_shot_row_and_empty_paper_rows():
    results = pd.DataFrame(rows(TEXT, [[50, 60, 70]] * len(GROUPS)))
    out = table1(results).set_index("method")
    assert out.loc[ZERO_SHOT, "accuracy"] == pytest.approx(60.0)
    others = out.loc[OTHER_METHODS]
    assert others["accuracy"].isna().all() and (others["n_groups"] == 0).all()
