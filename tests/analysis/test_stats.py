"""Critical-difference statistics and diagram, checked against independent computations."""

from __future__ import annotations

import itertools
import math

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import scikit_posthocs
from matplotlib.backends.backend_agg import FigureCanvasAgg
from scipy import stats

from imprint.analysis.cliques import maximal_cliques
from imprint.analysis.stats import (
    best_per_value,
    critical_difference,
    describe_friedman,
    friedman,
    holm_correction,
    pairwise_wilcoxon,
    wilcoxon_pratt_pvalue,
)
from imprint.figures.cd_diagram import _bars, plot_cd_diagram


def long_table(scores: np.ndarray, names: list[str]) -> pd.DataFrame:
    """groups x methods array -> long table with a single group column."""
    n, k = scores.shape
    return pd.DataFrame(
        {
            "method": np.tile(names, n),
            "dataset": np.repeat([f"d{i}" for i in range(n)], k),
            "acc": scores.ravel(),
        }
    )


def shifted_scores(n: int, k: int, step: float, seed: int, noise: float = 0.03) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.5 + step * np.arange(k)[None, :] + rng.normal(0, noise, size=(n, k))


# --------------------------------------------------------------------------- Holm


def test_holm_hand_worked_example():
    # sorted: 0.005 (x4 = 0.02, <= .0125 reject), 0.01 (x3 = 0.03, <= .0167 reject),
    # 0.03 (x2 = 0.06, > .025 stop), 0.04 (x1 = 0.04 -> running max 0.06).
    adjusted, reject = holm_correction([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    assert reject.tolist() == [True, False, False, True]


def test_holm_stops_at_first_non_rejection():
    # 0.032 < alpha on its own, but 0.03 > alpha / 3 stops the procedure first.
    adjusted, reject = holm_correction([0.031, 0.03, 0.032])
    np.testing.assert_allclose(adjusted, [0.09, 0.09, 0.09])
    assert not reject.any()


def test_holm_clips_at_one_and_handles_empty():
    adjusted, reject = holm_correction([0.6, 0.7, 0.01])
    np.testing.assert_allclose(adjusted, [1.0, 1.0, 0.03])
    assert reject.tolist() == [False, False, True]
    adjusted, reject = holm_correction([])
    assert adjusted.size == 0 and reject.size == 0


# --------------------------------------------------------------------------- tests vs scipy


@pytest.fixture(scope="module")
def random_case():
    names = ["alpha", "beta", "gamma", "delta", "epsilon"]
    # Rounded to 2 decimals so that some paired differences are exactly zero (Pratt matters).
    scores = np.round(shifted_scores(n=18, k=5, step=0.012, seed=3), 2)
    result = critical_difference(long_table(scores, names), "method", "acc", "dataset")
    return names, scores, result


def test_friedman_matches_scipy(random_case):
    names, scores, result = random_case
    expected = stats.friedmanchisquare(*scores.T)
    assert result.friedman_tested
    assert result.friedman_statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.friedman_pvalue == pytest.approx(expected.pvalue, rel=1e-12)
    assert result.friedman_significant == (expected.pvalue < 0.05)
    assert result.n_groups == 18


def test_friedman_alone_on_a_score_matrix():
    scores = pd.DataFrame(shifted_scores(n=12, k=4, step=0.01, seed=5))
    want = stats.friedmanchisquare(*scores.to_numpy().T)
    assert friedman(scores) == pytest.approx((want.statistic, want.pvalue), rel=1e-12)
    assert "NOT significant" in describe_friedman(want.statistic, 0.2)
    assert math.isnan(friedman(scores.iloc[:, :2])[1])  # needs 3 methods
    tied = pd.DataFrame(np.ones((5, 3)))
    assert math.isnan(friedman(tied)[0]) and friedman(tied)[1] == 1.0
    assert "every method ties" in describe_friedman(*friedman(tied))


def test_pairwise_pvalues_match_scipy_wilcoxon(random_case):
    names, scores, result = random_case
    for a, b in itertools.combinations(range(len(names)), 2):
        # Scores are multiples of 0.01: the exact differences, ties intact (see below).
        d = np.round(scores[:, a] - scores[:, b], 2)
        expected = stats.wilcoxon(d, zero_method="pratt").pvalue
        assert result.raw_pvalues.loc[names[a], names[b]] == pytest.approx(expected, rel=1e-12)
        assert result.raw_pvalues.loc[names[b], names[a]] == pytest.approx(expected, rel=1e-12)
    assert np.all(np.diag(result.pvalues.to_numpy()) == 1.0)


def test_wilcoxon_pvalue_is_scipys_bit_for_bit_on_ties_and_zeros():
    # Small samples with ties or zeros are where scipy enumerates sign flips (slowly); the
    # counted distribution must give the very same float. Larger or tie-free samples go to
    # scipy itself and are covered too.
    rng = np.random.default_rng(3)
    cases = [np.array([0.0, 1.0]), np.array([2.0, -2.0, 2.0]), np.array([0.5, 0.0, 0.0, -1.5])]
    cases.append(np.array([0.0, 0.0, 1, -1, 2, 2, -3, 3, 0.5, -0.5, 4, 4, 5]))  # n = 13, zeros
    cases.append(np.array([np.inf, 1.0, 1.0]))  # non-finite: scipy's own NaN
    for n in [*range(1, 10), 12, 16]:  # 12: the range the counting is for (scipy: 2 s a call)
        for _ in range(12 if n < 10 else 1):
            levels = rng.integers(2, 6)
            cases.append(rng.integers(-levels, levels + 1, size=n) * rng.choice([1 / 3, 0.5]))
    cases.append(rng.normal(size=9))  # no ties: scipy's exact distribution
    checked = 0
    for d in cases:
        if d.any():
            expected = stats.wilcoxon(d, zero_method="pratt").pvalue
            got = wilcoxon_pratt_pvalue(d)
            assert got == expected or (np.isnan(got) and np.isnan(expected))
            checked += 1
    assert checked > 100
    # Scores with inf (inf - inf is NaN): no crash, and p = 1 as for scipy's NaN before.
    # An inf elsewhere in the table leaves the tie tolerance of finite pairs alone.
    c = np.arange(50.0, 60.0)
    d = c - 0.7 * np.arange(1, 11)
    scores = pd.DataFrame({"a": [np.inf, *range(9)], "b": [np.inf, *range(1, 10)], "c": c, "d": d})
    p = pairwise_wilcoxon(scores)
    assert p.loc["a", "b"] == 1.0
    assert p.loc["c", "d"] == stats.wilcoxon(c, d, zero_method="pratt").pvalue < 0.01


def test_pairwise_wilcoxon_keeps_ties_that_float_subtraction_breaks():
    # Accuracies out of 30 test samples: in exact arithmetic |d| has ties (1/30, 2/30 points),
    # but 100·a/30 − 100·b/30 splits them in the last bit, so the ranks, and scipy's choice of
    # test, change (p 0.33 instead of 0.51 here).
    wrong = np.array([12, 12, 16, 19, 5, 7, 17, 19, 8, 9])
    diff = np.array([3, 1, -1, 3, -1, 1, 2, 1, -2, -2])
    x, y = 100 * (wrong + diff) / 30, 100 * wrong / 30
    exact = stats.wilcoxon(diff * (100 / 30), zero_method="pratt").pvalue
    naive = stats.wilcoxon(x, y, zero_method="pratt").pvalue
    assert naive == pytest.approx(0.326171875) and exact == pytest.approx(0.51171875)
    got = pairwise_wilcoxon(pd.DataFrame({"a": x, "b": y}))
    assert got.loc["a", "b"] == pytest.approx(exact, rel=1e-12)
    # 9,566 test samples: A − B is 153 correct answers in both of the first two tasks, but the
    # float differences straddle a half-point of any fixed rounding grid (a review's case).
    n, a, b = 9566, [4477, 8192, 4000, 3000, 5000], [4324, 8039, 4010, 3100, 4990]
    scores = pd.DataFrame({"A": [100 * v / n for v in a], "B": [100 * v / n for v in b]})
    diff = scores["A"] - scores["B"]
    assert diff[0] != diff[1]
    tied = stats.wilcoxon([100 * (u - v) / n for u, v in zip(a, b)], zero_method="pratt")
    assert pairwise_wilcoxon(scores).loc["A", "B"] == pytest.approx(tied.pvalue, rel=1e-12)


def test_adjusted_pvalues_match_scikit_posthocs(random_case):
    names, scores, result = random_case
    # In hundredths the scores are integers, so the library's x - y is exact.
    ref = scikit_posthocs.posthoc_wilcoxon(
        [np.round(scores[:, j] * 100) for j in range(len(names))],
        zero_method="pratt",
        p_adjust="holm",
    )
    ref.index = ref.columns = names
    ours = result.pvalues.loc[names, names]
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), rtol=1e-12)


