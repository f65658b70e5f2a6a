"""Rule plot_results: one results figure (overview, accuracy vs proxies, few-shot curves)."""

import pandas as pd
from _common import rule_log, save_figure

from imprint.figures import paper as figures

PLOTS = {
    "accuracy_overview": figures.plot_accuracy_overview,
    "accuracy_vs_proxies": figures.plot_accuracy_vs_proxies,
    "fewshot_curves": figures.plot_fewshot_curves,
}

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    fig = PLOTS[sm.wildcards.figure](pd.read_parquet(sm.input[0]))
    save_figure(fig, sm.output.pdf, sm.output.png)
