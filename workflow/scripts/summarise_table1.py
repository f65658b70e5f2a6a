"""Rule summarise_table1: the paper's Table 1 (five named methods) as CSV, Markdown and LaTeX."""

from _common import rule_log

from imprint.api.figures import summarise_table1

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    summarise_table1(list(sm.input), dict(sm.output.items()))