def test_cliques_follow_holm_decisions(random_case):
    names, scores, result = random_case
    assert result.friedman_significant
    different = result.pvalues.to_numpy() <= result.alpha
    np.testing.assert_array_equal(result.significant.to_numpy(), different)
    for clique in result.cliques:
        for a, b in itertools.combinations(clique, 2):
            assert result.pvalues.loc[a, b] > result.alpha


# --------------------------------------------------------------------------- ranks


def test_average_ranks_with_ties_hand_worked():
    table = pd.DataFrame(
        {
            "method": ["A", "B", "C"] * 3,
            "g": ["g1"] * 3 + ["g2"] * 3 + ["g3"] * 3,
            "acc": [0.9, 0.8, 0.8, 0.5, 0.7, 0.6, 0.4, 0.4, 0.4],
        }
    )
    # g1: A 1, B 2.5, C 2.5 | g2: B 1, C 2, A 3 | g3: all 2
    result = critical_difference(table, "method", "acc", "g")
    assert result.ranks["method"].tolist() == ["B", "A", "C"]
    np.testing.assert_allclose(result.ranks["average_rank"], [11 / 6, 2.0, 13 / 6])
    assert result.rank_matrix.loc["g1", "B"] == 2.5
    assert result.rank_matrix.loc["g3"].tolist() == [2.0, 2.0, 2.0]


