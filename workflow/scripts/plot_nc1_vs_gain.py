"""Rule plot_nc1_vs_gain: NC1 against the gain from multiple proxies, with Spearman's rho."""

import pandas as pd
from _common import rule_log, save_figure

from imprint.figures import paper as figures
from imprint.io import write_table

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    options = dict(sm.params.options)  # gain_k, pool_variations, nc1_column
    results = pd.read_parquet(sm.input.results)
    collapse = pd.read_csv(sm.input.collapse)
    pairs, _ = figures.nc1_gain_pairs(collapse, results, **options)
    nc1 = pairs[options["nc1_column"]]
    rho, p = figures.spearman(nc1, pairs["gain"])
    r2 = figures.loglinear_r2(nc1, pairs["gain"])
    print(
        f"Spearman rho = {rho:.3f} (p = {p:.3g}), R² of gain ~ log10 NC1 = {r2:.3f}, over "
        f"{len(pairs)} (backbone, dataset, mapping); options {options}"
    )
    write_table(pairs.assign(spearman_rho=rho, spearman_p=p, loglinear_r2=r2), sm.output.pairs)
    fig, _, _ = figures.plot_nc1_vs_gain(collapse, results, **options)
    save_figure(fig, sm.output.pdf, sm.output.png)
