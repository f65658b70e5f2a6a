"""Rule plot_nc1_vs_gain: NC1 against the gain from multiple proxies, with Spearman's rho."""

import pandas as pd
from _common import rule_log, save_figure

from imprint import figures
from imprint.io import write_table

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    results = pd.read_parquet(sm.input.results)
    collapse = pd.read_csv(sm.input.collapse)
    pairs, _ = figures.nc1_gain_pairs(collapse, results)
    rho, p = figures.spearman(pairs["nc1"], pairs["gain"])
    print(f"Spearman rho = {rho:.3f} (p = {p:.3g}) over {len(pairs)} (backbone, dataset, mapping)")
    write_table(pairs.assign(spearman_rho=rho, spearman_p=p), sm.output.pairs)
    fig, _, _ = figures.plot_nc1_vs_gain(collapse, results)
    save_figure(fig, sm.output.pdf, sm.output.png)