def test_seed_median_not_mean():
    rows = []
    for g in ["g1", "g2", "g3"]:
        # A: median 0.9, mean 0.6 ; B: median = mean = 0.8 ; C: 0.1 everywhere
        for seed, (a, b, c) in enumerate([(0.9, 0.8, 0.1), (0.9, 0.8, 0.1), (0.0, 0.8, 0.1)]):
            rows += [
                {"method": "A", "g": g, "seed": seed, "acc": a},
                {"method": "B", "g": g, "seed": seed, "acc": b},
                {"method": "C", "g": g, "seed": seed, "acc": c},
            ]
    result = critical_difference(pd.DataFrame(rows), "method", "acc", "g", seed_col="seed")
    assert result.ranks["method"].tolist() == ["A", "B", "C"]
    np.testing.assert_allclose(result.ranks["average_rank"], [1.0, 2.0, 3.0])
    assert result.score_matrix["A"].tolist() == [0.9, 0.9, 0.9]


def test_several_group_columns_and_incomplete_groups():
    rows = [
        {"method": m, "backbone": bb, "dataset": ds, "acc": 0.1 * i + 0.01 * j}
        for i, m in enumerate(["x", "y", "z"])
        for j, (bb, ds) in enumerate(itertools.product(["r50", "vit"], ["c10", "c100", "svhn"]))
    ]
    table = pd.DataFrame(rows)
    table = table[~((table.method == "z") & (table.dataset == "svhn") & (table.backbone == "vit"))]
    with pytest.warns(UserWarning, match="dropped 1 of 6 groups"):
        result = critical_difference(table, "method", "acc", ["backbone", "dataset"])
    assert result.n_groups == 5 and result.n_dropped_groups == 1
    assert ("vit", "svhn") not in result.rank_matrix.index
    assert result.ranks["method"].tolist() == ["z", "y", "x"]


def test_the_dropped_groups_warning_points_at_the_analysis_call():
    # Past score_matrix and critical_difference: the line to look at is the caller's.
    table = long_table(np.array([[0.1, 0.2, 0.3], [0.3, 0.1, 0.2], [0.2, 0.3, 0.1]]), list("abc"))
    with pytest.warns(UserWarning, match="dropped 1 of 3 groups") as caught:
        critical_difference(table.iloc[1:], "method", "acc", "dataset")
    assert [w.filename for w in caught] == [__file__]


def test_method_without_scores_raises():
    table = pd.DataFrame(
        {
            "method": ["A", "B", "C", "A", "B", "C"],
            "g": ["g1"] * 3 + ["g2"] * 3,
            "acc": [0.1, 0.2, np.nan, 0.3, 0.4, np.nan],
        }
    )
    with pytest.raises(ValueError, match="'C'"):
        critical_difference(table, "method", "acc", "g")


def test_duplicate_cells_without_seed_raise():
    table = pd.DataFrame({"method": ["A", "A", "B", "B"], "g": ["g1"] * 4, "acc": [0.1] * 4})
    with pytest.raises(ValueError, match="seed_col"):
        critical_difference(table, "method", "acc", "g")


# --------------------------------------------------------------------------- edge cases


