"""Rule plot_multimodal: accuracy against k per mapping, the best k, accuracy against i."""

import pandas as pd
from _common import rule_log, save_figure

from imprint.figures import paper as figures
from imprint.io import write_table

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    results = pd.read_parquet(sm.input[0])
    write_table(figures.best_k_table(results), sm.output.best_k)
    save_figure(figures.plot_multimodal(results), sm.output.pdf, sm.output.png)
    merged = figures.merged_classes_table(results)
    write_table(merged, sm.output.merged_table)
    save_figure(figures.plot_accuracy_vs_merged(merged), sm.output.merged_pdf, sm.output.merged_png)
