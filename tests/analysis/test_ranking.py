"""The one critical-difference pipeline: the workflow's rule and `imprint cd` agree, and the
selection and summary follow the configuration."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from _results import make_rows

from imprint.analysis.ranking import describe_ranking, rank_methods, stack_tables
from imprint.analysis.stats import average_ranks, critical_difference, score_matrix
from imprint.api.figures import draw_figure
from imprint.cli.main import main

# Five configurations of two GENs; accuracy rises with the index, plus noise.
CONFIGS = [
    {"gen": "mean", "k": 1},
    {"gen": "kmeans", "k": 1},
    {"gen": "kmeans", "k": 5},
    {"gen": "kmeans", "k": 20},
    {"gen": "ls", "k": 1},
]


def results_table() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    specs = []
    groups = itertools.product(("resnet18", "vit_b_16"), ("MNIST", "CIFAR-10"), ("all", "even"))
    for backbone, dataset, task in groups:
        for j, config in enumerate(CONFIGS):
            for seed in (1, 2, 3):
                specs.append(
                    config
                    | {"backbone": backbone, "dataset": dataset, "task": task, "seed": seed}
                    | {"config_id": f"id{j}", "accuracy": 70 + 3 * j + rng.normal()}
                )
    return make_rows(specs)


def rule_outputs(tmp_path) -> dict:
    return {
        "ranks": tmp_path / "ranks.csv",
        "pvalues": tmp_path / "pvalues.csv",
        "summary": tmp_path / "summary.txt",
        "cd_diagram_pdf": tmp_path / "cd.pdf",
        "cd_diagram_png": tmp_path / "cd.png",
    }


def test_the_rule_and_imprint_cd_give_the_same_ranks_and_pvalues(tmp_path):
    table = tmp_path / "results.parquet"
    results_table().to_parquet(table)
    options = {"highlight": [], "exclude_gen": [], "max_methods": 30}
    outputs = rule_outputs(tmp_path)
    draw_figure("cd_diagram", {"results": str(table)}, outputs, options, experiment="x")
    assert main(["cd", str(table), "--seed", "seed", "--out-prefix", str(tmp_path / "cli")]) == 0

    rule_ranks = pd.read_csv(outputs["ranks"])
    cli_ranks = pd.read_csv(tmp_path / "cli_ranks.csv")
    # The rule names configurations by their components, `imprint cd` by config_id.
    assert rule_ranks["config_id"].tolist() == cli_ranks["method"].tolist()
    np.testing.assert_array_equal(rule_ranks["average_rank"], cli_ranks["average_rank"])
    ids = dict(zip(rule_ranks["method"], rule_ranks["config_id"]))
    rule_p = pd.read_csv(outputs["pvalues"], index_col="method").rename(index=ids, columns=ids)
    cli_p = pd.read_csv(tmp_path / "cli_pvalues.csv", index_col="config_id")
    pd.testing.assert_frame_equal(rule_p, cli_p, check_names=False)
    assert rule_ranks["method"].iloc[0] == "none / ls / none / none / max"
    # The rule's summary opens with every configuration and the test over all of them.
    summary = outputs["summary"].read_text()
    assert summary.startswith("5 configurations ranked over 8 groups. Over all of them:")
    cli_summary = (tmp_path / "cli_summary.txt").read_text()
    for label, config_id in ids.items():
        cli_summary = cli_summary.replace(config_id, label)
    assert summary.endswith(cli_summary)


def test_highlight_tests_the_best_configuration_per_value(tmp_path):
    outputs = rule_outputs(tmp_path)
    made = draw_figure(
        "cd_diagram",
        {"results": str(_parquet(tmp_path))},
        outputs,
        {"highlight": ["gen"], "exclude_gen": ["ls"], "max_methods": 30},
        experiment="x",
    )
    ranks = pd.read_csv(outputs["ranks"])
    assert set(ranks["gen"]) == {"mean", "kmeans"}  # ls left out
    tested = pd.read_csv(outputs["pvalues"])["method"].tolist()
    assert tested == [
        "gen=kmeans: none / kmeans(k=20) / none / none / max",
        "gen=mean: none / mean / none / none / max",
    ]
    assert list(made["result"].ranks["method"]) == tested
    summary = outputs["summary"].read_text()
    assert summary.startswith("4 configurations (gen ls left out) ranked over 8 groups.")
    assert "Pairwise tests and the diagram: the best configuration per gen (2)" in summary


def _parquet(tmp_path):
    path = tmp_path / "results.parquet"
    results_table().to_parquet(path)
    return path


def test_max_methods_tests_the_best_by_rank_over_all():
    table = results_table()
    groups = ["backbone", "dataset", "task"]
    ranking = rank_methods(table, "config_id", "accuracy", groups, seed="seed")
    assert ranking.selection == "all 5" and ranking.ranks.equals(ranking.result.ranks)
    top = rank_methods(table, "config_id", "accuracy", groups, seed="seed", max_methods=2)
    scores, _ = score_matrix(table, "config_id", "accuracy", groups, seed_col="seed")
    everyone = average_ranks(scores)[0]
    pd.testing.assert_frame_equal(top.ranks, everyone)
    assert list(top.shown) == list(everyone["method"].head(2)) == ["id4", "id3"]
    subset = table[table["config_id"].isin(["id4", "id3"])]
    alone = critical_difference(subset, "config_id", "accuracy", groups, seed_col="seed")
    pd.testing.assert_frame_equal(top.result.pvalues, alone.pvalues)
    assert describe_ranking(top).startswith("2 methods compared over 8 complete groups.")


def test_stack_tables_default_voters_and_text_tags():
    a = pd.DataFrame(
        {"dataset": ["d", "e"], "task": [1, 1], "config_id": ["x", "x"], "accuracy": [1.0, 2.0]}
    )
    b = a.assign(task="1")
    stacked, groups = stack_tables([("a", a), ("b", b)], "config_id", "accuracy")
    assert groups == ["dataset", "task"] and stacked["task"].tolist() == ["1"] * 4
    # One voter (every row of one (dataset, task)) cannot rank anything: refused by name.
    with pytest.raises(
        ValueError, match=r"a, b: one group \(voter\) only \(dataset='d', task='1'\)"
    ):
        stack_tables([("a", a[:1]), ("b", b[:1])], "config_id", "accuracy")
    with pytest.raises(ValueError, match="column 'task' is in some tables but not in b"):
        stack_tables([("a", a), ("b", b.drop(columns="task"))], "config_id", "accuracy")
