"""Grid expansion: the reference's filter rules and its configuration counts."""

import pytest

from imprint.engine.grid import GridError, config_id, expand_grid, load_grid

# Configurations per (backbone, dataset, mapping, task), seeds not counted, as the reference's
# experiments.generate_combinations gives them for its config_reprod_*.yaml files.
REFERENCE_COUNTS = {
    "aggfixed": [288, 6],
    "aggfocus": [1968, 119],
    "fig6": [51],
    "fewshot": [35, 35],
    "multimodal": [30, 15],
}


@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_paper_grid_counts_equal_the_reference(name):
    _, grid = load_grid(f"paper:{name}")
    parts = grid["parts"] if "parts" in grid else [grid]
    assert [len(expand_grid(p, with_seeds=False)) for p in parts] == REFERENCE_COUNTS[name]
    configs = expand_grid(grid)
    n_seeds = len(parts[0]["seeds"])
    assert configs["config_id"].nunique() == sum(REFERENCE_COUNTS[name])
    assert len(configs) == sum(REFERENCE_COUNTS[name]) * n_seeds


def test_rules_by_hand():
    grid = {
        "seeds": [1],
        "norm_pre": ["none", "l2"],
        "norm_inf": ["none", "l2"],
        "gen": ["mean", "all", "kmeans"],
        "k": [-1, 1, 5],
        "agg": ["max", "mnn"],
        "distance": ["inner_product", "cosine"],
        "m": [-1, 3, 20],
    }
    df = expand_grid(grid, with_seeds=False)
    # max ignores m and weighting; mnn never uses inner_product or m = -1.
    assert set(df.loc[df["agg"] == "max", "m"]) == {-1}
    assert not ((df["agg"] == "mnn") & ((df.distance == "inner_product") | (df.m == -1))).any()
    # mean → k = 1, all → k = -1, k = -1 only with all; NORMpre l2 only with NORMinf l2.
    assert set(df.loc[df.gen == "mean", "k"]) == {1} and set(df.loc[df.gen == "all", "k"]) == {-1}
    assert set(df.loc[df.gen == "kmeans", "k"]) == {1, 5}
    assert not ((df.norm_pre == "l2") & (df.norm_inf != "l2")).any()
    # m > 10·k is dropped before k is forced: kmeans k=1 keeps m=3 but not m=20 ...
    km = df[(df.gen == "kmeans") & (df["agg"] == "mnn")]
    assert set(km.loc[km.k == 1, "m"]) == {3} and set(km.loc[km.k == 5, "m"]) == {3, 20}
    # ... while mean keeps m=20 because its k=5 row survived the rule and became k=1.
    assert set(df.loc[(df.gen == "mean") & (df["agg"] == "mnn"), "m"]) == {3, 20}
    # Per NORM combination (none/none, none/l2, l2/l2): mean 2 max + 2 mnn, all 2 + 2,
    # kmeans 2 max × 2 k + 3 mnn (k=1: m=3; k=5: m=3, 20).
    assert len(df) == 3 * ((2 + 2) + (2 + 2) + (2 * 2 + 1 + 2))


def test_fewshot_lowers_k():
    df = expand_grid({"gen": ["kmeans"], "k": [5, 20], "fewshot": [2, 10]}, with_seeds=False)
    assert sorted(zip(df.fewshot, df.k)) == [(2, 2), (10, 5), (10, 10)]


def test_weibull_over_everything_is_dropped():
    df = expand_grid(
        {"presampling": ["all", "weibull"], "presampling_quantiles": [[0, 1], [0.05, 0.95]]},
        with_seeds=False,
    )
    assert sorted(zip(df.presampling, df.quantile_lo, df.quantile_hi)) == [
        ("all", 0.0, 1.0),
        ("weibull", 0.05, 0.95),
    ]


def test_ids_are_stable_and_seed_free():
    a = expand_grid({"gen": ["kmeans"], "k": [3], "seeds": [1, 2]})
    b = expand_grid({"gen": ["kmeans", "mean"], "k": [3], "seeds": [9]})
    assert a.config_id.nunique() == 1 and a.config_id[0] in set(b.config_id)
    assert a.config_id[0] == config_id(a.iloc[0].to_dict())
    assert len(a.config_id[0]) == 12


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (
            {"gen": ["kmean"]},
            "grid key 'gen' has unknown value\\(s\\) \\['kmean'\\]; allowed: mean, kmeans",
        ),
        ({"genn": ["mean"]}, "unknown grid key\\(s\\) \\['genn'\\]"),
        ({"k": [0]}, "'k' takes integers >= 1 or -1"),
        ({"m": ["3"]}, "'m' takes integers"),
        ({"gen": "mean"}, "'gen' must be a non-empty list"),
        ({"presampling_quantiles": [[0.9, 0.1]]}, "0 <= lo < hi <= 1"),
        ({"norm_post": ["max"]}, "allowed: none, l2, quantile"),
    ],
)
def test_bad_grids_name_key_and_allowed_values(grid, message):
    with pytest.raises(GridError, match=message):
        expand_grid(grid)


def test_unknown_paper_grid_and_missing_file(tmp_path):
    with pytest.raises(GridError, match="available: aggfixed"):
        load_grid("paper:nope")
    with pytest.raises(GridError, match="no such grid file"):
        load_grid(tmp_path / "missing.yaml")


def test_a_grid_that_filters_to_nothing_says_why():
    with pytest.raises(
        GridError, match="my.yaml: the grid expands to no configuration.*NORMinf l2"
    ):
        expand_grid({"seeds": [1], "gen": ["mean"], "norm_pre": ["l2"]}, where="my.yaml")


def test_a_configuration_from_two_parts_runs_with_both_parts_seeds():
    grid = {
        "parts": [
            {"seeds": [1, 2], "gen": ["mean"]},
            {"seeds": [2, 3], "gen": ["mean", "kmeans"], "k": [1]},
        ]
    }
    runs = expand_grid(grid)[["gen", "k", "seed"]].values.tolist()
    assert runs == [
        ["mean", 1, 1],
        ["mean", 1, 2],
        ["mean", 1, 3],
        ["kmeans", 1, 2],
        ["kmeans", 1, 3],
    ]


def test_describe_values_leaves_out_what_max_does_not_use():
    from imprint.engine.grid import describe_values

    mnn = {"agg": "mnn", "m": 5, "weighting": "uniform", "gen": "all"}
    assert describe_values(mnn, ["agg", "m"]) == "agg=mnn, m=5"
    assert describe_values({**mnn, "agg": "max", "m": -1}, ["agg", "m"]) == "agg=max"
    assert describe_values({**mnn, "agg": "max"}, ["m", "weighting"]) == ""
    assert describe_values({**mnn, "agg": "max"}, ["gen"]) == "gen=all"
