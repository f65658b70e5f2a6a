"""Rule plot_collapse: NC1 and VCI per backbone, dataset and mapping."""

import pandas as pd
from _common import rule_log, save_figure

from imprint.figures import paper as figures

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    save_figure(figures.plot_collapse(pd.read_csv(sm.input.collapse)), sm.output.pdf, sm.output.png)
