"""Rule plot_multimodal: accuracy against k per mapping, and the best k per group."""

import pandas as pd
from _common import rule_log, save_figure

from imprint import figures
from imprint.io import write_table

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    results = pd.read_parquet(sm.input[0])
    write_table(figures.best_k_table(results), sm.output.best_k)
    save_figure(figures.plot_multimodal(results), sm.output.pdf, sm.output.png)