def test_identical_methods_never_significant():
    scores = shifted_scores(n=20, k=4, step=0.05, seed=1, noise=0.01)
    scores = np.column_stack([scores, scores[:, 3]])  # "twin" copies the best method
    names = ["w", "x", "y", "best", "twin"]
    result = critical_difference(long_table(scores, names), "method", "acc", "dataset")
    assert result.friedman_significant
    assert result.raw_pvalues.loc["best", "twin"] == 1.0
    assert result.pvalues.loc["best", "twin"] == 1.0
    assert not result.significant.loc["best", "twin"]
    assert any({"best", "twin"} <= set(c) for c in result.cliques)
    # the others are far apart, so they are separable from the twins
    assert result.significant.loc["best", "w"]


def test_not_significant_friedman_is_reported_not_raised():
    scores = shifted_scores(n=6, k=5, step=0.0, seed=7)
    assert stats.friedmanchisquare(*scores.T).pvalue >= 0.05  # precondition of the test
    names = [f"m{j}" for j in range(5)]
    result = critical_difference(long_table(scores, names), "method", "acc", "dataset")
    assert result.friedman_significant is False
    assert "not significant" in result.summary.lower()
    assert len(result.ranks) == 5
    assert result.cliques == [result.ranks["method"].tolist()]
    assert not result.significant.to_numpy().any()


def test_all_groups_fully_tied():
    table = long_table(np.full((4, 3), 0.5), ["a", "b", "c"])
    result = critical_difference(table, "method", "acc", "dataset")
    assert result.friedman_significant is False
    assert result.friedman_pvalue == 1.0
    assert (result.pvalues.to_numpy() == 1.0).all()


def test_two_methods_skip_friedman():
    scores = shifted_scores(n=12, k=2, step=0.05, seed=2, noise=0.01)
    result = critical_difference(long_table(scores, ["p", "q"]), "method", "acc", "dataset")
    assert not result.friedman_tested
    assert math.isnan(result.friedman_pvalue)
    assert "skipped" in result.summary
    expected = stats.wilcoxon(scores[:, 0], scores[:, 1], zero_method="pratt").pvalue
    assert result.pvalues.loc["p", "q"] == pytest.approx(expected)
    assert result.significant.loc["p", "q"] == (expected <= 0.05)


# --------------------------------------------------------------------------- Bron–Kerbosch


def test_cliques_triangle_plus_pendant():
    graph = {"a": ["b", "c"], "b": ["a", "c"], "c": ["a", "b", "d"], "d": ["c"]}
    assert maximal_cliques(graph) == [["a", "b", "c"], ["c", "d"]]


def test_cliques_small_graphs_from_matrices():
    assert maximal_cliques(np.zeros((3, 3), dtype=bool)) == [[0], [1], [2]]
    assert maximal_cliques(np.ones((4, 4), dtype=bool)) == [[0, 1, 2, 3]]
    cycle = np.zeros((5, 5), dtype=bool)
    for i in range(5):
        cycle[i, (i + 1) % 5] = cycle[(i + 1) % 5, i] = True
    assert maximal_cliques(cycle) == [[0, 1], [0, 4], [1, 2], [2, 3], [3, 4]]
    frame = pd.DataFrame(
        [[1, 1, 0], [1, 1, 0], [0, 0, 1]], index=["u", "v", "w"], columns=["u", "v", "w"]
    )
    assert maximal_cliques(frame) == [["u", "v"], ["w"]]
    with pytest.raises(ValueError):
        maximal_cliques(np.array([[0, 1], [0, 0]]))


def brute_force_maximal_cliques(adj: np.ndarray) -> list[list[int]]:
    n = len(adj)
    cliques = [
        set(sub)
        for r in range(1, n + 1)
        for sub in itertools.combinations(range(n), r)
        if all(adj[i, j] for i, j in itertools.combinations(sub, 2))
    ]
    return sorted(sorted(c) for c in cliques if not any(c < other for other in cliques))


@pytest.mark.parametrize("seed", range(6))
def test_cliques_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random((8, 8)) < 0.5, 1)
    adj = upper | upper.T
    assert maximal_cliques(adj) == brute_force_maximal_cliques(adj)


# --------------------------------------------------------------------------- diagram


def save_both(fig, tmp_path, stem):
    png, pdf = tmp_path / f"{stem}.png", tmp_path / f"{stem}.pdf"
    fig.savefig(png, dpi=80)
    fig.savefig(pdf)
    assert png.stat().st_size > 0 and pdf.stat().st_size > 0
    assert pdf.read_bytes()[:5] == b"%PDF-"
    image = mpimg.imread(png)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    return image


