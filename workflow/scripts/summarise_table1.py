"""Rule summarise_table1: the paper's Table 1 (five named methods) as CSV, Markdown and LaTeX."""

import pandas as pd
from _common import rule_log

from imprint.figures import paper as figures
from imprint.io import atomic_path, write_table

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    # A configuration run by several experiments (Qi et al. is in aggfixed and aggfocus) has
    # equal rows in each; table1 averages matches within a group, so pooling changes nothing.
    table = figures.table1(pd.concat([pd.read_parquet(p) for p in sm.input], ignore_index=True))
    write_table(table, sm.output.csv)
    for path, text in (
        (sm.output.md, figures.table1_markdown(table)),
        (sm.output.tex, figures.table1_latex(table)),
    ):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    print(figures.table1_markdown(table))
