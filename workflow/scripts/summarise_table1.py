"""Rule summarise_table1: the paper's Table 1 (five named methods) as CSV, Markdown and LaTeX."""

import pandas as pd
from _common import rule_log

from imprint import figures
from imprint.io import atomic_path, write_table

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    table = figures.table1(pd.read_parquet(sm.input[0]))
    write_table(table, sm.output.csv)
    for path, text in (
        (sm.output.md, figures.table1_markdown(table)),
        (sm.output.tex, figures.table1_latex(table)),
    ):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    print(figures.table1_markdown(table))