def figure_texts(fig) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_diagram_two_methods(tmp_path):
    scores = shifted_scores(n=10, k=2, step=0.05, seed=4)
    result = critical_difference(long_table(scores, ["left", "right"]), "method", "acc", "dataset")
    fig = plot_cd_diagram(result, title="two")
    save_both(fig, tmp_path, "two")
    assert "skipped" in figure_texts(fig)


def test_diagram_25_long_names(tmp_path):
    names = [f"backbone{j:02d}/mapping=nearest-class-mean/agg=max" for j in range(25)]
    scores = shifted_scores(n=30, k=25, step=0.004, seed=5)
    result = critical_difference(long_table(scores, names), "method", "acc", "dataset")
    fig = plot_cd_diagram(result, title="25 configurations")
    save_both(fig, tmp_path, "many")
    texts = figure_texts(fig)
    assert all(name in texts for name in names)
    assert "p = " in texts and "α = 0.05" in texts
    # labels must fit inside the canvas, not be clipped at its edges
    renderer = FigureCanvasAgg(fig).get_renderer()
    width_px = fig.get_figwidth() * fig.dpi
    for text in fig.axes[0].texts:
        box = text.get_window_extent(renderer)
        assert box.x0 >= -1 and box.x1 <= width_px + 1
    top = plot_cd_diagram(result, max_methods=8)
    save_both(top, tmp_path, "top8")
    assert "best 8 of 25" in figure_texts(top)


def test_diagram_marks_non_significant_friedman(tmp_path):
    scores = shifted_scores(n=6, k=5, step=0.0, seed=7)
    result = critical_difference(
        long_table(scores, [f"m{j}" for j in range(5)]), "method", "acc", "dataset"
    )
    fig = plot_cd_diagram(result)
    save_both(fig, tmp_path, "null")
    assert "NOT significant" in figure_texts(fig)


def significance(names: str, pairs: list[str]) -> pd.DataFrame:
    """Symmetric methods x methods "significantly different" matrix from pairs like "bd"."""
    sig = pd.DataFrame(False, index=list(names), columns=list(names))
    for a, b in pairs:
        sig.loc[a, b] = sig.loc[b, a] = True
    return sig


def test_diagram_bars_never_cover_a_significant_pair():
    # Maximal cliques {a, b, c} and {a, c, d}: the second's extent a..d would cover b, which
    # differs from d. Bars: a..c, then c..d (b..c lies inside a..c); e differs from everyone.
    sig = significance("abcde", ["bd", "ae", "be", "ce", "de"])
    assert _bars(sig, list("abcde")) == [(0, 2), (2, 3)]
    # Among the shown best three only, and with nothing separable: one bar.
    assert _bars(sig, list("abc")) == [(0, 2)]
    assert _bars(significance("abcd", []), list("abcd")) == [(0, 3)]
    assert _bars(significance("abc", ["ab", "ac", "bc"]), list("abc")) == []


@pytest.mark.parametrize("seed", range(20))
def test_diagram_bars_are_the_maximal_non_significant_runs(seed):
    rng = np.random.default_rng(seed)
    n = 8
    upper = np.triu(rng.random((n, n)) < 0.3, 1)
    names = [f"m{i}" for i in range(n)]
    sig = pd.DataFrame(upper | upper.T, index=names, columns=names)
    runs = [  # every contiguous run with no significant pair, not inside a longer one
        (i, j)
        for i in range(n)
        for j in range(i + 1, n)
        if not sig.iloc[i : j + 1, i : j + 1].to_numpy().any()
    ]
    maximal = sorted(
        (i, j) for i, j in runs if not any(a <= i and j <= b and (a, b) != (i, j) for a, b in runs)
    )
    assert _bars(sig, names) == maximal


def test_best_per_value_keeps_the_best_ranked_row_of_each_value():
    ranks = pd.DataFrame(
        {
            "method": ["a", "b", "c", "d", "e"],
            "average_rank": [2.5, 1.0, 3.0, 1.5, 2.5],
            "gen": ["mean", "kmeans", "mean", "all", "all"],
            "k": [1, 20, 1, 5, -1],
        }
    )
    best = best_per_value(ranks, ["gen"])
    assert best["method"].tolist() == ["b", "d", "a"]
    assert best_per_value(ranks, ["gen", "k"])["method"].tolist() == ["b", "d", "a", "e"]
    with pytest.raises(ValueError, match=r"no column\(s\) \['agg'\]"):
        best_per_value(ranks, ["agg"])
