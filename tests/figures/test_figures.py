"""Figures and the rendered Table 1 on small synthetic results tables known by hand."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from _results import (
    BACKBONES,
    NC1,
    TARGETS,
    collapse_table,
    exact_spearman_p,
    fewshot_results,
    merged_results,
    multimodal_results,
    proxies_results,
    table1_results,
)
from scipy import stats

from imprint.analysis.correlation import loglinear_r2
from imprint.analysis.tables import best_k_table, merged_classes_table, nc1_gain_pairs, table1
from imprint.figures.accuracy_overview import plot_accuracy_overview
from imprint.figures.accuracy_vs_proxies import plot_accuracy_vs_proxies
from imprint.figures.collapse import plot_collapse
from imprint.figures.fewshot_curves import plot_fewshot_curves
from imprint.figures.multimodal import plot_accuracy_vs_merged, plot_multimodal
from imprint.figures.nc1_vs_gain import plot_nc1_vs_gain
from imprint.figures.style import GEN_STYLE
from imprint.figures.table1 import table1_latex, table1_markdown


def test_table1_markdown_and_latex():
    df = table1(table1_results())
    ours = f"{df.loc[df['method'] == 'Ours', 'accuracy'].iloc[0]:.2f}"
    qi = f"{df.loc[df['method'] == 'Qi et al.', 'accuracy'].iloc[0]:.2f}"
    md = table1_markdown(df)
    assert f"**{ours}**" in md and qi in md and f"**{qi}**" not in md
    assert "94.54" in md and md.count("\n") == 9  # header, rule, 5 methods, 2 baselines
    tex = table1_latex(df)
    assert rf"\textbf{{{ours}}}" in tex and qi in tex
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}"):
        assert rule in tex
    assert r"\%" in tex and " % " not in tex


def test_nc1_vs_gain_spearman_equals_hand_pairs():
    pairs_x, pairs_y = [], []
    for (b, m), target in TARGETS.items():
        acc = {k: 90 - (k - target) ** 2 for k in range(1, 7)}
        pairs_x.append(NC1[(b, m)])
        pairs_y.append(max(v for k, v in acc.items() if k > 1) - acc[1])
    for b in BACKBONES:
        acc = {k: 90 - ((k - 2) ** 2 + (k - 4) ** 2) / 2 for k in range(1, 7)}
        pairs_x.append(NC1[(b, "MNIST")])
        pairs_y.append(max(v for k, v in acc.items() if k > 1) - acc[1])
    expected = stats.spearmanr(pairs_x, pairs_y)
    # CIFAR-10 has a gain but collapse has a flat 0.7 for it: keep it out of both sides.
    collapse = collapse_table()
    collapse = collapse[collapse["dataset"] != "CIFAR-10"]
    fig, rho, p = plot_nc1_vs_gain(
        collapse, multimodal_results(), gain_k=None, pool_variations=False
    )
    assert rho == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)
    assert f"{rho:.2f}" in fig.axes[0].get_title()


def test_nc1_vs_gain_paper_defaults_k5_and_pooled_variations():
    # The paper's Fig. 12: gain = acc(k=5) - acc(k=1); the variations j of map{i}-{j} pooled
    # into one point per i (NC1 and gain both averaged).
    def gain(acc):
        return acc(5) - acc(1)

    points = {}
    for (b, m), target in TARGETS.items():
        i = m.split("-")[0]
        points.setdefault((b, i), []).append(
            (NC1[(b, m)], gain(lambda k, t=target: 90 - (k - t) ** 2))
        )
    for b in BACKBONES:
        points[(b, "MNIST")] = [
            (NC1[(b, "MNIST")], gain(lambda k: 90 - ((k - 2) ** 2 + (k - 4) ** 2) / 2))
        ]
    x = [np.mean([nc for nc, _ in v]) for v in points.values()]
    y = [np.mean([g for _, g in v]) for v in points.values()]
    collapse = collapse_table()
    collapse = collapse[collapse["dataset"] != "CIFAR-10"]
    pairs, _ = nc1_gain_pairs(collapse, multimodal_results())
    assert len(pairs) == len(points) == 6
    pooled = pairs[pairs["mapping"] == "map2"].set_index("backbone")
    assert pooled.loc["resnet18", "n_variations"] == 2
    # resnet18 map2-0 (target 3) and map2-1 (target 5): gains 8t - 24 = 0 and 16.
    assert pooled.loc["resnet18", "gain"] == pytest.approx(8.0)
    assert pooled.loc["resnet18", "nc1"] == pytest.approx((0.9 + 2.5) / 2)
    fig, rho, p = plot_nc1_vs_gain(collapse, multimodal_results())
    # Six points: the p-value is exact, over all 720 pairings of the ranks.
    assert rho == pytest.approx(stats.spearmanr(x, y).statistic)
    assert p == pytest.approx(exact_spearman_p(x, y))
    r2 = stats.linregress(np.log10(x), y).rvalue ** 2
    assert loglinear_r2(pairs["nc1"], pairs["gain"]) == pytest.approx(r2)
    assert f"R² (gain ~ log NC1) = {r2:.2f}" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match=r"k = 7; k values present: \[1, 2, 3, 4, 5, 6\]"):
        nc1_gain_pairs(collapse, multimodal_results(), gain_k=7)


# --------------------------------------------------------------------------- rendering


def render(fig, tmp_path, name):
    png, pdf = tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"
    fig.savefig(png, dpi=60)
    fig.savefig(pdf)
    assert png.stat().st_size > 0 and pdf.stat().st_size > 0
    image = mpimg.imread(png)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50


def minimal(df: pd.DataFrame) -> pd.DataFrame:
    """One backbone, one dataset, one task, one seed."""
    first = df.iloc[0]
    keep = (
        (df["backbone"] == first["backbone"])
        & (df["dataset"] == first["dataset"])
        & (df["task"] == first["task"])
        & (df["seed"] == df["seed"].min())
    )
    return df[keep]


@pytest.mark.parametrize("which", ["full", "minimal"])
def test_plots_render(tmp_path, which):
    pick = (lambda d: d) if which == "full" else minimal
    proxies = pick(proxies_results())
    if which == "minimal":
        proxies = proxies[proxies["gen"] != "fps"]  # a GEN missing
    render(plot_accuracy_vs_proxies(proxies), tmp_path, "fig6")
    render(plot_fewshot_curves(pick(fewshot_results())), tmp_path, "fewshot")
    multimodal = multimodal_results()
    if which == "minimal":
        multimodal = multimodal[
            (multimodal["backbone"] == "resnet18") & (multimodal["dataset"] == "MNIST")
        ]
        multimodal = multimodal[multimodal["seed"] == 1]
    render(plot_multimodal(multimodal), tmp_path, "multimodal")
    render(plot_accuracy_vs_merged(merged_classes_table(merged_results())), tmp_path, "merged")
    render(plot_accuracy_vs_merged(merged_classes_table(multimodal)[:0]), tmp_path, "no_merged")
    collapse = collapse_table() if which == "full" else collapse_table().iloc[[0]]
    render(plot_collapse(collapse), tmp_path, "collapse")
    if which == "full":
        fig, _, _ = plot_nc1_vs_gain(collapse, multimodal)
    else:
        # one point: Spearman's rho is undefined and says so
        fig, rho, _ = plot_nc1_vs_gain(collapse_table(with_remapped=False), multimodal)
        assert np.isnan(rho) and "n/a" in fig.axes[0].get_title()
    render(fig, tmp_path, "nc1_gain")
    render(plot_accuracy_overview(pick(table1_results())), tmp_path, "overview")


def test_collapse_variants_render(tmp_path):
    render(plot_collapse(collapse_table(with_plain=False)), tmp_path, "remapped_only")
    no_ref = collapse_table(with_remapped=False).drop(columns="nc1_reference_centring")
    render(plot_collapse(no_ref), tmp_path, "no_reference")


def test_fig6_lines_and_norm_fallback():
    fig = plot_accuracy_vs_proxies(proxies_results())
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0] == GEN_STYLE["mean"]["label"]
    assert any("k-least squares (norms none)" == lab for lab in labels)
    ax = fig.axes[0]
    assert fig.axes[-1].get_xticklabels()[-1].get_text() == "all"
    kmeans = [ln for ln in ax.get_lines() if ln.get_color() == GEN_STYLE["kmeans"]["color"]]
    # k = 1, 2, 5, 20; seed medians of one task group averaged with the other
    np.testing.assert_allclose(kmeans[0].get_ydata(), [85, 87, 89, 91])


def test_fewshot_follows_nominal_k():
    fig = plot_fewshot_curves(fewshot_results(ks=(20,)))
    ax = fig.axes[0]
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() not in (":", "--")]
    xs = sorted(solid[0].get_xdata())
    assert xs == [1, 2, 5, 10, 20, 50]  # n < 20 rows (stored k = n) stay on the k=20 line
    assert any("k=20" in t.get_text() for t in fig.legends[0].get_texts())


def test_fewshot_without_all_takes_nominal_k_from_the_largest_n():
    # No n = -1 rows: the lowered k = 2, 5, 10 stored at small n are not lines of their own.
    results = fewshot_results()
    fig = plot_fewshot_curves(results[results["fewshot"] != -1])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    ks = sorted(lab.split("k=")[1].split(" ")[0] for lab in labels)
    assert ks == ["1", "1", "20", "20", "5", "5"]  # k-means and kls, k = 1, 5, 20 each
    assert "presampling not drawn" not in fig._suptitle.get_text()


def test_fewshot_title_says_which_presampling_rows_it_leaves_out():
    results = fewshot_results()
    weibull = results.assign(presampling="weibull", quantile_lo=0.05, quantile_hi=0.95)
    fig = plot_fewshot_curves(pd.concat([results, weibull], ignore_index=True))
    assert "(weibull presampling not drawn" in fig._suptitle.get_text()


def test_empty_and_missing_rows_raise():
    empty = proxies_results().iloc[:0]
    for fn in (
        plot_accuracy_vs_proxies,
        plot_fewshot_curves,
        plot_multimodal,
        best_k_table,
        plot_accuracy_overview,
    ):
        with pytest.raises(ValueError, match="no rows"):
            fn(empty)
    with pytest.raises(ValueError, match="no rows"):
        plot_collapse(collapse_table().iloc[:0])
    with pytest.raises(ValueError, match="no rows"):
        plot_nc1_vs_gain(collapse_table(), empty)
    mnn = proxies_results().assign(agg="mnn", m=5, distance="cosine")
    with pytest.raises(ValueError, match=r"agg == 'max'"):
        plot_accuracy_vs_proxies(mnn)
    with pytest.raises(ValueError, match="fewshot > 0"):
        plot_fewshot_curves(proxies_results())
    with pytest.raises(ValueError, match=r"gen == 'kmeans'"):
        best_k_table(proxies_results()[lambda d: d["gen"] == "mean"])
    with pytest.raises(ValueError, match="lacks the column"):
        plot_collapse(collapse_table().drop(columns="vci"))
    other = collapse_table().assign(backbone="swin_b")
    with pytest.raises(ValueError, match="in both tables"):
        plot_nc1_vs_gain(other, multimodal_results())


def test_styles_list_the_tables_order_of_backbones_and_datasets():
    # Tables sort by analysis.tables' orders, panels and legends by the styles': the same.
    from imprint.analysis.tables import BACKBONE_ORDER, DATASET_ORDER
    from imprint.figures.style import BACKBONE_STYLE, DATASET_STYLE

    assert tuple(BACKBONE_STYLE) == BACKBONE_ORDER
    assert tuple(DATASET_STYLE) == DATASET_ORDER
